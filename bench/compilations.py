"""How often does a three-phase schedule trace (compile) the train step?

Counts the traces of ``train_step`` (its Python body runs only while TensorFlow or JAX
traces it; the driver logs them as ``train_traces``) for Smith et al.'s three schedules,
with the last partial batch kept and dropped, with whole batches and with micro-batches of
100 accumulated into each update (``max_physical_batch=100``: one shape for every batch
size, partial batches padded).
Prints a table and writes ``bench/results/compilations_<backend>.json``.

    python bench/compilations.py               # TensorFlow
    KERAS_BACKEND=jax python bench/compilations.py
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import common
import keras

from bsi_keras import data, fit, models, schedules
from bsi_keras.train_step import StepOptions


def count_traces(schedule, drop_remainder: bool, dataset, physical: int | None) -> dict[str, int]:
    keras.utils.set_random_seed(0)
    model = models.get_model("mnist_cnn")
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    # The driver counts the train step's traces (`train_traces`); the evaluation's are
    # counted here, the same way: its Python body runs only while it is traced.
    counts = {"test": 0}
    step = model.test_step

    def counting(*args):
        counts["test"] += 1
        return step(*args)

    model.test_step = counting
    history = fit(
        model,
        dataset.x_train,
        dataset.y_train,
        schedule=schedule,
        verbose=0,
        seed=0,
        validation_data=(dataset.x_test, dataset.y_test),
        drop_remainder=drop_remainder,
        step_options=StepOptions(max_physical_batch=physical) if physical else None,
    )
    counts["train"] = int(sum(history.history["train_traces"]))
    return counts


def main() -> None:
    dataset = data.load_dataset("mnist_sample", num_train=3900, num_test=1000)
    rows = []
    for name in ("decay_lr", "hybrid", "increase_bs"):
        schedule = getattr(schedules, name)(6, 100, 0.01, [2, 4], 5)
        batch_sizes = sorted({p.batch_size for p in schedule.phases})
        for physical in (None, 100):
            for drop in (False, True):
                counts = count_traces(schedule, drop, dataset, physical)
                rows.append(
                    {
                        "schedule": name,
                        "batch_sizes": batch_sizes,
                        "max_physical_batch": physical,
                        "drop_remainder": drop,
                        "train_traces": counts["train"],
                        "test_traces": counts["test"],
                    }
                )
                print(
                    f"{keras.backend.backend():10} {name:12} batches {batch_sizes} "
                    f"physical={physical!s:4} drop_remainder={drop!s:5}: {counts['train']} "
                    f"train traces, {counts['test']} evaluation traces"
                )
    backend = keras.backend.backend()
    common.write_result(
        f"compilations_{backend}", {"backend": backend, "train_examples": 3900, "rows": rows}
    )


if __name__ == "__main__":
    main()
