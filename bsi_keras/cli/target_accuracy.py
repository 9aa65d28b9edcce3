"""Time to a target accuracy: the updates, examples and seconds a run needed to reach it.

Per run (`time_to_target`), from its per-epoch ``log.csv``: the first epoch whose test
accuracy (``val_accuracy``) is at least the target, and the parameter updates, training
examples and training seconds (compilation left out, as the report's ``train s``) up to the
end of that epoch. The resolution is one epoch: a run that crosses the target during an epoch
is counted at that epoch's end. Per configuration over seeds (`target_table`, the text of
``python -m bsi_keras.report ROOT --target_accuracy PERCENT``): the first epoch of each seed,
how many runs reached the target, the mean and sample standard deviation of the numbers over
the runs that reached it, and the mean paired difference against the reference over the seeds
on which both reached it, with its 95 % t-interval (`bsi_keras.stats`). A run that never
reaches the target is shown as ``never`` and counted, not left out silently.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bsi_keras import markdown, stats
from bsi_keras.run_folder import read_log

# Metric -> digits shown.
TARGET_DIGITS = {"updates": 0, "examples": 0, "train s": 1}


@dataclass(frozen=True)
class TimeToTarget:
    """What a run spent to first reach a target test accuracy, counted to an epoch's end.

    Attributes:
        epoch: the first epoch (from 1) whose test accuracy reached the target.
        updates: parameter updates up to the end of that epoch.
        examples: training examples processed up to the end of that epoch.
        train_seconds: training seconds of those epochs, compilation left out.
    """

    epoch: int
    updates: int
    examples: int
    train_seconds: float

    def metrics(self) -> dict[str, float]:
        """The numbers `target_table` aggregates, by its column names."""
        return {
            "updates": float(self.updates),
            "examples": float(self.examples),
            "train s": self.train_seconds,
        }


def time_to_target(folder: str | os.PathLike, target_percent: float) -> TimeToTarget | None:
    """The first epoch of the run in ``folder`` that reached ``target_percent`` test accuracy.

    An epoch's examples are its updates times its batch size, at most the training set (the
    last batch of an epoch may be short).

    Args:
        folder: a run folder (``config.json`` and ``log.csv``).
        target_percent: the target test accuracy, in percent.

    Returns:
        What the run spent to reach the target; None when no epoch reached it.

    Example:

    >>> time_to_target("results/noise_scale_adaptive/doubling/seed_0", 80.0)  # doctest: +SKIP
    TimeToTarget(epoch=1, updates=600, examples=60000, train_seconds=3.1)
    """
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    train_examples = int(config["dataset"]["train_examples"])
    examples, seconds = 0, 0.0
    for row in read_log(folder / "log.csv"):
        examples += min(int(row["epoch_updates"]) * int(row["batch_size"]), train_examples)
        seconds += float(row["epoch_seconds"])
        if 100 * float(row["val_accuracy"]) >= target_percent:
            return TimeToTarget(int(row["epoch"]), int(row["updates"]), examples, seconds)
    return None


def target_rows(
    found: Mapping[str, Mapping[int, Path]], target_percent: float, reference: str = "decay_lr"
) -> list[dict[str, object]]:
    """One row per configuration: each seed's `time_to_target`, means and paired differences.

    Args:
        found: runs by configuration and seed (`bsi_keras.cli.report.configurations`).
        target_percent: the target test accuracy, in percent.
        reference: the configuration name (last path part) that siblings are paired with.

    Returns:
        Dicts with ``configuration``, ``times`` (seed -> `TimeToTarget` or None), ``stats``
        (metric -> (mean, std) over the runs that reached the target; empty when none did)
        and ``differences`` (metric -> `bsi_keras.stats.PairedDifference` over the seeds on
        which both it and its reference sibling reached the target; empty when there is no
        such sibling or seed).
    """
    times = {
        key: {seed: time_to_target(folder, target_percent) for seed, folder in sorted(runs.items())}
        for key, runs in found.items()
    }
    rows: list[dict[str, object]] = []
    for key, by_seed in times.items():
        parent, _, name = key.rpartition("/")
        ref = times.get(f"{parent}/{reference}" if parent else reference, {})
        reached = {seed: t.metrics() for seed, t in by_seed.items() if t is not None}
        ref_reached = {seed: t.metrics() for seed, t in ref.items() if t is not None}
        paired = sorted(set(reached) & set(ref_reached)) if name != reference else []
        rows.append(
            {
                "configuration": key,
                "times": by_seed,
                "stats": {
                    m: stats.mean_std([v[m] for v in reached.values()])
                    for m in TARGET_DIGITS
                    if reached
                },
                "differences": {
                    m: stats.paired_difference(
                        [reached[s][m] for s in paired], [ref_reached[s][m] for s in paired]
                    )
                    for m in TARGET_DIGITS
                    if paired
                },
            }
        )
    return rows


def target_table(
    found: Mapping[str, Mapping[int, Path]],
    target_percent: float,
    reference: str = "decay_lr",
    fmt: str = "markdown",
) -> str:
    """The report of the time to a target accuracy: per-seed epochs, means, paired differences.

    Args:
        found: runs by configuration and seed (`bsi_keras.cli.report.configurations`).
        target_percent: the target test accuracy, in percent.
        reference: the configuration name the paired differences are taken against.
        fmt: ``"markdown"`` (two tables) or ``"csv"`` (one row per configuration and metric).

    Returns:
        The tables as text.
    """
    rows = target_rows(found, target_percent, reference)
    if fmt == "csv":
        return _target_csv(rows)
    header = ["run", "seeds", "reached", "first epoch per seed", *TARGET_DIGITS]
    lines = [
        f"Time to {target_percent:g} % test accuracy (to the end of the first epoch that "
        "reached it: resolution one epoch; train s without compilation), mean +- sample "
        "standard deviation over the runs that reached it; never: a run that did not:",
        "",
        *markdown.head(header),
    ]
    for row in rows:
        times = row["times"]
        epochs = [str(t.epoch) if t else "never" for t in times.values()]
        reached = sum(t is not None for t in times.values())
        cells = [
            markdown.mean_std(mean, std, TARGET_DIGITS[m])
            for m, (mean, std) in row["stats"].items()
        ] or ["never reached"] * len(TARGET_DIGITS)
        seeds = " ".join(map(str, times))
        lines.append(
            markdown.row(
                [row["configuration"], seeds, f"{reached}/{len(times)}", " ".join(epochs), *cells]
            )
        )
    paired = [row for row in rows if row["differences"]]
    if paired:
        header = ["run", "paired seeds", *TARGET_DIGITS]
        lines += [
            "",
            f"Paired difference against {reference} over the seeds on which both reached "
            f"{target_percent:g} %, mean over seeds (95 % t-interval); unresolved: the "
            "interval contains zero:",
            "",
            *markdown.head(header),
        ]
        for row in paired:
            differences = row["differences"]
            n = next(iter(differences.values())).n
            cells = [d.format(TARGET_DIGITS[m]) for m, d in differences.items()]
            lines.append(markdown.row([f"{row['configuration']} - {reference}", str(n), *cells]))
    return "\n".join(lines) + "\n"


def _target_csv(rows: Sequence[Mapping[str, object]]) -> str:
    columns = ("run", "seeds", "reached", "metric", "mean", "std", "diff", "diff_low")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*columns, "diff_high", "resolved"])
    for row in rows:
        times = row["times"]
        seeds = " ".join(map(str, times))
        reached = " ".join(map(str, (s for s, t in times.items() if t is not None)))
        for metric in TARGET_DIGITS:
            mean, std = row["stats"].get(metric, ("", ""))
            d = row["differences"].get(metric)
            paired = [d.mean, d.low, d.high, d.resolved] if d else ["", "", "", ""]
            writer.writerow([row["configuration"], seeds, reached, metric, mean, std, *paired])
    return buffer.getvalue()
