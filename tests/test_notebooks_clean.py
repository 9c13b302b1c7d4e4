"""The notebooks are stored without outputs (nbstripout), so diffs show only what a person wrote.

Fast: this only reads the JSON. Running the notebooks is nbmake's job (``--run-slow``).
Fix a failure with ``nbstripout notebooks/*.ipynb`` (or install the pre-commit hook:
``pre-commit install``; see ``.pre-commit-config.yaml``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = {
    "01_quickstart.ipynb",
    "02_priors.ipynb",
    "03_model_checking.ipynb",
    "04_new_evidence.ipynb",
}


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def test_the_tutorial_notebooks_are_present():
    assert {p.name for p in NOTEBOOKS} >= EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs(path: Path):
    dirty = [
        i
        for i, cell in enumerate(_cells(path))
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} carry outputs or execution counts; "
        "run `nbstripout notebooks/*.ipynb`."
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_metadata_is_clean(path: Path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: widget state is stored"
    for i, cell in enumerate(nb["cells"]):
        extra = set(cell.get("metadata", {})) - {"tags"}
        assert not extra, f"{path.name}: cell {i} has metadata {sorted(extra)}"
