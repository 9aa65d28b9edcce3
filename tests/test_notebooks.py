"""The notebooks run, in their quick setting (BSI_QUICK=1)."""

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def execute(name: str, timeout: int = 600, prelude: str = "") -> nbformat.NotebookNode:
    """Run a notebook in its quick setting; ``prelude``: code run first in its kernel."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    if prelude:
        notebook.cells.insert(0, nbformat.v4.new_code_cell(prelude))
    os.environ["BSI_QUICK"] = "1"
    try:
        # Run in the notebooks' folder, as Jupyter does.
        resources = {"metadata": {"path": str(NOTEBOOKS)}}
        client = NotebookClient(
            notebook, timeout=timeout, kernel_name="python3", resources=resources
        )
        client.execute()
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


def images(notebook: nbformat.NotebookNode) -> list:
    """The notebook's PNG outputs."""
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    return [o for o in outputs if "image/png" in o.get("data", {})]


def printed_json(notebook: nbformat.NotebookNode) -> dict:
    """What the second-to-last cell printed as JSON (the notebooks' summary cell)."""
    return json.loads("".join(o.get("text", "") for o in notebook.cells[-2].outputs))


@pytest.mark.notebook
def test_mnist_schedules_notebook():
    notebook = execute("mnist_schedules.ipynb")
    text = outputs_text(notebook)
    assert "finished" in text and "increase_bs" in text
    assert "keras_reproduction" in text and "run A (4b3a0c6" in text
    assert len(images(notebook)) == 6  # three optimizers in (a), three in (b)


@pytest.mark.notebook
def test_visualisation_notebook():
    notebook = execute("visualisation.ipynb")
    text = outputs_text(notebook)
    assert "BSI_QUICK=1: training two tiny demo runs instead of the smith sweep" in text
    assert "decay_lr" in text and "increase_bs" in text
    assert len(images(notebook)) == 1


@pytest.mark.notebook
def test_noise_scale_notebook():
    notebook = execute("noise_scale.ipynb")
    text = outputs_text(notebook)
    assert "adaptive" in text and "increase_bs" in text
    assert len(images(notebook)) == 3


@pytest.mark.notebook
def test_sam_study_notebook():
    notebook = execute("sam_study.ipynb", timeout=600)
    summary = printed_json(notebook)
    assert summary["tuning_runs"] == 7
    methods = ("sgd_b128", "sgd_b2048", "sgd_2x_b2048", "sam_b2048")
    assert set(summary["chosen"]) == set(summary["seeds"]) == set(methods)
    for entry in summary["seeds"].values():
        assert sorted(entry["seeds"] + entry["diverged_seeds"]) == [0, 1]
        if entry["seeds"]:
            assert 0.0 <= entry["test_mean"] <= 100.0 and 0.0 <= entry["train_mean"] <= 100.0
    text = outputs_text(notebook)
    assert "seeds/sam_b2048 - sgd_b2048" in text and "train accuracy (%)" in text
    assert len(images(notebook)) == 2


@pytest.mark.notebook
def test_sharp_minima_notebook():
    notebook = execute("sharp_minima.ipynb", timeout=300)
    summary = printed_json(notebook)
    # The committed study: both solutions of every seed measured.
    assert summary["seeds"]["small_batch"] == summary["seeds"]["large_batch"]
    assert len(summary["seeds"]["small_batch"]) >= 2
    assert abs(summary["kernels x 1"]["max_output_difference"]) == 0.0
    assert summary["kernels x 2"]["max_output_difference"] < 1e-4  # the same function
    for network in ("kernels x 1", "kernels x 2"):
        values = [v for k, v in summary[network].items() if k.startswith("sharpness")]
        assert len(values) == 3 and all(v >= 0 for v in values)
    assert len(images(notebook)) >= 2  # 1-D landscapes, interpolation (and 2-D contours)
