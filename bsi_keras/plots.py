"""Figures from run folders (matplotlib, PNG).

matplotlib is imported by the functions that draw (through `_pyplot`), never by importing
this module, so reading runs back and the rest of the package stay free of it.

Example:

>>> from bsi_keras.plots import load_run  # doctest: +SKIP
>>> run = load_run("runs/compare/increase_bs")  # doctest: +SKIP
>>> run.column("val_accuracy")  # doctest: +SKIP

This module is longer than 400 lines because every figure of the package draws from its one
style table (a colour and marker per schedule) and its readers of run folders and seeds.
"""

from __future__ import annotations

import os
import re
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
    """Read run folders, labelled by schedule unless two share one (then by folder name, a
    seed's folder ``seed_<k>`` by its parent's: ``NAME/seed_<k>`` is a seed of ``NAME``)."""
    runs = [load_run(f) for f in folders]
    labels = [run.label for run in runs]
    return [
        replace(run, label=_folder_label(run.path)) if labels.count(run.label) > 1 else run
        for run in runs
    ]


def _folder_label(path: Path) -> str:
    return path.parent.name if re.fullmatch(r"seed_\d+", path.name) else path.name


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


# One colour, marker and line per schedule in every figure. Hybrid's hollow squares around
# increase_bs's small triangles keep both visible where they coincide (before the second
# milestone, by construction).
SCHEDULE_STYLES: dict[str, dict[str, Any]] = {
    "decay_lr": {"color": "tab:blue", "marker": "o", "linestyle": "-", "markersize": 6},
    "hybrid": {
        "color": "tab:orange",
        "marker": "s",
        "linestyle": "--",
        "markersize": 10,
        "markerfacecolor": "none",
    },
    "increase_bs": {"color": "tab:green", "marker": "^", "linestyle": ":", "markersize": 5},
    "constant": {"color": "tab:gray", "marker": "D", "linestyle": "-", "markersize": 5},
    "adaptive": {"color": "tab:red", "marker": "v", "linestyle": "-.", "markersize": 6},
    "mixed_bsi": {"color": "tab:purple", "marker": "P", "linestyle": "-", "markersize": 6},
    "fast_bsi": {"color": "tab:brown", "marker": "X", "linestyle": "-", "markersize": 6},
    "instant_bsi": {"color": "tab:pink", "marker": "*", "linestyle": "-", "markersize": 7},
    "seesaw": {"color": "tab:olive", "marker": "h", "linestyle": "-", "markersize": 6},
    # Variants the noise-scale study labels by their folder: the doubling control
    # (increase_bs, x2 every epoch), the adaptive rule at coefficient 0.25 and measured
    # every update.
    "doubling": {"color": "black", "marker": "s", "linestyle": "--", "markersize": 5},
    "adaptive_0.25": {"color": "tab:cyan", "marker": "<", "linestyle": "-.", "markersize": 6},
    "adaptive_every_update": {
        "color": "goldenrod",
        "marker": ">",
        "linestyle": "-",
        "markersize": 6,
    },
}
OTHER_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def style(label: str, index: int = 0) -> dict[str, Any]:
    """Matplotlib line keywords of a schedule (by name); another label gets the ``index``-th
    of the colours and markers no schedule uses.

    Example:

    >>> style("hybrid")["color"], style("my_run", 1)["marker"]
    ('tab:orange', 's')
    """
    if label in SCHEDULE_STYLES:
        return dict(SCHEDULE_STYLES[label])
    return {"color": f"C{index % 10}", "marker": OTHER_MARKERS[index % len(OTHER_MARKERS)]}


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs by label, in first-seen order: the seeds of a schedule are one group."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.label, []).append(run)
    return groups


def mean_std(runs: Sequence[Run], column: str) -> tuple[np.ndarray, np.ndarray]:
    """The per-epoch mean and sample standard deviation of ``column`` over ``runs`` (their
    common epochs; std 0 for one run).

    Example:

    >>> run = Run(Path("r"), "r", {}, [{"a": "1"}, {"a": "3"}])
    >>> [v.tolist() for v in mean_std([run, run], "a")]
    [[1.0, 3.0], [0.0, 0.0]]
    """
    epochs = min(len(run.rows) for run in runs)
    values = np.array([run.column(column)[:epochs] for run in runs])
    std = values.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(epochs)
    return values.mean(axis=0), std


def _legend_label(label: str, runs: Sequence[Run]) -> str:
    return f"{label} (mean +- std, {len(runs)} seeds)" if len(runs) > 1 else label


def plot_curves(
    groups: dict[str, list[Run]], ax: Axes, against: str, value: str, scale: float = 1.0
) -> None:
    """``scale * value`` against ``against`` per group: the mean, with a +- std band over
    seeds where a group has several runs (``against`` is the same in every seed)."""
    for index, (label, runs) in enumerate(groups.items()):
        x = mean_std(runs, against)[0]
        mean, std = (scale * v for v in mean_std(runs, value))
        line_style = style(label, index)
        ax.plot(x, mean, label=_legend_label(label, runs), **line_style)
        if len(runs) > 1:
            ax.fill_between(x, mean - std, mean + std, color=line_style["color"], alpha=0.2)


