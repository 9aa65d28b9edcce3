"""The payoff: Smith et al.'s three schedules, total wall-clock of increase_bs and hybrid
over decay_lr.

decay_lr, hybrid and increase_bs from batch 128 with factor 5, shortened from 200 epochs
(milestones 60/120/160) to 20 (milestones 6/12/16), on CIFAR-shaped synthetic data with
the CIFAR augmentation (``load_dataset("synthetic_cifar", num_examples=...)``). Each run
is what the command line does for the CIFAR family (`bsi_keras.cli.FAMILY_DEFAULTS`):
WRN-16-4 with ghost BN (virtual batch 128), weight decay 5e-4, SGD with momentum 0.9 and
gradient clipping at 5, LR 0.1, micro-batches of at most 1024, the batch capped at the
training set size, per-epoch evaluation and checkpoint, through `bsi_keras.experiment.train`.
A round runs the three schedules in turn (the order reversed every other round), after a
short warm-up run. The goal on a GPU is increase_bs at most 0.5x decay_lr's wall-clock.

    KERAS_BACKEND=jax python bench/payoff.py [--num_train 50000] [--rounds 1]
    python bench/payoff.py --num_train 256 --num_test 64 --epochs 4 --milestones 1 2 3 \\
        --model wrn_10_1 --batch_size 16                          # a quick CPU check
    KERAS_BACKEND=jax python bench/payoff.py --dataset mnist_sample --rounds 3   # the CPU mode

``--dataset mnist_sample`` is the MNIST family's run instead (the MNIST CNN with ghost
batches of 10, batch 100 growing x5 at epochs 2 and 4 of 6, LR 0.05) on 3,900 of the
bundled images, with micro-batches of ``--max_physical_batch`` (default 100 there), so that
the CPU can measure what growing the batch costs in compilation.

Writes ``bench/results/payoff.json`` (``payoff_<precision>.json`` with mixed precision,
``payoff_mnist_sample.json`` in the CPU mode).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common
import keras

from bsi_keras import cli, data, experiment, models, optimizers, schedules
from bsi_keras.train_step import StepOptions

SCHEDULES = ("decay_lr", "hybrid", "increase_bs")
# The run each mode times: the command line's defaults of the dataset's family, and the
# micro-batch that the CPU mode measures accumulation with.
FAMILIES = {
    "synthetic_cifar": cli.FAMILY_DEFAULTS["cifar"],
    "mnist_sample": {**cli.FAMILY_DEFAULTS["mnist"], "max_physical_batch": 100},
}
MODE_DEFAULTS = {
    "synthetic_cifar": {
        "num_train": 50_000,
        "num_test": 1_000,
        "epochs": 20,
        "milestones": [6, 12, 16],
    },
    "mnist_sample": {"num_train": 3_900, "num_test": 1_000, "epochs": 6, "milestones": [2, 4]},
}


def build_schedule(name: str, args: argparse.Namespace) -> schedules.Schedule:
    """Smith et al.'s schedule ``name``, as the command line builds it for the family."""
    stepped = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.family["lr"],
        "milestones": args.milestones,
        "factor": 5,
    }
    if name == "decay_lr":
        return schedules.decay_lr(**stepped)
    builder = schedules.hybrid if name == "hybrid" else schedules.increase_bs
    return builder(**stepped, max_batch_size=args.num_train)


