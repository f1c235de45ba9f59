"""HTML tables: wide tables of "mean ± std" cells break before the ± so that they fit a 1280-pixel window."""

from __future__ import annotations

from prunekit.report.html import WIDE, _table
from prunekit.report.tables import Table


def _html(columns: int) -> str:
    header = ["run", *[f"{10 * i}%" for i in range(columns - 1)]]
    return _table(Table("t", header, [["a", *["98.44 ± 0.08"] * (columns - 1)]]))


def test_wide_tables_break_mean_and_std_onto_two_lines():
    wide = _html(WIDE)
    assert wide.count("98.44<br>± 0.08") == WIDE - 1


def test_narrow_tables_keep_mean_and_std_on_one_line():
    narrow = _html(WIDE - 1)
    assert "<br>" not in narrow and narrow.count("98.44 ± 0.08") == WIDE - 2
