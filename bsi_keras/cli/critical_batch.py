"""Command line: ``python -m bsi_keras.critical_batch RUN --epochs ... --batch_sizes ...``.

Probes the critical batch size of a run trained with ``--saveState`` at its saved epochs
(`bsi_keras.analysis.critical_batch`) and writes ``critical_batch.json`` (the trajectory
that ``python -m bsi_keras.run --schedule cbs_warmup --cbs FILE`` reads), a Markdown table
``critical_batch.md`` and the figure ``critical_batch.png``::

    python -m bsi_keras.critical_batch runs/mnist --epochs 0 1 2 --batch_sizes 32 64 128 \\
        --examples 1024 --rule sqrt --tolerance 0.01 --out runs/mnist/critical_batch
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bsi_keras.analysis.critical_batch import RULES, ProbeError, critical_batch_sizes
from bsi_keras.run_folder import RunFolderError


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    p = argparse.ArgumentParser(
        prog="python -m bsi_keras.critical_batch",
        description="Critical batch size at a run's saved epochs, from short branches "
        "(Merrill et al. 2025, arXiv 2505.23971).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("run", help="run folder trained with --saveState")
    p.add_argument(
        "--epochs", type=int, nargs="+", required=True, help="snapshots (0: initial weights)"
    )
    p.add_argument("--batch_sizes", type=int, nargs="+", required=True, help="branch batches")
    p.add_argument(
        "--examples",
        type=int,
        required=True,
        help="training examples per branch (a multiple of every batch size)",
    )
    p.add_argument(
        "--rule", default="sqrt", choices=tuple(RULES), help="LR x (B / B_min)^0, ^1/2 or ^1"
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="critical: the largest B with loss <= (1 + tolerance) x the smallest B's",
    )
    p.add_argument(
        "--eval_examples",
        type=int,
        default=None,
        help="measure the loss on the first N training examples (default: all)",
    )
    p.add_argument("--seed", type=int, default=0, help="examples' order and branch seeds")
    p.add_argument("--out", default=None, help="output folder (default: RUN/critical_batch)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code (2: a refused flag)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = critical_batch_sizes(
            args.run,
            args.epochs,
            args.batch_sizes,
            args.examples,
            rule=args.rule,
            tolerance=args.tolerance,
            eval_examples=args.eval_examples,
            seed=args.seed,
        )
    except ProbeError as error:
        parser.error(f"argument --{error.param}: {error.message}")
    except RunFolderError as error:
        parser.error(f"argument run: {error}")
    print(result.table())
    paths = result.save(args.out or Path(args.run) / "critical_batch")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0
