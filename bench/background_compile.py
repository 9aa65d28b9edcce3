"""What a phase change waits for, with and without compiling the next shape in the background.

A schedule below the physical batch trains each small batch as its own micro-batch shape:
batches 32 -> 64 -> 128 on ``max_physical_batch=128`` are three shapes. With
``StepOptions(compile_ahead=True)`` (the default) the driver compiles the next phase's
shape in a background thread while the current phase trains (`bsi_keras.driver.ahead`);
with False each shape compiles at its phase's first step. Both runs of a round train the
same model from the same seed on the bundled MNIST sample (the MNIST CNN, ghost batches of
8, SGD), in turn (the order reversed every other round), after a warm-up run. Reported per
variant: the compile seconds of the phase-change epochs (for the background variant, what
is left: the wait for the compilation in progress plus the first call of the compiled step),
the background thread's seconds, the whole run's wall seconds, and the train-step traces.

    python bench/background_compile.py               # TensorFlow
    KERAS_BACKEND=jax python bench/background_compile.py

Writes ``bench/results/background_compile_<backend>.json``.
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

from bsi_keras import data, fit, models, schedules
from bsi_keras.train_step import StepOptions

VARIANTS = {"background": True, "at_first_batch": False}


def train_once(schedule: schedules.Schedule, dataset: data.Dataset, physical: int, ahead: bool):
    """One run; its wall seconds and per-epoch log."""
    keras.utils.set_random_seed(0)
    model = models.get_model("mnist_cnn", virtual_batch_size=8)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = fit(
        model,
        dataset.x_train,
        dataset.y_train,
        schedule=schedule,
        verbose=0,
        seed=0,
        validation_data=(dataset.x_test, dataset.y_test),
        step_options=StepOptions(max_physical_batch=physical, compile_ahead=ahead),
    )
    return time.perf_counter() - start, history.history


def measure(args: argparse.Namespace) -> dict[str, Any]:
    phases = tuple(schedules.Phase(args.phase_epochs, b, 0.05) for b in args.batch_sizes)
    schedule = schedules.Schedule(phases)
    dataset = data.load_dataset("mnist_sample", num_train=args.num_train, num_test=1000)
    # The epochs whose shape is new: the first epoch of every phase but the first.
    changes = [i * args.phase_epochs for i in range(1, len(phases))]
    train_once(schedules.constant(1, 16, 0.05), dataset, 16, True)  # warm-up
    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for index in range(args.rounds):
        for name in list(VARIANTS)[:: -1 if index % 2 else 1]:
            wall, log = train_once(schedule, dataset, args.max_physical_batch, VARIANTS[name])
            runs[name].append(
                {
                    "wall_seconds": wall,
                    "phase_change_compile_seconds": float(
                        sum(log["compile_seconds"][e] for e in changes)
                    ),
                    "first_epoch_compile_seconds": float(log["compile_seconds"][0]),
                    "background_seconds": float(sum(log.get("ahead_compile_seconds", [0.0]))),
                    "train_traces": int(sum(log["train_traces"])),
                    "ahead_traces": int(sum(log.get("ahead_traces", [0]))),
                    "final_loss": float(log["loss"][-1]),
                }
            )
    summary = {
        name: {
            key: common.spread([r[key] for r in rows])
            for key in ("wall_seconds", "phase_change_compile_seconds", "background_seconds")
        }
        | {
            "first_epoch_compile_seconds": common.spread(
                [r["first_epoch_compile_seconds"] for r in rows]
            ),
            "train_traces": rows[0]["train_traces"],
            "ahead_traces": rows[0]["ahead_traces"],
            "rounds": rows,
        }
        for name, rows in runs.items()
    }

    def per_round(key: str) -> dict:
        return common.paired_ratios(
            [r[key] for r in runs["background"]], [r[key] for r in runs["at_first_batch"]]
        )

    return {
        "schedule": [[p.epochs, p.batch_size] for p in phases],
        "phase_change_epochs": changes,
        "variants": summary,
        "phase_change_compile_background_over_at_first_batch": per_round(
            "phase_change_compile_seconds"
        ),
        "wall_background_over_at_first_batch": per_round("wall_seconds"),
        # The same model, seed and data in every run: compiling ahead changes no number.
        "same_final_loss": len({r["final_loss"] for rows in runs.values() for r in rows}) == 1,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--phase_epochs", type=int, default=3)
    parser.add_argument("--max_physical_batch", type=int, default=128)
    parser.add_argument("--num_train", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    result = measure(args)
    for name, row in result["variants"].items():
        print(
            f"{keras.backend.backend():10} {name:15} phase-change compile "
            f"{common.fmt(row['phase_change_compile_seconds'])} s, background "
            f"{common.fmt(row['background_seconds'])} s, wall {common.fmt(row['wall_seconds'])}"
            f" s, traces {row['train_traces']} + {row['ahead_traces']} ahead"
        )
    ratio = result["phase_change_compile_background_over_at_first_batch"]
    print(
        f"phase-change compile seconds, background / at first batch: {common.fmt(ratio)}x; "
        f"the same final loss in every run: {result['same_final_loss']}"
    )
    backend = keras.backend.backend()
    path = common.write_result(
        f"background_compile_{backend}",
        {
            "backend": backend,
            "dataset": "mnist_sample",
            "model": "mnist_cnn",
            "train_examples": args.num_train,
            "max_physical_batch": args.max_physical_batch,
            "rounds": args.rounds,
            **result,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
