"""Data-parallel training on every local device, with Keras's own distribution machinery.

On JAX, `keras.distribution.DataParallel` shards every batch over the devices and keeps the
computation global (the train step sees the whole batch). On TensorFlow,
`tf.distribute.MirroredStrategy` runs the step on each replica's share and sums the
gradients. Either way the schedule's batch sizes are global batches (each device gets
``B / devices``), the LR scaling rules act on the global batch, and ghost batch norm
normalizes whole virtual batches of consecutive examples, which stay on one device when
the virtual batch size divides ``B / devices``. Across machines the same APIs apply
(`keras.distribution.initialize` for JAX, `MultiWorkerMirroredStrategy` for TensorFlow).
"""

from __future__ import annotations

import contextlib

import keras

BACKENDS = ("jax", "tensorflow")  # the backends `data_parallel` distributes on


def data_parallel() -> tuple[contextlib.AbstractContextManager, int]:
    """Train on every local device from now on.

    Returns:
        The scope to build and compile the model in, and the number of devices.

    Example:

    >>> scope, devices = data_parallel()
    >>> devices >= 1
    True
    """
    backend = keras.backend.backend()
    if backend == "jax":
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        return contextlib.nullcontext(), len(devices)
    if backend == "tensorflow":
        import tensorflow as tf

        # Every GPU, or else every (logical) CPU device.
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        strategy = tf.distribute.MirroredStrategy([device.name for device in devices])
        return strategy.scope(), strategy.num_replicas_in_sync
    raise NotImplementedError(f"data-parallel training needs JAX or TensorFlow, not {backend}")
