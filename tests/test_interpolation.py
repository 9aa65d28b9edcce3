"""Linear interpolation between two solutions, and the batch-norm statistics along it."""

import keras
import numpy as np
import pytest

from bsi_keras import data, models
from bsi_keras.analysis import (
    Interpolation,
    figures,
    interpolate,
    recompute_batch_norm_statistics,
)


@pytest.fixture(scope="module")
def dataset() -> data.Dataset:
    return data.synthetic(128, (28, 28, 1), num_test=64, seed=1)


@pytest.fixture(scope="module")
def solutions() -> tuple[keras.Model, keras.Model]:
    """Two solutions that differ in every weight and in their BN moving statistics."""
    keras.utils.set_random_seed(0)
    small, large = models.get_model("mnist_cnn"), models.get_model("mnist_cnn")
    rng = np.random.default_rng(3)
    for model in (small, large):
        # Moving variances stay positive: |noise| + 0.5.
        model.set_weights([np.abs(rng.normal(size=w.shape)) + 0.5 for w in small.get_weights()])
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return small, large


@pytest.mark.parametrize(
    ("bn_stats", "alphas"), [("interpolate", [0.0, 1.0]), ("small", [0.0]), ("large", [1.0])]
)
def test_ends_reproduce_each_solutions_own_loss(dataset, solutions, bn_stats, alphas):
    line = interpolate(
        *solutions,
        (dataset.x_train, dataset.y_train),
        (dataset.x_test, dataset.y_test),
        alphas=alphas,
        bn_stats=bn_stats,
        batch_size=128,
        verbose=0,
    )
    for index, alpha in enumerate(alphas):
        model = solutions[int(alpha)]
        train = model.evaluate(dataset.x_train, dataset.y_train, verbose=0, return_dict=True)
        test = model.evaluate(dataset.x_test, dataset.y_test, verbose=0, return_dict=True)
        assert line.train_loss[index] == pytest.approx(train["loss"], rel=1e-5)
        assert line.test_loss[index] == pytest.approx(test["loss"], rel=1e-5)
        assert line.train_accuracy[index] == pytest.approx(train["accuracy"])
        assert line.test_accuracy[index] == pytest.approx(test["accuracy"])


def test_default_line_has_25_points_from_minus_one_to_two(dataset, solutions, tmp_path):
    line = interpolate(
        *solutions,
        (dataset.x_train[:32], dataset.y_train[:32]),
        (dataset.x_test[:32], dataset.y_test[:32]),
        verbose=0,
    )
    np.testing.assert_allclose(line.alphas, np.linspace(-1, 2, 25))
    assert line.bn_stats == "recompute" and np.isfinite(line.test_loss).all()
    again = Interpolation.load(line.save(tmp_path / "line.npz"))
    np.testing.assert_array_equal(again.train_loss, line.train_loss)
    assert again.bn_stats == "recompute"
    assert figures.plot_interpolation(line, tmp_path / "line.png").stat().st_size > 0


def test_recomputed_statistics_are_the_average_virtual_batch_statistics():
    model = models.get_model("mnist_cnn", virtual_batch_size=10)  # a ghost BN on the input
    x = np.random.default_rng(0).normal(3.0, 2.0, (100, 28, 28, 1)).astype("float32")
    stats = recompute_batch_norm_statistics(model, x, batch_size=50)
    groups = x.reshape(10, -1)  # ten virtual batches of ten consecutive images
    np.testing.assert_allclose(stats[0], [groups.mean()], rtol=1e-5)
    np.testing.assert_allclose(stats[1], [groups.var(axis=1).mean()], rtol=1e-4)


def test_recompute_leaves_batch_statistics_layers_alone():
    model = models.get_model("f1", batch_stats_in_inference=True)
    x = np.ones((8, 28, 28, 1), dtype="float32")
    for new, old in zip(recompute_batch_norm_statistics(model, x), model.non_trainable_variables):
        np.testing.assert_array_equal(new, keras.ops.convert_to_numpy(old))


def test_unknown_bn_policy_is_refused(dataset, solutions):
    train = (dataset.x_train, dataset.y_train)
    with pytest.raises(ValueError, match="bn_stats"):
        interpolate(*solutions, train, train, bn_stats="average", verbose=0)
