"""CIFAR models: parameter counts, ghost batch norm everywhere, forward passes, one fit step."""

import math

import keras
import numpy as np
import pytest

from bsi_keras.data import synthetic
from bsi_keras.layers import GhostBatchNormalization
from bsi_keras.models import get_model
from bsi_keras.models.mobilenet import with_ghost_batch_norm


def split_count(model: keras.Model) -> tuple[int, int]:
    """(trainable parameters, non-trainable ones: the BN moving means and variances)."""
    trainable = sum(math.prod(v.shape) for v in model.trainable_weights)
    return trainable, model.count_params() - trainable


def preact_wrn_count(depth: int, width: int, classes: int = 10) -> int:
    """Zagoruyko & Komodakis's WRN parameter count, from the definition (BN: gamma, beta)."""
    blocks, count, channels = (depth - 4) // 6, 3 * 9 * 16, 16
    for filters in (16 * width, 32 * width, 64 * width):
        for _ in range(blocks):
            shortcut = channels * filters if channels != filters else 0
            count += 2 * channels + 9 * channels * filters + 2 * filters + 9 * filters**2
            count += shortcut
            channels = filters
    return count + 2 * channels + channels * classes + classes


@pytest.mark.parametrize(
    "name, trainable, bn_channels",
    [
        ("wrn_16_4", 2_777_674, 2240),  # the reference PyTorch study's count (REFERENCES §1)
        ("wrn_16_4_preact", preact_wrn_count(16, 4), 1808),  # 2.75 M in the WRN paper
        ("wrn_28_10_preact", preact_wrn_count(28, 10), 8976),  # 36.5 M in the WRN paper
        ("resnet44", 661_338, 1680),  # He et al.: 0.66 M
        ("mnist_f1", 1_462_794, 2560),  # bigBatch's MLP, Linear layers with bias
    ],
)
def test_parameter_counts(name, trainable, bn_channels):
    model = get_model(name)
    assert split_count(model) == (trainable, 2 * bn_channels)


def test_preact_counts_match_the_wrn_paper():
    assert round(preact_wrn_count(16, 4) / 1e6, 2) == 2.75
    assert round(preact_wrn_count(28, 10) / 1e6, 1) == 36.5


@pytest.mark.parametrize("name", ["wrn_16_4", "wrn_10_2_preact", "resnet44", "mnist_f1"])
def test_forward_pass_in_training_and_inference(name):
    shape = (28, 28, 1) if name == "mnist_f1" else (32, 32, 3)
    model = get_model(name, input_shape=shape, num_classes=7, virtual_batch_size=2)
    x = np.random.default_rng(0).normal(size=(4, *shape)).astype("float32")
    train = keras.ops.convert_to_numpy(model(x, training=True))
    infer = keras.ops.convert_to_numpy(model(x, training=False))
    for out in (train, infer):
        assert out.shape == (4, 7) and np.all(np.isfinite(out))
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(train, infer)  # batch statistics vs the initial moving ones
    first_bn = next(layer for layer in model.layers if isinstance(layer, GhostBatchNormalization))
    assert np.any(keras.ops.convert_to_numpy(first_bn.moving_mean) != 0.0)


@pytest.mark.parametrize("name", ["wrn_16_4", "wrn_16_4_preact", "resnet44", "mnist_f1"])
def test_every_normalization_is_ghost_batch_norm(name):
    assert ghost_settings(get_model(name, virtual_batch_size=16)) == {(16, 0.9, 1e-5)}


def test_mobilenet_v2_has_ghost_batch_norm_and_is_adapted_to_cifar():
    model = get_model("mobilenet_v2", num_classes=100, virtual_batch_size=16)
    assert ghost_settings(model) == {(16, 0.9, 1e-3)}  # the application's epsilon is kept
    assert model.get_layer("out_relu").output.shape == (None, 4, 4, 1280)
    out = model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0)
    assert out.shape == (2, 100)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    plain = get_model("mobilenet_v2", virtual_batch_size=2, cifar_strides=False)
    assert plain.get_layer("out_relu").output.shape == (None, 1, 1, 1280)


def ghost_settings(model: keras.Model) -> set[tuple]:
    """The (virtual batch size, momentum, epsilon) of the normalizations, all ghost BN."""
    norms = [layer for layer in model.layers if "Normalization" in type(layer).__name__]
    assert norms and all(isinstance(layer, GhostBatchNormalization) for layer in norms)
    return {(n.virtual_batch_size, n.momentum, n.epsilon) for n in norms}


def test_ghost_copy_keeps_weights_and_applies_config_changes():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, name="dense")(inputs)
    hidden = keras.layers.BatchNormalization(momentum=0.7, epsilon=1e-4, name="bn")(hidden)
    outputs = keras.layers.Activation("linear", name="act")(hidden)
    plain = keras.Model(inputs, outputs)
    rng = np.random.default_rng(1)
    plain.get_layer("bn").set_weights(
        [rng.uniform(0.5, 2.0, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(1, 3, 4)]
    )
    ghost = with_ghost_batch_norm(plain, 2, config_changes={"act": {"activation": "relu"}})
    bn = ghost.get_layer("bn")
    assert isinstance(bn, GhostBatchNormalization)
    assert (bn.virtual_batch_size, bn.momentum, bn.epsilon) == (2, 0.7, 1e-4)
    for old, new in zip(plain.get_layer("bn").weights, bn.weights):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(old), keras.ops.convert_to_numpy(new)
        )
    x = rng.normal(size=(5, 3)).astype("float32")
    expected = np.maximum(keras.ops.convert_to_numpy(plain(x, training=False)), 0.0)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ghost(x, training=False)), expected, rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="lacks"):
        with_ghost_batch_norm(plain, 2, config_changes={"nope": {}})


def test_wide_resnet_names_and_validation():
    model = get_model("wrn_10_2_preact", num_classes=3)
    assert model.name == "wrn_10_2_preact" and model.output_shape == (None, 3)
    assert get_model("wrn_10_2").name == "wrn_10_2"  # postact by default
    with pytest.raises(ValueError, match="6n"):
        get_model("wrn_15_4")
    with pytest.raises(ValueError, match=r"wrn_<depth>_<width>"):
        get_model("wrn_16")
    with pytest.raises(ValueError, match="style"):
        get_model("wrn_16_4", style="sideways")


def test_one_fit_step_of_wrn_16_4_on_synthetic_cifar():
    ds = synthetic(8, (32, 32, 3), seed=0)
    model = get_model("wrn_16_4", virtual_batch_size=4)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    before = keras.ops.convert_to_numpy(model.get_layer("classifier").kernel)
    history = model.fit(ds.x_train, ds.y_train, batch_size=8, epochs=1, verbose=0)
    after = keras.ops.convert_to_numpy(model.get_layer("classifier").kernel)
    assert np.isfinite(history.history["loss"][0])
    assert model.optimizer.iterations.numpy() == 1
    assert not np.allclose(before, after)
