"""Keskar's sharpness against quadratic losses whose maximum over the box is known."""

import keras
import numpy as np
import pytest

from bsi_keras import data, models
from bsi_keras.analysis import (
    box_half_widths,
    random_subspace,
    rescale_before_batch_norm,
    sharpness,
)


def linear_model(weights: np.ndarray) -> keras.Model:
    """x -> x . w, no bias, mean squared error: the loss is a quadratic in w."""
    model = keras.Sequential([keras.Input((len(weights),)), keras.layers.Dense(1, use_bias=False)])
    model.compile(loss="mse")
    model.layers[0].kernel.assign(weights[:, None])
    return model


@pytest.fixture
def solution() -> np.ndarray:
    return np.random.default_rng(0).normal(size=12).astype("float32")


@pytest.mark.parametrize("epsilon", [1e-3, 5e-4])
def test_diagonal_hessian_full_space(solution, epsilon):
    # Examples s_i e_i with targets s_i c_i: f(w) = mean_i s_i^2 (w_i - c_i)^2, Hessian
    # diag(2 s_i^2 / n), minimum 0 at w = c. The box around c is |y_i| <= eps (|c_i| + 1);
    # a convex separable quadratic is largest at a corner: max = mean_i s_i^2 b_i^2.
    scale = np.random.default_rng(1).uniform(100, 1000, solution.size).astype("float32")
    x, y = np.diag(scale), (scale * solution)[:, None]
    result = sharpness(linear_model(solution), x, y, epsilon=epsilon)
    half = epsilon * (np.abs(solution.astype(float)) + 1)
    expected = 100 * np.mean(scale.astype(float) ** 2 * half**2) / (1 + 0.0)
    assert result.loss == pytest.approx(0.0, abs=1e-9)
    assert result.value == pytest.approx(expected, rel=1e-3)
    assert result.dimension == solution.size and result.epsilon == epsilon
    assert 1 <= result.iterations <= 10 * result.starts  # 10 per start


def test_rank_one_hessian_in_a_random_subspace(solution):
    # One example v with target v . c: f(c + A z) = (v^T A z)^2, largest at the corner
    # z_j = sign((A^T v)_j) b_j with b_j = eps (|(A^+ c)_j| + 1):
    # max = (sum_j |(A^T v)_j| b_j)^2.
    v = 30 * np.random.default_rng(2).normal(size=(1, solution.size)).astype("float32")
    subspace = random_subspace(solution.size, 4, seed=3)
    result = sharpness(
        linear_model(solution), v, v @ solution[:, None], epsilon=1e-3, subspace=subspace
    )
    half = box_half_widths(solution, 1e-3, subspace)
    expected = 100 * (np.abs(subspace.T.astype(float) @ v[0]) @ half) ** 2
    assert result.dimension == 4
    assert result.value == pytest.approx(expected, rel=1e-3)


def test_box_uses_the_pseudo_inverse():
    weights = np.array([1.0, -2.0, 3.0, 4.0], dtype="float32")
    # Two columns of the identity: A^+ x picks the first two coordinates.
    identity_part = np.eye(4, 2, dtype="float32")
    np.testing.assert_allclose(box_half_widths(weights, 1e-3, identity_part), [2e-3, 3e-3])
    # Scaled columns: A = 2 I[:, :2] gives A^+ x = x[:2] / 2.
    np.testing.assert_allclose(
        box_half_widths(weights, 1e-3, 2 * identity_part), [1.5e-3, 2e-3], rtol=1e-6
    )


def test_random_subspace_is_seeded_and_nearly_orthonormal():
    a = random_subspace(20_000, 8, seed=5)
    np.testing.assert_array_equal(a, random_subspace(20_000, 8, seed=5))
    assert a.dtype == np.float32
    np.testing.assert_allclose(a.T @ a, np.eye(8), atol=0.05)


def test_network_sharpness_is_deterministic_and_nonnegative():
    ds = data.synthetic(64, (28, 28, 1))
    model = models.get_model("f1", hidden_layers=1, units=16)
    model.compile(loss="sparse_categorical_crossentropy")
    first = sharpness(model, ds.x_train, ds.y_train, subspace=10, max_iterations=2, seed=4)
    again = sharpness(model, ds.x_train, ds.y_train, subspace=10, max_iterations=2, seed=4)
    assert first.dimension == 10
    assert first.value == pytest.approx(again.value, rel=1e-5)
    assert first.max_loss >= first.loss and first.value >= 0
    own = model.evaluate(ds.x_train, ds.y_train, batch_size=64, verbose=0)
    assert first.loss == pytest.approx(own, rel=1e-5)


