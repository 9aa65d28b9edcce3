"""The notebooks run, in their quick setting (BSI_QUICK=1)."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def execute(name: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    os.environ["BSI_QUICK"] = "1"
    try:
        # Run in the notebooks' folder, as Jupyter does.
        resources = {"metadata": {"path": str(NOTEBOOKS)}}
        NotebookClient(notebook, timeout=600, kernel_name="python3", resources=resources).execute()
    finally:
        del os.environ["BSI_QUICK"]
    return notebook


def outputs_text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.extend(str(v) for k, v in output.get("data", {}).items() if k.startswith("text"))
    return "\n".join(parts)


@pytest.mark.notebook
def test_mnist_schedules_notebook():
    notebook = execute("mnist_schedules.ipynb")
    text = outputs_text(notebook)
    assert "finished" in text and "increase_bs" in text
    images = [
        o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(images) == 7  # four optimizers in (a), three in (b)


@pytest.mark.notebook
def test_visualisation_notebook():
    notebook = execute("visualisation.ipynb")
    text = outputs_text(notebook)
    assert "decay_lr" in text and "increase_bs" in text
    images = [
        o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(images) == 1


@pytest.mark.notebook
def test_noise_scale_notebook():
    notebook = execute("noise_scale.ipynb")
    text = outputs_text(notebook)
    assert "adaptive" in text and "increase_bs" in text
    images = [
        o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(images) == 3
