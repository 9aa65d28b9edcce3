"""bsi_keras against PyTorch eager: images per second of the MNIST CNN with ghost BN.

One epoch of the 60,000 Fashion-MNIST training images at each batch size, three
contenders on the same data in memory, the same model (ghost BN with virtual batch 10,
Conv2D 8 3x3, max-pool 2, dense 10) and the same optimizer (SGD, momentum 0.9 in
PyTorch's convention, `bsi_keras.optimizers.SGD`), no metric but the loss:

- ``bsi_keras``: `bsi_keras.fit` with a constant schedule (TensorFlow backend);
- ``keras_fit``: plain ``model.fit``, one epoch per call, Keras's own shuffling;
- ``torch``: an eager PyTorch loop (`torch_models.train_epoch`), channels-last (PyTorch's
  faster layout here: the NHWC array is used in place), once per thread count in
  ``--torch_threads``: PyTorch's OpenMP threads wait for each other at every operation,
  so on a shared machine one thread can beat two. Each round's PyTorch time is its best
  thread count's.

The bsi_keras run's epochs are the rounds: after each of its epochs, the others run one
epoch each (`common.EpochClock`). The first round traces and compiles, and is dropped. The
printed ratio is bsi_keras's images per second over PyTorch's, per round: median (min to max).

    pip install -e ".[bench]"     # PyTorch, CPU build
    python bench/torch_throughput.py [--batch_sizes 100 2500] [--rounds 5]

Writes ``bench/results/torch_throughput@<machine kind>.json`` (one file per kind of CPU).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common
import keras
import numpy as np
import torch
import torch_models

import bsi_keras
from bsi_keras import schedules
from bsi_keras.optimizers import SGD

LR = 0.01
MOMENTUM = 0.9


def keras_model() -> keras.Model:
    """The compiled MNIST CNN (loss only, as the PyTorch loop)."""
    keras.utils.set_random_seed(0)
    model = bsi_keras.get_model("mnist_cnn")
    model.compile(optimizer=SGD(LR, momentum=MOMENTUM), loss="sparse_categorical_crossentropy")
    return model


def torch_contender(x: np.ndarray, y: np.ndarray, batch_size: int, threads: int) -> Any:
    """A function running one PyTorch epoch of the MNIST CNN on ``x`` (NHWC), ``y``."""
    torch.manual_seed(0)
    model = torch_models.mnist_cnn().to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    images = torch.from_numpy(x).permute(0, 3, 1, 2)  # NCHW shape, channels-last memory
    labels = torch.from_numpy(y.astype(np.int64))

    def epoch() -> None:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            torch_models.train_epoch(model, optimizer, images, labels, batch_size)
        finally:
            torch.set_num_threads(previous)

    return epoch


def measure(
    x: np.ndarray, y: np.ndarray, batch_size: int, rounds: int, torch_threads: Sequence[int]
) -> dict[str, Any]:
    """Epoch times of the contenders at ``batch_size``, and the ratios."""
    plain = keras_model()
    torch_names = [f"torch_{n}_threads" for n in torch_threads]
    clock = common.EpochClock(
        {
            "keras_fit": lambda: plain.fit(x, y, batch_size=batch_size, verbose=0),
            **{
                name: torch_contender(x, y, batch_size, n)
                for name, n in zip(torch_names, torch_threads)
            },
        }
    )
    model = keras_model()
    start = time.perf_counter()
    history = bsi_keras.fit(
        model,
        x,
        y,
        schedule=schedules.constant(rounds + 1, batch_size, LR),
        callbacks=[clock],
        verbose=0,
        seed=0,
    )
    keras.ops.convert_to_numpy(model.trainable_variables[0])  # the last update has landed
    wall = time.perf_counter() - start
    times = {
        "bsi_keras": clock.times["epoch"][1:],
        **{name: clock.times[name][1:] for name in ["keras_fit", *torch_names]},
    }
    times["torch"] = [min(t) for t in zip(*(times[name] for name in torch_names))]
    return {
        "batch_size": batch_size,
        "images": len(x),
        "epoch_seconds": {name: common.spread(t) for name, t in times.items()},
        "images_per_second": {
            name: common.spread([len(x) / s for s in t]) for name, t in times.items()
        },
        "timing_check": timing_check(clock, history, wall),
        "bsi_keras_over_torch": common.paired_ratios(times["torch"], times["bsi_keras"]),
        "keras_fit_over_torch": common.paired_ratios(times["torch"], times["keras_fit"]),
        "bsi_keras_over_keras_fit": common.paired_ratios(times["keras_fit"], times["bsi_keras"]),
    }


def timing_check(
    clock: common.EpochClock, history: keras.callbacks.History, wall: float
) -> dict[str, float]:
    """The callbacks' timing against a wall clock around the whole ``fit`` call.

    ``fit_wall_seconds`` runs from before ``fit`` to after its last update has been read
    back; ``clocked_seconds`` adds up every epoch and contender the clock timed. Their
    difference (``unclocked_seconds``) is the driver's setup and anything still running
    after the last epoch's end: were work left running at an epoch's end, it would show
    here. ``driver_over_clock`` is the driver's own ``epoch_seconds + compile_seconds``
    over the clock's epoch, per epoch (below 1: the driver's epoch excludes its per-epoch
    bookkeeping).
    """
    clocked = sum(sum(times) for times in clock.times.values())
    driver = [
        e + c
        for e, c in zip(
            history.history["epoch_seconds"], history.history["compile_seconds"], strict=True
        )
    ]
    return {
        "fit_wall_seconds": wall,
        "clocked_seconds": clocked,
        "unclocked_seconds": wall - clocked,
        "driver_over_clock": common.paired_ratios(driver, clock.times["epoch"]),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[100, 2500])
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per contender")
    parser.add_argument("--num_train", type=int, default=None, help="default: all 60,000")
    parser.add_argument(
        "--torch_threads",
        type=int,
        nargs="+",
        default=sorted({torch.get_num_threads(), 1}, reverse=True),
        help="PyTorch thread counts to try (default: PyTorch's own, and 1)",
    )
    args = parser.parse_args(argv)
    data = bsi_keras.load_dataset("fashion_mnist", num_train=args.num_train, num_test=1)
    rows = []
    for batch_size in args.batch_sizes:
        row = measure(data.x_train, data.y_train, batch_size, args.rounds, args.torch_threads)
        rows.append(row)
        ips = row["images_per_second"]
        print(
            f"batch {batch_size:5}: images/s bsi_keras {common.fmt(ips['bsi_keras'], 0)}, "
            f"keras_fit {common.fmt(ips['keras_fit'], 0)}, torch (best threads) "
            f"{common.fmt(ips['torch'], 0)}"
            f"\n  bsi_keras / torch = {common.fmt(row['bsi_keras_over_torch'])}x, "
            f"keras_fit / torch = {common.fmt(row['keras_fit_over_torch'])}x, "
            f"bsi_keras / keras_fit = {common.fmt(row['bsi_keras_over_keras_fit'])}x"
            f"\n  timing check: fit {row['timing_check']['fit_wall_seconds']:.1f} s wall, "
            f"{row['timing_check']['unclocked_seconds']:.2f} s outside the clocked epochs; "
            f"driver epoch / clock = {common.fmt(row['timing_check']['driver_over_clock'])}",
            flush=True,
        )
    path = common.write_result(
        "torch_throughput",
        {
            "backend": keras.backend.backend(),
            "dataset": "fashion_mnist",
            "model": "mnist_cnn",
            "rounds": args.rounds,
            "torch_threads": args.torch_threads,
            "rows": rows,
        },
        per_machine=True,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