def test_more_starts_never_lower_the_value_and_report_their_spread():
    ds = data.synthetic(64, (28, 28, 1))
    model = models.get_model("f1", hidden_layers=1, units=16)
    model.compile(loss="sparse_categorical_crossentropy")
    options = {"subspace": 10, "max_iterations": 2, "seed": 4}
    single = sharpness(model, ds.x_train, ds.y_train, starts=1, **options)
    several = sharpness(model, ds.x_train, ds.y_train, starts=3, **options)
    assert single.starts == 1 and single.std_value == 0.0
    assert single.start_values == (pytest.approx(single.value),)
    assert several.starts == 3
    # The first start is the single search's, so more starts can only raise the value.
    assert several.start_values[0] == pytest.approx(single.value, rel=1e-5)
    assert several.value >= single.value
    assert all(v <= several.value for v in several.start_values)
    assert several.min_value == min(several.start_values)
    assert several.std_value == pytest.approx(np.std(several.start_values))
    assert several.evaluations > single.evaluations
    with pytest.raises(ValueError, match="starts"):
        sharpness(model, ds.x_train, ds.y_train, starts=0)


def test_later_starts_escape_the_first_starts_local_maximum():
    # f(w) = (s (w - c))^2 with the minimizer c = x + 0.2 b inside the box [x - b, x + b]:
    # a search that starts right of c climbs to the corner x + b, a local maximum of
    # value (0.8 b s)^2; the true maximum is the far corner x - b, (1.2 b s)^2.
    solution, epsilon, s = np.array([0.5], "float32"), 1e-3, 100.0
    b = epsilon * (abs(float(solution[0])) + 1)
    c = float(solution[0]) + 0.2 * b
    x, y = np.array([[s]], "float32"), np.array([[s * c]], "float32")
    model = linear_model(solution)
    loss = (s * 0.2 * b) ** 2
    local, best = ((s * k * b) ** 2 for k in (0.8, 1.2))
    # Seed 0 draws the first start at +0.27 b (right of c), the second at -0.46 b.
    single = sharpness(model, x, y, epsilon=epsilon, seed=0, starts=1)
    several = sharpness(model, x, y, epsilon=epsilon, seed=0, starts=3)
    assert single.max_loss == pytest.approx(local, rel=1e-3)
    assert several.max_loss == pytest.approx(best, rel=1e-3)
    assert several.value == pytest.approx(100 * (best - loss) / (1 + loss), rel=1e-3)
    assert several.min_value == pytest.approx(single.value, rel=1e-3)
    assert several.std_value > 0


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_rescaling_before_batch_norm_keeps_the_function_and_moves_the_box(scale):
    # A small F1 (Dense -> ghost BN -> ReLU), its BN moving statistics made non-trivial by
    # one training step, so that inference mode tests the moving mean and variance too.
    keras.utils.set_random_seed(0)
    ds = data.synthetic(64, (28, 28, 1))
    model = models.get_model("f1", hidden_layers=2, units=16, virtual_batch_size=16)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(ds.x_train, ds.y_train, batch_size=64, epochs=1, verbose=0)
    copy = rescale_before_batch_norm(model, ["dense1", "dense2"], scale)
    for training in (False, True):
        expected = model(ds.x_train, training=training)
        got = copy(ds.x_train, training=training)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    for name in ("dense1", "dense2"):
        np.testing.assert_allclose(
            copy.get_layer(name).kernel, scale * np.asarray(model.get_layer(name).kernel), rtol=1e-6
        )
        assert copy.get_layer(f"{name}_bn").epsilon == pytest.approx(1e-3 * scale**2)
    np.testing.assert_array_equal(
        copy.get_layer("classifier").kernel, model.get_layer("classifier").kernel
    )
    # Same function, other weights: the original is untouched and the box's half widths
    # eps (|x_i| + 1) move with the scaled kernels, so the sharpness sees another problem.
    assert model.get_layer("dense1_bn").epsilon == pytest.approx(1e-3)
    same = sharpness(model, ds.x_train, ds.y_train, max_iterations=2, starts=1)
    scaled = sharpness(copy, ds.x_train, ds.y_train, max_iterations=2, starts=1)
    assert scaled.loss == pytest.approx(same.loss, rel=1e-4)
    assert scaled.value != pytest.approx(same.value, rel=1e-3)


def test_rescaling_refuses_a_layer_without_batch_norm_after_it():
    model = models.get_model("f1", hidden_layers=1, units=8)
    with pytest.raises(ValueError, match="followed directly by batch normalization"):
        rescale_before_batch_norm(model, "classifier", 2.0)
    with pytest.raises(ValueError, match="no layer 'dense9'"):
        rescale_before_batch_norm(model, "dense9", 2.0)
    with pytest.raises(ValueError, match="scale must be a positive"):
        rescale_before_batch_norm(model, "dense1", 0.0)
