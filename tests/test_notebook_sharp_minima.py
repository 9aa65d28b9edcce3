"""notebooks/sharp_minima.ipynb runs end to end in its quick setting (BSI_QUICK=1)."""

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "sharp_minima.ipynb"


@pytest.mark.notebook
def test_sharp_minima_notebook_quick(monkeypatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("BSI_QUICK", "1")  # the kernel inherits the environment
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute(cwd=str(NOTEBOOK.parent))
    last = notebook.cells[-2]  # the cell that prints the results as JSON
    results = json.loads("".join(o.get("text", "") for o in last.outputs))
    for name in ("small batch", "large batch"):
        assert 0.0 <= results[name]["test_accuracy"] <= 1.0
        sharpness = [v for k, v in results[name].items() if k.startswith("sharpness")]
        assert len(sharpness) == 4 and all(v >= 0 for v in sharpness)
    assert results["mnist_cnn surface"]["points"] == 25
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    assert len([o for o in outputs if "image/png" in o.get("data", {})]) == 5
