"""What does a SAM / ASAM epoch cost against its base optimizer's? (SAM: two gradients a step.)

Trains the SAM study's model (``mnist_cnn``) on the study's data (the first 20,000
Fashion-MNIST training images) one epoch at a time, the optimizers taking turns within
every round so that a slow spell of a shared machine hits them all alike. Reports the
fastest and the median epoch per optimizer and batch size, and each SAM variant's factor
over its base optimizer; writes ``bench/results/sam_time_<backend>.json``.

    python bench/sam_time.py                     # TensorFlow
    KERAS_BACKEND=jax python bench/sam_time.py
"""

from __future__ import annotations

import os
import statistics
import time
from contextlib import ExitStack

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import common
import keras

from bsi_keras import data, models
from bsi_keras.optimizers import get_optimizer, split_name
from bsi_keras.train_step import StepOptions, install
from bsi_keras.train_step.sam import from_name

OPTIMIZERS = ("momentum", "sam_momentum", "asam_momentum", "adam", "sam_adam")
BATCH_SIZES = (512, 2048)
ROUNDS = 6
NUM_TRAIN = 20_000


def compiled_model(optimizer: str) -> keras.Model:
    """The study's model with ``optimizer``'s base optimizer, compiled."""
    keras.utils.set_random_seed(0)
    model = models.get_model("mnist_cnn", virtual_batch_size=10)
    lr = 0.001 if split_name(optimizer)[0] == "adam" else 0.01
    model.compile(optimizer=get_optimizer(optimizer, lr), loss="sparse_categorical_crossentropy")
    return model


def epoch_seconds(dataset: data.Dataset, batch_size: int) -> dict[str, list[float]]:
    """Seconds of ``ROUNDS`` epochs per optimizer, after one untimed (compiling) epoch."""
    seconds: dict[str, list[float]] = {name: [] for name in OPTIMIZERS}
    with ExitStack() as stack:
        trained = {}
        for name in OPTIMIZERS:
            trained[name] = compiled_model(name)
            stack.enter_context(install(trained[name], StepOptions(sam=from_name(name))))
        for round_ in range(ROUNDS + 1):
            for name, model in trained.items():
                started = time.perf_counter()
                model.fit(dataset.x_train, dataset.y_train, batch_size=batch_size, verbose=0)
                if round_:
                    seconds[name].append(time.perf_counter() - started)
    return seconds


def main() -> None:
    dataset = data.load_dataset("fashion_mnist", num_train=NUM_TRAIN, num_test=1)
    results = {"backend": keras.backend.backend(), "rounds": ROUNDS, "num_train": NUM_TRAIN}
    print(f"{'optimizer':>14} {'batch':>6} {'fastest s':>10} {'median s':>9} {'factor':>7}")
    for batch_size in BATCH_SIZES:
        seconds = epoch_seconds(dataset, batch_size)
        for name in OPTIMIZERS:
            base = split_name(name)[0]
            fastest = min(seconds[name])
            factor = fastest / min(seconds[base])
            results[f"{name}_b{batch_size}"] = {
                "fastest": fastest,
                "median": statistics.median(seconds[name]),
                "factor_fastest": factor,
                "factor_median": statistics.median(seconds[name])
                / statistics.median(seconds[base]),
            }
            print(
                f"{name:>14} {batch_size:>6} {fastest:>10.3f} "
                f"{statistics.median(seconds[name]):>9.3f} {factor:>7.2f}"
            )
    print(f"written: {common.write_result(f'sam_time_{keras.backend.backend()}', results)}")


if __name__ == "__main__":
    main()
