"""Shared fixtures of the georisk test-suite.

The ``--run-slow`` option and the hook that skips slow tests live in the root ``conftest.py``
(they cover the notebooks in ``notebooks/`` too).
"""

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


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every matplotlib figure a test opened (only if matplotlib was imported)."""
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
