"""The SAM study (issue 5): run the Fashion-MNIST part, measure sharpness, draw the figures.

Runs the ``fashion_*`` runs of the ``sam_study`` sweep recipe (`bsi_keras.sweep`) at a size
that fits a 2-core CPU, adds Keskar's sharpness of every final solution
(`bsi_keras.analysis.sharpness`, written to ``sharpness.json`` in the run folder), and draws
the study's four figures and its table. ``notebooks/sam_study.ipynb`` calls the same
functions. Finished runs are skipped when the script runs again.

    python notebooks/sam_study.py                 # the study as reported in the README
    python notebooks/sam_study.py --quick         # a tiny version (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from bsi_keras.cli import RunSpec, recipes, sweep
from bsi_keras.optimizers import split_name
from bsi_keras.run_folder import RunFolder

RECIPE = "sam_study"
# The CPU-sized Fashion-MNIST study: the first 20,000 training images, the whole test set,
# 10 epochs (the recipe's 20 epochs on 60,000 images is for a faster machine).
STUDY_ARGS = ["--num_train", "20000", "--num_test", "10000", "--epochs", "10"]
# The tiny version: eight runs on the bundled MNIST sample, 2 epochs.
QUICK_ARGS = ["--num_train", "2100", "--num_test", "500", "--epochs", "2"]
QUICK_RUNS = (
    "fashion_momentum_b32_lr0.0025",
    "fashion_momentum_b2048_lr0.16",
    "fashion_momentum_b2048_lr0.04",
    "fashion_sam_momentum_b2048_lr0.04",
    "fashion_asam_momentum_b2048_lr0.04",
    "fashion_adam_b32_lr0.00025",
    "fashion_adam_b2048_lr0.001",
    "fashion_sam_adam_b2048_lr0.001",
)
SHARPNESS = {"examples": 2000, "epsilon": 1e-3, "max_iterations": 10}
QUICK_SHARPNESS = {"examples": 200, "epsilon": 1e-3, "max_iterations": 2}
ORDER = ("momentum", "sam_momentum", "asam_momentum", "sam_momentum_m128", "adam", "sam_adam")


def fashion_runs() -> list[str]:
    """The names of the recipe's Fashion-MNIST runs.

    >>> len(fashion_runs()), fashion_runs()[0]
    (64, 'fashion_momentum_b32_lr0.0025')
    """
    return [name for name, _ in sweep.RECIPES[RECIPE]() if name.startswith("fashion_")]


def run_study(root: str | os.PathLike, quick: bool = False) -> Path:
    """Run (or finish) the Fashion-MNIST runs, then measure every solution's sharpness.

    Args:
        root: the sweeps folder; the runs go to ``root/sam_study/<run>``.
        quick: the tiny version (`QUICK_RUNS` on the bundled MNIST sample).

    Returns:
        The study folder ``root/sam_study``.
    """
    folder = Path(root) / RECIPE
    # The sweep would resume a diverged run, which would only diverge again.
    names = [n for n in (QUICK_RUNS if quick else fashion_runs()) if not _diverged(folder / n)]
    extra = [*(QUICK_ARGS if quick else STUDY_ARGS), "--verbose", "0"]
    dataset = "mnist_sample" if quick else None
    sweep.run_sweep(RECIPE, root, dataset=dataset, extra=extra, only=names)
    for run in sorted(p for p in folder.iterdir() if RunFolder(p).summary_path.is_file()):
        measure_sharpness(run, **(QUICK_SHARPNESS if quick else SHARPNESS))
    return folder


def _spec(run: Path) -> RunSpec:
    """The run spec a run folder of the study records."""
    return RunSpec.from_run_config(RunFolder(run).read_config(), str(run))


def _diverged(run: Path) -> bool:
    folder = RunFolder(run)
    return folder.summary_path.is_file() and folder.read_summary()["status"] == "diverged"


def measure_sharpness(
    run: Path, examples: int, epsilon: float, max_iterations: int
) -> float | None:
    """Keskar's sharpness of a finished run's final weights, cached in ``sharpness.json``.

    Full space, the box ``epsilon``, ``max_iterations`` of L-BFGS-B, the loss over the first
    ``examples`` training examples in inference mode (see `bsi_keras.analysis.sharpness`).

    Returns:
        The sharpness in percent, or None for a run that did not finish or kept no
        per-epoch weights (``--saveState``).
    """
    cache = run / "sharpness.json"
    if cache.is_file():
        return json.loads(cache.read_text())["value"]
    folder = RunFolder(run)
    summary = folder.read_summary()
    if summary["status"] != "finished" or not folder.weights_dir.is_dir():
        return None
    from bsi_keras.analysis import load_solution, sharpness
    from bsi_keras.data import load_dataset

    model = _spec(run).model
    data = load_dataset(model.dataset, model.data_dir, num_train=examples, num_test=1)
    model = load_solution(run, summary["epochs_finished"])
    result = sharpness(
        model, data.x_train, data.y_train, epsilon=epsilon, max_iterations=max_iterations
    )
    record = {"value": result.value, "epsilon": epsilon, "examples": len(data.x_train)}
    cache.write_text(json.dumps({**record, "iterations": result.iterations}, indent=2))
    return result.value


def collect(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per run folder of the study: settings, accuracy, sharpness, seconds.

    ``optimizer`` is the recipe's label (e.g. ``sam_momentum_m128``), ``base`` the base
    optimizer, ``family`` the LR grid's (``sgd`` or ``adam``).

    Seconds per epoch (compile time kept apart) are the median and the fastest of the
    run's epochs; ``linear_rule`` marks the runs on the grid's diagonal.
    """
    rows = []
    for run in sorted(Path(folder).iterdir()):
        run_folder = RunFolder(run)
        if not run_folder.summary_path.is_file():
            continue
        spec = _spec(run)
        summary = run_folder.read_summary()
        cache = run / "sharpness.json"
        seconds = [float(r["epoch_seconds"]) for r in run_folder.read_log()]
        base = split_name(spec.optimizer.name)[0]
        rows.append(
            {
                "run": run.name,
                # The recipe's label: the optimizer, and SAM's m where given.
                "optimizer": spec.optimizer.name
                + (f"_m{spec.optimizer.sam_m}" if spec.optimizer.sam_m else ""),
                "base": base,
                "family": "adam" if base == "adam" else "sgd",
                "batch_size": spec.schedule.batch_size,
                "lr": spec.schedule.lr,
                "status": summary["status"],
                "test_accuracy": summary["final_val_accuracy"],
                "sharpness": json.loads(cache.read_text())["value"] if cache.is_file() else None,
                "epoch_seconds": statistics.median(seconds),
                "fastest_seconds": min(seconds),
            }
        )
    return _mark_linear_rule(rows)


