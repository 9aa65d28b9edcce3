"""Compile the train step for a batch shape before its first batch arrives.

A schedule whose batches are below the physical batch (128 before growing to 16,000)
trains each such batch as its own shape, and each new shape costs a trace and a
compilation at its phase's first step. The schedule knows the next phase's batch in
advance, so the driver compiles that shape in a background thread while the current phase
trains (`bsi_keras.driver.ahead`); this module is the backend-specific part:

- JAX: ``jax.jit(model.train_step, ...).lower(state, data).compile()`` on abstract arguments
  (`jax.ShapeDtypeStruct`). The jitted function is the one Keras's JAX trainer jits, with
  its options (`keras_private.jitted_train_step`), and JAX keys its caches of traces,
  lowerings and executables by the function, its options and the abstract arguments: the
  trainer's own call at the phase change finds all three and neither traces nor compiles
  (and with `compilation_cache` on, the executable is also kept on disk).
- TensorFlow: the concrete function of the tf.function that runs one step inside Keras's
  train function (`keras_private.one_step_function`), traced for the next shape's
  `tf.TensorSpec` (``get_concrete_function``); the train function's retrace for the new
  input then finds it. TensorFlow relaxes the batch dimension after a second shape, so at
  most one trace is ever moved; what it cannot move is the graph optimization at the first
  call of the new train function.

Both need the step's arguments' shapes and dtypes, which `signature_of` takes from the
arguments of the step's last trace (the driver's `bridge.count_traces` records them);
`with_batch` replaces their batch dimension.
"""

from __future__ import annotations

from typing import Any

import keras

from bsi_keras.train_step import keras_private

# Where the step's arguments hold the batch: JAX's step takes (state, data), TensorFlow's
# one-step function (data,).
DATA_ARGUMENT = {"jax": 1, "tensorflow": 0}


def supported() -> bool:
    """Whether this backend can compile the train step ahead of time here.

    JAX and TensorFlow, without a `keras.distribution` (whose sharded inputs are part of the
    cache key, so an unsharded compilation would not be found).

    Example:

    >>> supported() == (keras.backend.backend() in ("jax", "tensorflow"))
    True
    """
    return keras.backend.backend() in DATA_ARGUMENT and keras.distribution.distribution() is None


def signature_of(arguments: tuple) -> tuple:
    """The shapes and dtypes of a traced step's ``arguments`` (their symbolic values).

    Example:

    >>> import numpy as np
    >>> tuple(signature_of((np.zeros((4, 2), "float32"), None))[0].shape)
    (4, 2)
    """

    def spec(value: Any) -> Any:
        weak_type = getattr(getattr(value, "aval", value), "weak_type", False)
        return _spec(tuple(value.shape), value.dtype, weak_type)

    return keras.tree.map_structure(lambda v: None if v is None else spec(v), arguments)


def with_batch(signature: tuple, batch: int) -> tuple:
    """``signature`` with every data leaf's leading (batch) dimension set to ``batch``.

    Example:

    >>> import numpy as np
    >>> state, data = np.zeros(3, "float32"), (np.zeros((4, 2), "float32"),)
    >>> signature = signature_of((state, data) if keras.backend.backend() == "jax" else (data,))
    >>> keras.tree.flatten(with_batch(signature, 8))[-1].shape[0]
    8
    """
    index = DATA_ARGUMENT[keras.backend.backend()]
    resized = keras.tree.map_structure(
        lambda s: None if s is None else _resized(s, batch), signature[index]
    )
    return (*signature[:index], resized, *signature[index + 1 :])


def compile_train_step(model: keras.Model, train_function: Any, signature: tuple) -> None:
    """Trace and compile ``model``'s train step for ``signature`` so that the trainer's
    later call with arguments of that signature finds it compiled.

    Args:
        model: the model whose ``fit`` will run the step (its ``train_step`` as Keras will
            jit it).
        train_function: TensorFlow: the Keras train function that will run it (a model's
            ``train_function`` after a ``fit``); ignored on JAX, whose caches are global.
        signature: the step's arguments (`with_batch` of `signature_of`).
    """
    if keras.backend.backend() == "jax":
        keras_private.jitted_train_step(model).lower(*signature).compile()
    else:
        keras_private.one_step_function(train_function).get_concrete_function(*signature)


def _resized(spec: Any, batch: int) -> Any:
    return _spec((batch, *tuple(spec.shape)[1:]), spec.dtype, getattr(spec, "weak_type", False))


def _spec(shape: tuple, dtype: Any, weak_type: bool) -> Any:
    """The backend's abstract argument of ``shape`` and ``dtype`` (JAX keeps ``weak_type``,
    which is part of its cache key; TensorFlow has none)."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.ShapeDtypeStruct(shape, dtype, weak_type=weak_type)
    import tensorflow as tf

    return tf.TensorSpec(shape, dtype)
