"""notebooks/sam_study.ipynb runs end to end in its quick setting (BSI_QUICK=1)."""

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "sam_study.ipynb"


@pytest.mark.notebook
def test_sam_study_notebook_quick(monkeypatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("BSI_QUICK", "1")  # the kernel inherits the environment
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute(cwd=str(NOTEBOOK.parent))
    last = notebook.cells[-2]  # the cell that prints the summary as JSON
    summary = json.loads("".join(o.get("text", "") for o in last.outputs))
    assert summary["runs"] == 8
    best = summary["best_test_accuracy"]
    assert set(best) == {"momentum", "sam_momentum", "asam_momentum", "adam", "sam_adam"}
    assert all(0.0 <= a <= 1.0 for runs in best.values() for a in runs.values())
    assert set(summary["time_factors"]) == {"sam_momentum", "asam_momentum", "sam_adam"}
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    assert len([o for o in outputs if "image/png" in o.get("data", {})]) == 4
