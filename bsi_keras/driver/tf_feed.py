"""The TensorFlow tensor feed: the backend-specific part of the driver's feeding.

On TensorFlow the driver turns numpy training and validation arrays into tensors once per
run, and serves every epoch as a `tf.data.Dataset` that gathers the epoch's batches by
index: no permuted copy of the data per epoch, and none of the copy ``model.fit`` makes of
numpy arrays at every call.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


def applies_to(structure: tuple[Any, ...]) -> bool:
    """Whether the backend is TensorFlow and ``(x, y[, sample_weight])`` holds targets and
    numeric numpy arrays only (what `as_tensors` takes).

    Example:

    >>> applies_to((np.zeros((2, 3)), None))  # no targets
    False
    """
    arrays = [a for a in keras.tree.flatten(structure) if a is not None]
    return (
        keras.backend.backend() == "tensorflow"
        and structure[1] is not None
        and all(isinstance(a, np.ndarray) and a.dtype.kind in "biuf" for a in arrays)
    )


def as_tensors(structure: Any) -> Any:
    """TensorFlow tensors of ``(x, y[, sample_weight])``, floats in Keras's float type as
    ``model.fit`` makes them; a missing sample weight is dropped, lists become tuples."""
    import tensorflow as tf

    def tensor(array: np.ndarray) -> Any:
        if array.dtype.kind == "f":
            array = array.astype(keras.backend.floatx(), copy=False)
        return tf.convert_to_tensor(array)

    x, y, *weights = structure
    present = (x, y, *weights) if weights and weights[0] is not None else (x, y)
    return keras.tree.lists_to_tuples(keras.tree.map_structure(tensor, present))


def batches(
    tensors: Any, order: np.ndarray, batch_size: int, sample_weight: np.ndarray | None = None
) -> Any:
    """A `tf.data.Dataset` of the batches of ``tensors`` in the example ``order``.

    Each batch is gathered by index, so no permuted copy of the data is made; the batches
    have the static shape of the batch size where it divides the examples, as Keras's own
    array pipeline gives them. ``sample_weight`` (one row per entry of ``order``, e.g. the
    accumulating step's packed weights) is added as the batches' last element. Autotuning
    is off: its thread makes the end of every ``fit`` call wait up to about a second for it
    (once per epoch for the driver).
    """
    import tensorflow as tf

    full = len(order) // batch_size * batch_size
    slots = np.arange(len(order))
    indices = tf.data.Dataset.from_tensor_slices(
        (order[:full].reshape(-1, batch_size), slots[:full].reshape(-1, batch_size))
    )
    if full < len(order):
        rest = tf.data.Dataset.from_tensors((order[full:], slots[full:]))
        indices = indices.concatenate(rest)
    weights = None if sample_weight is None else tf.convert_to_tensor(sample_weight)

    def gather(index: Any, slot: Any) -> Any:
        batch = keras.tree.map_structure(lambda t: tf.gather(t, index), tensors)
        return batch if weights is None else (*batch, tf.gather(weights, slot))

    batches = indices.map(gather)
    options = tf.data.Options()
    options.autotune.enabled = False
    return batches.prefetch(2).with_options(options)


def is_batched(dataset: Any) -> bool:
    """Whether a `tf.data.Dataset` yields batches: a leading dimension of unknown size, or
    a ``batch`` (``drop_remainder=True`` fixes that dimension) in the chain of datasets it
    was made from, not undone by a later ``unbatch``.

    Example:

    >>> import tensorflow as tf
    >>> data = tf.data.Dataset.range(10)
    >>> is_batched(data), is_batched(data.batch(4, drop_remainder=True).prefetch(1))
    (False, True)
    """
    leaves = keras.tree.flatten(dataset.element_spec)
    if any(leaf.shape.rank and leaf.shape[0] is None for leaf in leaves):
        return True
    while dataset is not None:  # tf.data keeps each dataset's input privately
        name = type(dataset).__name__
        if "Unbatch" in name:
            return False
        if "Batch" in name:
            return True
        dataset = getattr(dataset, "_input_dataset", None)
    return False
