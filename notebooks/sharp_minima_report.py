"""The sharp-minima study's table and figures, read back from what it wrote in results/.

`table` is the README's table (``results/tables.py`` includes the Markdown the study
writes from it); `draw` the figures in ``Plots/`` (``results/figures.py`` calls it):

- ``sharp_minima_1d.png``: the training loss along filter-normalized random directions,
  mean +- std over seeds and directions, small against large batch;
- ``sharp_minima_interpolation.png``: loss and accuracy on the line between the two
  solutions of a seed, mean +- std over seeds;
- ``sharp_minima_2d_contour.png``: the 2-D landscapes of seed 0.

    python notebooks/sharp_minima_report.py --results results/sharp_minima --plots Plots
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from sharp_minima_study import (
    BATCHES,
    CURVE_DIRECTIONS,
    CURVE_EXAMPLES,
    DATASET,
    EPSILONS,
    NUM_TRAIN,
    SCALES,
    SEEDS,
    STARTS,
)

from bsi_keras.analysis import Landscape, figures
from bsi_keras.plots import _pyplot, save
from bsi_keras.stats import mean_std, paired_difference


def load(results: Path) -> dict[str, dict[int, dict]]:
    """``{solution: {seed: measurements + its summary.json}}`` of the seeds measured."""
    found: dict[str, dict[int, dict]] = {s: {} for s in BATCHES}
    for path in sorted((results / "analysis").glob("seed_*/*_batch.json")):
        seed, solution = int(path.parent.name.removeprefix("seed_")), path.stem
        data = json.loads(path.read_text())
        data["summary"] = json.loads(
            (results / solution / path.parent.name / "summary.json").read_text()
        )
        found[solution][seed] = data
    return found


def paired_seeds(
    found: dict[str, dict[int, dict]], small_keys: tuple[str, ...], large_keys: tuple[str, ...]
) -> list[int]:
    """The seeds whose small-batch solution has ``small_keys`` and large-batch ``large_keys``."""
    large = found["large_batch"]
    return sorted(
        s
        for s, d in found["small_batch"].items()
        if all(k in d for k in small_keys) and all(k in large.get(s, {}) for k in large_keys)
    )


def at_step(data: dict, step: float) -> list[float]:
    """The landscape's training loss at ``step``, one value per direction."""
    index = int(np.argmin(np.abs(np.asarray(data["landscape"]["steps"]) - step)))
    return [curve[index] for curve in data["landscape"]["loss"]]


