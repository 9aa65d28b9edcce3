"""The SAM study (issue 16): does SAM close the large-batch gap once the large batch is tuned?

Two stages, both sweeps (`bsi_keras.sweep`) that skip finished runs when run again:

1. Tuning, seed 0: the ``sam_study`` recipe (`bsi_keras.cli.recipes.sam_study_runs`), every
   method on its LR grid (SAM also on a rho grid), trained on the first 15,000 Fashion-MNIST
   training images and evaluated on the next 5,000 (``--validation_examples``), never on the
   test set. `choose` takes, per method, the run with the best final validation accuracy.
2. Test, seeds 0-4: each method at its chosen settings (`bsi_keras.cli.recipes.sam_study_final`:
   the same 15,000 training images, the whole test set), the methods of one seed sharing
   initial weights and data order.
3. A stability check, seeds 0-4: each batch-2,048 method at half its chosen LR (its best
   validation run there, `half_lr_choice`), since the chosen LR lay next to divergence.

`export` copies each run's ``config.json``, ``log.csv`` and ``summary.json`` to
``results/sam_study/`` (``tuning/<run>/``, ``seeds/seed_<k>/<method>/``,
``seeds_half_lr/seed_<k>/<method>/``); the README's tables
are ``python -m bsi_keras.report results/sam_study/seeds --reference sgd_b2048
--train_accuracy`` (`results/tables.py`) and `figures` draws ``Plots/sam_*.png`` from there.

    python notebooks/sam_study.py                 # run (or finish) the study, export, draw
    python notebooks/sam_study.py --quick         # a tiny version on the MNIST sample
    python notebooks/sam_study.py --draw_only     # only the figures, from results/sam_study
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bsi_keras import plots, stats
from bsi_keras.cli import recipes, sweep
from bsi_keras.run_folder import RunFolder

RECIPE = "sam_study"
FINAL = "sam_study_final"  # registered by `run_study` from the chosen settings
HALF = "sam_study_half_lr"  # the same, at half the chosen LR
# The test stages' recipes and the folders of their runs under results/sam_study.
STAGES = {FINAL: "seeds", HALF: "seeds_half_lr"}
QUICK = "sam_study_quick"
SEEDS = (0, 1, 2, 3, 4)
QUICK_SEEDS = (0, 1)
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results" / "sam_study"
# The tiny version: the MNIST sample's 4,000 training images (the last 1,000 the validation
# split), 2 epochs, two LRs at batch 2,048 and one rho.
QUICK_DATA = {**recipes.SAM_STUDY_DATA, "dataset": "mnist_sample", "num_train": 4000}
QUICK_DATA["validation_examples"] = 1000
# The methods of the test stage, in the figures' order; SAM's rho is chosen with its LR.
METHODS = ("sgd_b128", "sgd_b2048", "sgd_2x_b2048", "sam_b2048")
RUN_FILES = ("config.json", "log.csv", "summary.json")


def quick_runs() -> list[recipes.Run]:
    """The tiny version's tuning runs.

    >>> [name for name, _ in quick_runs()][:3]
    ['sgd_b128_lr0.05', 'sgd_b2048_lr0.1', 'sgd_b2048_lr0.2']
    """
    runs = recipes.sam_study_runs(epochs=2, small_lrs=(0.05,), large_lrs=(0.1, 0.2), rhos=(0.05,))
    return [(name, {**flags, **QUICK_DATA}) for name, flags in runs]


def method_of(run_name: str) -> str:
    """The test-stage method a tuning run belongs to (every rho of SAM is one method).

    >>> method_of("sam_rho0.05_b2048_lr0.2"), method_of("sgd_2x_b2048_lr0.4")
    ('sam_b2048', 'sgd_2x_b2048')
    """
    label = run_name.rsplit("_lr", 1)[0]
    return "sam_b2048" if label.startswith("sam_rho") else label


def tuning_rows(folders: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per tuning run: method, LR, rho, status, final validation and train accuracy."""
    rows = []
    for folder in folders:
        run = RunFolder(folder)
        summary, spec = run.read_summary(), run.read_config()["spec"]
        log = run.read_log()
        rows.append(
            {
                "run": folder.name,
                "method": method_of(folder.name),
                "lr": spec["schedule"]["lr"],
                "rho": spec["optimizer"]["rho"],
                "status": summary["status"],
                "validation_accuracy": summary["final_val_accuracy"],
                "train_accuracy": float(log[-1]["accuracy"]) if log else float("nan"),
            }
        )
    return rows


