"""Filter-normalized directions and loss landscapes; the run-folder loader and CLI."""

import keras
import numpy as np
import pytest

from bsi_keras import data, models, schedules, train
from bsi_keras.analysis import (
    Landscape,
    figures,
    filter_axes,
    load_solution,
    loss_landscape,
    normalize_direction,
    parse_range,
    random_direction,
    target_direction,
    weight_values,
)
from bsi_keras.analysis.__main__ import main
from bsi_keras.optimizers import get_optimizer
from bsi_keras.run_folder import RunFolderError


@pytest.fixture(scope="module")
def dataset() -> data.Dataset:
    return data.synthetic(96, (28, 28, 1), num_test=32, seed=2)


def filter_norms(t: np.ndarray) -> np.ndarray:
    return np.sqrt((t.reshape(-1, t.shape[-1]) ** 2).sum(axis=0))


def test_each_direction_filter_has_the_norm_of_its_weight_filter():
    model = models.get_model("mnist_cnn")
    weights, _ = weight_values(model)
    direction = random_direction(model, seed=0)
    kernels = [(d, w) for d, w in zip(direction, weights) if w.ndim > 1]
    assert [w.shape for _, w in kernels] == [(3, 3, 1, 8), (1352, 10)]  # conv, dense
    for d, w in kernels:
        np.testing.assert_allclose(filter_norms(d), filter_norms(w), rtol=1e-5)
    assert all(not d.any() for d, w in zip(direction, weights) if w.ndim == 1)


def per_filter_ratios(d: np.ndarray, w: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return np.sqrt((d.astype(np.float64) ** 2).sum(axis=axes)) / np.sqrt(
        (w.astype(np.float64) ** 2).sum(axis=axes)
    )


def depthwise_model() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3),
            keras.layers.DepthwiseConv2D(3, depth_multiplier=2),
            keras.layers.SeparableConv2D(5, 3, depth_multiplier=3),
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ]
    )


@pytest.mark.parametrize(
    "build",
    [
        depthwise_model,
        lambda: models.get_model("mobilenet_v2", input_shape=(32, 32, 3), num_classes=10),
    ],
)
def test_depthwise_kernels_are_normalized_per_channel(build):
    """As PyTorch's grouped convolution: one filter per (input channel, multiplier)."""
    model = build()
    weights, _ = weight_values(model)
    direction = random_direction(model, seed=0)
    depthwise_kernels = {
        id(
            layer.kernel
            if isinstance(layer, keras.layers.DepthwiseConv2D)
            else layer.depthwise_kernel
        )
        for layer in model.layers
        if isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D))
    }
    kinds = set()
    for variable, d, w in zip(model.trainable_variables, direction, weights):
        if w.ndim <= 1:
            continue
        depthwise = id(variable) in depthwise_kernels
        kinds.add("depthwise" if depthwise else f"{w.ndim}-d")
        # A depthwise filter spans the spatial axes; any other one all but the output axis.
        axes = tuple(range(w.ndim - 2)) if depthwise else tuple(range(w.ndim - 1))
        ratios = per_filter_ratios(d, w, axes)
        assert ratios.size == (np.prod(w.shape[-2:]) if depthwise else w.shape[-1])
        np.testing.assert_allclose(ratios, 1.0, atol=1e-5, err_msg=variable.path)
    assert {"depthwise", "4-d", "2-d"} <= kinds


def test_filter_axes_default_to_all_but_the_last():
    assert filter_axes(models.get_model("mnist_cnn")) == [(), (), (0, 1, 2), (), (0,), ()]
    with pytest.raises(ValueError, match="one entry per tensor"):
        normalize_direction([np.ones((2, 2))], [np.ones((2, 2))], filter_axes=[])


def test_normalization_options():
    w = [np.array([[3.0, 0.0], [4.0, 2.0]]), np.array([1.0, 2.0])]
    d = [np.array([[0.0, 1.0], [1.0, 1.0]]), np.array([9.0, 9.0])]
    layer = normalize_direction(d, w, norm="layer", ignore_biasbn=False)
    assert np.linalg.norm(layer[0]) == pytest.approx(np.linalg.norm(w[0]))
    np.testing.assert_array_equal(layer[1], w[1])  # the reference copies w when not ignored
    with pytest.raises(ValueError, match="norm"):
        normalize_direction(d, w, norm="weight")