def table(results: Path) -> str:
    """The README's table: per solution mean +- std over seeds, paired large - small or ratio."""
    found = load(results)
    lines = []

    def row(
        name: str,
        keys: str | tuple,
        value: Any,
        fmt: str = "{:.3g}",
        ratio: bool = False,
        large_keys: str | tuple | None = None,
        large_value: Any = None,
        digits: int | None = None,
    ) -> None:
        """One line; ``large_keys`` and ``large_value``: the large batch's, when not the same."""
        keys = (keys,) if isinstance(keys, str) else keys
        large_keys = keys if large_keys is None else (large_keys,)
        seeds = paired_seeds(found, keys, large_keys)
        if not seeds:
            return
        small = [value(found["small_batch"][s]) for s in seeds]
        large = [(large_value or value)(found["large_batch"][s]) for s in seeds]
        cells = [_mean_std(v, fmt) for v in (small, large)]
        if len(seeds) < 2:
            cells.append("one seed")
        elif ratio and min(small + large) > 0:  # the t-interval of the log ratio, back-transformed
            logs = paired_difference(np.log(large).tolist(), np.log(small).tolist())
            low, mean, high = (math.exp(v) for v in (logs.low, logs.mean, logs.high))
            note = "" if logs.resolved else ", unresolved"
            cells.append(f"x {mean:.3g} ({low:.3g} to {high:.3g}){note}")
        else:
            if digits is None:
                digits = 3 if abs(np.mean(small)) < 1 else 2
            cells.append(paired_difference(large, small).format(digits))
        lines.append(f"| {name} | {len(seeds)} | " + " | ".join(cells) + " |")

    small_batch, large_batch = BATCHES["small_batch"], BATCHES["large_batch"]
    lines += [
        f"| | seeds | batch {small_batch:,} | batch {large_batch:,} | large - small (95 % CI) |",
        "| --- | --- | --- | --- | --- |",
    ]
    row(
        "test accuracy (%)",
        "evaluation",
        lambda d: 100 * d["summary"]["final_val_accuracy"],
        "{:.2f}",
    )
    row(
        f"training loss (all {NUM_TRAIN:,} images)",
        "evaluation",
        lambda d: d["evaluation"]["train_loss"],
        "{:.4f}",
    )
    row("updates", "evaluation", lambda d: d["summary"]["total_updates"], "{:,.0f}", digits=0)
    for step in (-1.0, -0.5, 0.5, 1.0):
        row(
            f"landscape: training loss at step {step:+g} (mean of {CURVE_DIRECTIONS} directions)",
            "landscape",
            lambda d, step=step: float(np.mean(at_step(d, step))),
            "{:.3f}",
            ratio=True,
        )
    for eps in EPSILONS:
        row(
            f"sharpness, full space, eps {eps:g}: best of {STARTS} starts",
            f"sharpness {eps:g}",
            lambda d, eps=eps: d[f"sharpness {eps:g}"]["max"],
            ratio=True,
        )
    for eps in EPSILONS:
        row(
            f"(spread of the starts at eps {eps:g}: (max - min) / max, %)",
            f"sharpness {eps:g}",
            lambda d, eps=eps: 100 * _relative_spread(d[f"sharpness {eps:g}"]),
            "{:.2g}",
        )
    for eps, half in itertools.pairwise(EPSILONS):
        row(
            f"order k = log2(value(eps) / value(eps/2)), eps {eps:g}",
            (f"sharpness {eps:g}", f"sharpness {half:g}"),
            lambda d, eps=eps, half=half: _order(d, eps, half),
            "{:.2f}",
        )
    for eps in EPSILONS:
        row(
            f"measured / first-order prediction, eps {eps:g}",
            f"sharpness {eps:g}",
            lambda d, eps=eps: _linear_share(d[f"sharpness {eps:g}"]),
            "{:.2f}",
        )
    for scale in SCALES:
        row(
            f"sharpness at eps {EPSILONS[0]:g}, hidden kernels x {scale:g} (same function)",
            f"rescaled {scale:g}",
            lambda d, scale=scale: d[f"rescaled {scale:g}"]["max"],
            ratio=True,
        )
    row(
        f"sharpness at eps {EPSILONS[0]:g}; large batch: kernels scaled to the small's norms",
        f"sharpness {EPSILONS[0]:g}",
        lambda d: d[f"sharpness {EPSILONS[0]:g}"]["max"],
        ratio=True,
        large_keys="matched",
        large_value=lambda d: d["matched"]["max"],
    )
    row(
        "hidden kernel norm (mean of 5 layers)",
        "weights",
        lambda d: float(np.mean(d["weights"]["kernel_norms"])),
        "{:.1f}",
    )
    row(
        "distance from the initial weights",
        "weights",
        lambda d: d["weights"]["distance_from_initial"],
        "{:.1f}",
    )
    worst = max(
        (
            d[key]["max_output_difference"]
            for runs in found.values()
            for d in runs.values()
            for key in d
            if key.startswith("rescaled") or key == "matched"
        ),
        default=math.nan,
    )
    return "\n".join(
        [
            "Mean +- sample standard deviation over seeds; the last column is the paired "
            "difference large - small over the seeds, or (x) the paired ratio large / small "
            "(a t-interval of the log ratio, back-transformed), with its 95 % t-interval.",
            "",
            *lines,
            "",
            f"Rescaling check: the largest change of any output probability of a rescaled "
            f"network, over every seed, solution and scale: {worst:.2g}.",
        ]
    )


def _mean_std(values: list[float], fmt: str) -> str:
    mean, std = mean_std(values)
    return f"{fmt.format(mean)} +- {fmt.format(std)}"


def _relative_spread(row: dict) -> float:
    return (row["max"] - row["min"]) / row["max"] if row["max"] > 0 else 0.0


def _order(data: dict, eps: float, half: float) -> float:
    return math.log2(data[f"sharpness {eps:g}"]["max"] / data[f"sharpness {half:g}"]["max"])


def _linear_share(row: dict) -> float:
    return row["max"] / row["first_order"]


