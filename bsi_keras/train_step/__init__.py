"""The train step: the only backend-specific room of the package.

Keras's default train step does one forward and backward pass per batch. Gradient
accumulation over micro-batches, sharpness-aware minimization (SAM / ASAM, m-sharpness) and
loss dropout need more; `install` gives a model a train step that does them, written once in
`keras.ops` (`core`), with a thin adapter per backend: `stateful` for TensorFlow and PyTorch,
`jax` for JAX's pure functions. Gradients come from `autodiff`, the one place that calls a
backend directly.

Example:

>>> import keras
>>> from bsi_keras import models
>>> model = models.get_model("mnist_cnn")
>>> model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
>>> with install(model, StepOptions(max_physical_batch=32)) as state:
...     "train_step" in vars(model)
True
>>> "train_step" in vars(model)
False
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import keras

from bsi_keras.train_step import accumulate
from bsi_keras.train_step.core import LossDropout, StepOptions
from bsi_keras.train_step.sam import SAM
from bsi_keras.train_step.state import StepState

__all__ = ["SAM", "LossDropout", "StepOptions", "StepState", "accumulates", "install"]


def accumulates(model: keras.Model, options: StepOptions | None) -> bool:
    """Whether ``options`` can run as fixed-shape micro-batches accumulated across calls.

    That is a physical batch and nothing that needs the whole logical batch inside one step
    (SAM's perturbation, the noise scale's two batch sizes, loss dropout's decision), on one
    replica (under ``tf.distribute`` each replica would count only its share of the
    examples); JAX's data parallelism shards each micro-batch and needs nothing more.
    """
    if options is None or options.max_physical_batch is None:
        return False
    whole_batch = (options.sam, options.noise_scale, options.loss_dropout)
    replicas = getattr(getattr(model, "distribute_strategy", None), "num_replicas_in_sync", 1)
    return all(option is None for option in whole_batch) and replicas == 1


@contextmanager
def install(
    model: keras.Model, options: StepOptions | None, accumulate: bool = False
) -> Iterator[StepState | None]:
    """Give ``model`` the train step ``options`` ask for, for the duration of the block.

    Args:
        model: a compiled model.
        options: the step options; None (or options Keras's own step satisfies) installs
            nothing.
        accumulate: micro-batches of ``options.max_physical_batch`` come one per call,
            packed by the driver (`accumulate.pack`), and accumulate into one update
            (`accumulates` must hold); else a larger batch is split inside the step.

    Yields:
        The `StepState` to update at every epoch, or None when it has nothing to update.
    """
    if options is None or not options.needs_custom_step():
        yield None
        return
    if accumulate:
        with _installed(model, _accumulating_step(model)):
            yield None
        return
    replicas = getattr(getattr(model, "distribute_strategy", None), "num_replicas_in_sync", 1)
    if replicas > 1 and options.noise_scale is not None:
        raise ValueError(
            "the noise scale measures whole-batch gradients, which tf.distribute's replicas "
            "never see; measure it on one device, or data-parallel on JAX"
        )
    state = StepState(model.optimizer, model.trainable_variables, options)
    if keras.backend.backend() == "jax":
        from bsi_keras.train_step.jax import make_train_step
    else:
        from bsi_keras.train_step.stateful import make_train_step
    with _installed(model, make_train_step(options, state)):
        yield state


def _accumulating_step(model: keras.Model) -> Callable[..., Any]:
    accumulators = accumulate.Accumulators(model.optimizer, model.trainable_variables)
    if keras.backend.backend() == "jax":
        return accumulate.make_jax_train_step(accumulators)
    return accumulate.make_stateful_train_step(accumulators)


@contextmanager
def _installed(model: keras.Model, step: Callable[..., Any]) -> Iterator[None]:
    model.train_step = types.MethodType(step, model)
    model.train_function = None  # the next fit traces the new step
    try:
        yield
    finally:
        del model.train_step
        model.train_function = None