def test_landscape_at_the_origin_is_the_models_loss(dataset, tmp_path):
    model = models.get_model("mnist_cnn")
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    own = model.evaluate(dataset.x_train, dataset.y_train, verbose=0, return_dict=True)
    d1, d2 = random_direction(model, seed=1), random_direction(model, seed=2)
    curve = loss_landscape(model, dataset.x_train, dataset.y_train, d1, None, [-1, 0, 1], verbose=0)
    assert curve.loss.shape == (3,) and curve.y_coordinates is None
    assert curve.loss[1] == pytest.approx(own["loss"], rel=1e-5)
    assert curve.accuracy[1] == pytest.approx(own["accuracy"])
    surface = loss_landscape(
        model, dataset.x_train, dataset.y_train, d1, d2, parse_range("-1:1:3"), verbose=0
    )
    assert surface.loss.shape == (3, 3)
    assert surface.loss[1, 1] == pytest.approx(own["loss"], rel=1e-5)
    np.testing.assert_allclose(surface.loss[:, 1], curve.loss, rtol=1e-5)  # b = 0
    again = Landscape.load(surface.save(tmp_path / "s.npz"))
    np.testing.assert_array_equal(again.loss, surface.loss)
    np.testing.assert_array_equal(Landscape.load(curve.save(tmp_path / "c.npz")).loss, curve.loss)
    for draw in (figures.plot_contour, figures.plot_surface):
        assert draw({"a": surface, "b": again}, tmp_path / f"{draw.__name__}.png").is_file()
    assert figures.plot_landscape_1d({"a": curve}, tmp_path / "curve.png").is_file()


def test_target_direction_reaches_the_target(dataset):
    model = models.get_model("f1", batch_stats_in_inference=True)
    target = models.get_model("f1", batch_stats_in_inference=True)
    for m in (model, target):
        m.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    curve = loss_landscape(
        model, dataset.x_train, dataset.y_train, target_direction(model, target), None, [0, 1],
        verbose=0,
    )  # fmt: skip
    own = target.evaluate(dataset.x_train, dataset.y_train, batch_size=96, verbose=0)
    assert curve.loss[1] == pytest.approx(own[0], rel=1e-4)


def test_grid_notation_is_checked():
    with pytest.raises(ValueError, match="MIN:MAX:NUM"):
        parse_range("-1:1")


def test_run_folder_epoch_and_command_line(tmp_path):
    keras.utils.set_random_seed(0)
    dataset = data.load_dataset("mnist_sample", num_train=200, num_test=50)
    run = tmp_path / "run"
    trained = models.get_model("mnist_cnn")
    schedule = schedules.constant(1, 100, 0.01)
    config = {"args": {"model": "mnist_cnn", "mini_batch_size": 10, "weight_decay": 0.0}}
    train(trained, dataset, schedule, get_optimizer("adam", 0.01), run, verbose=0,
          save_every_epoch=True, config=config)  # fmt: skip
    loaded = load_solution(run, 1)
    for ours, theirs in zip(loaded.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert not np.array_equal(load_solution(run, 0).get_weights()[2], trained.get_weights()[2])
    with pytest.raises(RunFolderError, match="epoch_007"):
        load_solution(run, 7)
    out, png = tmp_path / "surface.npz", tmp_path / "surface.png"
    args = [str(run), "--epoch", "1", "--x=-1:1:3", "--y=-1:1:3", "--num_train", "200"]
    assert main([*args, "--out", str(out), "--plot", str(png)]) == 0
    surface = Landscape.load(out)
    own = loaded.evaluate(dataset.x_train, dataset.y_train, verbose=0, return_dict=True)
    assert surface.loss[1, 1] == pytest.approx(own["loss"], rel=1e-5)
    assert png.is_file()
    target = [str(run), "--epoch", "1", "--target", str(run), "--target_epoch", "0"]
    assert main([*target, "--x=0:1:2", "--num_train", "200", "--out", str(out)]) == 0
    assert Landscape.load(out).loss.shape == (2,)


def test_snapshots_are_keras_models_with_their_weight_decay(tmp_path):
    keras.utils.set_random_seed(0)
    dataset = data.load_dataset("mnist_sample", num_train=100, num_test=20)
    run = tmp_path / "run"
    trained = models.get_model("mnist_cnn", weight_decay=5e-4)
    config = {"args": {"model": "mnist_cnn", "mini_batch_size": 10, "weight_decay": 5e-4}}
    train(trained, dataset, schedules.constant(2, 50, 0.01), get_optimizer("sgd", 0.01), run,
          verbose=0, save_every_epoch=True, config=config)  # fmt: skip
    kept = sorted(p.name for p in (run / "weights").iterdir())
    assert kept == ["epoch_000.keras", "epoch_001.keras", "epoch_002.keras"]
    loaded = load_solution(run, 2)
    assert len(loaded.losses) == len(trained.losses) == 6
    np.testing.assert_allclose(
        [keras.ops.convert_to_numpy(loss) for loss in loaded.losses],
        [keras.ops.convert_to_numpy(loss) for loss in trained.losses],
    )
    # Options rebuild the model from config.json and load the snapshot's weights into it.
    rebuilt = load_solution(run, 2, bn_momentum=0.5)
    assert rebuilt.get_layer("ghost_bn").momentum == 0.5
    assert len(rebuilt.losses) == 6
    for ours, theirs in zip(rebuilt.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    # A run folder written before snapshots (weights only) is rebuilt the old way.
    (run / "weights" / "epoch_002.keras").unlink()
    trained.save_weights(run / "weights" / "epoch_002.weights.h5")
    legacy = load_solution(run, 2)
    assert len(legacy.losses) == 6
    for ours, theirs in zip(legacy.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert legacy.evaluate(dataset.x_test, dataset.y_test, verbose=0) == pytest.approx(
        loaded.evaluate(dataset.x_test, dataset.y_test, verbose=0), rel=1e-6
    )
