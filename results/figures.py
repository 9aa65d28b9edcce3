"""The README's result figures in ``Plots/``, drawn from the run folders under ``results/``.

    python results/figures.py

For each optimizer of the Fashion-MNIST comparison: ``Plots/fashion_mnist_comparison_<opt>.png``
(test accuracy against epoch and updates, seconds per epoch, total seconds; the mean over
seeds with a +- std band) and ``Plots/fashion_mnist_wallclock_<opt>.png`` (test error against
wall-clock seconds). For each optimizer of the Seesaw study (``results/seesaw_<opt>/``):
``Plots/seesaw_comparison_<opt>.png``, the same four panels for decay_lr, increase_bs and
seesaw. For the noise-scale study (``results/noise_scale_adaptive/<schedule>/seed_<k>/`` and
``results/noise_scale_mnist/constant/seed_<k>/``, `draw_noise_scale`):
``Plots/noise_scale_schedules.png`` (batch size, measured B_simple and Smith's noise scale
per epoch), ``Plots/noise_scale_comparison.png`` (the four panels) and
``Plots/noise_scale_mnist.png`` (B_simple on the MNIST sample), means with +- std bands.
The SAM study's ``Plots/sam_validation_lr.png`` and ``Plots/sam_seeds.png``, from
``results/sam_study/``, are ``notebooks/sam_study.py``'s `figures` (`draw_sam_study`). The
sharp-minima study's ``Plots/sharp_minima_*.png`` are ``notebooks/sharp_minima_report.py``'s
`draw`, from ``results/sharp_minima/`` (`draw_sharp_minima`).
"""

from __future__ import annotations

import sys
from dataclasses import replace
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


def draw_seesaw(optimizer: str) -> Path:
    """Draw the Seesaw study's comparison figure of one optimizer; return its path."""
    import matplotlib.pyplot as plt

    folders = report.run_folders([RESULTS / f"seesaw_{optimizer}"])
    seeds = len({folder.name for folder in folders})
    title = f"Seesaw study, Fashion-MNIST, MNIST CNN, {OPTIMIZERS[optimizer]}: {seeds} seeds"
    # The folders are <schedule>/seed_<k>: label each run by its schedule, so that the seeds
    # of a schedule are drawn as one mean +- std (the four panels of plots.comparison_figure).
    runs = [replace(run, label=run.path.parent.name) for run in plots.load_runs(folders)]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    plots.plot_accuracy(runs, axes[0, 0], "epoch")
    plots.plot_accuracy(runs, axes[0, 1], "updates")
    plots.plot_epoch_seconds(runs, axes[1, 0])
    plots.plot_total_seconds(runs, axes[1, 1])
    fig.suptitle(title)
    return plots.save(fig, PLOTS / f"seesaw_comparison_{optimizer}.png")


def draw_noise_scale(results: Path = RESULTS, plots_dir: Path = PLOTS) -> list[Path]:
    """Draw the noise-scale study's three figures from ``results`` into ``plots_dir``."""
    schedules = report.run_folders([results / "noise_scale_adaptive"])
    mnist = report.run_folders([results / "noise_scale_mnist"])
    seeds = len({folder.name for folder in schedules})
    setting = f"MNIST CNN, SGD momentum 0.9, LR 0.05: {seeds} seeds"
    return [
        plots.noise_scale_figure(
            schedules,
            plots_dir / "noise_scale_schedules.png",
            f"Fashion-MNIST, {setting}: batch size, measured B_simple, Smith's noise scale",
        ),
        plots.comparison_figure(
            schedules,
            plots_dir / "noise_scale_comparison.png",
            f"Fashion-MNIST, {setting}: adaptive, hand-made schedules, the doubling control",
        ),
        plots.noise_scale_figure(
            mnist,
            plots_dir / "noise_scale_mnist.png",
            f"MNIST sample, constant batch 100, {len(mnist)} seeds: measured B_simple",
        ),
    ]


def draw_sam_study() -> list[Path]:
    """Draw the SAM study's figures from ``results/sam_study``; return their paths."""
    import importlib.util

    path = RESULTS.parent / "notebooks" / "sam_study.py"
    spec = importlib.util.spec_from_file_location("sam_study", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.figures(RESULTS / "sam_study", PLOTS)


def draw_sharp_minima() -> list[Path]:
    """Draw the sharp-minima study's figures from results/sharp_minima/; return their paths."""
    sys.path.insert(0, str(RESULTS.parent / "notebooks"))
    import sharp_minima_report

    return sharp_minima_report.draw(RESULTS / "sharp_minima", PLOTS)


if __name__ == "__main__":
    for name in OPTIMIZERS:
        if (RESULTS / "fashion_mnist" / name).is_dir():
            for path in draw(name):
                print(path)
        if (RESULTS / f"seesaw_{name}").is_dir():
            print(draw_seesaw(name))
    if (RESULTS / "noise_scale_adaptive").is_dir():
        for path in draw_noise_scale():
            print(path)
    if (RESULTS / "sam_study").is_dir():
        for path in draw_sam_study():
            print(path)
    if (RESULTS / "sharp_minima" / "analysis").is_dir():
        for path in draw_sharp_minima():
            print(path)
