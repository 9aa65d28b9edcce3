"""The private Keras APIs the package relies on, each behind one function.

Keras's public API has no way to write a train step that does what ``Model.train_step`` does
internally (the compiled loss with its regularizers at given weight values, the loss tracker,
the JAX trainer's stateless metrics), nor to ask whether a callback overrides a hook. These
functions are the only places that touch those internals; `tests/test_keras_private.py` has
one canary test per function, so a Keras release that changes one of them fails exactly one
named test rather than a train step somewhere. Checked with Keras 3.15.1.

- `call_has_training_arg`: ``Layer._call_has_training_arg``. Whether ``call`` takes
  ``training``; `stateless_call` passes it on blindly, so the caller must know.
- `losses_override`: ``Layer._losses_override``. The losses a stateless call returned stand
  in for ``model.losses`` while the loss is computed, as Keras's JAX trainer does; without it
  the regularization losses would be those of the variables, not of the values evaluated.
- `compute_loss`: ``Trainer._compute_loss``. ``compute_loss`` with ``training`` passed only
  to overrides that accept it (the argument arrived in Keras 3.3).
- `unscale_loss_for_distribution`: ``keras.src.losses.loss``. Under ``tf.distribute`` the loss
  is divided by the replicas; Keras's own TensorFlow step multiplies it back for the logs.
- `update_loss_tracker`: ``Trainer._loss_tracker``. The mean loss ``fit`` reports as
  ``loss``; a stateful custom step updates it as Keras's own step does.
- `update_metrics_variables`: what ``JAXTrainer._update_metrics_variables`` does (through
  `update_loss_tracker`): the loss tracker and compiled metrics updated statelessly,
  returning the new metric values a JAX step threads.
- `compute_metrics_of`: ``CompileMetrics._flat_metrics`` and ``_flat_weighted_metrics``.
  The compiled metrics over a padded batch's real examples (unweighted metrics ignore
  sample weights, so zero weights cannot hide the padding from them).
- `build_compiled_state`: ``Trainer._symbolic_build``. ``fit`` builds the compiled loss
  and metrics from its first batch, sample weight included; a step that packs more than a
  per-example weight into the sample weight (`accumulate`) has them built from a plain
  ``(x, y)`` batch first.
- `jitted_train_step`: ``JAXTrainer.make_train_function`` jits ``model.train_step`` with
  ``donate_argnums=0`` and ``out_shardings=None`` (no distribution); the same ``jax.jit``
  lowered ahead of time fills the caches that the trainer's own call looks up
  (`bsi_keras.runtime.ahead_of_time`).
- `one_step_function`: ``TensorFlowTrainer._make_function``'s train function closes over
  ``one_step_on_data``, a tf.function wrapped by ``_autoconvert_optionals``
  (``functools.wraps``); its concrete functions are what the train function calls.
- `is_default_hook`: ``keras.src.utils.python_utils.default`` marks the base class's empty
  hooks with ``_is_default``; a callback whose hook keeps the mark does not listen to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import keras
from keras.src.losses.loss import unscale_loss_for_distribution as _unscale_loss


def call_has_training_arg(model: keras.Layer) -> bool:
    """Whether ``model.call`` takes a ``training`` argument.

    Example:

    >>> call_has_training_arg(keras.layers.Dropout(0.5))
    True
    """
    return model._call_has_training_arg


@contextmanager
def losses_override(model: keras.Layer, losses: Sequence[Any]) -> Iterator[None]:
    """Make ``model.losses`` return ``losses`` inside the block.

    Args:
        model: a layer or model.
        losses: the losses a ``stateless_call(..., return_losses=True)`` returned.

    Example:

    >>> layer = keras.layers.Dense(1)
    >>> with losses_override(layer, [1.5]):
    ...     layer.losses
    [1.5]
    >>> layer.losses
    []
    """
    model._losses_override = list(losses)
    try:
        yield
    finally:
        model._losses_override = []


def compute_loss(
    model: keras.Model, x: Any, y: Any, y_pred: Any, sample_weight: Any, training: bool
) -> Any:
    """The compiled loss of a batch, plus ``model.losses`` (regularization, ``add_loss``).

    Args:
        model: a compiled model.
        x, y, y_pred, sample_weight: the batch and the model's predictions.
        training: whether the loss is for a training step.

    Returns:
        The scalar total loss.
    """
    return model._compute_loss(
        x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
    )


def unscale_loss_for_distribution(loss: Any) -> Any:
    """``loss`` times the ``tf.distribute`` replicas in sync (unchanged elsewhere).

    Example:

    >>> float(unscale_loss_for_distribution(keras.ops.convert_to_tensor(2.0)))
    2.0
    """
    return _unscale_loss(loss)


def update_loss_tracker(model: keras.Model, loss: Any, batch_size: Any) -> None:
    """Fold one batch's loss into the mean ``loss`` that ``fit`` reports.

    Args:
        model: a compiled model.
        loss: the batch's (unscaled) loss.
        batch_size: its number of examples, the mean's weight.
    """
    model._loss_tracker.update_state(loss, sample_weight=batch_size)


def update_metrics_variables(
    model: keras.Model,
    metrics_values: Sequence[Any],
    loss: Any,
    x: Any,
    y: Any,
    y_pred: Any,
    sample_weight: Any,
    loss_weight: Any = None,
    real: Any = None,
) -> tuple[dict[str, Any], list[Any]]:
    """On JAX: the loss tracker and compiled metrics updated without touching variables.

    What ``JAXTrainer._update_metrics_variables`` does, with the loss tracker's weight open
    to the caller (a padded batch weighs its real examples, not its length).

    Args:
        model: a compiled model on the JAX backend.
        metrics_values: one value per ``model.metrics_variables``.
        loss: the batch's loss.
        x, y, y_pred, sample_weight: the batch and the model's predictions.
        loss_weight: the loss's weight in the epoch's mean (default: the batch's length).
        real: 1 for the batch's real examples, 0 for padding (`compute_metrics_of`);
            None: every example is real.

    Returns:
        The logs and the new values of ``model.metrics_variables``.
    """
    if loss_weight is None:
        loss_weight = next(i for i in keras.tree.flatten(x) if i is not None).shape[0]
    mapping = list(zip(model.metrics_variables, metrics_values))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        update_loss_tracker(model, loss, loss_weight)
        if real is None:
            logs = model.compute_metrics(x, y, y_pred, sample_weight)
        else:
            logs = compute_metrics_of(model, y, y_pred, sample_weight, real)
    new_values = []
    for variable in model.metrics_variables:
        value = scope.get_current_value(variable)
        new_values.append(variable.value if value is None else value)
    return logs, new_values


def compute_metrics_of(
    model: keras.Model, y: Any, y_pred: Any, sample_weight: Any, real: Any
) -> dict[str, Any]:
    """``model.compute_metrics`` over the real examples of a padded batch.

    Keras's compiled ``metrics`` ignore sample weights (only ``weighted_metrics`` use them),
    so zero weights cannot hide padding from them: here the unweighted metrics weigh each
    example by ``real`` and the weighted ones by ``sample_weight`` (zero on padding), as
    ``CompileMetrics.update_state`` does otherwise.

    Args:
        model: a compiled model.
        y, y_pred: the batch's targets and predictions.
        sample_weight: per-example weights, zero on padding.
        real: 1 for a real example, 0 for padding.

    Returns:
        The metrics' results, as ``compute_metrics`` returns them.
    """
    metrics = model._compile_metrics
    if metrics is not None:
        if not metrics.built:
            metrics.build(y, y_pred)
        targets, predictions = metrics._flatten_y(y), metrics._flatten_y(y_pred)
        for weights, group in ((real, metrics._flat_metrics), (sample_weight, None)):
            group = metrics._flat_weighted_metrics if group is None else group
            for metric, target, prediction in zip(group, targets, predictions):
                if metric:
                    metric.update_state(target, prediction, sample_weight=weights)
    return model.get_metrics_result()


def build_compiled_state(model: keras.Model, x: Any, y: Any) -> None:
    """Build ``model``'s compiled loss, metrics and optimizer from a batch ``(x, y)``.

    Args:
        model: a compiled model.
        x, y: a batch (one example suffices; only shapes and dtypes matter).
    """
    model._symbolic_build(data_batch=(x, y))


def jitted_train_step(model: keras.Model) -> Any:
    """``model.train_step`` jitted as Keras's JAX trainer jits it (without a distribution).

    Args:
        model: a compiled model on the JAX backend.

    Returns:
        The ``jax.jit`` object, to ``lower(state, data).compile()`` ahead of time.
    """
    import jax

    return jax.jit(model.train_step, donate_argnums=0, out_shardings=None)


def one_step_function(train_function: Any) -> Any:
    """The tf.function of one train step inside Keras's TensorFlow ``train_function``.

    Args:
        train_function: a model's ``train_function`` after ``make_train_function``.

    Returns:
        The tf.function, to ``get_concrete_function(data_spec)`` ahead of time.
    """
    cells = zip(train_function.__code__.co_freevars, train_function.__closure__ or ())
    one_step = dict((name, cell.cell_contents) for name, cell in cells)["one_step_on_data"]
    return one_step.__wrapped__


def is_default_hook(callback: keras.callbacks.Callback, hook: str) -> bool:
    """Whether ``callback``'s ``hook`` is `keras.callbacks.Callback`'s own empty one.

    Example:

    >>> class Listener(keras.callbacks.Callback):
    ...     def on_epoch_end(self, epoch, logs=None):
    ...         pass
    >>> is_default_hook(Listener(), "on_epoch_end"), is_default_hook(Listener(), "on_batch_end")
    (False, True)
    """
    return getattr(getattr(callback, hook), "_is_default", False)
