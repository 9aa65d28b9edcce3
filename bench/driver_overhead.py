"""The schedule driver's overhead: a three-phase schedule through `bsi_keras.fit` against
the same epochs as plain ``model.fit`` calls.

The schedule is increase_bs over 6 epochs, batch 100 -> 500 -> 2500 (milestones 2 and 4),
on the 60,000 Fashion-MNIST training images, the MNIST CNN, SGD with momentum 0.9, no
validation data. Contenders, with the same initial weights:

- ``driver``: `bsi_keras.fit` (an epoch per ``model.fit`` call, its own permutation,
  timing, bookkeeping);
- ``plain``: one ``model.fit`` per phase with that phase's batch size, ``initial_epoch``
  and Keras's own shuffling.

Each contender trains its six epochs twice on the same model: cold (every batch shape
traced and compiled) and warm (Keras keeps its traces across ``fit`` calls; the driver keeps
its multi-step train function within a run only, so its warm run traces that one again).
Compile time = cold - warm (on a shared machine this difference drowns in noise; the
driver's own estimate, from its log, is reported too). The overhead is driver / plain - 1
per round, cold (compile included) and warm; the goal is at most 3 % of wall time.
``--max_physical_batch P`` runs the driver's batches as micro-batches of ``P`` accumulated
into each update (`bsi_keras.train_step.accumulate`; one compiled shape), against the same
plain ``model.fit`` calls on whole batches.

    python bench/driver_overhead.py [--rounds 3] [--max_physical_batch 100]

Writes ``bench/results/driver_overhead.json`` (``driver_overhead_physical_batch.json``
with a physical batch).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common
import keras
import numpy as np

import bsi_keras
from bsi_keras import schedules
from bsi_keras.optimizers import SGD
from bsi_keras.train_step import StepOptions

SCHEDULE = schedules.increase_bs(6, 100, 0.01, milestones=[2, 4], factor=5)


def compiled_model() -> keras.Model:
    """The MNIST CNN with fixed initial weights, compiled as a run would be."""
    keras.utils.set_random_seed(0)
    model = bsi_keras.get_model("mnist_cnn")
    model.compile(
        optimizer=SGD(0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def through_driver(physical: int | None) -> Callable[..., float]:
    """Train the schedule with `bsi_keras.fit` (micro-batches of ``physical`` if set); the
    compile seconds it logged."""
    options = StepOptions(max_physical_batch=physical) if physical else None

    def train(model: keras.Model, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        history = bsi_keras.fit(
            model, x, y, schedule=SCHEDULE, verbose=0, seed=seed, step_options=options
        )
        return float(np.sum(history.history["compile_seconds"]))

    return train


def through_plain_fit(model: keras.Model, x: np.ndarray, y: np.ndarray, seed: int) -> None:
    """Train the schedule's epochs with one plain ``model.fit`` per phase."""
    epoch = 0
    for phase in SCHEDULE.phases:
        model.optimizer.learning_rate = phase.lr
        model.fit(
            x,
            y,
            batch_size=phase.batch_size,
            epochs=epoch + phase.epochs,
            initial_epoch=epoch,
            verbose=0,
        )
        epoch += phase.epochs


def cold_and_warm(train: Callable[..., Any], x: np.ndarray, y: np.ndarray, seed: int) -> dict:
    """Wall seconds of training a fresh model twice (cold, then warm) with ``train``."""
    model = compiled_model()
    seconds = {}
    for run in ("cold", "warm"):
        start = time.perf_counter()
        logged = train(model, x, y, seed)
        seconds[run] = time.perf_counter() - start
        if logged is not None and run == "cold":
            seconds["logged_compile"] = logged
    return seconds


def measure(
    x: np.ndarray, y: np.ndarray, rounds: int, physical: int | None = None
) -> dict[str, Any]:
    """Cold and warm times of both contenders over ``rounds`` rounds, and the overheads."""
    contenders = {"driver": through_driver(physical), "plain": through_plain_fit}
    results: dict[str, list[dict]] = {name: [] for name in contenders}
    for index in range(rounds):
        names = list(contenders)[:: -1 if index % 2 else 1]
        for name in names:
            results[name].append(cold_and_warm(contenders[name], x, y, seed=index))
    driver, plain = results["driver"], results["plain"]
    return {
        "seconds": {
            name: {run: common.spread(_column(rows, run)) for run in ("cold", "warm")}
            for name, rows in results.items()
        },
        "overhead_cold": _overhead(_column(driver, "cold"), _column(plain, "cold")),
        "overhead_warm": _overhead(_column(driver, "warm"), _column(plain, "warm")),
        "compile_seconds": {
            "driver": common.spread(_compile_seconds(driver)),
            "plain": common.spread(_compile_seconds(plain)),
            "driver_logged": common.spread(_column(driver, "logged_compile")),
        },
    }


def _column(rows: list[dict], key: str) -> list[float]:
    return [row[key] for row in rows]


def _compile_seconds(rows: list[dict]) -> list[float]:
    return [row["cold"] - row["warm"] for row in rows]


def _overhead(driver: list[float], plain: list[float]) -> dict[str, Any]:
    """Per-round overhead driver / plain - 1: its spread and the values."""
    values = [d / p - 1 for d, p in zip(driver, plain, strict=True)]
    return {**common.spread(values), "rounds": [round(v, 4) for v in values]}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num_train", type=int, default=None, help="default: all 60,000")
    parser.add_argument("--max_physical_batch", type=int, default=None)
    args = parser.parse_args(argv)
    data = bsi_keras.load_dataset("fashion_mnist", num_train=args.num_train, num_test=1)
    result = measure(data.x_train, data.y_train, args.rounds, args.max_physical_batch)
    cold, warm = result["overhead_cold"], result["overhead_warm"]
    compiled = result["compile_seconds"]
    print(
        f"driver overhead over plain model.fit: {common.fmt(cold, 1, 100)} % of wall time "
        f"with compile, {common.fmt(warm, 1, 100)} % warm\n"
        f"compile seconds (cold - warm): driver {common.fmt(compiled['driver'])}, "
        f"plain {common.fmt(compiled['plain'])}; the driver logged "
        f"{common.fmt(compiled['driver_logged'])}"
    )
    path = common.write_result(
        "driver_overhead" + ("_physical_batch" if args.max_physical_batch else ""),
        {
            "backend": keras.backend.backend(),
            "max_physical_batch": args.max_physical_batch,
            "dataset": "fashion_mnist",
            "train_examples": len(data.x_train),
            "model": "mnist_cnn",
            "schedule": SCHEDULE.to_config(),
            "rounds": args.rounds,
            **result,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
