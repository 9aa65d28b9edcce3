"""The gradient noise scale estimator against the closed form of linear least squares."""

import math

import numpy as np
import pytest

from bsi_keras.analysis.noise_scale import least_squares_truth
from bsi_keras.train_step.core import NoiseScaleOptions
from bsi_keras.train_step.noise_scale import (
    corrected,
    effective_count,
    ema_update,
    epoch_update,
    estimate,
    ratio_standard_error,
)

DIM, NOISE = 20, 0.5


def batch_gradient(rng, d, batch):
    """Mean per-example gradient of (x.w - y)^2 / 2 over a fresh Gaussian batch."""
    x = rng.normal(size=(batch, DIM))
    e = rng.normal(0.0, NOISE, size=batch)
    return (x * (x @ d - e)[:, None]).mean(axis=0)


def test_estimates_match_the_closed_form_on_average():
    rng = np.random.default_rng(0)
    d = rng.normal(size=DIM) * 0.3  # w - w*
    grad_sq_true, trace_true = least_squares_truth(d, np.zeros(DIM), NOISE, DIM)
    small, big, draws = 8, 64, 4000
    estimates = np.array(
        [
            estimate(
                float(np.sum(batch_gradient(rng, d, small) ** 2)),
                float(np.sum(batch_gradient(rng, d, big) ** 2)),
                small,
                big,
            )
            for _ in range(draws)
        ]
    )
    mean, sem = estimates.mean(axis=0), estimates.std(axis=0) / np.sqrt(draws)
    # Unbiased: the mean over draws lies within four standard errors of the truth.
    assert abs(mean[0] - grad_sq_true) < 4 * sem[0]
    assert abs(mean[1] - trace_true) < 4 * sem[1]


def test_ema_of_numerator_and_denominator():
    averages = (0.0, 0.0, 0.0, 0.0)
    averages = ema_update(averages, 1.0, 100.0, decay=0.5)
    grad_sq, trace, b_simple = corrected(averages)
    assert (grad_sq, trace, b_simple) == pytest.approx((1.0, 100.0, 100.0))
    averages = ema_update(averages, 4.0, 100.0, decay=0.5)
    grad_sq, trace, b_simple = corrected(averages)
    # Bias-corrected weights 1/3 and 2/3 on the two measurements.
    assert grad_sq == pytest.approx(1.0 / 3 + 2 * 4.0 / 3)
    assert b_simple == pytest.approx(100.0 / 3.0)
    assert b_simple != pytest.approx(np.mean([100.0 / 1.0, 100.0 / 4.0]))  # not a ratio mean


def test_bad_batch_sizes_are_refused():
    with pytest.raises(ValueError, match="0 < small < big"):
        estimate(1.0, 1.0, 10, 10)
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(corrected((np.float64(0),) * 4)[2])
    with pytest.raises(ValueError, match="window_examples"):
        NoiseScaleOptions(window_examples=0.0)


def old_weight(options: NoiseScaleOptions, batch: int, examples: int, stream: int) -> float:
    """The share of the moving average's weight on measurements older than ``examples``.

    A stream of ``stream`` examples measured every ``options.every`` updates of ``batch``
    examples, each measurement 1 if it is older than ``examples``, else 0.
    """
    measurements = stream // (options.every * batch)
    decay = float(options.decay(batch))
    averages = (0.0,) * 4
    for k in range(measurements):
        age = (measurements - 1 - k) * options.every * batch  # examples since it was made
        averages = ema_update(averages, 1.0, float(age >= examples), decay)
    return corrected(averages)[1]