def _mark_linear_rule(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark the runs whose LR is the recipe's linear rule for their batch size."""
    for row in rows:
        _, batches, base_lrs = recipes.SAM_STUDY_DATASETS[row["run"].split("_")[0]]
        base = base_lrs[row["family"]]
        row["linear_rule"] = bool(np.isclose(row["lr"], base * row["batch_size"] / batches[0]))
    return rows


def time_factors(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Seconds per epoch of each SAM variant over its base optimizer's, same batch sizes.

    Each run counts with its fastest epoch (on a shared machine the one least slowed by
    other processes); the factor is the ratio of the medians over the runs. Diverged runs
    (a partial first epoch) are left out.

    >>> rows = [{"optimizer": o, "base": "momentum", "batch_size": 512,
    ...          "status": "finished", "fastest_seconds": s}
    ...         for o, s in (("momentum", 1.0), ("sam_momentum", 2.1), ("momentum", 1.2))]
    >>> time_factors(rows)
    {'sam_momentum': 1.909}
    """
    finished = [r for r in rows if r["status"] == "finished"]
    factors = {}
    for name in _optimizers(finished):
        own = [r for r in finished if r["optimizer"] == name]
        base = own[0]["base"]
        batches = {r["batch_size"] for r in own}
        plain = [r for r in finished if r["optimizer"] == base and r["batch_size"] in batches]
        if base != name and plain:
            ratio = statistics.median(r["fastest_seconds"] for r in own) / statistics.median(
                r["fastest_seconds"] for r in plain
            )
            factors[name] = round(ratio, 3)
    return factors


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The study's table: optimizer, batch size, LR, accuracy, sharpness, seconds.

    Sharpness is Keskar's, in percent (empty for a diverged run).
    """
    lines = [
        "| optimizer | batch size | LR | linear rule | status | test accuracy | sharpness "
        "| s / epoch (median) | fastest epoch s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in _sorted(rows):
        sharp = "" if r["sharpness"] is None else f"{r['sharpness']:.3g}"
        lines.append(
            f"| {r['optimizer']} | {r['batch_size']} | {r['lr']:g} | "
            f"{'yes' if r['linear_rule'] else ''} | {r['status']} | "
            f"{100 * r['test_accuracy']:.2f}% | {sharp} | {r['epoch_seconds']:.2f} | "
            f"{r['fastest_seconds']:.2f} |"
        )
    return "\n".join(lines)


def best_by_batch(rows: Sequence[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """Per optimizer and batch size, the run with the best test accuracy on the LR grid."""
    best: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rows:
        slot = best.setdefault(r["optimizer"], {})
        if (
            r["batch_size"] not in slot
            or r["test_accuracy"] > slot[r["batch_size"]]["test_accuracy"]
        ):
            slot[r["batch_size"]] = r
    return {name: dict(sorted(best[name].items())) for name in _optimizers(rows)}


def figures(rows: Sequence[dict[str, Any]], out: str | os.PathLike) -> list[Path]:
    """The four figures as ``out/sam_*.png``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    drawn = [
        (_accuracy_figure, "sam_accuracy_vs_batch.png"),
        (_sharpness_figure, "sam_sharpness_vs_batch.png"),
        (_time_figure, "sam_epoch_seconds.png"),
        (_heatmap_figure, "sam_lr_heatmap.png"),
    ]
    paths = []
    for draw, name in drawn:
        figure = draw(rows)
        figure.savefig(out / name, dpi=120, bbox_inches="tight")
        plt.close(figure)
        paths.append(out / name)
    return paths


def _accuracy_figure(rows: Sequence[dict[str, Any]]) -> plt.Figure:
    families = sorted({r["family"] for r in rows}, reverse=True)  # sgd, then adam
    figure, axes = plt.subplots(
        1, len(families), figsize=(5.5 * len(families), 4.5), squeeze=False, sharey=True
    )
    best = best_by_batch(rows)
    for ax, family in zip(axes[0], families):
        names = [n for n in best if best[n] and _row(rows, n)["family"] == family]
        for name in names:
            runs = best[name]
            ax.plot(
                list(runs),
                [100 * r["test_accuracy"] for r in runs.values()],
                "o-",
                color=_color(name),
                label=f"{name}, best LR of the grid",
            )
            linear = sorted(
                (r["batch_size"], 100 * r["test_accuracy"])
                for r in rows
                if r["optimizer"] == name and r["linear_rule"] and r["status"] == "finished"
            )
            if linear:
                ax.plot(
                    *zip(*linear),
                    "x--",
                    color=_color(name),
                    alpha=0.6,
                    label=f"{name}, linear-rule LR",
                )
        small = [r for r in rows if r["optimizer"] == names[0] and r["batch_size"] <= 128]
        if small:
            top = max(100 * r["test_accuracy"] for r in small)
            ax.axhline(top, color="grey", linestyle=":", label=f"best {names[0]} at <= 128")
        _batch_axis(ax, rows)
        ax.set_title(f"{family.upper()} family (diverged linear-rule runs not drawn)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    best_accuracies = [r["test_accuracy"] for runs in best.values() for r in runs.values()]
    axes[0][0].set_ylim(bottom=_floor(best_accuracies))
    axes[0][0].set_ylabel("final test accuracy (%)")
    figure.suptitle("Test accuracy against batch size")
    return figure


def _batch_axis(ax: plt.Axes, rows: Sequence[dict[str, Any]]) -> None:
    batches = sorted({r["batch_size"] for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches, map(str, batches))
    ax.minorticks_off()
    ax.set_xlabel("batch size")


def _floor(accuracies: Sequence[float]) -> float:
    """An axis floor (percent) just below ``accuracies``; diverged runs (10%) left out."""
    return max(0.0, 100 * min(accuracies, default=0.0) - 1.0)


def _sharpness_figure(rows: Sequence[dict[str, Any]]) -> plt.Figure:
    figure, ax = plt.subplots(figsize=(7, 4.5))
    for name, runs in best_by_batch(rows).items():
        points = [(b, r["sharpness"]) for b, r in runs.items() if r["sharpness"] is not None]
        if points:
            ax.plot(*zip(*points), "o-", color=_color(name), label=name)
    _batch_axis(ax, rows)
    ax.set_ylabel("Keskar sharpness (%), full space, eps = 1e-3")
    ax.set_title("Sharpness of the best-LR solution against batch size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def _time_figure(rows: Sequence[dict[str, Any]]) -> plt.Figure:
    finished = [r for r in rows if r["status"] == "finished"]
    names = _optimizers(finished)
    batches = sorted({r["batch_size"] for r in finished})
    figure, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        seconds = {
            j: statistics.median(r["fastest_seconds"] for r in same)
            for j, batch in enumerate(batches)
            if (
                same := [r for r in finished if r["optimizer"] == name and r["batch_size"] == batch]
            )
        }
        ax.bar(
            [j + i * width for j in seconds],
            list(seconds.values()),
            width,
            color=_color(name),
            label=name,
        )
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(batches))], map(str, batches))
    ax.set_xlabel("batch size")
    ax.set_ylabel("s / epoch (fastest epoch; median of the runs)")
    factors = ", ".join(f"{k} x{v:.2f}" for k, v in time_factors(rows).items())
    ax.set_title(f"Time per epoch\nover the base optimizer: {factors}", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


def _heatmap_figure(rows: Sequence[dict[str, Any]]) -> plt.Figure:
    names = _optimizers(rows)
    batches = sorted({r["batch_size"] for r in rows})
    figure, axes = plt.subplots(
        1, len(names), figsize=(3.2 * len(names), 3.6), squeeze=False, layout="constrained"
    )
    colors = plt.get_cmap("viridis").with_extremes(bad="0.85")
    finished = [r["test_accuracy"] for r in rows if r["status"] == "finished"]
    scale = {"vmin": _floor(finished), "vmax": 100 * max(finished)}
    for ax, name in zip(axes[0], names):
        # Every panel of a family shows the family's whole LR grid and every batch size.
        family = _row(rows, name)["family"]
        lrs = sorted({r["lr"] for r in rows if r["family"] == family}, reverse=True)
        grid = np.full((len(lrs), len(batches)), np.nan)
        for r in (r for r in rows if r["optimizer"] == name):
            y, x = lrs.index(r["lr"]), batches.index(r["batch_size"])
            grid[y, x] = 100 * r["test_accuracy"]
            text = "div." if r["status"] == "diverged" else f"{grid[y, x]:.1f}"
            ax.text(
                x,
                y,
                text,
                ha="center",
                va="center",
                fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.7, "pad": 1, "linewidth": 0},
            )
            if r["linear_rule"]:
                ax.add_patch(
                    plt.Rectangle(
                        (x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2
                    )
                )
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=colors, **scale)
        ax.set_xticks(range(len(batches)), map(str, batches))
        ax.set_yticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
        ax.set_xlabel("batch size")
        ax.set_title(name, fontsize=9)
    axes[0][0].set_ylabel("learning rate")
    figure.colorbar(image, ax=axes[0].tolist(), fraction=0.02, label="test accuracy (%)")
    figure.suptitle(
        "Test accuracy on the LR grid (red: the linear-rule LR; grey: not run)", fontsize=10
    )
    return figure


def _row(rows: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for r in rows if r["optimizer"] == name)


def _color(name: str) -> str:
    """One color per optimizer in every figure."""
    return f"C{ORDER.index(name)}" if name in ORDER else "black"


def _optimizers(rows: Sequence[dict[str, Any]]) -> list[str]:
    names = {r["optimizer"] for r in rows}
    return [n for n in ORDER if n in names] + sorted(names - set(ORDER))


def _sorted(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {name: i for i, name in enumerate(_optimizers(rows))}
    return sorted(rows, key=lambda r: (order[r["optimizer"]], r["batch_size"], r["lr"]))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the study, then write ``table.md``, ``rows.json`` and the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="runs/sweeps", help="folder of the sweep folders")
    parser.add_argument("--plots", default="Plots", help="folder of the figures")
    parser.add_argument("--quick", action="store_true", help="the tiny version")
    args = parser.parse_args(argv)
    folder = run_study(args.root, quick=args.quick)
    rows = collect(folder)
    (folder / "rows.json").write_text(json.dumps(rows, indent=1))
    (folder / "table.md").write_text(markdown_table(rows) + "\n")
    print(markdown_table(rows))
    print("SAM time factors:", time_factors(rows))
    for path in figures(rows, args.plots):
        print(f"figure: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
