"""The train step's arithmetic, written once in `keras.ops` for every backend.

`compute_gradients` turns one logical batch into a gradient: in one pass, or split into
micro-batches whose gradients are averaged (gradient accumulation, so a logical batch of
50,000 fits in memory; each micro-batch runs the model with its own ghost-batch-norm
statistics, as the reference study's chunks do), optionally sharpness-aware (SAM / ASAM:
the gradient at ``w + e(w)``, per group of ``m`` examples for m-sharpness).
`skip_update` is the loss-dropout rule. The backend adapters (`stateful`, `jax`) only move
values in and out of variables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
from keras import ops

from bsi_keras.train_step.autodiff import stateless_loss, value_and_grad
from bsi_keras.train_step.noise_scale import NoiseScaleOptions
from bsi_keras.train_step.sam import SAM

LOSS_DROPOUT_RULES = ("lower", "higher")


@dataclass(frozen=True)
class LossDropout:
    """Skip the parameter update depending on the batch's loss (the reference experiment).

    The reference study skips the update whenever a batch's mean loss is lower than the
    previous batch's, during epochs 3 to 119 (1-based, its ``2 < epoch < 120``). The loss of
    every batch, skipped or not, becomes the "previous" one.

    Args:
        first_epoch: first 1-based epoch of the window (inclusive).
        last_epoch: last 1-based epoch of the window (inclusive).
        rule: ``"lower"`` skips when the loss went down (the reference), ``"higher"`` when
            it went up.
    """

    first_epoch: int = 3
    last_epoch: int = 119
    rule: str = "lower"

    def __post_init__(self) -> None:
        if self.rule not in LOSS_DROPOUT_RULES:
            raise ValueError(f"rule must be one of {', '.join(LOSS_DROPOUT_RULES)}")
        if not 1 <= self.first_epoch <= self.last_epoch:
            raise ValueError("the loss-dropout window needs 1 <= first_epoch <= last_epoch")

    def active(self, epoch: int) -> bool:
        """Whether 0-based ``epoch`` lies in the window."""
        return self.first_epoch <= epoch + 1 <= self.last_epoch


@dataclass(frozen=True)
class StepOptions:
    """What the train step does beyond Keras's own.

    Args:
        max_physical_batch: the largest batch run through the model at once; a larger
            logical batch is split into micro-batches of this size (the last one smaller)
            whose gradients are averaged into one update.
        loss_dropout: the loss-dropout rule, or None.
        sam: sharpness-aware minimization (`bsi_keras.train_step.sam.SAM`: SAM or ASAM),
            or None. With ``max_physical_batch`` and no ``sam.m``, both of SAM's gradients
            are accumulated over micro-batches, so the perturbation is the whole logical
            batch's. With ``sam.m``, every group of ``m`` examples is perturbed with its own
            gradient: a group larger than ``max_physical_batch`` is itself accumulated over
            micro-batches, a smaller one runs as one pass of ``m`` examples.
        compile_ahead: where micro-batches accumulate across calls (one compiled shape per
            micro-batch size), compile the next phase's shape in a background thread while
            the current phase trains (`bsi_keras.driver.ahead`); False compiles each shape
            when its first batch arrives.
    """

    max_physical_batch: int | None = None
    loss_dropout: LossDropout | None = None
    sam: SAM | None = None
    noise_scale: NoiseScaleOptions | None = None
    compile_ahead: bool = True

    def __post_init__(self) -> None:
        if self.max_physical_batch is not None and self.max_physical_batch < 1:
            raise ValueError(f"max_physical_batch must be >= 1, got {self.max_physical_batch}")
        if self.noise_scale is not None and self.sam is not None:
            raise ValueError("measure the noise scale of plain gradients: not together with SAM")
        physical = self.max_physical_batch
        if self.noise_scale is not None and physical and self.noise_scale.small_batch > physical:
            raise ValueError("the noise scale's small batch must fit in max_physical_batch")

    def needs_custom_step(self) -> bool:
        """Whether Keras's default train step would not do."""
        options = (self.max_physical_batch, self.loss_dropout, self.sam, self.noise_scale)
        return any(option is not None for option in options)


@dataclass
class StepGradients:
    """What one logical batch gives: mean loss, averaged gradients, new BN statistics."""

    loss: Any
    grads: list[Any]
    non_trainable: list[Any]
    y_pred: Any
    small_sq: Any = None  # mean squared norm of the equal chunks' gradients, if measured
    small_size: Any = None  # their size
    measured: Any = None  # 1.0 where this step measured the noise scale, else 0.0