def tuning_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The tuning runs as a Markdown table, the chosen run of each method marked."""
    chosen = set(choose(rows).values())
    lines = [
        "| method | rho | LR | status | validation accuracy | train accuracy | chosen |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    order = {method: i for i, method in enumerate(METHODS)}
    for r in sorted(rows, key=lambda r: (order[r["method"]], r["rho"] or 0, r["lr"])):
        rho = "" if r["rho"] is None else f"{r['rho']:g}"
        lines.append(
            f"| {r['method']} | {rho} | {r['lr']:g} "
            f"| {r['status']} | {100 * r['validation_accuracy']:.2f} % "
            f"| {100 * r['train_accuracy']:.2f} % | {'yes' if r['run'] in chosen else ''} |"
        )
    return "\n".join(lines)


def choose(
    rows: Sequence[Mapping[str, Any]], lrs: Mapping[str, float] | None = None
) -> dict[str, str]:
    """Per method, the tuning run with the best final validation accuracy (finished runs;
    a tie goes to the smaller LR); with ``lrs``, only each method's runs at its LR there.

    >>> rows = [{"run": f"sgd_b128_lr{lr}", "method": "sgd_b128", "lr": lr,
    ...          "status": s, "validation_accuracy": a}
    ...         for lr, s, a in ((0.1, "finished", 0.8), (0.2, "finished", 0.9),
    ...                          (0.4, "diverged", 0.1))]
    >>> choose(rows)
    {'sgd_b128': 'sgd_b128_lr0.2'}
    """
    best: dict[str, Mapping[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r["lr"]):
        method = row["method"]
        if row["status"] != "finished" or (
            lrs is not None and not math.isclose(row["lr"], lrs.get(method, math.nan))
        ):
            continue
        if method not in best or row["validation_accuracy"] > best[method]["validation_accuracy"]:
            best[method] = row
    return {method: best[method]["run"] for method in METHODS if method in best}


def half_lr_choice(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each batch-2,048 method's best tuning run at half the LR `choose` gives it.

    >>> rows = [{"run": f"sgd_b2048_lr{lr}", "method": "sgd_b2048", "lr": lr,
    ...          "status": "finished", "validation_accuracy": a}
    ...         for lr, a in ((0.05, 0.8), (0.1, 0.9))]
    >>> half_lr_choice(rows)
    {'sgd_b2048': 'sgd_b2048_lr0.05'}
    """
    lr = {r["run"]: r["lr"] for r in rows}
    chosen = choose(rows)
    return choose(rows, {m: lr[run] / 2 for m, run in chosen.items() if m != "sgd_b128"})


def final_runs(chosen: Mapping[str, str], tuning: Sequence[recipes.Run]) -> list[recipes.Run]:
    """The test stage's runs: each method at its chosen tuning run's flags, on the test set."""
    flags = dict(tuning)
    return [(method, recipes.sam_study_final(flags[run])) for method, run in chosen.items()]


