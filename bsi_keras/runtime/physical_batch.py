"""The automatic physical batch: the micro-batch shape the device trains fastest per example.

With a physical batch every logical batch runs as micro-batches of one shape
(`bsi_keras.train_step.accumulate`), so the shape is a property of the model and the device,
not of the schedule. `probe` times a few accumulating steps of a throwaway copy of the
model at each candidate shape (multiples of the ghost batch, doubling) and keeps the
smallest one within `TOLERANCE` of the best examples per second, stopping at the first
that does not fit in memory. The smallest of the near-best: less padding of partial
batches, less memory, and the same speed. Candidates stop at `LARGEST` examples: on an
H100 WRN-16-4's throughput grows by 1.45x from batch 128 to 3,200 in float32 (2.1x in
bfloat16, `bench/gpu_wrn.py`); past a few thousand examples a GPU is saturated and a
larger shape only costs memory. On a CPU, larger batches gain little and the probe costs
more than it saves, so the command line uses it by default on accelerators only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import keras
import numpy as np

from bsi_keras import train_step
from bsi_keras.train_step import StepOptions, accumulate, keras_private

AUTO = "auto"  # the ``--max_physical_batch`` value that asks for a probe
TOLERANCE = 0.05  # within 5 % of the fastest examples per second counts as as fast
LARGEST = 4096
STEPS = 3  # timed steps per candidate, after one that compiles

# Words the backends' out-of-memory errors contain (XLA's RESOURCE_EXHAUSTED, CUDA's).
_OUT_OF_MEMORY = ("resource_exhausted", "out of memory", "oom")


def accelerator_present() -> bool:
    """Whether Keras's backend sees a GPU or TPU.

    Example:

    >>> isinstance(accelerator_present(), bool)
    True
    """
    try:
        devices = keras.distribution.list_devices()
    except (AttributeError, NotImplementedError, RuntimeError, ValueError):
        return False  # a backend without Keras's distribution API (PyTorch): no probe
    return any(not str(device).lower().startswith("cpu") for device in devices)


def candidates(smallest: int, largest: int) -> list[int]:
    """``smallest`` doubled up to ``largest`` (which ends the list if it is not a doubling).

    Example:

    >>> candidates(128, 1000)
    [128, 256, 512, 1000]
    """
    sizes = [smallest]
    while sizes[-1] * 2 <= largest:
        sizes.append(sizes[-1] * 2)
    if sizes[-1] < largest:
        sizes.append(largest)
    return sizes


def probe(
    model: keras.Model, input_shape: Sequence[int], num_classes: int, sizes: Sequence[int]
) -> tuple[int, dict[int, float]]:
    """Examples per second of accumulating steps at each of ``sizes``; the one to use.

    The model is copied (`keras.models.clone_model`) and compiled like ``model``, so its
    weights and optimizer are untouched; the inputs are random, which costs the same.

    Args:
        model: the compiled model to train.
        input_shape: one example's shape.
        num_classes: the number of classes of the integer labels.
        sizes: the candidate shapes, increasing.

    Returns:
        The smallest size within `TOLERANCE` of the best examples per second, and the
        examples per second measured for each size that fitted.
    """
    throughput: dict[int, float] = {}
    for size in sizes:
        try:
            throughput[size] = _examples_per_second(model, input_shape, num_classes, size)
        except Exception as error:
            if not any(word in str(error).lower() for word in _OUT_OF_MEMORY) or not throughput:
                raise
            break  # this size does not fit; larger ones will not either
    best = max(throughput.values())
    chosen = min(size for size, speed in throughput.items() if speed >= (1 - TOLERANCE) * best)
    return chosen, throughput


def _examples_per_second(
    model: keras.Model, input_shape: Sequence[int], num_classes: int, size: int
) -> float:
    copy = keras.models.clone_model(model)
    copy.compile(
        optimizer=keras.optimizers.deserialize(keras.optimizers.serialize(model.optimizer)),
        loss=model.loss,
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((size, *input_shape)).astype("float32")
    y = rng.integers(0, num_classes, size)
    packed = accumulate.pack(None, np.ones(size), np.ones(size))
    keras_private.build_compiled_state(copy, x[:1], y[:1])
    with train_step.install(copy, StepOptions(max_physical_batch=size), accumulate=True):
        copy.train_on_batch(x, y, sample_weight=packed)  # compiles
        start = time.perf_counter()
        for _ in range(STEPS):
            copy.train_on_batch(x, y, sample_weight=packed)  # returns numbers: synchronous
        seconds = time.perf_counter() - start
    return STEPS * size / seconds
