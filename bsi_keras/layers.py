"""Ghost batch normalization for Keras 3, on every backend.

Keras 3's `BatchNormalization` dropped the ``virtual_batch_size`` argument of Keras 2.
`GhostBatchNormalization` brings it back (Hoffer et al. 2017): in training, a batch is cut
into consecutive *virtual* batches that are each normalized with their own mean and
variance; in inference the moving statistics are used, as in plain batch normalization.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras
from keras import ops

# BatchNormalization options this layer does not implement; refused when true, and left out
# of the saved config.
_UNSUPPORTED = ("renorm", "synchronized")
_UNSAVED = (*_UNSUPPORTED, "renorm_clipping", "renorm_momentum")
# The examples of the batch being traced that count (see `example_mask`); None: all do.
_example_mask: list[Any] = [None]
# How the moving statistics follow the virtual batches (see `GhostBatchNormalization`).
MOVING_STATISTICS = ("keras", "per_ghost_batch")


@contextlib.contextmanager
def example_mask(mask: Any) -> Iterator[None]:
    """Inside the block, ghost batch norm counts only the examples where ``mask`` is true.

    A train step that pads a batch to a fixed shape (`bsi_keras.train_step.accumulate`)
    wraps its forward pass in this, so that every `GhostBatchNormalization` of the model
    leaves the padding out of its statistics although a functional model passes no mask to
    layers that do not propagate one (convolutions, dense layers). A ``mask`` argument
    given to the layer's call takes precedence.

    Args:
        mask: booleans of shape ``(batch,)``, true for the examples that count.

    Example:

    >>> layer = GhostBatchNormalization()
    >>> x = keras.ops.convert_to_tensor([[0.0], [2.0], [100.0]])
    >>> with example_mask(keras.ops.convert_to_tensor([True, True, False])):
    ...     y = layer(x, training=True)
    >>> keras.ops.convert_to_numpy(y)[:2].ravel().round(3).tolist()
    [-1.0, 1.0]
    """
    previous = _example_mask[0]
    _example_mask[0] = mask
    try:
        yield
    finally:
        _example_mask[0] = previous


@keras.saving.register_keras_serializable(package="bsi_keras")
class GhostBatchNormalization(keras.layers.BatchNormalization):
    """Batch normalization over virtual ("ghost") batches.

    Training normalizes each virtual batch of ``virtual_batch_size`` consecutive examples
    with its own statistics. When the batch is not a multiple of the virtual batch size
    (e.g. the last partial batch of an epoch), the batch is cut into as many full virtual
    batches as fit, and the remaining examples form one smaller last virtual batch with its
    own statistics; a batch smaller than the virtual batch size is one virtual batch. Keras 2
    groups examples with a stride (example ``i`` goes to virtual batch
    ``i % (batch // virtual_batch_size)``); this layer uses consecutive examples, like the
    PyTorch ``chunk`` of the reference code, so that under data parallelism each replica's
    shard holds whole virtual batches.

    The moving statistics follow one of two conventions (``moving_statistics``):

    - ``"keras"`` (default): one update per call with the example-weighted mean of the
      virtual batches' means and biased variances, which for whole multiples is the plain
      average of the virtual batches that Keras 2's
      ``BatchNormalization(virtual_batch_size=...)`` uses. The old value keeps the share
      ``momentum`` per call.
    - ``"per_ghost_batch"``: the reference PyTorch studies' convention (bigBatch's
      ``main_gbn.py``, which runs ``nn.BatchNorm2d`` once per chunk): one update per virtual
      batch, in order, each with that virtual batch's mean and *unbiased* variance
      (``n / (n - 1)`` times the biased one, ``n`` its counted elements per channel). The
      ``k`` sequential updates are applied at once in closed form,
      ``r_k = m^k r_0 + sum_i (1 - m) m^(k - i) x_i``, so the old value keeps the share
      ``momentum ** k`` per call. A smaller last virtual batch is one update, as the
      reference's last partial chunk is; a virtual batch whose examples are all masked out
      (padding, which the reference never has) is none; one of a single element per channel,
      which PyTorch refuses, updates with its biased variance, 0. Under JAX data
      parallelism (`keras.distribution.DataParallel`) the layer computes on the global
      batch, so the update is the one-device update; under ``tf.distribute`` each replica
      applies its own share's virtual batches and the replicas' results are averaged, so
      the old value keeps ``momentum ** (k / replicas)``.

    Everything else is `keras.layers.BatchNormalization`: ``axis``, regularizers and
    constraints of ``beta`` and ``gamma``, and ``trainable=False``, which freezes the layer
    *and* runs it in inference mode. A ``mask`` passed to ``call`` leaves the masked-out
    examples out of the statistics of their virtual batch and of the moving statistics, so a
    batch padded with masked-out examples at its end normalizes its real examples, and
    updates the moving statistics, exactly as the unpadded batch would.

    Args:
        virtual_batch_size: examples per virtual batch; ``None`` normalizes over the whole
            batch (ordinary batch normalization).
        momentum: momentum of the moving statistics (Keras convention: the weight of the
            old value, 0.99 by default; PyTorch's 0.1 is Keras's 0.9).
        epsilon: added to the variance for numerical stability.
        center: whether to learn an offset ``beta``.
        scale: whether to learn a scale ``gamma``.
        batch_stats_in_inference: use the statistics of the (virtual) batch also in
            inference, as old Keras's ``BatchNormalization(mode=2)`` did in Keskar et al.'s
            code; the moving statistics are then still tracked but unused.
        moving_statistics: ``"keras"`` (one update per call with the virtual batches' mean
            biased statistics) or ``"per_ghost_batch"`` (one update per virtual batch with
            its unbiased variance, as PyTorch's reference studies); see above.
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer: initializers of the four weights.
        axis: the normalized (channel) axis, any but the batch axis (``1`` after a
            channels-first convolution).
        beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint: as in
            `keras.layers.BatchNormalization`.
        **kwargs: base `keras.layers.Layer` arguments (``name``, ``dtype``, ``trainable``).

    Call arguments:
        inputs: a tensor with at least two dimensions, the batch first.
        training: normalize with the virtual batches' statistics and update the moving ones.
        mask: booleans whose shape is the leading part of the inputs' shape, ``(batch,)``
            or e.g. ``(batch, time)``; false entries count in no statistic.

    Example:

    >>> import numpy as np
    >>> layer = GhostBatchNormalization(virtual_batch_size=2)
    >>> x = np.array([[0.0], [2.0], [10.0], [14.0]], dtype="float32")
    >>> np.round(keras.ops.convert_to_numpy(layer(x, training=True)).ravel(), 2)
    array([-1., 1., -1., 1.], dtype=float32)
    >>> padded = np.concatenate([x[:3], [[99.0]]]).astype("float32")
    >>> out = layer(padded, training=True, mask=np.array([True, True, True, False]))
    >>> np.round(keras.ops.convert_to_numpy(out)[:3].ravel(), 2)  # 10 is alone in its batch
    array([-1., 1., 0.], dtype=float32)
    >>> isinstance(layer, keras.layers.BatchNormalization)
    True

    Per ghost batch, two virtual batches of a call are two updates of the moving mean:

    >>> reference = GhostBatchNormalization(2, momentum=0.5, moving_statistics="per_ghost_batch")
    >>> _ = reference(x, training=True)  # virtual batch means 1, then 12
    >>> keras.ops.convert_to_numpy(reference.moving_mean).tolist()  # (0 / 2 + 1 / 2) / 2 + 6
    [6.25]
    """

    def __init__(
        self,
        virtual_batch_size: int | None = None,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        batch_stats_in_inference: bool = False,
        moving_statistics: str = "keras",
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        axis: int = -1,
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        **kwargs: Any,
    ):
        if virtual_batch_size is not None and (
            isinstance(virtual_batch_size, bool)
            or not isinstance(virtual_batch_size, int)
            or virtual_batch_size < 1
        ):
            raise ValueError(
                f"virtual_batch_size must be a positive integer or None, got {virtual_batch_size!r}"
            )
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if moving_statistics not in MOVING_STATISTICS:
            raise ValueError(
                f"moving_statistics must be one of {', '.join(MOVING_STATISTICS)}, "
                f"got {moving_statistics!r}"
            )
        for option in _UNSUPPORTED:
            if kwargs.pop(option, False):
                raise ValueError(f"GhostBatchNormalization does not support {option}=True")
        super().__init__(
            axis=axis,
            momentum=momentum,
            epsilon=epsilon,
            center=center,
            scale=scale,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            moving_mean_initializer=moving_mean_initializer,
            moving_variance_initializer=moving_variance_initializer,
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
            **kwargs,
        )
        self.virtual_batch_size = virtual_batch_size
        self.batch_stats_in_inference = batch_stats_in_inference
        self.moving_statistics = moving_statistics

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        rank = len(input_shape)
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(
                f"axis must name a non-batch axis of inputs of shape {input_shape}, got {self.axis}"
            )
        if input_shape[self.axis] is None:
            raise ValueError(
                f"GhostBatchNormalization needs a known channel dimension (axis {self.axis}), "
                f"got inputs of shape {input_shape}"
            )
        super().build(input_shape)

    def add_weight(self, *args: Any, **kwargs: Any) -> Any:
        # Under tf.distribute each replica updates the moving statistics (the weights
        # `BatchNormalization.build` declares non-trainable) from its own share of the
        # batch; "mean" averages the replicas' updates into one value.
        if kwargs.get("trainable") is False:
            kwargs["aggregation"] = "mean"
        return super().add_weight(*args, **kwargs)

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        dtype = keras.backend.result_type(inputs.dtype, "float32")
        x = ops.cast(inputs, dtype)
        gamma = None if self.gamma is None else ops.cast(self.gamma, dtype)
        beta = None if self.beta is None else ops.cast(self.beta, dtype)
        # As in BatchNormalization, a frozen layer (trainable=False) runs in inference mode.
        update = bool(training) and self.trainable
        if not (update or self.batch_stats_in_inference):
            outputs = ops.batch_normalization(
                x,
                ops.cast(self.moving_mean, dtype),
                ops.cast(self.moving_variance, dtype),
                axis=self.axis,
                offset=beta,
                scale=gamma,
                epsilon=self.epsilon,
            )
            return ops.cast(outputs, self.compute_dtype)
        if mask is None:
            mask = _example_mask[0]
        outputs, mean, variance, count = self._normalize_virtual_batches(x, mask)
        if update:
            self._update_moving_statistics(mean, variance, count)
        channel_shape = [1] * len(x.shape)
        channel_shape[self.axis] = -1
        if gamma is not None:
            outputs = outputs * ops.reshape(gamma, channel_shape)
        if beta is not None:
            outputs = outputs + ops.reshape(beta, channel_shape)
        return ops.cast(outputs, self.compute_dtype)

    def _normalize_virtual_batches(self, x: Any, mask: Any) -> tuple[Any, Any, Any, Any]:
        """Normalize each virtual batch with its own statistics.

        Returns the output and, per virtual batch (the first axis) and channel (with
        broadcastable dimensions), the mean, the biased variance and the number of counted
        elements.
        """
        batch, features = ops.shape(x)[0], tuple(ops.shape(x)[1:])
        size = self.virtual_batch_size
        one_group = size is None or (isinstance(batch, int) and batch <= size)
        pad = 0 if one_group else (-batch) % size
        # The mask keeps the inputs' rank but not their shape: dimensions of size 1 broadcast.
        keep = None if mask is None else self._expand_mask(mask, x)
        if not isinstance(pad, int) or pad > 0:
            # A partial last virtual batch, or a batch size unknown while tracing
            # (TensorFlow generalizes shapes after a retrace): masked-out zeros complete
            # the last virtual batch, so that one reshape groups the batch.
            if keep is None:
                keep = ops.ones((batch, *[1] * len(features)), "bool")
            x = ops.concatenate([x, ops.zeros((pad, *features), x.dtype)], axis=0)
            keep_rest = tuple(ops.shape(keep)[1:])
            keep = ops.concatenate([keep, ops.zeros((pad, *keep_rest), "bool")], axis=0)
        groups = (1, -1) if one_group else (-1, size)
        grouped = ops.reshape(x, (*groups, *features))
        channel = self.axis % len(x.shape) + 1
        axes = [i for i in range(1, len(grouped.shape)) if i != channel]
        if keep is None:
            mean, variance = ops.moments(grouped, axes=axes, keepdims=True)
            count = ops.ones_like(mean)
            for i in axes:
                count = count * ops.cast(ops.shape(grouped)[i], x.dtype)
        else:
            keep = ops.reshape(keep, (*groups, *ops.shape(keep)[1:]))
            count = ops.sum(ops.cast(keep, x.dtype), axis=axes, keepdims=True)
            for i in axes:  # a mask element stands for every input element it broadcasts to
                if keep.shape[i] == 1:
                    count = count * ops.cast(ops.shape(grouped)[i], x.dtype)
            # A virtual batch without a counted element gets zero statistics of zero
            # weight instead of 0 / 0.
            denominator = ops.maximum(count, 1.0)
            mean = ops.sum(ops.where(keep, grouped, 0.0), axis=axes, keepdims=True) / denominator
            squares = ops.where(keep, ops.square(grouped - mean), 0.0)
            variance = ops.sum(squares, axis=axes, keepdims=True) / denominator
        outputs = (grouped - mean) * ops.rsqrt(variance + self.epsilon)
        outputs = ops.reshape(outputs, (-1, *features))
        if not isinstance(pad, int) or pad > 0:
            outputs = outputs[:batch]
        return outputs, mean, variance, count

    def _expand_mask(self, mask: Any, x: Any) -> Any:
        """The mask as booleans of the inputs' rank (its dimensions lead, ones follow)."""
        rank = len(mask.shape)
        if not 1 <= rank < len(x.shape):
            raise ValueError(
                f"mask must have between 1 and {len(x.shape) - 1} dimensions, the leading ones "
                f"of the inputs' shape {x.shape}; got shape {mask.shape}"
            )
        trailing = [1] * (len(x.shape) - rank)
        return ops.reshape(ops.cast(mask, "bool"), (*ops.shape(mask), *trailing))

    def _update_moving_statistics(self, mean: Any, variance: Any, count: Any) -> None:
        """Move the moving statistics by the virtual batches' (`_normalize_virtual_batches`)."""
        m = self.momentum
        total = ops.sum(count, axis=0)
        if self.moving_statistics == "keras":
            # One update with the example-weighted mean of the virtual batches' statistics.
            share = count / ops.maximum(total, 1.0)
            old_share = ops.full_like(total, m)
            weights = share * (1.0 - m)
        else:
            # One update per virtual batch that counts an element, in order: the i-th of k
            # keeps m^(k - i) of its (1 - m) share, the old value m^k.
            counts = ops.cast(count > 0, count.dtype)
            later = ops.sum(counts, axis=0) - ops.cumsum(counts, axis=0)
            old_share = ops.power(ops.cast(m, count.dtype), ops.sum(counts, axis=0))
            weights = counts * (1.0 - m) * ops.power(ops.cast(m, count.dtype), later)
            variance = variance * count / ops.maximum(count - 1.0, 1.0)  # unbiased
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
            old = ops.convert_to_tensor(moving)
            step = _flat(ops.sum(weights * batch, axis=0))
            new = ops.cast(_flat(old_share), old.dtype) * old + ops.cast(step, old.dtype)
            # A call whose examples are all masked out (a batch of padding) changes nothing.
            moving.assign(ops.where(_flat(total) > 0, new, old))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for option in _UNSAVED:
            config.pop(option, None)
        config.update(
            {
                "virtual_batch_size": self.virtual_batch_size,
                "batch_stats_in_inference": self.batch_stats_in_inference,
                "moving_statistics": self.moving_statistics,
            }
        )
        return config


def _flat(statistic: Any) -> Any:
    """Per-channel statistics kept with broadcastable dimensions, as a vector."""
    return ops.reshape(statistic, (-1,))