def draw(results: Path, plots: Path) -> list[Path]:
    """The study's figures, drawn from ``results``; return their paths."""
    found = load(results)
    label = {s: f"batch {b:,}" for s, b in BATCHES.items()}
    paths = [_draw_landscapes(found, label, plots / "sharp_minima_1d.png")]
    lines = [
        json.loads(p.read_text())["interpolation"]
        for p in sorted((results / "analysis").glob("seed_*/interpolation.json"))
    ]
    if lines:
        paths.append(_draw_interpolation(lines, plots / "sharp_minima_interpolation.png"))
    surfaces = {
        label[s]: results / "analysis" / f"seed_{SEEDS[0]}" / f"surface_{s}.npz" for s in BATCHES
    }
    if all(p.is_file() for p in surfaces.values()):
        grids = {name: Landscape.load(p) for name, p in surfaces.items()}
        title = f"F1, seed {SEEDS[0]}: training loss on two filter-normalized directions"
        paths.append(figures.plot_contour(grids, plots / "sharp_minima_2d_contour.png", title))
    return paths


def _draw_landscapes(found: dict, label: dict, path: Path) -> Path:
    fig, (linear, log) = _pyplot().subplots(1, 2, figsize=(11, 4.4))
    for color, solution in zip(("tab:blue", "tab:red"), BATCHES):
        runs = [d for d in found[solution].values() if "landscape" in d]
        if not runs:
            continue
        steps = np.asarray(runs[0]["landscape"]["steps"])
        curves = np.array([c for d in runs for c in d["landscape"]["loss"]])
        mean, std = curves.mean(axis=0), curves.std(axis=0, ddof=1)
        name = f"{label[solution]} ({len(runs)} seeds x {CURVE_DIRECTIONS} directions)"
        for ax in (linear, log):
            ax.plot(steps, mean, color=color, label=name)
            ax.fill_between(
                steps, np.maximum(mean - std, 1e-3), mean + std, color=color, alpha=0.25
            )
    log.set_yscale("log")
    for ax in (linear, log):
        ax.set_xlabel("step along a filter-normalized random direction")
        ax.grid(alpha=0.3)
    linear.set_ylabel("training loss (mean +- std)")
    linear.legend()
    log.set_title("log scale")
    fig.suptitle(
        f"F1 on {DATASET} ({NUM_TRAIN:,} training images): 1-D landscapes on {CURVE_EXAMPLES:,}"
    )
    return save(fig, path)


def _draw_interpolation(lines: list[dict], path: Path) -> Path:
    fig, loss_axis = _pyplot().subplots(figsize=(6.6, 4.6))
    accuracy_axis = loss_axis.twinx()
    alphas = np.asarray(lines[0]["alphas"])
    for style, name in (("-", "train"), ("--", "test")):
        for axis, key, color, factor in (
            (loss_axis, f"{name}_loss", "b", 1.0),
            (accuracy_axis, f"{name}_accuracy", "r", 100.0),
        ):
            values = factor * np.array([line[key] for line in lines])
            mean, std = values.mean(axis=0), values.std(axis=0, ddof=1)
            axis.plot(alphas, mean, color + style)
            axis.fill_between(alphas, mean - std, mean + std, color=color, alpha=0.15)
        loss_axis.plot([], [], "k" + style, label=name)
    loss_axis.set_yscale("log")
    loss_axis.axvline(0, color="grey", linestyle=":")
    loss_axis.axvline(1, color="grey", linestyle=":")
    loss_axis.set_xlabel(
        r"$\alpha$  ($\theta = \alpha\,\theta_{large} + (1-\alpha)\,\theta_{small}$)"
    )
    loss_axis.set_ylabel("cross-entropy (log)", color="b")
    accuracy_axis.set_ylabel("accuracy (%)", color="r")
    loss_axis.legend(loc="center left")
    loss_axis.grid(alpha=0.3)
    loss_axis.set_title(f"small (0) to large batch (1), mean +- std over {len(lines)} seeds")
    return save(fig, path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default="results/sharp_minima")
    parser.add_argument("--plots", default="Plots")
    args = parser.parse_args()
    print(table(Path(args.results)))
    for figure in draw(Path(args.results), Path(args.plots)):
        print(figure)
