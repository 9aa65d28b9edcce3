"""The gradient noise scale of McCandlish et al. 2018, from gradient norms at two batch sizes.

For a batch of ``B`` examples the expected squared norm of the mean gradient is
``E|G_B|^2 = |G|^2 + tr(Sigma) / B``, where ``G`` is the full-data gradient and ``Sigma``
the per-example gradient covariance. Two batch sizes ``b < B`` measured at the same weights
give the unbiased estimates of their Appendix A:

    |G|^2     ~ (B |G_B|^2 - b |G_b|^2) / (B - b)
    tr(Sigma) ~ (|G_b|^2 - |G_B|^2) / (1/b - 1/B)

and the simple noise scale ``B_simple = tr(Sigma) / |G|^2``, which predicts the largest
useful batch size. Each estimate is noisy (``|G|^2`` can even come out negative), so the
numerator and the denominator are averaged separately over measurements with a
bias-corrected exponential moving average, and the ratio is taken last.

The average's window is a number of training examples, not of measurements: a measurement
``e`` examples after the one before (``every`` updates of ``B`` examples) decays the older
ones by ``exp(-e / window)``, so runs at batch 100 and 2,500 average over the same span of
training, and the averaged value carries about the same information at any batch size (a
measurement at batch ``B`` averages ``B / b`` small batches). Beside it, the moments of the
epoch's raw measurements give the epoch's own ratio and the standard error of both
(`epoch_update`, `ratio_standard_error`).

`NoiseScaleOptions` asks the train step for the measurement; `noise_scale_logs` is the
step's part, folding each measurement into the state `StepState` keeps between steps.

Smith et al.'s SGD noise scale ``lr N / (B (1 - momentum))`` is a different quantity, a
property of the optimizer's settings: see `bsi_keras.schedules.noise_scale`. The closed
form these estimates are tested against is `bsi_keras.analysis.noise_scale`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keras import ops

if TYPE_CHECKING:
    from bsi_keras.train_step.core import StepGradients


@dataclass(frozen=True)
class NoiseScaleOptions:
    """Measure the gradient noise scale in the train step (McCandlish et al. 2018).

    Every ``every`` updates, the logical batch of ``B`` examples is run as chunks of
    ``small_batch`` examples: the chunks' squared gradient norms give ``|G_b|^2``, their
    average gradient (which is also the update) gives ``|G_B|^2``, and the two give
    unbiased estimates of ``|G|^2`` and ``tr(Sigma)`` (`estimate`), folded into
    bias-corrected moving averages whose window is ``window_examples`` training examples at
    any batch size.

    The logs carry, after each update (so an epoch's log holds its last update's):

    - ``gns_grad_sq``, ``gns_trace``, ``gns_b_simple``: the moving averages and their
      ratio, the value the adaptive schedule acts on;
    - ``gns_b_simple_se``: that ratio's standard error, from the epoch's spread of raw
      measurements and the average's effective number of measurements
      (`ratio_standard_error`; NaN before the epoch's second measurement);
    - ``gns_b_simple_raw``: the ratio of the epoch's mean ``tr(Sigma)`` and mean
      ``|G|^2`` estimates (means of the two estimates, not of per-measurement ratios,
      which a near-zero ``|G|^2`` would wreck), over every measurement of the epoch so far.

    Args:
        every: measure every this many updates (1: every update).
        small_batch: the small batch ``b`` (a multiple of the ghost batch keeps ghost
            batches whole; at most ``max_physical_batch`` where that is set).
        window_examples: the moving averages' window in training examples: a
            measurement made ``every * B`` examples after the one before decays the older
            ones by ``exp(-every * B / window_examples)``, so measurements older than
            ``window_examples`` examples carry ``1/e`` of the weight at any batch size.
            The default, 2,000, is the window of the former fixed decay of 0.95 per
            measurement (about ``1 / (1 - 0.95) = 20`` measurements) at batch 100 measured
            every update, the adaptive schedule's setting.

    Example:

    >>> options = NoiseScaleOptions(every=1, small_batch=25)
    >>> [round(float(options.decay(batch)), 4) for batch in (100, 2500)]
    [0.9512, 0.2865]
    """

    every: int = 1
    small_batch: int = 32
    window_examples: float = 2000.0

    def __post_init__(self) -> None:
        if self.every < 1 or self.small_batch < 1:
            raise ValueError("noise scale: every and small_batch must be >= 1")
        if not (math.isfinite(self.window_examples) and self.window_examples > 0):
            raise ValueError(
                f"noise scale: window_examples must be a positive number, got "
                f"{self.window_examples}"
            )

    def decay(self, batch_size: Any) -> Any:
        """The moving averages' decay at a measurement of a batch of ``batch_size``.

        ``exp(-every * batch_size / window_examples)``: the older measurements' weight
        falls with the training examples seen since the last measurement. ``batch_size``
        may be a traced tensor (the step's batch).
        """
        return ops.exp(-self.every * ops.cast(batch_size, "float32") / self.window_examples)


# The noise scale's state between steps (`StepState` keeps it as optimizer variables): the
# moving averages (`ema_update`), then the epoch's moments (`epoch_update`), reset at the
# start of every epoch.
NOISE_AVERAGES = ("gns_grad_sq_sum", "gns_trace_sum", "gns_weight", "gns_weight_sq")
NOISE_EPOCH_MOMENTS = (
    "gns_epoch_count",
    "gns_epoch_grad_sq_mean",
    "gns_epoch_trace_mean",
    "gns_epoch_grad_sq_m2",
    "gns_epoch_trace_m2",
    "gns_epoch_cross_m2",
)


def noise_scale_logs(
    options: NoiseScaleOptions, result: StepGradients, state: tuple[Any, ...]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Fold a step's measurement (if it made one) into the noise scale's state.

    Args:
        options: the noise-scale options.
        result: the step's gradients with ``small_sq`` and ``measured``.
        state: the values named by ``NOISE_AVERAGES + NOISE_EPOCH_MOMENTS`` before the step.

    Returns:
        The new state and the logs (`NoiseScaleOptions` lists them).
    """
    split = len(NOISE_AVERAGES)
    averages, moments = tuple(state[:split]), tuple(state[split:])
    big = ops.cast(ops.shape(result.y_pred)[0], "float32")
    big_sq = sum(ops.sum(ops.square(g)) for g in result.grads)
    grad_sq, trace = estimate(result.small_sq, big_sq, result.small_size, big)
    updated = (
        *ema_update(averages, grad_sq, trace, options.decay(big)),
        *epoch_update(moments, grad_sq, trace),
    )
    state = tuple(ops.where(result.measured > 0.5, new, old) for new, old in zip(updated, state))
    averages, moments = state[:split], state[split:]
    grad_sq, trace, b_simple = corrected(averages)
    count, grad_mean, trace_mean = moments[:3]
    logs = {
        "gns_grad_sq": grad_sq,
        "gns_trace": trace,
        "gns_b_simple": b_simple,
        # The epoch's spread needs two measurements; before that the error is unknown.
        "gns_b_simple_se": ops.where(
            count > 1.5,
            ratio_standard_error(moments, grad_sq, trace, effective_count(averages)),
            math.nan,
        ),
        # 0 / 0 (NaN) before the epoch's first measurement, as the averages before theirs.
        "gns_b_simple_raw": trace_mean / grad_mean,
    }
    return state, logs


def estimate(small_sq: Any, big_sq: Any, small: Any, big: Any) -> tuple[Any, Any]:
    """One measurement's unbiased ``(|G|^2, tr(Sigma))`` from two squared gradient norms.

    Plain arithmetic, so the arguments may be numbers, numpy arrays or backend tensors (the
    train step calls it inside the compiled step).

    Args:
        small_sq: ``|G_b|^2``, the squared norm of a batch-``small`` gradient (or the mean of
            several such squared norms at the same weights).
        big_sq: ``|G_B|^2``, the squared norm of the batch-``big`` gradient.
        small: ``b``.
        big: ``B`` (> ``b``).

    Returns:
        The estimates of ``|G|^2`` and ``tr(Sigma)``.

    Example:

    >>> # |G|^2 = 1 and tr(Sigma) = 100 give E|G_10|^2 = 11 and E|G_100|^2 = 2.
    >>> [round(v, 9) for v in estimate(11.0, 2.0, 10, 100)]
    [1.0, 100.0]
    """
    if isinstance(small, (int, float)) and isinstance(big, (int, float)) and not 0 < small < big:
        raise ValueError(f"need 0 < small < big, got {small} and {big}")
    grad_sq = (big * big_sq - small * small_sq) / (big - small)
    trace = (small_sq - big_sq) / (1.0 / small - 1.0 / big)
    return grad_sq, trace


def ema_update(
    averages: tuple[Any, Any, Any, Any], grad_sq: Any, trace: Any, decay: Any
) -> tuple[Any, Any, Any, Any]:
    """Fold one measurement into the moving averages ``(|G|^2 sum, tr sum, weight, weight^2)``.

    The numerator and the denominator of ``B_simple`` are averaged separately (never the
    ratio). ``weight`` is the total weight the measurements carry, ``1 - prod(decays)``
    after a zero start: dividing by it (`corrected`) removes the bias towards zero, also
    when the decay changes from one measurement to the next. ``weight^2`` (the sum of the
    squared weights) gives the average's effective number of measurements.

    Args:
        averages: the four sums before the measurement (zeros before the first).
        grad_sq, trace: the measurement's estimates (`estimate`).
        decay: how much the older measurements keep, in (0, 1): ``exp(-e / window)`` for
            a measurement ``e`` examples after the one before.

    Example:

    >>> averages = ema_update((0.0, 0.0, 0.0, 0.0), 2.0, 100.0, decay=0.5)
    >>> averages
    (1.0, 50.0, 0.5, 0.25)
    """
    grad_sum, trace_sum, weight, weight_sq = averages
    new = 1 - decay  # the new measurement's weight
    return (
        decay * grad_sum + new * grad_sq,
        decay * trace_sum + new * trace,
        decay * weight + new,
        decay * decay * weight_sq + new * new,
    )


def corrected(averages: tuple[Any, Any, Any, Any]) -> tuple[Any, Any, Any]:
    """Bias-corrected ``(|G|^2, tr(Sigma), B_simple)`` from `ema_update`'s averages.

    Before any measurement (weight 0) everything is NaN.

    Example:

    >>> corrected(ema_update((0.0, 0.0, 0.0, 0.0), 2.0, 100.0, decay=0.5))
    (2.0, 100.0, 50.0)
    """
    grad_sum, trace_sum, weight, _ = averages
    grad_sq, trace = grad_sum / weight, trace_sum / weight
    return grad_sq, trace, trace / grad_sq


def effective_count(averages: tuple[Any, Any, Any, Any]) -> Any:
    """The moving average's effective number of measurements, ``weight^2 / sum(w_i^2)``.

    The variance of a weighted mean of ``n`` independent measurements of variance
    ``s^2`` is ``s^2 / effective_count``; for a long run at a constant decay ``d`` it
    tends to ``(1 + d) / (1 - d)``.

    Example:

    >>> effective_count(ema_update((0.0, 0.0, 0.0, 0.0), 2.0, 100.0, decay=0.5))
    1.0
    """
    _, _, weight, weight_sq = averages
    return weight * weight / weight_sq


def epoch_update(
    moments: tuple[Any, Any, Any, Any, Any, Any], grad_sq: Any, trace: Any
) -> tuple[Any, Any, Any, Any, Any, Any]:
    """Fold one measurement into the epoch's moments, by Welford's update.

    The moments are ``(count, |G|^2 mean, tr mean, |G|^2 M2, tr M2, cross M2)``, the M2s
    being sums of squared (and cross) deviations from the running means; Welford's form
    keeps them accurate in float32, where ``sum(x^2) - n mean^2`` would cancel.

    Example:

    >>> moments = (0.0,) * 6
    >>> for g, t in [(1.0, 10.0), (3.0, 50.0)]:
    ...     moments = epoch_update(moments, g, t)
    >>> moments
    (2.0, 2.0, 30.0, 2.0, 800.0, 40.0)
    """
    count, grad_mean, trace_mean, grad_m2, trace_m2, cross_m2 = moments
    count = count + 1
    grad_delta, trace_delta = grad_sq - grad_mean, trace - trace_mean
    grad_mean = grad_mean + grad_delta / count
    trace_mean = trace_mean + trace_delta / count
    return (
        count,
        grad_mean,
        trace_mean,
        grad_m2 + grad_delta * (grad_sq - grad_mean),
        trace_m2 + trace_delta * (trace - trace_mean),
        cross_m2 + grad_delta * (trace - trace_mean),
    )


def ratio_standard_error(
    moments: tuple[Any, Any, Any, Any, Any, Any], grad_sq: Any, trace: Any, count: Any
) -> Any:
    """The standard error of ``trace / grad_sq``, averages of ``count`` measurements.

    By the delta method: with the per-measurement (co)variances ``V`` of the epoch's raw
    measurements (`epoch_update`; sample variances, which need two measurements) and the
    ratio ``R``, ``se = sqrt((V_tt - 2 R V_gt + R^2 V_gg) / count) / |grad_sq|``. Pass the
    epoch's means and count for the epoch's own ratio, or the moving average's values
    and `effective_count` for the averaged one. Measurements are taken as independent
    (disjoint batches), and the drift of the true values within the epoch counts as
    noise, so the error is if anything overstated.

    Example:

    >>> moments = (0.0,) * 6
    >>> for g, t in [(1.0, 10.0), (3.0, 50.0)]:
    ...     moments = epoch_update(moments, g, t)
    >>> # Means 2 and 30, ratio 15; variances 2 and 800, covariance 40.
    >>> round(ratio_standard_error(moments, 2.0, 30.0, 2.0), 6)  # sqrt(50 / 2) / 2
    2.5
    """
    n, _, _, grad_m2, trace_m2, cross_m2 = moments
    ratio = trace / grad_sq
    variance = (trace_m2 - 2 * ratio * cross_m2 + ratio * ratio * grad_m2) / (n - 1)
    # The delta method's variance of a ratio is a quadratic form of a covariance matrix and
    # never negative; float rounding can make it slightly so. max(v, 0) in plain arithmetic
    # (NaN stays NaN), as the arguments may be numbers or tensors of any backend.
    variance = (variance + abs(variance)) / 2
    return (variance / count) ** 0.5 / abs(grad_sq)
