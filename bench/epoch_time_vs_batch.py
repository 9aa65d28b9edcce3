"""Epoch time against batch size for the MNIST CNN: where larger batches stop paying off.

One `bsi_keras.fit` run over the 60,000 Fashion-MNIST training images whose schedule
cycles through the batch sizes, one epoch each (ascending, then descending, and so on);
the first cycle traces and compiles every batch shape and is dropped. An epoch's time is
its wall time with all the driver's per-epoch work (`common.EpochClock`). Larger batches
pay off while the epoch gets faster; the printed ``saturates at`` is the smallest batch
size whose epoch is within ``--tolerance`` (10 %) of the fastest.

    python bench/epoch_time_vs_batch.py [--batch_sizes 100 200 500 ...] [--rounds 3]

Writes ``bench/results/epoch_time_vs_batch.json``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common
import keras
import numpy as np

import bsi_keras
from bsi_keras.optimizers import SGD

LR = 0.01


def cycling(batch_sizes: Sequence[int]) -> Any:
    """``epoch -> (batch_size, lr)``: the batch sizes up, then down, then up again, ..."""
    count = len(batch_sizes)

    def at(epoch: int) -> tuple[int, float]:
        cycle, position = divmod(epoch, count)
        ordered = batch_sizes if cycle % 2 == 0 else batch_sizes[::-1]
        return ordered[position], LR

    return at


def measure(x: np.ndarray, y: np.ndarray, batch_sizes: Sequence[int], rounds: int) -> dict:
    """Epoch seconds per batch size (first cycle dropped), from one driver run."""
    keras.utils.set_random_seed(0)
    model = bsi_keras.get_model("mnist_cnn")
    model.compile(optimizer=SGD(LR, momentum=0.9), loss="sparse_categorical_crossentropy")
    clock = common.EpochClock()
    schedule = cycling(sorted(batch_sizes))
    epochs = len(batch_sizes) * (rounds + 1)
    history = bsi_keras.fit(
        model, x, y, schedule=schedule, epochs=epochs, callbacks=[clock], verbose=0, seed=0
    )
    seconds: dict[int, list[float]] = {b: [] for b in batch_sizes}
    logged: dict[int, list[float]] = {b: [] for b in batch_sizes}
    for epoch in range(len(batch_sizes), epochs):
        batch_size = history.history["batch_size"][epoch]
        seconds[batch_size].append(clock.times["epoch"][epoch])
        logged[batch_size].append(history.history["epoch_seconds"][epoch])
    return {
        b: {
            "epoch_seconds": common.spread(seconds[b]),
            "logged_epoch_seconds": common.spread(logged[b]),
            "images_per_second": common.spread([len(x) / s for s in seconds[b]]),
            "updates_per_epoch": -(-len(x) // b),
        }
        for b in sorted(batch_sizes)
    }


def saturation(rows: dict[int, dict], tolerance: float) -> int:
    """The smallest batch size whose median epoch is within ``tolerance`` of the fastest."""
    fastest = min(row["epoch_seconds"]["median"] for row in rows.values())
    return min(
        b for b, row in rows.items() if row["epoch_seconds"]["median"] <= fastest * (1 + tolerance)
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--batch_sizes", type=int, nargs="+", default=[100, 200, 500, 1000, 2500, 5000, 10000]
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs per batch size")
    parser.add_argument("--num_train", type=int, default=None, help="default: all 60,000")
    parser.add_argument("--tolerance", type=float, default=0.1)
    args = parser.parse_args(argv)
    data = bsi_keras.load_dataset("fashion_mnist", num_train=args.num_train, num_test=1)
    rows = measure(data.x_train, data.y_train, args.batch_sizes, args.rounds)
    smallest = rows[min(rows)]["epoch_seconds"]["median"]
    for batch_size, row in rows.items():
        print(
            f"batch {batch_size:6}: epoch {common.fmt(row['epoch_seconds'])} s, "
            f"{row['images_per_second']['median']:8.0f} images/s, "
            f"{smallest / row['epoch_seconds']['median']:5.2f}x the speed of batch {min(rows)}"
        )
    saturates = saturation(rows, args.tolerance)
    print(f"saturates at batch {saturates} (within {args.tolerance:.0%} of the fastest epoch)")
    path = common.write_result(
        "epoch_time_vs_batch",
        {
            "backend": keras.backend.backend(),
            "dataset": "fashion_mnist",
            "train_examples": len(data.x_train),
            "model": "mnist_cnn",
            "rounds": args.rounds,
            "tolerance": args.tolerance,
            "saturates_at": saturates,
            "rows": [{"batch_size": b, **row} for b, row in rows.items()],
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