def train_once(
    schedule: schedules.Schedule, dataset: data.Dataset, args: argparse.Namespace, folder: Path
) -> dict[str, Any]:
    """One run into ``folder``: wall seconds and its summary (train and compile seconds)."""
    keras.utils.set_random_seed(0)
    family = args.family
    model = models.get_model(
        args.model,
        input_shape=dataset.input_shape,
        num_classes=dataset.num_classes,
        virtual_batch_size=family["mini_batch_size"],
        weight_decay=family["weight_decay"],
        bn_statistics=family["bn_statistics"],
    )
    optimizer = optimizers.get_optimizer(
        "momentum", schedule.at(0).lr, clip_norm=family["clip_norm"]
    )
    start = time.perf_counter()
    _, summary = experiment.train(
        model,
        dataset,
        schedule,
        optimizer,
        folder,
        verbose=0,
        step_options=StepOptions(max_physical_batch=args.max_physical_batch),
        drop_remainder=args.drop_remainder,
    )
    return {"wall_seconds": time.perf_counter() - start, **summary}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Wall-clock of every schedule in every round, and the ratios over decay_lr."""
    dataset = _dataset(args, args.num_train)
    built = {name: build_schedule(name, args) for name in SCHEDULES}
    runs: dict[str, list[dict]] = {name: [] for name in SCHEDULES}
    with tempfile.TemporaryDirectory() as scratch:
        warm_up = schedules.constant(1, args.batch_size, args.family["lr"])
        train_once(warm_up, _dataset(args, args.batch_size), args, Path(scratch) / "warm_up")
        for index in range(args.rounds):
            for name in SCHEDULES[:: -1 if index % 2 else 1]:
                runs[name].append(
                    train_once(built[name], dataset, args, Path(scratch) / f"{name}_{index}")
                )
    wall = {name: [run["wall_seconds"] for run in rows] for name, rows in runs.items()}
    return {
        "schedules": {
            name: {
                "phases": [[p.epochs, p.batch_size, p.lr] for p in built[name].phases],
                "total_updates": runs[name][0]["total_updates"],
                "wall_seconds": common.spread(wall[name]),
                "train_seconds": common.spread([r["train_seconds"] for r in runs[name]]),
                "compile_seconds": common.spread([r["compile_seconds"] for r in runs[name]]),
                "train_traces": runs[name][0]["train_traces"],
            }
            for name in SCHEDULES
        },
        "increase_bs_over_decay_lr": common.paired_ratios(wall["increase_bs"], wall["decay_lr"]),
        "hybrid_over_decay_lr": common.paired_ratios(wall["hybrid"], wall["decay_lr"]),
        "compile_increase_bs_over_decay_lr": common.paired_ratios(
            [r["compile_seconds"] for r in runs["increase_bs"]],
            [r["compile_seconds"] for r in runs["decay_lr"]],
        ),
    }


def _dataset(args: argparse.Namespace, examples: int) -> data.Dataset:
    if args.dataset == "mnist_sample":
        return data.load_dataset("mnist_sample", num_train=examples, num_test=args.num_test)
    # The generated test set is a fifth of the training set at most.
    return data.load_dataset(
        "synthetic_cifar", num_examples=examples, num_test=max(1, min(args.num_test, examples // 5))
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=tuple(FAMILIES), default="synthetic_cifar")
    parser.add_argument("--num_train", type=int, default=None)
    parser.add_argument("--num_test", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--milestones", type=int, nargs="+", default=None)
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--max_physical_batch", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--drop_remainder", action="store_true", help="drop each epoch's last partial batch"
    )
    parser.add_argument(
        "--mixed_precision", choices=("float32", "bfloat16", "float16"), default="float32"
    )
    args = parser.parse_args(argv)
    args.family = FAMILIES[args.dataset]
    for name, value in {**args.family, **MODE_DEFAULTS[args.dataset]}.items():
        if getattr(args, name, "absent") is None:
            setattr(args, name, value)
    if args.mixed_precision != "float32":
        keras.mixed_precision.set_global_policy(f"mixed_{args.mixed_precision}")
    result = measure(args)
    for name, row in result["schedules"].items():
        print(
            f"{name:12} {row['total_updates']:6} updates, "
            f"wall {common.fmt(row['wall_seconds'], 1)} s "
            f"(training {row['train_seconds']['median']:.1f} s, compile "
            f"{row['compile_seconds']['median']:.1f} s, {row['train_traces']} traces)"
        )
    print(
        "wall-clock over decay_lr: increase_bs "
        f"{common.fmt(result['increase_bs_over_decay_lr'])}x, "
        f"hybrid {common.fmt(result['hybrid_over_decay_lr'])}x; compile seconds: increase_bs "
        f"{common.fmt(result['compile_increase_bs_over_decay_lr'])}x decay_lr's"
    )
    suffix = "" if args.dataset == "synthetic_cifar" else f"_{args.dataset}"
    suffix += "" if args.mixed_precision == "float32" else f"_{args.mixed_precision}"
    suffix += "_drop_remainder" if args.drop_remainder else ""
    path = common.write_result(
        f"payoff{suffix}",
        {
            "backend": keras.backend.backend(),
            "dataset": args.dataset,
            "max_physical_batch": args.max_physical_batch,
            "train_examples": args.num_train,
            "model": args.model,
            "precision": args.mixed_precision,
            "drop_remainder": args.drop_remainder,
            "epochs": args.epochs,
            "milestones": args.milestones,
            "rounds": args.rounds,
            **result,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
