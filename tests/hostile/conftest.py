"""Prints how many hypothesis cases each hostile-input property ran (the numbers for the closing note)."""

from __future__ import annotations

import pytest

from tests.hostile.harness import COUNTS


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if COUNTS:
        total = sum(COUNTS.values())
        terminalreporter.write_line(
            f"hostile-input cases: {total} ({', '.join(f'{k} {v}' for k, v in COUNTS.items())})"
        )
