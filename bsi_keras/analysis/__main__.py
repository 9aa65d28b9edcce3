"""``python -m bsi_keras.analysis``: the loss landscape around a saved solution.

A run folder trained with ``--saveState`` and an epoch give the solution; the landscape
(`bsi_keras.analysis.landscape`) goes to an ``.npz`` file and, with ``--plot``, a figure::

    python -m bsi_keras.analysis RUN --epoch 20 --x=-1:1:51 --y=-1:1:51 \\
        --num_train 2000 --out RUN/landscape_2d.npz --plot RUN/landscape_2d.png

The command line lives here rather than in `landscape`, which the package imports itself:
running that module with ``-m`` would execute it twice (runpy warns), and the landscape
arithmetic stays free of the figures that draw it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bsi_keras.analysis import figures
from bsi_keras.analysis.landscape import (
    NORMS,
    loss_landscape,
    parse_range,
    random_direction,
    target_direction,
)
from bsi_keras.analysis.solution import load_solution, model_settings
from bsi_keras.data import load_dataset
from bsi_keras.run_folder import RunFolder


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    p = argparse.ArgumentParser(
        prog="python -m bsi_keras.analysis",
        description="Loss landscape around a saved solution (a run folder and an epoch).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("run", help="run folder trained with --saveState")
    p.add_argument("--epoch", type=int, required=True, help="epoch of the solution")
    p.add_argument(
        "--target",
        default=None,
        help="run folder of a second solution: the x "
        "direction becomes target - solution, un-normalized",
    )
    p.add_argument("--target_epoch", type=int, default=None, help="its epoch (default --epoch)")
    p.add_argument("--x", default="-1:1:51", help="x grid MIN:MAX:NUM")
    p.add_argument("--y", default=None, help="y grid MIN:MAX:NUM (a 2-D landscape)")
    p.add_argument("--norm", default="filter", choices=NORMS, help="direction normalization")
    p.add_argument("--num_train", type=int, default=None, help="first N training examples")
    p.add_argument("--batch_size", type=int, default=5000, help="evaluation batch size")
    p.add_argument("--seed", type=int, default=123, help="seed of the random directions")
    p.add_argument(
        "--batch_stats_in_inference",
        action="store_true",
        help="rebuild the model with the reference's BN mode=2",
    )
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--plot", default=None, help="also draw the landscape into this PNG")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = build_parser().parse_args(argv)
    options = {"batch_stats_in_inference": True} if args.batch_stats_in_inference else {}
    model = load_solution(args.run, args.epoch, **options)
    if args.target:
        target = load_solution(args.target, args.target_epoch or args.epoch, **options)
        x_direction = target_direction(model, target)
    else:
        x_direction = random_direction(model, args.seed, args.norm)
    y_direction = random_direction(model, args.seed + 1, args.norm) if args.y else None
    config = RunFolder(args.run).read_config()
    run_args = model_settings(config)
    dataset = load_dataset(
        config["dataset"]["name"], run_args.get("data_dir"), num_train=args.num_train
    )
    result = loss_landscape(
        model,
        dataset.x_train,
        dataset.y_train,
        x_direction,
        y_direction,
        parse_range(args.x),
        parse_range(args.y) if args.y else None,
        batch_size=args.batch_size,
    )
    print(f"{result.loss.size} points in {result.seconds:.1f} s -> {result.save(args.out)}")
    if args.plot:
        draw = figures.plot_contour if args.y else figures.plot_landscape_1d
        print(f"figure: {draw({Path(args.run).name: result}, args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
