"""Ghost batch normalization for Keras 3, on every backend.

Keras 3's `BatchNormalization` dropped the ``virtual_batch_size`` argument of Keras 2.
`GhostBatchNormalization` brings it back (Hoffer et al. 2017): in training, a batch is cut
into consecutive *virtual* batches that are each normalized with their own mean and
variance; in inference the moving statistics are used, as in plain batch normalization.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bsi_keras")
class GhostBatchNormalization(keras.layers.Layer):
    """Batch normalization over virtual ("ghost") batches.

    Training normalizes each virtual batch of ``virtual_batch_size`` consecutive examples
    with its own statistics. When the batch is not a multiple of the virtual batch size
    (e.g. the last partial batch of an epoch), the batch is cut into as many full virtual
    batches as fit, and the remaining examples form one smaller last virtual batch with its
    own statistics; a batch smaller than the virtual batch size is one virtual batch. The
    moving statistics are updated once per call with the example-weighted mean of the
    virtual batches' means and (biased) variances, which for whole multiples is the plain
    average of the virtual batches that Keras 2's ``BatchNormalization(virtual_batch_size=...)``
    uses. Keras 2 groups examples with a stride (example ``i`` goes to virtual batch
    ``i % (batch // virtual_batch_size)``); this layer uses consecutive examples, like the
    PyTorch ``chunk`` of the reference code, so that under data parallelism each replica's
    shard holds whole virtual batches.

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
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer: initializers of the four weights.
        **kwargs: base `keras.layers.Layer` arguments (``name``, ``dtype``, ...).

    The normalized axis is the last one (channels last).

    Example:

    >>> import numpy as np
    >>> layer = GhostBatchNormalization(virtual_batch_size=2)
    >>> x = np.array([[0.0], [2.0], [10.0], [14.0]], dtype="float32")
    >>> np.round(keras.ops.convert_to_numpy(layer(x, training=True)).ravel(), 2)
    array([-1., 1., -1., 1.], dtype=float32)
    """

    def __init__(
        self,
        virtual_batch_size: int | None = None,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        batch_stats_in_inference: bool = False,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
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
        self.virtual_batch_size = virtual_batch_size
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.batch_stats_in_inference = batch_stats_in_inference
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = keras.initializers.get(moving_variance_initializer)
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("GhostBatchNormalization needs a known last (channel) dimension")
        shape = (channels,)
        self.gamma = (
            self.add_weight(shape=shape, initializer=self.gamma_initializer, name="gamma")
            if self.scale
            else None
        )
        self.beta = (
            self.add_weight(shape=shape, initializer=self.beta_initializer, name="beta")
            if self.center
            else None
        )
        # Under tf.distribute each replica updates the statistics from its own share of
        # the batch; "mean" averages the replicas' updates into one value.
        self.moving_mean = self.add_weight(
            shape=shape,
            initializer=self.moving_mean_initializer,
            trainable=False,
            name="moving_mean",
            autocast=False,
            aggregation="mean",
        )
        self.moving_variance = self.add_weight(
            shape=shape,
            initializer=self.moving_variance_initializer,
            trainable=False,
            name="moving_variance",
            autocast=False,
            aggregation="mean",
        )

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        x = ops.cast(inputs, "float32")
        if training or self.batch_stats_in_inference:
            normalized, mean, variance = self._normalize_virtual_batches(x)
            if training:
                self._update_moving_statistics(mean, variance)
        else:
            normalized = (x - self.moving_mean) * ops.rsqrt(self.moving_variance + self.epsilon)
        if self.gamma is not None:
            normalized = normalized * ops.cast(self.gamma, "float32")
        if self.beta is not None:
            normalized = normalized + ops.cast(self.beta, "float32")
        return ops.cast(normalized, self.compute_dtype)

    def _normalize_virtual_batches(self, x: Any) -> tuple[Any, Any, Any]:
        """Normalize each virtual batch; return the output and the weighted mean stats."""
        batch = ops.shape(x)[0]
        size = self.virtual_batch_size
        if size is None or (isinstance(batch, int) and batch <= size):
            return self._normalize_groups(x, 1)
        if isinstance(batch, int) and batch % size == 0:
            return self._normalize_groups(x, batch // size)
        # A partial last virtual batch, or a batch size unknown while tracing (TensorFlow
        # generalizes shapes after a retrace): full virtual batches, then the remainder.
        full = (batch // size) * size
        out_full, mean_full, var_full = self._normalize_groups(x[:full], -1)
        out_rest, mean_rest, var_rest = self._normalize_groups(x[full:], 1)
        # While tracing with an unknown batch size either part may be empty; its
        # statistics are then NaN and carry zero weight.
        has_full, has_rest = full > 0, batch > full
        mean_full = ops.where(has_full, mean_full, 0.0)
        var_full = ops.where(has_full, var_full, 0.0)
        mean_rest = ops.where(has_rest, mean_rest, 0.0)
        var_rest = ops.where(has_rest, var_rest, 0.0)
        weight_full = ops.cast(full, "float32") / ops.cast(batch, "float32")
        mean = weight_full * mean_full + (1.0 - weight_full) * mean_rest
        variance = weight_full * var_full + (1.0 - weight_full) * var_rest
        return ops.concatenate([out_full, out_rest], axis=0), mean, variance

    def _normalize_groups(self, x: Any, groups: int) -> tuple[Any, Any, Any]:
        """Split ``x`` into ``groups`` equal consecutive groups (-1: of the virtual size)."""
        feature_shape = tuple(x.shape[1:])
        per_group = self.virtual_batch_size if groups == -1 else -1
        grouped = ops.reshape(x, (groups if groups != -1 else -1, per_group, *feature_shape))
        axes = tuple(range(1, len(feature_shape) + 1))
        mean, variance = ops.moments(grouped, axes=axes, keepdims=True)
        normalized = (grouped - mean) * ops.rsqrt(variance + self.epsilon)
        normalized = ops.reshape(normalized, (-1, *feature_shape))
        channels = feature_shape[-1]
        mean = ops.mean(ops.reshape(mean, (-1, channels)), axis=0)
        variance = ops.mean(ops.reshape(variance, (-1, channels)), axis=0)
        return normalized, mean, variance

    def _update_moving_statistics(self, mean: Any, variance: Any) -> None:
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "virtual_batch_size": self.virtual_batch_size,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "center": self.center,
                "scale": self.scale,
                "batch_stats_in_inference": self.batch_stats_in_inference,
                "beta_initializer": keras.initializers.serialize(self.beta_initializer),
                "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": keras.initializers.serialize(
                    self.moving_mean_initializer
                ),
                "moving_variance_initializer": keras.initializers.serialize(
                    self.moving_variance_initializer
                ),
            }
        )
        return config