def milestone_label(runs: Sequence[Run], milestone: int) -> str:
    """What a milestone does: ``x5 batch / LR / 5`` (the largest change any run makes)."""
    factors = []
    for run in runs:
        batch, lr = run.column("batch_size"), run.column("learning_rate")
        if milestone < len(batch):
            factors += [batch[milestone] / batch[milestone - 1], lr[milestone - 1] / lr[milestone]]
    factor = max(factors, default=1.0)
    return f"x{factor:.3g} batch / LR / {factor:.3g}"


def mark_milestones(runs: Sequence[Run], ax: Axes) -> None:
    """Dotted lines between the epochs where a schedule steps, each labelled at the top (the
    labels of consecutive epochs on alternate lines, so that they do not overlap)."""
    milestones = sorted({m for run in runs for m in run.milestones})
    row = 0
    for index, milestone in enumerate(milestones):
        row = 1 - row if index and milestone - milestones[index - 1] == 1 else 0
        ax.axvline(milestone + 0.5, color="grey", linestyle=":", linewidth=1)
        ax.annotate(
            milestone_label(runs, milestone),
            (milestone + 0.5, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -4 - 11 * row),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize="small",
            color="dimgrey",
        )


def plot_accuracy(runs: Sequence[Run], ax: Axes, against: str = "epoch") -> None:
    """Test accuracy against ``epoch`` (milestones labelled) or ``updates`` (log axis);
    the mean and a +- std band over the seeds of each schedule."""
    plot_curves(group_runs(runs), ax, against, "val_accuracy", 100)
    if against == "epoch":
        mark_milestones(runs, ax)
        ax.set_xlabel("epoch")
    else:
        ax.set_xscale("log")
        ax.set_xlabel("parameter updates (log)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="lower right")


def plot_epoch_seconds(runs: Sequence[Run], ax: Axes) -> None:
    """Training seconds of every epoch (compile time excluded), mean +- std over seeds."""
    plot_curves(group_runs(runs), ax, "epoch", "epoch_seconds")
    mark_milestones(runs, ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("seconds per epoch (training only)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower left")


def plot_total_seconds(runs: Sequence[Run], ax: Axes) -> None:
    """Total seconds per schedule as bars, training with compile stacked on top (means over
    seeds, the error bar the std of their sum), each bar labelled with both."""
    groups = group_runs(runs)
    labels = list(groups)
    train = [[np.nansum(r.column("epoch_seconds")) for r in g] for g in groups.values()]
    compile_ = [[np.nansum(r.column("compile_seconds")) for r in g] for g in groups.values()]
    colors = [style(label, i)["color"] for i, label in enumerate(labels)]
    train_mean = [np.mean(t) for t in train]
    compile_mean = [np.mean(c) for c in compile_]
    total_std = [np.std(np.add(t, c), ddof=1) if len(t) > 1 else 0 for t, c in zip(train, compile_)]
    ax.bar(labels, train_mean, color=colors, label="training")
    ax.bar(
        labels,
        compile_mean,
        bottom=train_mean,
        color=colors,
        alpha=0.4,
        hatch="//",
        yerr=total_std,
        capsize=4,
        label="compile",
    )
    for x, (t, c, e) in enumerate(zip(train_mean, compile_mean, total_std)):
        ax.text(
            x,
            t + c + e,
            f"{t:.1f} training\n+ {c:.1f} compile s",
            ha="center",
            va="bottom",
            fontsize="small" if len(labels) <= 4 else "x-small",
        )
    if len(labels) > 4:  # long schedule names side by side would overlap
        for tick in ax.get_xticklabels():
            tick.set(rotation=30, horizontalalignment="right")
    seeds = max(len(g) for g in groups.values())
    mean_of = f" (mean of {seeds} seeds)" if seeds > 1 else ""
    ax.set_ylabel(f"total seconds: training + compile{mean_of}")
    ax.set_ylim(top=1.25 * max(t + c + e for t, c, e in zip(train_mean, compile_mean, total_std)))
    ax.legend(fontsize="small", loc="lower right")


def comparison_figure(
    folders: Sequence[str | os.PathLike], path: str | os.PathLike, title: str | None = None
) -> Path:
    """The four-panel comparison of several runs, saved as a PNG.

    Panels: test accuracy against epoch and against parameter updates, seconds per epoch,
    and total seconds. Runs of one schedule (its seeds) are drawn as their mean with a +-
    std band.

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


def wall_clock_seconds(run: Run) -> np.ndarray:
    """Seconds from the start to the end of each epoch: training plus compile."""
    return np.cumsum(np.nan_to_num(run.column("epoch_seconds") + run.column("compile_seconds")))


def wallclock_figure(
    folders: Sequence[str | os.PathLike], path: str | os.PathLike, title: str | None = None
) -> Path:
    """Test error against wall-clock seconds (training + compile), saved as a PNG.

    Left: per schedule, the mean test error after each epoch at the mean seconds it was
    reached, with +- std error bars over seeds in both. Right: each run's final test error
    against its total seconds (one point per seed).

    Args:
        folders: run folders.
        path: where to write the PNG.
        title: the figure title.

    Returns:
        The PNG's path.
    """
    groups = group_runs(load_runs(folders))
    fig, (left, right) = _pyplot().subplots(1, 2, figsize=(13, 5))
    for index, (label, runs) in enumerate(groups.items()):
        line_style = style(label, index)
        epochs = min(len(run.rows) for run in runs)
        seconds = np.array([wall_clock_seconds(run)[:epochs] for run in runs])
        error = np.array([100 * (1 - run.column("val_accuracy")[:epochs]) for run in runs])
        spread = {"ddof": 1} if len(runs) > 1 else {}
        left.errorbar(
            seconds.mean(axis=0),
            error.mean(axis=0),
            xerr=seconds.std(axis=0, **spread) if spread else None,
            yerr=error.std(axis=0, **spread) if spread else None,
            capsize=3,
            label=_legend_label(label, runs),
            **line_style,
        )
        right.plot(
            seconds[:, -1],
            error[:, -1],
            linestyle="none",
            label=label,
            **{k: v for k, v in line_style.items() if k != "linestyle"},
        )
    left.set_ylabel("test error (%)")
    right.set_ylabel("final test error (%)")
    for ax, what in ((left, "after each epoch"), (right, "per seed, at the end")):
        ax.set_xlabel(f"wall-clock seconds: training + compile ({what})")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    fig.suptitle(title or f"{_default_title(next(iter(groups.values()))[0])}: test error vs time")
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
        for index, run in enumerate(runs):
            name = run.path.name
            label = name if name == run.label else f"{name} ({run.label})"
            error = 100 * (1 - run.column("val_accuracy"))
            ax.plot(run.column(against), error, label=label, **style(run.label, index))
        ax.set_xlabel("epoch" if against == "epoch" else "parameter updates (log)")
        ax.set_ylabel("test error (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    axes[1].set_xscale("log")
    for milestone in runs[0].milestones:
        axes[0].axvline(milestone + 0.5, color="red", linestyle="--", linewidth=1)
    fig.suptitle(title or _default_title(runs[0]))
    return save(fig, path)


def plot_noise_scale(runs: Sequence[Run], axes: Sequence[Axes]) -> None:
    """Per schedule (the seeds of a label), against the epoch on three axes: the batch size,
    the measured ``B_simple`` (runs measured with ``--noise_scale_every``: the epoch's ratio of
    mean estimates, ``gns_b_simple_raw``, the least noisy value) and Smith's noise scale; each
    the mean with a +- std band over seeds, on log scales (means <= 0 left out)."""
    panels = [
        ("batch_size", "batch size"),
        ("gns_b_simple_raw", "measured B_simple (epoch's ratio of mean estimates)"),
        ("noise_scale", "Smith's noise scale lr N / (B (1 - m))"),
    ]
    for index, (label, group) in enumerate(group_runs(runs).items()):
        line_style = style(label, index)
        epochs = mean_std(group, "epoch")[0]
        for ax, (column, _) in zip(axes, panels):
            if not group[0].rows or column not in group[0].rows[0]:
                continue
            mean, std = mean_std(group, column)
            mean = np.where(mean > 0, mean, np.nan)
            ax.plot(epochs, mean, label=_legend_label(label, group), **line_style)
            if len(group) > 1:
                low = np.maximum(mean - std, 0.1 * mean)  # floored: a log axis shows no <= 0
                ax.fill_between(epochs, low, mean + std, color=line_style["color"], alpha=0.15)
    for ax, (_, ylabel) in zip(axes, panels):
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")


def noise_scale_figure(
    folders: Sequence[str | os.PathLike], path: str | os.PathLike, title: str | None = None
) -> Path:
    """Batch size, measured noise scale and Smith's noise scale per epoch, saved as a PNG.

    The three panels of `plot_noise_scale` (batch size and B_simple on a shared axis); the
    runs of one schedule (its seeds, labelled as `load_runs` labels them) are drawn as their
    mean with a +- std band.

    Args:
        folders: run folders.
        path: where to write the PNG.
        title: the figure title.

    Returns:
        The PNG's path.
    """
    runs = load_runs(folders)
    fig, axes = _pyplot().subplots(1, 3, figsize=(18, 5.5))
    axes[0].sharey(axes[1])
    plot_noise_scale(runs, axes)
    fig.suptitle(title or _default_title(runs[0]))
    return save(fig, path)


def plot_error_vs_batch_size(runs: Sequence[Run], ax: Axes) -> None:
    """Final test error against the run's initial batch size, one line per schedule."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for run in runs:
        batch = run.column("batch_size")[0]
        error = 100 * (1 - run.column("val_accuracy")[-1])
        groups.setdefault(run.label, []).append((batch, error))
    for index, (label, points) in enumerate(sorted(groups.items())):
        points.sort()
        ax.plot(*zip(*points), label=label, **style(label, index))
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
    for index, run in enumerate(runs):
        error = 100 * (1 - run.column("val_accuracy"))
        right.plot(run.column("updates"), error, label=run.path.name, **style(run.label, index))
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
