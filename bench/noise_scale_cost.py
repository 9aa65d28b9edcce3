"""What measuring the gradient noise scale costs: epoch time with and without.

One epoch of 20,000 Fashion-MNIST images at batch 100 (the MNIST CNN, SGD with momentum,
small batch 20 for the measurement) through `bsi_keras.fit`, in turn: not measured,
measured every 10 updates, and every update (the adaptive schedule's default). Each
contender trains its own model; the first epoch of each (compilation) is not timed.

    python bench/noise_scale_cost.py [--rounds 5]

Writes ``bench/results/noise_scale_cost.json``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common
import keras

import bsi_keras
from bsi_keras import schedules
from bsi_keras.optimizers import SGD
from bsi_keras.train_step import StepOptions
from bsi_keras.train_step.core import NoiseScaleOptions

CONTENDERS = {"off": None, "every_10": 10, "every_1": 1}


def epoch_runner(every: int | None, x, y):
    """A function training one more epoch of a model of its own on each call."""
    keras.utils.set_random_seed(0)
    model = bsi_keras.get_model("mnist_cnn")
    model.compile(optimizer=SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy")
    options = StepOptions(noise_scale=NoiseScaleOptions(every, 20)) if every else None

    def one_epoch() -> None:
        bsi_keras.fit(
            model,
            x,
            y,
            schedule=schedules.constant(1, 100, 0.05),
            verbose=0,
            seed=0,
            step_options=options,
        )

    one_epoch()  # compile
    return one_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--num_train", type=int, default=20_000)
    args = parser.parse_args()
    data = bsi_keras.load_dataset("fashion_mnist", num_train=args.num_train)
    runners = {
        name: epoch_runner(every, data.x_train, data.y_train) for name, every in CONTENDERS.items()
    }
    times = common.interleave(runners, args.rounds)
    result = {
        "backend": keras.backend.backend(),
        "num_train": args.num_train,
        "batch_size": 100,
        "small_batch": 20,
        "seconds": {k: common.spread(v) for k, v in times.items()},
    }
    for name in ("every_10", "every_1"):
        overhead = common.paired_ratios(times[name], times["off"])
        result[f"{name}_over_off"] = overhead
        print(
            f"{name}: {common.fmt(overhead, 3)} x the unmeasured epoch "
            f"(median {100 * (overhead['median'] - 1):.0f} % more)"
        )
    print(f"written to {common.write_result('noise_scale_cost', result)}")


if __name__ == "__main__":
    main()
