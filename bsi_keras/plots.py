"""Figures from run folders (matplotlib, PNG).

matplotlib is imported by the functions that draw (through `_pyplot`), never by importing
this module, so reading runs back and the rest of the package stay free of it.

Example:

>>> from bsi_keras.plots import load_run  # doctest: +SKIP
>>> run = load_run("runs/compare/increase_bs")  # doctest: +SKIP
>>> run.column("val_accuracy")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from bsi_keras.run_folder import RunFolder

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@dataclass
class Run:
    """One run folder read back: its label, config and per-epoch log.

    Attributes:
        path: the folder.
        label: a legend label (the schedule's name unless given).
        config: ``config.json``.
        rows: the rows of ``log.csv`` (strings).
    """

    path: Path
    label: str
    config: dict[str, Any]
    rows: list[dict[str, str]]

    def column(self, name: str) -> np.ndarray:
        """A ``log.csv`` column as floats (NaN where empty)."""
        return np.array(
            [float(r[name]) if r.get(name) not in (None, "") else np.nan for r in self.rows]
        )

    @property
    def milestones(self) -> list[int]:
        """Epochs (1-based) whose batch size or LR differs from the epoch before."""
        batch, lr = self.column("batch_size"), self.column("learning_rate")
        return [
            i for i in range(1, len(self.rows)) if batch[i] != batch[i - 1] or lr[i] != lr[i - 1]
        ]


def load_run(path: str | os.PathLike, label: str | None = None) -> Run:
    """Read a run folder (``config.json`` and ``log.csv``)."""
    folder = RunFolder(path)
    config = folder.read_config()
    schedule = config.get("schedule")
    name = schedule.get("name") if isinstance(schedule, dict) else None
    return Run(folder.path, label or name or folder.path.name, config, folder.read_log())


def load_runs(folders: Sequence[str | os.PathLike]) -> list[Run]:
    """Read run folders, labelled by schedule unless two share one (then by folder name)."""
    runs = [load_run(f) for f in folders]
    labels = [run.label for run in runs]
    return [
        replace(run, label=run.path.name) if labels.count(run.label) > 1 else run for run in runs
    ]


def _pyplot() -> ModuleType:
    """``matplotlib.pyplot``, imported on first use, on the Agg backend when nothing else fits.

    The backend stays the user's when one was chosen (``MPLBACKEND``, ``matplotlibrc``,
    ``matplotlib.use``, a notebook's inline backend); only a process with no backend chosen
    and no display gets Agg, so figures are written without probing GUI toolkits.

    Returns:
        The ``matplotlib.pyplot`` module.
    """
    import matplotlib

    if matplotlib.get_backend(auto_select=False) is None and not _has_display():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _has_display() -> bool:
    """Whether a window could open: always on macOS and Windows, with X11 or Wayland elsewhere."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def save(fig: Figure, path: str | os.PathLike, tight: bool = True) -> Path:
    """Write ``fig`` as a PNG at ``path`` (folders made) and close it.

    Args:
        fig: the figure.
        path: where to write it.
        tight: lay it out with ``tight_layout`` first (not for a constrained layout).

    Returns:
        The PNG's path.
    """
    if tight:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_accuracy(runs: Sequence[Run], ax: Axes, against: str = "epoch") -> None:
    """Test accuracy against ``epoch`` or ``updates``; milestones as dotted lines."""
    for run in runs:
        ax.plot(run.column(against), 100 * run.column("val_accuracy"), marker="o", label=run.label)
    if against == "epoch" and runs:
        for milestone in runs[0].milestones:
            ax.axvline(milestone + 0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("epoch" if against == "epoch" else "parameter updates")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()


def plot_epoch_seconds(runs: Sequence[Run], ax: Axes) -> None:
    """Training seconds of every epoch (compile time excluded), one line per run."""
    for run in runs:
        ax.plot(run.column("epoch"), run.column("epoch_seconds"), marker="o", label=run.label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("seconds per epoch (training only)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()


def plot_total_seconds(runs: Sequence[Run], ax: Axes) -> None:
    """Total training seconds per run as bars, compile time stacked on top."""
    labels = [run.label for run in runs]
    train = [np.nansum(run.column("epoch_seconds")) for run in runs]
    compile_ = [np.nansum(run.column("compile_seconds")) for run in runs]
    ax.bar(labels, train, label="training")
    ax.bar(labels, compile_, bottom=train, label="compile", alpha=0.5)
    for x, (t, c) in enumerate(zip(train, compile_)):
        ax.text(x, t + c, f"{t:.1f} s", ha="center", va="bottom")
    ax.set_ylabel("total seconds")
    ax.legend()


def comparison_figure(
    folders: Sequence[str | os.PathLike], path: str | os.PathLike, title: str | None = None
) -> Path:
    """The four-panel comparison of several runs, saved as a PNG.

    Panels: test accuracy against epoch and against parameter updates, seconds per epoch,
    and total seconds.

    Args:
        folders: run folders.
        path: where to write the PNG.
        title: the figure title (default: dataset, model and optimizer of the first run).

    Returns:
        The PNG's path.
    """
    runs = load_runs(folders)
    fig, axes = _pyplot().subplots(2, 2, figsize=(12, 8.5))
    plot_accuracy(runs, axes[0, 0], "epoch")
    plot_accuracy(runs, axes[0, 1], "updates")
    plot_epoch_seconds(runs, axes[1, 0])
    plot_total_seconds(runs, axes[1, 1])
    fig.suptitle(title or _default_title(runs[0]))
    return save(fig, path)


def error_figure(
    folders: Sequence[str | os.PathLike], path: str | os.PathLike, title: str | None = None
) -> Path:
    """The reference study's "visualisation graph": test error against epoch and updates.

    Red dashed lines mark the epochs where the first run's schedule steps.

    Args:
        folders: run folders.
        path: where to write the PNG.
        title: the figure title.

    Returns:
        The PNG's path.
    """
    runs = [load_run(f) for f in folders]
    fig, axes = _pyplot().subplots(1, 2, figsize=(13, 5))
    for ax, against in zip(axes, ("epoch", "updates")):
        for run in runs:
            name = run.path.name
            label = name if name == run.label else f"{name} ({run.label})"
            ax.plot(run.column(against), 100 * (1 - run.column("val_accuracy")), label=label)
        ax.set_xlabel("epoch" if against == "epoch" else "parameter updates")
        ax.set_ylabel("test error (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for milestone in runs[0].milestones:
        axes[0].axvline(milestone + 0.5, color="red", linestyle="--", linewidth=1)
    fig.suptitle(title or _default_title(runs[0]))
    return save(fig, path)


def noise_scale_figure(
    folders: Sequence[str | os.PathLike], path: str | os.PathLike, title: str | None = None
) -> Path:
    """Batch size against the measured noise scale, and Smith's noise scale, per epoch.

    Left: each run's batch size (solid) and its measured simple noise scale ``B_simple``
    (dashed, same colour; runs measured with ``--noise_scale_every``) on a log scale. Right:
    Smith et al.'s SGD noise scale ``lr N / (B (1 - momentum))`` of every run.

    Args:
        folders: run folders.
        path: where to write the PNG.
        title: the figure title.

    Returns:
        The PNG's path.
    """
    runs = [load_run(f) for f in folders]
    fig, (left, right) = _pyplot().subplots(1, 2, figsize=(13, 5))
    for index, run in enumerate(runs):
        color = f"C{index}"
        epochs = run.column("epoch")
        left.plot(epochs, run.column("batch_size"), color=color, marker="o", label=run.path.name)
        if run.rows and "gns_b_simple" in run.rows[0]:
            measured = np.where(run.column("gns_b_simple") > 0, run.column("gns_b_simple"), np.nan)
            left.plot(epochs, measured, color=color, linestyle="--")
        right.plot(epochs, run.column("noise_scale"), color=color, marker="o", label=run.path.name)
    left.plot([], [], color="grey", linestyle="--", label="measured B_simple")
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_ylabel("batch size / B_simple")
    right.set_yscale("log")
    right.set_xlabel("epoch")
    right.set_ylabel("Smith's noise scale lr N / (B (1 - m))")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    fig.suptitle(title or _default_title(runs[0]))
    return save(fig, path)


def plot_error_vs_batch_size(runs: Sequence[Run], ax: Axes) -> None:
    """Final test error against the run's initial batch size, one line per schedule."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for run in runs:
        batch = run.column("batch_size")[0]
        error = 100 * (1 - run.column("val_accuracy")[-1])
        groups.setdefault(run.label, []).append((batch, error))
    for label, points in sorted(groups.items()):
        points.sort()
        ax.plot(*zip(*points), marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("initial batch size")
    ax.set_ylabel("final test error (%)")
    ax.grid(alpha=0.3)
    ax.legend()


def sweep_figure(
    folders: Sequence[str | os.PathLike], path: str | os.PathLike, title: str | None = None
) -> Path:
    """A sweep's two panels: final test error against batch size, and against updates.

    Args:
        folders: the sweep's run folders.
        path: where to write the PNG.
        title: the figure title.

    Returns:
        The PNG's path.
    """
    runs = [load_run(f) for f in folders]
    fig, (left, right) = _pyplot().subplots(1, 2, figsize=(13, 5))
    plot_error_vs_batch_size(runs, left)
    for run in runs:
        right.plot(
            run.column("updates"), 100 * (1 - run.column("val_accuracy")), label=run.path.name
        )
    right.set_xscale("log")
    right.set_xlabel("parameter updates")
    right.set_ylabel("test error (%)")
    right.grid(alpha=0.3)
    right.legend(fontsize="small", ncol=2)
    fig.suptitle(title or "sweep")
    return save(fig, path)


def _default_title(run: Run) -> str:
    dataset = run.config.get("dataset", {}).get("name", "?")
    spec = run.config.get("spec")
    if spec:
        model, optimizer = spec["model"]["name"], spec["optimizer"]["name"]
    else:  # a folder written before the run spec
        args = run.config.get("args", {})
        model = args.get("model", run.config.get("model", {}).get("name", "?"))
        optimizer = args.get("optimizer", run.config.get("optimizer", {}).get("class_name", "?"))
    return f"{dataset}, {model}, {optimizer}"
