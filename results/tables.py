"""The README's result tables, generated from the run folders under ``results/``.

Each table sits in README.md between ``<!-- results-table: NAME -->`` and
``<!-- /results-table -->``; NAME is an entry of `TABLES`: the run folders it reads (under
``results/``), the reference schedule of its paired differences and the epochs its last-k
mean averages. The table is `bsi_keras.cli.report.seed_tables` of those folders, the text
``python -m bsi_keras.report FOLDERS --reference R --last_k K`` prints (with
``--train_accuracy`` for the tables of `WITH_TRAIN_ACCURACY`). An entry of `VARIANTS`
is the same runs made two ways and paired across them, one of `TARGETS` the time to a target
accuracy (``--target_accuracy``), one of `EPOCH_TABLES` log columns per epoch over seeds
(`epoch_table`), one of `FILES` a table a command wrote, one of `BESIDE_ORIGINAL` seed 002's
runs beside the original's. Rewrite the README's tables rather than typing numbers;
``tests/test_results.py`` fails when they differ.

    python results/tables.py            # rewrite README.md's tables
    python results/tables.py --check    # exit 1 when one differs from its logs
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from bsi_keras import markdown, stats
from bsi_keras.cli import recipes, report
from bsi_keras.cli.target_accuracy import target_table
from bsi_keras.run_folder import read_log

RESULTS = Path(__file__).parent
README = RESULTS.parent / "README.md"
# Name -> (folders under results/, reference schedule, last k epochs). The Fashion-MNIST
# runs end with a phase of 2 epochs: the last-2 mean is the mean over the final phase.
TABLES: dict[str, tuple[tuple[str, ...], str, int]] = {
    f"fashion_mnist_{optimizer}": ((f"fashion_mnist/{optimizer}",), "decay_lr", 2)
    for optimizer in ("momentum", "sgd", "adam")
}
# Seesaw against Smith et al.'s increase_bs and decay_lr, same milestones and factor 5:
# results/seesaw_<optimizer>/<schedule>/seed_<k>/.
TABLES.update(
    {
        f"seesaw_{optimizer}": ((f"seesaw_{optimizer}",), "decay_lr", 2)
        for optimizer in ("adam", "momentum")
    }
)
# Seed 002's nine experiments as they ran (`python -m bsi_keras.sweep keras_reproduction`),
# results/mnist_form_a/seed_<k>/keras_reproduction/<optimizer>/<schedule>/: each schedule
# against its optimizer's decay_lr; the runs end with a phase of 2 epochs.
TABLES["mnist_form_a"] = (("mnist_form_a",), "decay_lr", 2)
# Its SGD decay_lr and increase_bs again with bsi_keras's mnist_cnn (batch-norm momentum 0.9).
TABLES["mnist_form_a_bn09"] = (("mnist_form_a_bn09",), "decay_lr", 2)
# The noise-scale study (notebooks/noise_scale_study.py): results/noise_scale_adaptive/
# <schedule>/seed_<k>/, 6 epochs whose last 2 are the final phase of the hand-made schedules.
# Paired against decay_lr and against the doubling control.
TABLES["noise_scale_adaptive"] = (("noise_scale_adaptive",), "decay_lr", 2)
TABLES["noise_scale_adaptive_vs_doubling"] = (("noise_scale_adaptive",), "doubling", 2)
# Name -> (folders under results/, reference schedule, target test accuracy in %): the time
# to the target (`bsi_keras.cli.target_accuracy`). The study's target, 88.0 %, was chosen
# before its runs: decay_lr's 5-seed mean final accuracy of the README's Fashion-MNIST momentum
# comparison (88.50 %) minus 0.5 point.
TARGETS: dict[str, tuple[tuple[str, ...], str, float]] = {
    "noise_scale_adaptive_target": (("noise_scale_adaptive",), "decay_lr", 88.0),
    "noise_scale_adaptive_target_vs_doubling": (("noise_scale_adaptive",), "doubling", 88.0),
}
# Name -> (folders under results/, log.csv columns, digits): each column per epoch, the mean
# +- std over seeds (`epoch_table`).
EPOCH_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...], int]] = {
    "noise_scale_adaptive_epochs": (
        ("noise_scale_adaptive",),
        ("batch_size", "gns_b_simple", "gns_b_simple_raw"),
        0,
    ),
    "noise_scale_mnist": (("noise_scale_mnist",), ("gns_b_simple", "gns_b_simple_raw"), 0),
}
# Name -> (variant -> folder under results/, reference variant, last k epochs): the same
# schedules and seeds run two ways, each schedule's runs paired seed by seed across the
# variants (the table's configurations are ``<schedule>/<variant>``).
VARIANTS: dict[str, tuple[dict[str, str], str, int]] = {
    # Micro-batches of 300 (batch 500 = 300 + 200 real and 100 padding) against whole batches.
    "fashion_mnist_padded_momentum": (
        {"padded": "fashion_mnist_padded/momentum", "whole": "fashion_mnist/momentum"},
        "whole",
        2,
    ),
}
# The SAM study's test runs (notebooks/sam_study.py), results/sam_study/seeds/seed_<k>/<method>/:
# against SGD at batch 2,048, and each method's gap to the small batch 128; its stability
# check (the batch-2,048 methods at half their chosen LR) in seeds_half_lr/.
TABLES.update(
    {
        "sam_study": (("sam_study/seeds",), "sgd_b2048", 2),
        "sam_study_gap": (("sam_study/seeds",), "sgd_b128", 2),
        "sam_study_half_lr": (("sam_study/seeds_half_lr",), "sgd_b2048", 2),
    }
)
# The tables that add the final training accuracy (``--train_accuracy``).
WITH_TRAIN_ACCURACY = {"sam_study", "sam_study_gap", "sam_study_half_lr"}
# Name -> a Markdown table a command wrote under results/, included as it is.
FILES: dict[str, str] = {
    "critical_batch_adam": "critical_batch_adam/critical_batch/critical_batch.md",
    # Written by notebooks/sharp_minima_study.py from the measurements in
    # results/sharp_minima/analysis/ and the runs' summary.json.
    "sharp_minima": "sharp_minima/sharp_minima.md",
}
# Name -> (folder under results/ of a keras_reproduction sweep, the JSON of seed 002's own
# numbers beside which its table puts them).
BESIDE_ORIGINAL: dict[str, tuple[str, str]] = {
    "mnist_form_a_original": ("mnist_form_a", "mnist_form_a/original.json"),
}
BLOCK = re.compile(r"(<!-- results-table: (\w+) -->\n)(.*?)(<!-- /results-table -->)", re.S)


def table(name: str, results: Path = RESULTS) -> str:
    """The Markdown of table ``name`` from the run folders under ``results``.

    Example:

    >>> print(table("fashion_mnist_momentum").splitlines()[0])  # doctest: +SKIP
    Mean +- sample standard deviation over seeds:
    """
    if name in FILES:
        return (results / FILES[name]).read_text().strip()
    if name in TARGETS:
        folders, reference, target = TARGETS[name]
        found = report.configurations([results / folder for folder in folders])
        return target_table(found, target, reference).strip()
    if name in EPOCH_TABLES:
        folders, columns, digits = EPOCH_TABLES[name]
        found = report.configurations([results / folder for folder in folders])
        return epoch_table(found, columns, digits)
    if name in BESIDE_ORIGINAL:
        folder, original = BESIDE_ORIGINAL[name]
        return beside_original(results / folder, results / original)
    if name in VARIANTS:
        variants, reference, last_k = VARIANTS[name]
        return report.seed_tables(_by_variant(variants, results), reference, last_k)
    folders, reference, last_k = TABLES[name]
    found = report.configurations([results / folder for folder in folders])
    return report.seed_tables(found, reference, last_k, train_accuracy=name in WITH_TRAIN_ACCURACY)


def epoch_table(found: report.Configurations, columns: Sequence[str], digits: int = 0) -> str:
    """``log.csv`` columns per epoch: the mean +- sample std over each configuration's seeds.

    Args:
        found: runs by configuration and seed (`bsi_keras.cli.report.configurations`).
        columns: the ``log.csv`` columns, one row each per configuration.
        digits: digits after the point.

    Returns:
        A Markdown table, a row per configuration and column, a column per epoch (the epochs
        every seed finished; a blank cell where a seed logged no value).

    Example:

    >>> print(epoch_table({}, ["batch_size"]).splitlines()[0])
    Mean +- sample standard deviation over seeds, per epoch:
    """
    logs = {key: [read_log(f / "log.csv") for f in runs.values()] for key, runs in found.items()}
    epochs = min((len(log) for seeds in logs.values() for log in seeds), default=0)
    header = ["run", "seeds", "log.csv column", *(f"epoch {e}" for e in range(1, epochs + 1))]
    lines = [
        "Mean +- sample standard deviation over seeds, per epoch:",
        "",
        *markdown.head(header),
    ]
    for key, seeds in logs.items():
        for column in columns:
            cells = []
            for epoch in range(epochs):
                values = [float(log[epoch][column]) for log in seeds if log[epoch].get(column)]
                if len(values) < len(seeds):  # a seed measured nothing in this epoch
                    cells.append("")
                    continue
                mean, std = stats.mean_std(values)
                cells.append(markdown.mean_std(mean, std, digits))
            lines.append(markdown.row([key, " ".join(map(str, found[key])), column, *cells]))
    return "\n".join(lines)


def beside_original(folder: Path, original: Path) -> str:
    """Each keras_reproduction run's final test accuracy over seeds beside seed 002's own.

    Args:
        folder: the sweep's root (``folder/seed_<k>/keras_reproduction/<run>/``).
        original: the JSON of the original's runs: per run, a label and the final accuracy
            of each experiment it holds (``sgd/decay_lr``, ...), the diverged ones named in
            ``diverged``, figures read off marked ``approximate``.
    """
    found = report.configurations([folder])
    by_run = {key.split("/", 2)[2]: runs for key, runs in found.items()}
    sources = json.loads(original.read_text())["runs"].values()
    stored = [s for s in sources if not s.get("approximate")]
    header = ["exp", "run", "batch @ LR, epochs 1-2 / 3-4 / 5-6", "this repo: mean +- std (%)"]
    header += [s["label"] + (" (read off, %)" if s.get("approximate") else " (%)") for s in sources]
    header.append(f"spread of {', '.join(s['label'].split(' (')[0] for s in stored)} (points)")
    lines = markdown.head(header)
    for index, (name, _, _) in enumerate(recipes.KERAS_REPRODUCTION_RUNS, start=1):
        runs = by_run.get(name, {})
        cells = [str(index), name, "", "not run"]
        if runs:
            config = json.loads((next(iter(runs.values())) / "config.json").read_text())
            phases = config["schedule"]["phases"]
            cells[2] = " / ".join(f"{p['batch_size']} @ {p['lr']:g}" for p in phases)
            accuracy = [report.run_metrics(f, 1)["test accuracy (%)"] for f in runs.values()]
            mean, std = stats.mean_std(accuracy)
            cells[3] = f"{mean:.2f} +- {std:.2f} ({len(accuracy)} seeds)"
        for source in sources:
            value = source["final_val_accuracy"].get(name)
            digits = 1 if source.get("approximate") else 2
            text = "" if value is None else f"{100 * value:.{digits}f}"
            cells.append(f"{text} (diverged)" if name in source.get("diverged", ()) else text)
        both = [
            s["final_val_accuracy"].get(name) for s in stored if name not in s.get("diverged", ())
        ]
        both = [value for value in both if value is not None]
        cells.append(f"{100 * (max(both) - min(both)):.2f}" if len(both) == len(stored) else "")
        lines.append(markdown.row(cells))
    return "\n".join(lines) + "\n"


def _by_variant(variants: dict[str, str], results: Path) -> report.Configurations:
    """The runs of every variant's folder as ``<schedule>/<variant>`` configurations."""
    found: report.Configurations = {}
    for variant, folder in variants.items():
        for key, runs in report.configurations([results / folder]).items():
            found[f"{key.rpartition('/')[2]}/{variant}"] = runs
    return found


def regenerate(text: str, results: Path = RESULTS) -> str:
    """``text`` with every marked table replaced by the one its logs give.

    Raises:
        KeyError: a marker names no entry of `TABLES`, `VARIANTS` or `FILES`.
    """
    return BLOCK.sub(lambda m: f"{m[1]}\n{table(m[2], results)}\n{m[4]}", text)


def marked_tables(text: str) -> dict[str, str]:
    """The tables marked in ``text`` by name, as written there."""
    return {m[2]: m[3] for m in BLOCK.finditer(text)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a change")
    args = parser.parse_args(argv)
    text = README.read_text()
    new = regenerate(text)
    if args.check:
        stale = [n for n, t in marked_tables(text).items() if t != marked_tables(new)[n]]
        print("stale: " + ", ".join(stale) if stale else "README tables agree with results/")
        return 1 if stale else 0
    README.write_text(new)
    print(f"rewrote {len(marked_tables(new))} tables in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