def run_study(root: str | os.PathLike, quick: bool = False) -> dict[str, str]:
    """Run (or finish) both stages under ``root``; return the chosen tuning run per method.

    The tuning runs go to ``root/<recipe>/<run>``, the test runs to
    ``root/seed_<k>/sam_study_final/<method>``.
    """
    recipe = QUICK if quick else RECIPE
    tuning = quick_runs() if quick else recipes.sam_study_runs()
    recipes.RECIPES[QUICK] = quick_runs
    sweep.run_sweep(recipe, root, extra=["--verbose", "0"])
    folders = sorted(p for p in (Path(root) / recipe).iterdir() if (p / "summary.json").is_file())
    rows = tuning_rows(folders)
    chosen = choose(rows)
    # Each test stage is a recipe of the chosen settings (replaced when the choice changes);
    # the tiny version has no stability check.
    choices = {FINAL: chosen, **({} if quick else {HALF: half_lr_choice(rows)})}
    for stage, choice in choices.items():
        recipes.RECIPES[stage] = lambda choice=choice: final_runs(choice, tuning)
        sweep.run_sweep(
            stage, root, extra=["--verbose", "0"], seeds=QUICK_SEEDS if quick else SEEDS
        )
    return chosen


def export(root: str | os.PathLike, out: str | os.PathLike, quick: bool = False) -> Path:
    """Copy the study's run files (`RUN_FILES`) from ``root`` to ``out``; returns ``out``.

    ``out/tuning/<run>/`` for the tuning runs, ``out/<stage>/seed_<k>/<method>/`` for the
    test runs (`STAGES`); checkpoints, weights and the sweeps' summaries stay behind.
    """
    root, out = Path(root), Path(out)
    pairs = [(p, out / "tuning" / p.name) for p in (root / (QUICK if quick else RECIPE)).iterdir()]
    for seed_folder in sorted(root.glob("seed_*")):
        for stage, name in STAGES.items():
            if (seed_folder / stage).is_dir():
                runs = (seed_folder / stage).iterdir()
                pairs += [(p, out / name / seed_folder.name / p.name) for p in runs]
    for source, target in pairs:
        if not (source / "summary.json").is_file():
            continue
        target.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            shutil.copyfile(source / name, target / name)
    return out


