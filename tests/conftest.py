"""Shared fixtures of the georisk test-suite."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from helpers import TODAY, write_mini_workspace


@pytest.fixture
def today() -> date:
    """The fixed 'today' of the test-suite (the mini workspace is valid on this date)."""
    return TODAY


@pytest.fixture
def mini_workspace(tmp_path: Path) -> Path:
    """A fresh, valid mini workspace in a temporary directory."""
    return write_mini_workspace(tmp_path / "ws")


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--run-slow`` runs the real MCMC fits, SBC, notebooks and browser tests too."""
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run tests marked slow (real fits, SBC, notebooks, browser); CI does",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip slow tests unless ``--run-slow`` is given (they always run in CI)."""
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every matplotlib figure a test opened (only if matplotlib was imported)."""
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
