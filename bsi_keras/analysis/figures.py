"""Figures of the sharp-minima analysis (matplotlib, PNG).

- `plot_interpolation`: Keskar et al.'s parametric plot, cross-entropy on the left axis
  (blue) and accuracy on the right (red), train solid and test dashed;
- `plot_landscape_1d`: 1-D landscapes, one color per solution, loss solid and accuracy
  dashed;
- `plot_contour`: 2-D landscapes as filled contours, one panel per solution, one shared
  color scale;
- `plot_surface`: the same as 3-D surfaces.

Landscape figures take a mapping ``label -> Landscape`` so that solutions can be compared
side by side; losses above ``loss_max`` are clipped (Li et al.'s ``--loss_max``), since a
landscape far from the minimum rises by orders of magnitude. matplotlib is imported when a
figure is drawn (`bsi_keras.plots._pyplot`, the package's one way to get it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bsi_keras.analysis.interpolation import Interpolation
from bsi_keras.analysis.landscape import Landscape
from bsi_keras.plots import _pyplot, save


def plot_interpolation(
    line: Interpolation, path: str | os.PathLike, title: str | None = None, log: bool = False
) -> Path:
    """Loss and accuracy along the line from the small-batch to the large-batch solution.

    Args:
        line: the `Interpolation`.
        path: where to write the PNG.
        title: the figure title.
        log: a logarithmic loss axis (as the PyTorch port), for lines that rise steeply.

    Returns:
        The PNG's path.

    Example:

    >>> a = np.linspace(-1, 2, 5)
    >>> line = Interpolation(a, a**2, 1 - a / 4, a**2 + 0.1, 0.9 - a / 4, "recompute")
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     plot_interpolation(line, Path(d) / "line.png").is_file()
    True
    """
    fig, loss_axis = _pyplot().subplots(figsize=(6.4, 4.6))
    accuracy_axis = loss_axis.twinx()
    for style, loss, accuracy in (
        ("-", line.train_loss, line.train_accuracy),
        ("--", line.test_loss, line.test_accuracy),
    ):
        loss_axis.plot(line.alphas, loss, "b" + style)
        accuracy_axis.plot(line.alphas, 100 * accuracy, "r" + style)
    for alpha, name in ((0, "small batch"), (1, "large batch")):
        loss_axis.axvline(alpha, color="grey", linestyle=":", linewidth=1)
        loss_axis.annotate(
            name,
            (alpha, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
        )
    if log:
        loss_axis.set_yscale("log")
    loss_axis.set_xlabel(r"$\alpha$  ($\theta = \alpha\,\theta_{LB} + (1-\alpha)\,\theta_{SB}$)")
    loss_axis.set_ylabel("cross-entropy", color="b")
    accuracy_axis.set_ylabel("accuracy (%)", color="r")
    loss_axis.plot([], [], "k-", label="train")
    loss_axis.plot([], [], "k--", label="test")
    loss_axis.legend(loc="center left")
    loss_axis.grid(alpha=0.3)
    loss_axis.set_title(title or f"linear interpolation (BN statistics: {line.bn_stats})")
    return save(fig, path)


def plot_landscape_1d(
    landscapes: Mapping[str, Landscape],
    path: str | os.PathLike,
    title: str | None = None,
    loss_max: float | None = None,
) -> Path:
    """1-D landscapes: loss (solid, left axis) and accuracy (dashed, right), one color each.

    Args:
        landscapes: ``label -> Landscape`` (1-D).
        path: where to write the PNG.
        title: the figure title.
        loss_max: the top of the loss axis (None: the data's).

    Returns:
        The PNG's path.
    """
    fig, loss_axis = _pyplot().subplots(figsize=(6.4, 4.6))
    accuracy_axis = loss_axis.twinx()
    for color, (label, landscape) in zip(_colors(), landscapes.items()):
        loss_axis.plot(landscape.x_coordinates, landscape.loss, "-", color=color, label=label)
        accuracy_axis.plot(
            landscape.x_coordinates, 100 * landscape.accuracy, "--", color=color, alpha=0.7
        )
    loss_axis.set_ylim(0, loss_max)
    loss_axis.set_xlabel("step along a filter-normalized direction")
    loss_axis.set_ylabel("loss (solid)")
    accuracy_axis.set_ylabel("accuracy (%, dashed)")
    loss_axis.legend(loc="center")
    loss_axis.grid(alpha=0.3)
    loss_axis.set_title(title or "1-D loss landscape")
    return save(fig, path)


def plot_contour(
    landscapes: Mapping[str, Landscape],
    path: str | os.PathLike,
    title: str | None = None,
    loss_max: float = 5.0,
    levels: int = 20,
) -> Path:
    """2-D landscapes as filled contours with one shared color scale, one panel each.

    Args:
        landscapes: ``label -> Landscape`` (2-D).
        path: where to write the PNG.
        title: the figure title.
        loss_max: losses above it are clipped.
        levels: number of contour levels.

    Returns:
        The PNG's path.

    Example:

    >>> xs = np.linspace(-1, 1, 5)
    >>> z = np.add.outer(xs**2, xs**2)
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     plot_contour({"bowl": Landscape(xs, xs, z, 1 - z / 2)}, Path(d) / "c.png").is_file()
    True
    """
    bounds = _loss_bounds(landscapes, loss_max)
    fig, axes = _pyplot().subplots(
        1, len(landscapes), figsize=(4.6 * len(landscapes) + 1.2, 4.6), layout="constrained"
    )
    axes = np.atleast_1d(axes)
    for ax, (label, landscape) in zip(axes, landscapes.items()):
        a, b = np.meshgrid(landscape.x_coordinates, landscape.y_coordinates, indexing="ij")
        loss = np.clip(landscape.loss, *bounds)
        filled = ax.contourf(a, b, loss, levels=np.linspace(*bounds, levels + 1), cmap="viridis")
        ax.contour(a, b, loss, levels=filled.levels, colors="white", linewidths=0.4)
        ax.plot(0, 0, "r+", markersize=10)
        ax.set_title(f"{label} (center loss {_center(landscape):.3g})")
        ax.set_xlabel("direction 1")
        ax.set_aspect("equal")
    axes[0].set_ylabel("direction 2")
    fig.colorbar(
        filled, ax=axes.tolist(), label=f"loss (clipped at {bounds[1]:.3g})", format="%.2f"
    )
    fig.suptitle(title or "2-D loss landscape (filter-normalized directions)")
    return save(fig, path, tight=False)


def plot_surface(
    landscapes: Mapping[str, Landscape],
    path: str | os.PathLike,
    title: str | None = None,
    loss_max: float = 5.0,
) -> Path:
    """2-D landscapes as 3-D surfaces on one shared loss axis, one panel each.

    Args:
        landscapes: ``label -> Landscape`` (2-D).
        path: where to write the PNG.
        title: the figure title.
        loss_max: losses above it are clipped.

    Returns:
        The PNG's path.
    """
    bounds = _loss_bounds(landscapes, loss_max)
    fig = _pyplot().figure(figsize=(5.6 * len(landscapes), 5.0))
    for index, (label, landscape) in enumerate(landscapes.items(), start=1):
        ax = fig.add_subplot(1, len(landscapes), index, projection="3d")
        a, b = np.meshgrid(landscape.x_coordinates, landscape.y_coordinates, indexing="ij")
        loss = np.clip(landscape.loss, *bounds)
        ax.plot_surface(
            a,
            b,
            loss,
            cmap="coolwarm",
            vmin=bounds[0],
            vmax=bounds[1],
            linewidth=0,
            antialiased=True,
        )
        ax.set_zlim(*bounds)
        ax.set_title(label)
        ax.set_xlabel("direction 1")
        ax.set_ylabel("direction 2")
        ax.set_zlabel("loss")
    fig.suptitle(title or "2-D loss landscape (filter-normalized directions)")
    return save(fig, path)


def _loss_bounds(landscapes: Mapping[str, Landscape], loss_max: float) -> tuple[float, float]:
    """The shared loss range of several landscapes, its top clipped at ``loss_max``."""
    finite = np.concatenate([s.loss[np.isfinite(s.loss)].ravel() for s in landscapes.values()])
    low = float(finite.min())
    return low, max(min(float(finite.max()), loss_max), low + 1e-6)


def _center(landscape: Landscape) -> float:
    """The loss at the grid point nearest the solution."""
    i = int(np.abs(landscape.x_coordinates).argmin())
    j = int(np.abs(landscape.y_coordinates).argmin())
    return float(landscape.loss[i, j])


def _colors() -> list[str]:
    return _pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