# (trainable, non_trainable, x, y, sample_weight) -> StepGradients
GradientsFn = Callable[[list[Any], list[Any], Any, Any, Any], StepGradients]


def compute_gradients(
    model: keras.Model,
    options: StepOptions,
    trainable: list[Any],
    non_trainable: list[Any],
    x: Any,
    y: Any,
    sample_weight: Any,
    scale_loss: Callable[[Any], Any],
    step: Any = 0,
) -> StepGradients:
    """The gradient of the batch's mean loss at the given weight values.

    Built from three parts: one forward and backward pass; `_in_chunks`, which averages a
    gradient function over consecutive chunks of the batch (micro-batches of
    ``max_physical_batch``, SAM's groups of ``m``); and `_sharpness_aware`, which takes a
    gradient function's gradient at ``w + e(w)`` instead of at ``w``.

    Args:
        model: the compiled model.
        options: the step options (``max_physical_batch`` splits the batch; ``sam``
            perturbs the weights).
        trainable, non_trainable: the model's variable values.
        x, y, sample_weight: the logical batch.
        scale_loss: the optimizer's loss scaling (mixed precision), applied before the
            gradient is taken.
        step: the update counter; with ``noise_scale``, updates whose counter is a
            multiple of ``every`` also measure the noise scale.

    Returns:
        The `StepGradients`; the loss is the unscaled mean over the whole batch, and with
        SAM the loss, predictions and non-trainable values are those of the clean pass at
        ``w`` while the gradients are those at ``w + e(w)``.
    """
    one_pass = _one_pass(model, scale_loss)
    gradients = one_pass
    if options.max_physical_batch is not None:
        gradients = _in_chunks(model, gradients, options.max_physical_batch)
    sam = options.sam
    if sam is not None:
        gradients = _sharpness_aware(gradients, sam, sam.scaled(model.trainable_variables))
        if sam.m is not None:
            gradients = _in_chunks(model, gradients, sam.m)
    noise = options.noise_scale
    if noise is not None:
        measuring = _in_chunks(model, one_pass, noise.small_batch, measure=True)
        gradients = _every(noise.every, step, measuring, _unmeasured(gradients))
    return gradients(trainable, non_trainable, x, y, sample_weight)


def _every(every: int, step: Any, measuring: GradientsFn, plain: GradientsFn) -> GradientsFn:
    """``measuring`` on updates whose counter is a multiple of ``every``, else ``plain``."""
    if every == 1:
        return measuring

    def either(*args: Any) -> StepGradients:
        due = ops.equal(ops.mod(step, every), 0)
        fields = ops.cond(due, lambda: _fields(measuring(*args)), lambda: _fields(plain(*args)))
        return StepGradients(*fields)

    return either


def _unmeasured(gradients: GradientsFn) -> GradientsFn:
    """``gradients`` with zero noise-scale fields, to pair with a measuring path."""
    return lambda *args: _not_measured(gradients(*args))


def _not_measured(result: StepGradients) -> StepGradients:
    zero = ops.zeros((), "float32")
    fields = (result.loss, result.grads, result.non_trainable, result.y_pred)
    return StepGradients(*fields, zero, ops.ones((), "float32"), zero)


def _fields(result: StepGradients) -> tuple:
    return (
        result.loss,
        result.grads,
        result.non_trainable,
        result.y_pred,
        result.small_sq,
        result.small_size,
        result.measured,
    )


def skip_update(loss: Any, previous: Any, active: Any, rule: str) -> Any:
    """The loss-dropout decision: skip when the loss moved the ruled way, inside the window.

    A NaN ``previous`` (no batch yet) never skips.
    """
    moved = ops.less(loss, previous) if rule == "lower" else ops.greater(loss, previous)
    return ops.logical_and(ops.greater(active, 0.5), moved)


def _one_pass(model: keras.Model, scale_loss: Callable[[Any], Any]) -> GradientsFn:
    """One forward and backward pass over the given examples."""

    def loss_fn(trainable, non_trainable, x, y, sample_weight):
        loss, (y_pred, non_trainable) = stateless_loss(
            model, trainable, non_trainable, x, y, sample_weight, training=True
        )
        return scale_loss(loss), (loss, y_pred, non_trainable)

    grad_fn = value_and_grad(loss_fn)

    def gradients(trainable, non_trainable, x, y, sample_weight) -> StepGradients:
        (_, (loss, y_pred, non_trainable)), grads = grad_fn(
            trainable, non_trainable, x, y, sample_weight
        )
        return StepGradients(loss, grads, non_trainable, y_pred)

    return gradients


