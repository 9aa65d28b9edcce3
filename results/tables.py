"""The README's result tables, generated from the run folders under ``results/``.

Each table sits in README.md between ``<!-- results-table: NAME -->`` and
``<!-- /results-table -->``; NAME is an entry of `TABLES`: the run folders it reads (under
``results/``), the reference schedule of its paired differences and the epochs its last-k
mean averages (or of `VARIANTS`, the same runs made two ways and paired across them, or of
`FILES`). The table is `bsi_keras.cli.report.seed_tables` of those folders, the text
``python -m bsi_keras.report FOLDERS --reference R --last_k K`` prints. Rewrite the README's
tables rather than typing numbers; ``tests/test_results.py`` fails when they differ.

    python results/tables.py            # rewrite README.md's tables
    python results/tables.py --check    # exit 1 when one differs from its logs
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from bsi_keras.cli import report

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
# Name -> a Markdown table a command wrote under results/, included as it is.
FILES: dict[str, str] = {
    "critical_batch_adam": "critical_batch_adam/critical_batch/critical_batch.md",
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
    if name in VARIANTS:
        variants, reference, last_k = VARIANTS[name]
        return report.seed_tables(_by_variant(variants, results), reference, last_k)
    folders, reference, last_k = TABLES[name]
    found = report.configurations([results / folder for folder in folders])
    return report.seed_tables(found, reference, last_k)


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
