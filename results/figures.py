"""The README's result figures in ``Plots/``, drawn from the run folders under ``results/``.

    python results/figures.py

For each optimizer of the Fashion-MNIST comparison: ``Plots/fashion_mnist_comparison_<opt>.png``
(test accuracy against epoch and updates, seconds per epoch, total seconds; the mean over
seeds with a +- std band) and ``Plots/fashion_mnist_wallclock_<opt>.png`` (test error against
wall-clock seconds).
"""

from __future__ import annotations

from pathlib import Path

from bsi_keras import plots
from bsi_keras.cli import report

RESULTS = Path(__file__).parent
PLOTS = RESULTS.parent / "Plots"
OPTIMIZERS = {
    "momentum": "SGD momentum 0.9, LR 0.05",
    "sgd": "SGD, LR 0.1",
    "adam": "Adam, LR 0.001",
}


def draw(optimizer: str) -> list[Path]:
    """Draw the two figures of one optimizer's runs; return their paths."""
    folders = report.run_folders([RESULTS / "fashion_mnist" / optimizer])
    seeds = len({folder.parent.name for folder in folders})
    title = f"Fashion-MNIST, MNIST CNN, {OPTIMIZERS[optimizer]}: {seeds} seeds"
    return [
        plots.comparison_figure(
            folders, PLOTS / f"fashion_mnist_comparison_{optimizer}.png", title
        ),
        plots.wallclock_figure(
            folders,
            PLOTS / f"fashion_mnist_wallclock_{optimizer}.png",
            f"{title}, shared 2-core CPU",
        ),
    ]


if __name__ == "__main__":
    for name in OPTIMIZERS:
        if (RESULTS / "fashion_mnist" / name).is_dir():
            for path in draw(name):
                print(path)
