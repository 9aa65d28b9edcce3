"""Result tables from run folders (Markdown and CSV), aggregated over seeds where there are any.

``python -m bsi_keras.report RUN_FOLDER ...`` prints the Markdown table (``--csv``: CSV); a
folder of run folders, such as the one ``--schedule all`` writes, stands for its runs (found
at any depth).

Runs over seeds (``--seeds``: ``ROOT/seed_<k>/<schedule>/``, or a sweep's
``ROOT/seed_<k>/RECIPE/NAME/``) are one configuration each: the path below the folder named,
``seed_<k>`` left out (``momentum/decay_lr``). Their report (`seed_tables`) gives, per
configuration, the mean and sample standard deviation over seeds of the final test accuracy,
of the mean test accuracy of the last ``--last_k`` epochs, of the updates and of the training
and compile seconds; then, for each configuration with a sibling named ``--reference``
(default decay_lr), the mean paired difference over the seeds both ran, with its 95 %
t-interval (`bsi_keras.stats`), "unresolved" where the interval contains zero.
``--train_accuracy`` adds the final epoch's training accuracy (`TRAIN_ACCURACY`).

``--target_accuracy PERCENT`` prints instead the time to that test accuracy per
configuration: the first epoch of each seed that reached it, the updates, examples and
seconds up to it, and their paired differences (`bsi_keras.cli.target_accuracy`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bsi_keras import markdown, stats
from bsi_keras.cli.target_accuracy import target_table
from bsi_keras.run_folder import read_log

COLUMNS = (
    "run",
    "schedule",
    "optimizer",
    "status",
    "test accuracy",
    "updates",
    "train s",
    "s/epoch",
    "compile s",
)


def summary_row(folder: str | os.PathLike, label: str | None = None) -> dict[str, Any]:
    """One run's line: final test accuracy, updates and seconds from its ``summary.json``."""
    folder = Path(folder)
    summary = json.loads((folder / "summary.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    schedule = config.get("schedule", {})
    accuracy = summary.get("final_val_accuracy")
    return {
        "run": label or folder.name,
        "schedule": schedule.get("name", "?") if isinstance(schedule, dict) else "?",
        "optimizer": _optimizer_name(config),
        "status": summary["status"],
        "test accuracy": f"{100 * accuracy:.2f}%" if accuracy is not None else "",
        "updates": summary["total_updates"],
        "train s": f"{summary['train_seconds']:.1f}",
        "s/epoch": _seconds_per_epoch(summary),
        "compile s": f"{summary['compile_seconds']:.1f}",
    }


def _seconds_per_epoch(summary: dict[str, Any]) -> str:
    """Training seconds per finished epoch (compilation left out), as the seeds' tables."""
    epochs = summary.get("epochs_finished")
    return f"{summary['train_seconds'] / epochs:.1f}" if epochs else ""


def _optimizer_name(config: dict[str, Any]) -> str:
    """The optimizer a run's spec names (an older folder's ``args``), else Keras's class."""
    if "spec" in config:
        return config["spec"]["optimizer"]["name"]
    return config.get("args", {}).get("optimizer") or config.get("optimizer", {}).get(
        "class_name", "?"
    )


def summary_table(folders: Sequence[str | os.PathLike], fmt: str = "markdown") -> str:
    """A table with one `summary_row` per run folder.

    Args:
        folders: run folders (each with ``config.json`` and ``summary.json``).
        fmt: ``"markdown"`` or ``"csv"``.

    Returns:
        The table as text.
    """
    rows = [summary_row(f, f"{Path(f).parent.name}/{Path(f).name}") for f in folders]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    lines = [*markdown.head(COLUMNS), *(markdown.row([r[c] for c in COLUMNS]) for r in rows)]
    return "\n".join(lines) + "\n"


def run_folders(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The run folders among ``paths``, each folder of run folders replaced by its runs.

    Raises:
        ValueError: a path is neither a run folder nor holds any.

    Example:

    >>> run_folders([])
    []
    """
    found: list[Path] = []
    for path in map(Path, paths):
        runs = (
            [path]
            if (path / "summary.json").is_file()
            else sorted(p.parent for p in path.rglob("summary.json"))
        )
        if not runs:
            raise ValueError(f"{path} is not a run folder (no summary.json) and holds none")
        found += runs
    return found


SEED_PART = re.compile(r"seed_(\d+)")
# Metric -> digits shown; the last-k column's name is made with its k (`metric_names`).
# The final epoch's training accuracy as log.csv has it: the mean over the epoch's batches,
# in training mode (SAM: at the unperturbed weights); a column on request (`seed_rows`).
TRAIN_ACCURACY = "train accuracy (%)"
METRIC_DIGITS = {"test accuracy (%)": 2, TRAIN_ACCURACY: 2, "last-k mean (%)": 2, "updates": 0}
METRIC_DIGITS.update({"train s": 1, "compile s": 1})
Configurations = dict[str, dict[int, Path]]  # configuration -> seed -> run folder


def configurations(paths: Sequence[str | os.PathLike]) -> Configurations:
    """The finished runs under ``paths`` by configuration and seed.

    A configuration is the folder named and the path below it, ``seed_<k>`` parts left
    out; the seed is that part's ``k`` (a run folder outside any ``seed_<k>`` is seed
    ``config.json`` records). Runs that did not finish are left out.

    Raises:
        ValueError: a path is neither a run folder nor holds any.

    Example:

    >>> configurations([])
    {}
    """
    found: Configurations = {}
    for path in map(Path, paths):
        for folder in run_folders([path]):
            if json.loads((folder / "summary.json").read_text())["status"] != "finished":
                continue
            parts = folder.relative_to(path).parts
            seeds = [int(m.group(1)) for m in map(SEED_PART.fullmatch, parts) if m]
            key = "/".join([path.name, *(p for p in parts if not SEED_PART.fullmatch(p))])
            seed = seeds[-1] if seeds else json.loads((folder / "config.json").read_text())["seed"]
            found.setdefault(key, {})[seed] = folder
    return found


def has_seeds(paths: Sequence[str | os.PathLike]) -> bool:
    """Whether any run under ``paths`` lies in a ``seed_<k>`` folder (below the paths)."""
    return any(
        SEED_PART.fullmatch(part)
        for path in map(Path, paths)
        for folder in run_folders([path])
        for part in folder.relative_to(path).parts
    )


def run_metrics(folder: Path, last_k: int, train_accuracy: bool = False) -> dict[str, float]:
    """A finished run's numbers: final and last-``last_k``-epoch test accuracy (%), updates,
    training and compile seconds (the last ``min(last_k, epochs)`` epochs are averaged); with
    ``train_accuracy``, the final training accuracy (%) too."""
    summary = json.loads((folder / "summary.json").read_text())
    log = read_log(folder / "log.csv")
    accuracy = [float(row["val_accuracy"]) for row in log]
    metrics = {
        "test accuracy (%)": 100 * summary["final_val_accuracy"],
        "last-k mean (%)": 100 * stats.mean_std(accuracy[-last_k:])[0],
        "updates": float(summary["total_updates"]),
        "train s": summary["train_seconds"],
        "compile s": summary["compile_seconds"],
    }
    if train_accuracy:
        metrics[TRAIN_ACCURACY] = 100 * float(log[-1]["accuracy"])
    return metrics


def metric_names(last_k: int, train_accuracy: bool = False) -> dict[str, str]:
    """The column name of each metric reported (``last-k mean (%)`` with its ``k``)."""
    return {
        m: m.replace("last-k", f"last-{last_k}")
        for m in METRIC_DIGITS
        if train_accuracy or m != TRAIN_ACCURACY
    }


def seed_rows(
    found: Configurations,
    reference: str = "decay_lr",
    last_k: int = 5,
    train_accuracy: bool = False,
) -> list[dict[str, Any]]:
    """One row per configuration and metric: mean, std and the paired difference.

    Args:
        found: runs by configuration and seed (`configurations`).
        reference: the configuration name (last path part) that siblings are paired with.
        last_k: epochs averaged in the ``last-k mean`` metric.
        train_accuracy: report the final training accuracy (`TRAIN_ACCURACY`) too.

    Returns:
        Dicts with ``configuration``, ``seeds``, ``metric``, ``mean``, ``std`` and, for a
        configuration with a reference sibling, ``difference`` (a
        `bsi_keras.stats.PairedDifference` over the seeds both ran; else None).
    """
    metrics = {
        key: {
            seed: run_metrics(folder, last_k, train_accuracy)
            for seed, folder in sorted(runs.items())
        }
        for key, runs in found.items()
    }
    rows = []
    for key, by_seed in metrics.items():
        parent, _, name = key.rpartition("/")
        ref = metrics.get(f"{parent}/{reference}" if parent else reference)
        paired = sorted(set(by_seed) & set(ref or {})) if name != reference else []
        for metric in metric_names(last_k, train_accuracy):
            mean, std = stats.mean_std([values[metric] for values in by_seed.values()])
            difference = None
            if paired:
                difference = stats.paired_difference(
                    [by_seed[s][metric] for s in paired], [ref[s][metric] for s in paired]
                )
            rows.append(
                {
                    "configuration": key,
                    "seeds": list(by_seed),
                    "metric": metric,
                    "mean": mean,
                    "std": std,
                    "difference": difference,
                }
            )
    return rows


def seed_tables(
    found: Configurations,
    reference: str = "decay_lr",
    last_k: int = 5,
    fmt: str = "markdown",
    train_accuracy: bool = False,
) -> str:
    """The report over seeds: means and standard deviations, then paired differences.

    Args:
        found: runs by configuration and seed (`configurations`).
        reference: the configuration name the paired differences are taken against.
        last_k: epochs averaged in the ``last-k mean`` metric.
        fmt: ``"markdown"`` (two tables) or ``"csv"`` (one row per configuration and metric).
        train_accuracy: a column of the final training accuracy (`TRAIN_ACCURACY`) too.

    Returns:
        The tables as text.
    """
    rows = seed_rows(found, reference, last_k, train_accuracy)
    names = metric_names(last_k, train_accuracy)
    if fmt == "csv":
        return _seed_csv(rows, names)
    by_key: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_key.setdefault(row["configuration"], []).append(row)
    header = ["run", "seeds", *names.values()]
    lines = [
        "Mean +- sample standard deviation over seeds:",
        "",
        *markdown.head(header),
    ]
    for key, key_rows in by_key.items():
        cells = [_mean_std_text(r) for r in key_rows]
        lines.append(markdown.row([key, _seeds_text(key_rows[0]["seeds"]), *cells]))
    paired = {k: r for k, r in by_key.items() if r[0]["difference"] is not None}
    if paired:
        confidence = next(iter(paired.values()))[0]["difference"].confidence
        header = ["run", "paired seeds", *(n.replace("(%)", "(points)") for n in names.values())]
        lines += [
            "",
            f"Paired difference against {reference} (same seed: same initial weights and data "
            f"order), mean over seeds ({100 * confidence:g} % t-interval); unresolved: the "
            "interval contains zero:",
            "",
            *markdown.head(header),
        ]
        for key, key_rows in paired.items():
            n = key_rows[0]["difference"].n
            cells = [r["difference"].format(METRIC_DIGITS[r["metric"]]) for r in key_rows]
            lines.append(markdown.row([f"{key} - {reference}", str(n), *cells]))
    return "\n".join(lines) + "\n"


def _seed_csv(rows: Sequence[Mapping[str, Any]], names: Mapping[str, str]) -> str:
    columns = ("run", "seeds", "metric", "mean", "std", "diff", "diff_low", "diff_high")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*columns, "resolved"])
    for row in rows:
        d = row["difference"]
        paired = [d.mean, d.low, d.high, d.resolved] if d else ["", "", "", ""]
        seeds = " ".join(map(str, row["seeds"]))
        writer.writerow(
            [row["configuration"], seeds, names[row["metric"]], row["mean"], row["std"], *paired]
        )
    return buffer.getvalue()


def _mean_std_text(row: Mapping[str, Any]) -> str:
    return markdown.mean_std(row["mean"], row["std"], METRIC_DIGITS[row["metric"]])


def _seeds_text(seeds: Sequence[int]) -> str:
    return " ".join(map(str, seeds))


def main(argv: Sequence[str] | None = None) -> int:
    """Print the results table of the run folders named in ``argv`` (over seeds if any)."""
    parser = argparse.ArgumentParser(prog="python -m bsi_keras.report", description=__doc__)
    parser.add_argument("folders", nargs="+", help="run folders, or folders of run folders")
    parser.add_argument("--csv", action="store_true", help="CSV instead of Markdown")
    parser.add_argument(
        "--reference", default="decay_lr", help="runs over seeds: the schedule differences take"
    )
    parser.add_argument(
        "--last_k", type=int, default=5, help="runs over seeds: epochs the last-k mean averages"
    )
    parser.add_argument(
        "--train_accuracy",
        action="store_true",
        help="runs over seeds: add the final epoch's training accuracy",
    )
    parser.add_argument(
        "--target_accuracy",
        type=float,
        default=None,
        help="instead: the updates, examples and seconds to first reach this test accuracy (%%)",
    )
    args = parser.parse_args(argv)
    if args.last_k < 1:
        parser.error(f"argument --last_k: must be >= 1, got {args.last_k}")
    if args.target_accuracy is not None and not 0 < args.target_accuracy <= 100:
        parser.error(f"argument --target_accuracy: must be in (0, 100], got {args.target_accuracy}")
    fmt = "csv" if args.csv else "markdown"
    try:
        if args.target_accuracy is not None:
            found = configurations(args.folders)
            print(target_table(found, args.target_accuracy, args.reference, fmt), end="")
            return 0
        if has_seeds(args.folders):
            found = configurations(args.folders)
            text = seed_tables(found, args.reference, args.last_k, fmt, args.train_accuracy)
            print(text, end="")
            return 0
        folders = run_folders(args.folders)
    except ValueError as error:
        parser.error(str(error))
    print(summary_table(folders, fmt), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