def _sharpness_aware(gradients: GradientsFn, sam: SAM, scaled: list[bool]) -> GradientsFn:
    """``gradients`` taken at ``w + e(w)``, ``e`` from its gradient at ``w`` (SAM / ASAM).

    The perturbed weights are only passed to the second evaluation, so nothing needs
    restoring. The second pass starts from the same non-trainable values as the first and
    its new ones are discarded: batch-norm moving statistics move once per step, from the
    clean pass (as Google's reference keeps its ``inner_state``), and the dropout masks,
    drawn from the same generator state, are the same in both passes.
    """

    def perturbed(trainable, non_trainable, x, y, sample_weight) -> StepGradients:
        clean = gradients(trainable, non_trainable, x, y, sample_weight)
        e = sam.perturbation(clean.grads, trainable, scaled)
        ascended = [ops.add(w, ops.cast(d, w.dtype)) for w, d in zip(trainable, e)]
        grads = gradients(ascended, non_trainable, x, y, sample_weight).grads
        return StepGradients(clean.loss, grads, clean.non_trainable, clean.y_pred)

    return perturbed


def _in_chunks(
    model: keras.Model, gradients: GradientsFn, size: int, measure: bool = False
) -> GradientsFn:
    """``gradients`` over consecutive chunks of ``size`` examples (the last one smaller).

    The chunks' losses and gradients are averaged weighted by their sizes, their
    predictions concatenated; the non-trainable values (batch-norm statistics) pass from
    one chunk to the next. With ``measure``, the mean squared gradient norm of the full
    chunks (the smaller last one left out) is returned as ``small_sq`` for the noise scale;
    a batch of at most ``size`` examples measures nothing (``measured`` 0).
    """

    def chunked(trainable, non_trainable, x, y, sample_weight) -> StepGradients:
        batch = ops.shape(keras.tree.flatten(x)[0])[0]
        if isinstance(batch, int) and batch <= size:
            result = gradients(trainable, non_trainable, x, y, sample_weight)
            return _not_measured(result) if measure else result
        full = batch // size
        rest = batch - full * size

        def run(carry, start, part_size, measured_part):
            grad_sum, non_trainable, loss_sum, y_pred, sq_sum = carry
            part = _slice((x, y, sample_weight), start, part_size)
            result = gradients(trainable, non_trainable, *part)
            weight = ops.cast(part_size, "float32")
            grad_sum = [total + weight * g for total, g in zip(grad_sum, result.grads)]
            y_pred = ops.slice_update(  # float32 also under mixed precision
                y_pred,
                [start] + [0] * (len(y_pred.shape) - 1),
                ops.cast(result.y_pred, y_pred.dtype),
            )
            if measured_part:
                sq_sum = sq_sum + sum(ops.sum(ops.square(g)) for g in result.grads)
            loss_sum = loss_sum + weight * result.loss
            return grad_sum, result.non_trainable, loss_sum, y_pred, sq_sum

        output_shape = tuple(model.output_shape[1:]) if model.output_shape else ()
        zero = ops.zeros((), "float32")
        carry = (
            [ops.zeros_like(v) for v in trainable],
            list(non_trainable),
            zero,
            ops.zeros((batch, *output_shape), "float32"),
            zero,
        )
        carry = ops.fori_loop(0, full, lambda i, c: run(c, i * size, size, measure), carry)
        if isinstance(rest, int):  # static shapes (JAX, PyTorch, and TensorFlow when known)
            if rest:
                carry = run(carry, full * size, rest, False)
        else:  # TensorFlow traced with an unknown batch size
            carry = ops.cond(rest > 0, lambda: run(carry, full * size, rest, False), lambda: carry)
        grad_sum, non_trainable, loss_sum, y_pred, sq_sum = carry
        total = ops.cast(batch, "float32")
        result = StepGradients(
            loss_sum / total, [g / total for g in grad_sum], non_trainable, y_pred
        )
        if measure:  # a traced batch of unknown size may turn out too small to measure
            result.small_sq = sq_sum / ops.maximum(ops.cast(full, "float32"), 1.0)
            result.small_size = ops.cast(size, "float32")
            result.measured = ops.cast(ops.greater(batch, size), "float32")
        return result

    return chunked


def _slice(structure: Any, start: Any, size: Any) -> Any:
    def cut(a: Any) -> Any:
        if a is None:
            return None
        return ops.slice(a, [start] + [0] * (len(a.shape) - 1), [size, *a.shape[1:]])

    return keras.tree.map_structure(cut, structure, none_is_leaf=True)