def seed_results(
    results: str | os.PathLike, stage: str = "seeds"
) -> dict[str, dict[int, dict[str, Any]]]:
    """By method and seed, a test run's status and final test and train accuracy (%), from
    ``results/<stage>`` (a folder of `STAGES`)."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for seed_folder in sorted(Path(results, stage).glob("seed_*")):
        seed = int(seed_folder.name.split("_")[1])
        for method in METHODS:
            run = RunFolder(seed_folder / method)
            if run.summary_path.is_file():
                summary = run.read_summary()
                found.setdefault(method, {})[seed] = {
                    "status": summary["status"],
                    "test": 100 * summary["final_val_accuracy"],
                    "train": 100 * float(run.read_log()[-1]["accuracy"]),
                }
    return found


def summarize(results: str | os.PathLike) -> dict[str, Any]:
    """The chosen settings, and per test stage and method the seeds that finished and those
    that diverged, the mean test / train accuracy over the finished ones and the paired
    difference against SGD at batch 2,048 (`bsi_keras.stats`)."""
    results = Path(results)
    rows = tuning_rows(sorted(p for p in (results / "tuning").iterdir()))
    summary: dict[str, Any] = {"tuning_runs": len(rows), "chosen": choose(rows)}
    for stage in STAGES.values():
        if (results / stage).is_dir():
            summary[stage] = _stage_summary(seed_results(results, stage))
    return summary


def _stage_summary(by_method: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> dict[str, Any]:
    finished = {
        method: {s: v for s, v in seeds.items() if v["status"] == "finished"}
        for method, seeds in by_method.items()
    }
    reference = finished.get("sgd_b2048", {})
    out: dict[str, Any] = {}
    for method, seeds in finished.items():
        entry: dict[str, Any] = {
            "seeds": sorted(seeds),
            "diverged_seeds": sorted(s for s, v in by_method[method].items() if s not in seeds),
        }
        for metric in ("test", "train"):
            values = [v[metric] for v in seeds.values()]
            if values:
                entry[f"{metric}_mean"], entry[f"{metric}_std"] = stats.mean_std(values)
            paired = sorted(set(seeds) & set(reference))
            if method != "sgd_b2048" and len(paired) > 1:
                d = stats.paired_difference(
                    [seeds[s][metric] for s in paired], [reference[s][metric] for s in paired]
                )
                entry[f"{metric}_minus_sgd_b2048"] = d.format(2)
        out[method] = entry
    return out


def _style(method: str) -> dict[str, Any]:
    """One colour and marker per method in every figure of the study."""
    return plots.style(method, METHODS.index(method))


def figures(results: str | os.PathLike, out: str | os.PathLike) -> list[Path]:
    """``out/sam_validation_lr.png`` (the tuning grid) and ``out/sam_seeds.png`` (the test
    stage), drawn from ``results``; returns their paths."""
    results, out = Path(results), Path(out)
    rows = tuning_rows(sorted((results / "tuning").iterdir()))
    return [
        plots.save(_tuning_figure(rows), out / "sam_validation_lr.png"),
        plots.save(_seeds_figure(_test_points(results)), out / "sam_seeds.png"),
    ]


def _tuning_figure(rows: Sequence[Mapping[str, Any]]) -> plt.Figure:
    chosen = set(choose(rows).values())
    figure, axes = plt.subplots(1, 2, figsize=(13, 5), sharex=True)
    lines: dict[str, list[Mapping[str, Any]]] = {}
    order = {method: i for i, method in enumerate(METHODS)}
    for row in sorted(rows, key=lambda r: (order[r["method"]], r["rho"] or 0, r["lr"])):
        lines.setdefault(row["run"].rsplit("_lr", 1)[0], []).append(row)
    rhos = sorted({r["rho"] for r in rows if r["rho"] is not None})
    keys = ("validation_accuracy", "train_accuracy")
    bottoms = [min(100 * r[k] for r in rows if r["status"] == "finished") - 1.5 for k in keys]
    for index, (label, runs) in enumerate(lines.items()):
        method = runs[0]["method"]
        style = _style(method)
        if method == "sam_b2048":  # one line style per rho
            style["linestyle"] = ("-", "--", ":", "-.")[rhos.index(runs[0]["rho"]) % 4]
        finished = [r for r in runs if r["status"] == "finished"]
        diverged = [r["lr"] for r in runs if r["status"] != "finished"]
        for ax, key, bottom in zip(axes, keys, bottoms):
            lrs, values = [r["lr"] for r in finished], [100 * r[key] for r in finished]
            ax.plot(lrs, values, label=label, **style)
            for r in finished:
                if r["run"] in chosen:
                    ax.plot(r["lr"], 100 * r[key], "o", ms=14, mfc="none", color="black")
            # Diverged runs: a cross per run along the bottom, one row per line.
            ax.plot(
                diverged, [bottom + 0.18 * index] * len(diverged), "x", ms=5, color=style["color"]
            )
    small = next((r for r in rows if r["run"] in chosen and r["method"] == "sgd_b128"), None)
    every_lr = sorted({r["lr"] for r in rows})
    for ax, name, bottom in zip(axes, ("validation", "training"), bottoms):
        if small is not None:
            linear = small["lr"] * recipes.SAM_STUDY_LARGE / recipes.SAM_STUDY_SMALL
            ax.axvline(
                linear, color="grey", linestyle=":", label=f"linear rule at 2048: {linear:g}"
            )
        ax.set_xscale("log", base=2)
        ax.set_xlim(every_lr[0] / 1.3, every_lr[-1] * 1.3)
        ax.set_xticks(every_lr, [f"{lr:g}" for lr in every_lr], fontsize=7, rotation=45)
        ax.minorticks_off()
        ax.set_xlabel("peak learning rate (after warmup; cosine to 0)")
        ax.set_ylabel(f"final {name} accuracy (%)")
        ax.set_ylim(bottom=bottom - 0.3)
        ax.grid(alpha=0.3)
    axes[0].set_title("validation split (5,000 held-out training images)", fontsize=9)
    axes[1].set_title("training, last epoch (mean over its batches)", fontsize=9)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.suptitle(
        "Tuning, seed 0: final accuracy over the LR grid (circled: chosen on validation; "
        "crosses at the bottom: diverged runs)",
        fontsize=10,
    )
    return figure


def _test_points(results: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """The test stages' runs by figure label (the stability check's as ``<method> LR/2``)."""
    points = dict(seed_results(results))
    if (results / STAGES[HALF]).is_dir():
        half = seed_results(results, STAGES[HALF])
        points.update({f"{method} LR/2": seeds for method, seeds in half.items()})
    return points


def _seeds_figure(by_label: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> plt.Figure:
    figure, axes = plt.subplots(1, 2, figsize=(13, 5))
    labels = list(by_label)
    seeds = sorted({s for runs in by_label.values() for s in runs})
    for ax, metric in zip(axes, ("test", "train")):
        values = [
            v[metric]
            for runs in by_label.values()
            for v in runs.values()
            if v["status"] == "finished"
        ]
        bottom = min(values) - 1.0
        for seed in seeds:  # the seeds' paired values, joined
            points = [
                (i, by_label[label][seed][metric])
                for i, label in enumerate(labels)
                if by_label[label].get(seed, {}).get("status") == "finished"
            ]
            ax.plot(*zip(*points), color="grey", alpha=0.3, linewidth=0.8)
        for i, label in enumerate(labels):
            runs = by_label[label]
            style = _style(label.split(" ")[0])
            if label.endswith("LR/2"):
                style["markerfacecolor"] = "none"
            done = [v[metric] for v in runs.values() if v["status"] == "finished"]
            ax.plot(
                [i] * len(done),
                done,
                linestyle="none",
                alpha=0.5,
                marker=style["marker"],
                color=style["color"],
            )
            if done:
                mean, std = stats.mean_std(done) if len(done) > 1 else (done[0], 0.0)
                ax.errorbar(
                    i + 0.15,
                    mean,
                    yerr=std,
                    fmt=style["marker"],
                    capsize=4,
                    markersize=8,
                    color=style["color"],
                    markerfacecolor=style.get("markerfacecolor", style["color"]),
                )
            failed = [s for s, v in runs.items() if v["status"] != "finished"]
            if failed:
                ax.annotate(
                    f"diverged:\nseed {', '.join(map(str, failed))}",
                    (i, bottom),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color=style["color"],
                )
        ax.set_ylim(bottom=bottom)
        ax.set_xticks(
            range(len(labels)), [label.replace(" ", "\n") for label in labels], fontsize=8
        )
        ax.set_ylabel(f"final {metric} accuracy (%)")
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_title("test set", fontsize=9)
    axes[1].set_title("training, last epoch (mean over its batches)", fontsize=9)
    figure.suptitle(
        f"Chosen settings (and the batch-2,048 methods at half their LR), seeds "
        f"{', '.join(map(str, seeds))}: each finished run, mean +- std (grey lines join a seed)",
        fontsize=10,
    )
    return figure


def main(argv: Sequence[str] | None = None) -> int:
    """Run the study, export it to ``--results``, print its summary, draw the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="runs/sweeps/sam_study", help="folder of the sweeps")
    parser.add_argument("--results", default=str(RESULTS), help="where the run files go")
    parser.add_argument("--plots", default=str(REPO / "Plots"), help="folder of the figures")
    parser.add_argument("--quick", action="store_true", help="the tiny version")
    parser.add_argument("--draw_only", action="store_true", help="only draw from --results")
    args = parser.parse_args(argv)
    if not args.draw_only:
        run_study(args.root, quick=args.quick)
        export(args.root, args.results, quick=args.quick)
    print(json.dumps(summarize(args.results), indent=1))
    for path in figures(args.results, args.plots):
        print(f"figure: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
