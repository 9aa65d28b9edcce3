"""The gradient noise scale estimator against the closed form of linear least squares."""

import numpy as np
import pytest

from bsi_keras.analysis.noise_scale import least_squares_truth
from bsi_keras.train_step.noise_scale import corrected, ema_update, estimate

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
    averages = (0.0, 0.0, 0.0)
    averages = ema_update(averages, 1.0, 100.0, decay=0.5)
    grad_sq, trace, b_simple = corrected(averages, decay=0.5)
    assert (grad_sq, trace, b_simple) == pytest.approx((1.0, 100.0, 100.0))
    averages = ema_update(averages, 4.0, 100.0, decay=0.5)
    grad_sq, trace, b_simple = corrected(averages, decay=0.5)
    # Bias-corrected weights 1/3 and 2/3 on the two measurements.
    assert grad_sq == pytest.approx(1.0 / 3 + 2 * 4.0 / 3)
    assert b_simple == pytest.approx(100.0 / 3.0)
    assert b_simple != pytest.approx(np.mean([100.0 / 1.0, 100.0 / 4.0]))  # not a ratio mean


def test_bad_batch_sizes_are_refused():
    with pytest.raises(ValueError, match="0 < small < big"):
        estimate(1.0, 1.0, 10, 10)
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(corrected((np.float64(0), np.float64(0), 0), decay=0.9)[2])


def linear_model(dim: int):
    import keras

    model = keras.Sequential([keras.Input((dim,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(optimizer=keras.optimizers.SGD(1e-12), loss="mean_squared_error")
    return model


def measure(model, x, y, batch, small, decay):
    from bsi_keras import fit, schedules
    from bsi_keras.train_step import StepOptions
    from bsi_keras.train_step.core import NoiseScaleOptions

    options = StepOptions(noise_scale=NoiseScaleOptions(every=1, small_batch=small, decay=decay))
    history = fit(
        model,
        x,
        y,
        schedule=schedules.constant(1, batch, 1e-12),
        verbose=0,
        seed=0,
        step_options=options,
    )
    return {k: history.history[k][-1] for k in ("gns_grad_sq", "gns_trace", "gns_b_simple")}


def test_train_step_measures_one_batch_exactly():
    """One batch, one measurement: the logged estimates are those of the hand computation."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    model = linear_model(4)
    w = np.asarray(model.get_weights()[0])
    logged = measure(model, x, y, batch=32, small=8, decay=0.9)
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
    logged = measure(model, x, y, batch=64, small=8, decay=0.999)  # 256 measurements
    assert logged["gns_trace"] == pytest.approx(trace_true, rel=0.1)
    assert logged["gns_grad_sq"] == pytest.approx(grad_sq_true, rel=0.25)
