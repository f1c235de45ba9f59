"""Browser tests run only when asked for (`make test-browser`, i.e. `pytest tests/browser -m browser`)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: needs a headless chromium; run with make test-browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "browser" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="browser test: run `make test-browser` (pytest -m browser)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)
