"""The gradient noise scale estimator against the closed form of linear least squares."""

import numpy as np
import pytest

from bsi_keras.analysis.noise_scale import NoiseScale, estimate, least_squares_truth

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
    ema = NoiseScale(decay=0.5)
    ema.update(1.0, 100.0)
    assert ema.grad_sq == pytest.approx(1.0) and ema.trace == pytest.approx(100.0)
    ema.update(4.0, 100.0)
    # Bias-corrected weights 1/3 and 2/3 on the two measurements.
    assert ema.grad_sq == pytest.approx(1.0 / 3 + 2 * 4.0 / 3)
    assert ema.b_simple == pytest.approx(100.0 / 3.0)
    assert ema.b_simple != pytest.approx(np.mean([100.0 / 1.0, 100.0 / 4.0]))  # not a ratio mean


def test_bad_batch_sizes_are_refused():
    with pytest.raises(ValueError, match="0 < small < big"):
        estimate(1.0, 1.0, 10, 10)
    assert np.isnan(NoiseScale().b_simple)