@pytest.mark.parametrize("every", [1, 4])
def test_window_spans_the_same_examples_at_batch_100_and_2500(every):
    """The averages weigh the same span of training at any batch size and any ``every``.

    With the former decay of 0.95 per measurement, measurements older than 10,000 examples
    kept 0.95^100 = 0.6 % of the weight at batch 100 but 0.95^4 = 81 % at batch 2,500.
    """
    options = NoiseScaleOptions(every=every, small_batch=25, window_examples=10_000)
    shares = [old_weight(options, batch, 10_000, 400_000) for batch in (100, 2500)]
    assert shares == pytest.approx([math.exp(-1.0)] * 2, rel=1e-4)
    # Twice the window: 1/e^2 at either batch.
    shares = [old_weight(options, batch, 20_000, 400_000) for batch in (100, 2500)]
    assert shares == pytest.approx([math.exp(-2.0)] * 2, rel=1e-4)


def test_effective_count_of_a_constant_decay():
    averages = (0.0,) * 4
    for _ in range(2000):
        averages = ema_update(averages, 1.0, 1.0, decay=0.9)
    assert effective_count(averages) == pytest.approx((1 + 0.9) / (1 - 0.9))


def test_standard_error_of_the_ratio_matches_its_spread():
    """Over many epochs of measurements, the delta-method error is the ratio's spread."""
    rng = np.random.default_rng(3)
    d = rng.normal(size=DIM) * 0.3
    epochs, measurements, small, big = 400, 30, 8, 32
    x = rng.normal(size=(epochs, measurements, big, DIM))
    e = rng.normal(0.0, NOISE, size=(epochs, measurements, big))
    per_example = x * (x @ d - e)[..., None]
    chunks = per_example.reshape(epochs, measurements, big // small, small, DIM).mean(axis=3)
    small_sq = (chunks**2).sum(axis=-1).mean(axis=-1)  # as the train step's chunks
    big_sq = (per_example.mean(axis=2) ** 2).sum(axis=-1)
    grad_sq, trace = estimate(small_sq, big_sq, small, big)
    ratios, errors = [], []
    for g, t in zip(grad_sq, trace):
        moments = (0.0,) * 6
        for pair in zip(g, t):
            moments = epoch_update(moments, *pair)
        assert moments[1:3] == pytest.approx((g.mean(), t.mean()))
        ratios.append(moments[2] / moments[1])
        errors.append(ratio_standard_error(moments, moments[1], moments[2], measurements))
    assert np.median(errors) == pytest.approx(np.std(ratios), rel=0.2)


def linear_model(dim: int):
    import keras

    model = keras.Sequential([keras.Input((dim,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(optimizer=keras.optimizers.SGD(1e-12), loss="mean_squared_error")
    return model


LOGGED = ("gns_grad_sq", "gns_trace", "gns_b_simple", "gns_b_simple_se", "gns_b_simple_raw")


def measure(model, x, y, batch, small, window, epochs=1):
    """The logs of a fit measuring every update: the last epoch's, or all with ``epochs``."""
    from bsi_keras import fit, schedules
    from bsi_keras.train_step import StepOptions

    noise = NoiseScaleOptions(every=1, small_batch=small, window_examples=window)
    history = fit(
        model,
        x,
        y,
        schedule=schedules.constant(epochs, batch, 1e-12),
        verbose=0,
        seed=0,
        step_options=StepOptions(noise_scale=noise),
    )
    if epochs > 1:
        return {k: history.history[k] for k in LOGGED}
    return {k: history.history[k][-1] for k in LOGGED}


def test_train_step_measures_one_batch_exactly():
    """One batch, one measurement: the logged estimates are those of the hand computation."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    model = linear_model(4)
    w = np.asarray(model.get_weights()[0])
    logged = measure(model, x, y, batch=32, small=8, window=300.0)
    order = np.random.default_rng([0, 0]).permutation(32)  # the driver's epoch-0 order
    x, y = x[order], y[order]
    # Keras's MSE is mean((x.w - y)^2): its gradient over a chunk is 2 x^T (x w - y) / n.
    chunks = [2 * c.T @ (c @ w - t) / len(c) for c, t in zip(np.split(x, 4), np.split(y, 4))]
    small_sq = np.mean([float(np.sum(g**2)) for g in chunks])
    big_sq = float(np.sum(np.mean(chunks, axis=0) ** 2))
    grad_sq, trace = estimate(small_sq, big_sq, 8, 32)
    assert logged["gns_grad_sq"] == pytest.approx(grad_sq, rel=1e-4)
    assert logged["gns_trace"] == pytest.approx(trace, rel=1e-4)
    assert logged["gns_b_simple"] == pytest.approx(trace / grad_sq, rel=1e-4)
    # One measurement: the epoch's ratio is its own, and no spread is known yet.
    assert logged["gns_b_simple_raw"] == pytest.approx(trace / grad_sq, rel=1e-4)
    assert math.isnan(logged["gns_b_simple_se"])


def test_epoch_moments_start_afresh_every_epoch():
    """Two epochs of one batch: each epoch's raw value and error see its measurement only."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    logged = measure(linear_model(4), x, y, batch=32, small=8, window=300.0, epochs=2)
    assert all(math.isnan(se) for se in logged["gns_b_simple_se"])  # one measurement each
    # The second epoch's raw value is its own measurement; the average mixes in the first.
    assert logged["gns_b_simple_raw"][1] != pytest.approx(logged["gns_b_simple"][1], rel=1e-3)


def test_train_step_window_is_in_examples_at_batch_100_and_2500():
    """After one epoch of N examples the averages' total weight is 1 - exp(-N / window).

    The weight is ``1 - prod(decays)``: the same at any batch size only if each decay is
    ``exp(-B / window)``; the former 0.95 per measurement gave 1 - 0.95^50 = 0.92 at batch
    100 and 1 - 0.95^2 = 0.10 at batch 2,500.
    """
    rng = np.random.default_rng(5)
    n, dim, window = 5000, 4, 2500.0
    x = rng.normal(size=(n, dim)).astype("float32")
    y = (x @ rng.normal(size=(dim, 1)) + rng.normal(0, NOISE, size=(n, 1))).astype("float32")
    for batch, small in ((100, 20), (2500, 500)):
        model = linear_model(dim)
        logged = measure(model, x, y, batch=batch, small=small, window=window)
        weight = next(v for v in model.optimizer.variables if v.name == "gns_weight")
        assert float(weight.numpy()) == pytest.approx(1 - math.exp(-n / window), rel=1e-4)
        assert logged["gns_b_simple_se"] > 0 and math.isfinite(logged["gns_b_simple_raw"])


def test_train_step_averages_match_the_population_values():
    """Over many batches of a least-squares problem, the averages find |G|^2 and tr(Sigma)."""
    rng = np.random.default_rng(2)
    dim, n = 10, 16_384
    x = rng.normal(size=(n, dim)).astype("float32")
    true_w = rng.normal(size=(dim, 1)).astype("float32")
    y = (x @ true_w + rng.normal(0, NOISE, size=(n, 1))).astype("float32")
    model = linear_model(dim)
    w = np.asarray(model.get_weights()[0])
    per_example = 2 * x * (x @ w - y)  # gradients of (x.w - y)^2
    grad_sq_true = float(np.sum(per_example.mean(axis=0) ** 2))
    trace_true = float(np.sum(per_example.var(axis=0)))
    # 256 measurements, the window four epochs: nearly a plain mean over the epoch.
    logged = measure(model, x, y, batch=64, small=8, window=64_000.0)
    assert logged["gns_trace"] == pytest.approx(trace_true, rel=0.1)
    assert logged["gns_grad_sq"] == pytest.approx(grad_sq_true, rel=0.25)
    # The standard error covers the distance to the truth (and is not wildly loose).
    error = abs(logged["gns_b_simple"] - trace_true / grad_sq_true)
    assert 0 < logged["gns_b_simple_se"] < 0.5 * logged["gns_b_simple"]
    assert error < 4 * logged["gns_b_simple_se"]
    assert logged["gns_b_simple_raw"] == pytest.approx(logged["gns_b_simple"], rel=0.05)
