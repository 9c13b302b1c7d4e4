"""Root pytest configuration: the ``--run-slow`` switch for the tests and the notebooks.

``python -m pytest`` collects ``tests/`` and, through nbmake (``--nbmake`` in ``addopts``),
every notebook in ``notebooks/``. Notebooks run real fits, so each one is marked ``slow``
here; slow items are skipped unless ``--run-slow`` is given, which CI (``.ci/run``) does.
This file sits at the repository root so that its option and hook apply to both folders;
the test fixtures stay in ``tests/conftest.py``.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--run-slow`` runs the real MCMC fits, SBC, notebooks and browser tests too."""
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run tests marked slow (real fits, SBC, notebooks, browser); CI does",
    )


def _is_notebook(item: pytest.Item) -> bool:
    return item.path.suffix == ".ipynb"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every notebook slow, then skip slow items unless ``--run-slow`` is given."""
    for item in items:
        if _is_notebook(item):
            item.add_marker(pytest.mark.slow)
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
