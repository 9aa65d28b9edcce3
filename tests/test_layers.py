"""GhostBatchNormalization against Keras 2's BatchNormalization(virtual_batch_size=...)."""

import keras
import numpy as np
import pytest

from bsi_keras.layers import GhostBatchNormalization

tf_keras = pytest.importorskip("tf_keras")

MOMENTUM, EPSILON = 0.9, 1e-3


def numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def strided_order(batch: int, virtual: int) -> np.ndarray:
    """Position in Keras 2's layout of each example of ours.

    Keras 2 reshapes to [virtual, groups, ...], so its group b holds positions a*groups + b;
    ours holds the consecutive examples g*virtual + a.
    """
    groups = batch // virtual
    return np.array([a * groups + g for g in range(groups) for a in range(virtual)])


def reference_layer(virtual: int):
    layer = tf_keras.layers.BatchNormalization(
        virtual_batch_size=virtual, momentum=MOMENTUM, epsilon=EPSILON
    )
    return layer


@pytest.mark.parametrize("shape", [(32, 5), (32, 4, 4, 3)])
def test_matches_tf_keras_in_training_and_inference(shape):
    rng = np.random.default_rng(0)
    virtual = 8
    ours = GhostBatchNormalization(virtual, momentum=MOMENTUM, epsilon=EPSILON)
    theirs = reference_layer(virtual)
    order = strided_order(shape[0], virtual)
    for step in range(3):
        x = rng.normal(2.0, 3.0, shape).astype("float32")
        x_theirs = np.empty_like(x)
        x_theirs[order] = x
        out = numpy(ours(x, training=True))
        out_theirs = theirs(x_theirs, training=True).numpy()[order]
        np.testing.assert_allclose(out, out_theirs, rtol=1e-4, atol=1e-4, err_msg=f"step {step}")
    # Keras 2 keeps its statistics with the virtual-batch axes: shape (1, ..., channels).
    np.testing.assert_allclose(
        numpy(ours.moving_mean), theirs.moving_mean.numpy().ravel(), rtol=1e-5
    )
    np.testing.assert_allclose(
        numpy(ours.moving_variance), theirs.moving_variance.numpy().ravel(), rtol=1e-5
    )
    x = rng.normal(2.0, 3.0, shape).astype("float32")
    np.testing.assert_allclose(
        numpy(ours(x, training=False)), theirs(x, training=False).numpy(), rtol=1e-4, atol=1e-4
    )


def normalize(x: np.ndarray) -> np.ndarray:
    axes = tuple(range(x.ndim - 1))
    return (x - x.mean(axis=axes)) / np.sqrt(x.var(axis=axes) + EPSILON)


def test_partial_last_virtual_batch_has_its_own_statistics():
    x = np.random.default_rng(1).normal(0, 1, (20, 3)).astype("float32")
    layer = GhostBatchNormalization(8, momentum=MOMENTUM, epsilon=EPSILON)
    out = numpy(layer(x, training=True))
    expected = np.concatenate([normalize(x[:8]), normalize(x[8:16]), normalize(x[16:])])
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    # Moving statistics: example-weighted mean of the three groups' statistics.
    groups = [x[:8], x[8:16], x[16:]]
    mean = sum(len(g) * g.mean(axis=0) for g in groups) / 20
    variance = sum(len(g) * g.var(axis=0) for g in groups) / 20
    np.testing.assert_allclose(numpy(layer.moving_mean), (1 - MOMENTUM) * mean, rtol=1e-5)
    np.testing.assert_allclose(
        numpy(layer.moving_variance), MOMENTUM + (1 - MOMENTUM) * variance, rtol=1e-5
    )


def test_batch_smaller_than_virtual_batch_is_one_group():
    x = np.random.default_rng(2).normal(0, 1, (5, 3)).astype("float32")
    out = numpy(GhostBatchNormalization(8, epsilon=EPSILON)(x, training=True))
    np.testing.assert_allclose(out, normalize(x), rtol=1e-4, atol=1e-5)


def test_none_is_plain_batch_normalization():
    x = np.random.default_rng(3).normal(1, 2, (16, 4, 4, 2)).astype("float32")
    ours = GhostBatchNormalization(None, momentum=MOMENTUM, epsilon=EPSILON)
    plain = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPSILON)
    np.testing.assert_allclose(
        numpy(ours(x, training=True)), numpy(plain(x, training=True)), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(numpy(ours.moving_variance), numpy(plain.moving_variance), rtol=1e-5)


def test_batch_stats_in_inference_option():
    x = np.random.default_rng(4).normal(3, 2, (16, 3)).astype("float32")
    layer = GhostBatchNormalization(8, batch_stats_in_inference=True, epsilon=EPSILON)
    out = numpy(layer(x, training=False))
    np.testing.assert_allclose(
        out, np.concatenate([normalize(x[:8]), normalize(x[8:])]), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(numpy(layer.moving_mean), 0.0)  # inference updates nothing


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
def test_varying_batch_sizes_in_fit_match_numpy():
    """Through fit (TensorFlow may retrace with an unknown batch size), per-group stats."""
    model = keras.Sequential(
        [keras.Input((3,)), GhostBatchNormalization(4, center=False, scale=False, epsilon=EPSILON)]
    )
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(5)
    for batch in (8, 6, 12, 7, 3):
        x = rng.normal(0, 1, (batch, 3)).astype("float32")
        expected = np.concatenate([normalize(x[i : i + 4]) for i in range(0, batch, 4)])
        model.train_on_batch(x, expected)  # warms up the traced function for this shape
        out = numpy(model(x, training=True))
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5, err_msg=f"batch {batch}")
    statistics = model.layers[0].non_trainable_variables
    assert all(np.all(np.isfinite(numpy(v))) for v in statistics)


def test_save_and_load(tmp_path):
    model = keras.Sequential([keras.Input((3,)), GhostBatchNormalization(4, momentum=0.8)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(6).normal(1, 2, (8, 3)).astype("float32")
    model.fit(x, x, batch_size=8, epochs=2, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    layer = loaded.layers[0]
    assert isinstance(layer, GhostBatchNormalization)
    assert (layer.virtual_batch_size, layer.momentum) == (4, 0.8)
    np.testing.assert_allclose(numpy(loaded(x)), numpy(model(x)), rtol=1e-6)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_rejects_bad_virtual_batch_size(bad):
    with pytest.raises(ValueError, match="virtual_batch_size"):
        GhostBatchNormalization(bad)


def test_is_a_keras_batch_normalization_with_its_config():
    layer = GhostBatchNormalization(
        4,
        momentum=0.8,
        axis=1,
        batch_stats_in_inference=True,
        gamma_regularizer=keras.regularizers.L2(0.1),
        beta_constraint=keras.constraints.NonNeg(),
    )
    assert isinstance(layer, keras.layers.BatchNormalization)
    copy = GhostBatchNormalization.from_config(layer.get_config())
    assert copy.get_config() == layer.get_config()
    assert (copy.virtual_batch_size, copy.axis, copy.batch_stats_in_inference) == (4, 1, True)
    with pytest.raises(ValueError, match="renorm"):
        GhostBatchNormalization(4, renorm=True)


def test_regularizers_and_constraints_reach_the_weights():
    layer = GhostBatchNormalization(
        4, gamma_regularizer=keras.regularizers.L2(0.1), beta_constraint=keras.constraints.NonNeg()
    )
    layer.build((None, 3))
    layer.gamma.assign([1.0, 2.0, 3.0])
    assert len(layer.losses) == 1
    np.testing.assert_allclose(numpy(layer.losses[0]), 0.1 * 14.0, rtol=1e-6)
    assert layer.beta.constraint is not None and layer.gamma.constraint is None
    model = keras.Sequential([keras.Input((3,)), layer])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    x = np.random.default_rng(7).normal(0, 1, (8, 3)).astype("float32")
    model.fit(x, x + 10.0, batch_size=8, verbose=0)  # pulls beta up, gamma is unconstrained
    model.fit(x, x - 10.0, batch_size=8, verbose=0)  # would push beta below 0
    assert np.all(numpy(layer.beta) >= 0.0)


def test_frozen_layer_runs_in_inference_mode_and_keeps_its_statistics():
    rng = np.random.default_rng(8)
    layer = GhostBatchNormalization(4, momentum=MOMENTUM, epsilon=EPSILON)
    layer(rng.normal(3, 2, (8, 3)).astype("float32"), training=True)
    mean, variance = numpy(layer.moving_mean), numpy(layer.moving_variance)
    layer.trainable = False
    x = rng.normal(-1, 4, (8, 3)).astype("float32")
    expected = (x - mean) / np.sqrt(variance + EPSILON)
    np.testing.assert_allclose(numpy(layer(x, training=True)), expected, rtol=1e-5, atol=1e-5)
    model = keras.Sequential([keras.Input((3,)), layer, keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, x[:, :2], batch_size=4, epochs=2, verbose=0)
    np.testing.assert_array_equal(numpy(layer.moving_mean), mean)
    np.testing.assert_array_equal(numpy(layer.moving_variance), variance)
    assert layer.trainable_weights == []


def test_masked_examples_count_in_no_statistic():
    """Padding a batch with masked-out examples changes nothing for the real ones."""
    rng = np.random.default_rng(9)
    real = rng.normal(2, 3, (20, 4, 4, 3)).astype("float32")
    unpadded = GhostBatchNormalization(8, momentum=MOMENTUM, epsilon=EPSILON)
    expected = numpy(unpadded(real, training=True))
    # 24 fills the partial third ghost batch; 32 adds a ghost batch of padding only.
    for total in (24, 32):
        padding = rng.normal(50, 100, (total - 20, 4, 4, 3)).astype("float32")
        mask = np.arange(total) < 20
        padded = GhostBatchNormalization(8, momentum=MOMENTUM, epsilon=EPSILON)
        out = numpy(padded(np.concatenate([real, padding]), training=True, mask=mask))
        np.testing.assert_allclose(out[:20], expected, rtol=1e-5, atol=1e-5, err_msg=f"{total}")
        for ours, theirs in zip(padded.non_trainable_variables, unpadded.non_trainable_variables):
            np.testing.assert_allclose(numpy(ours), numpy(theirs), rtol=1e-6, err_msg=f"{total}")
    before = [numpy(v) for v in padded.non_trainable_variables]
    padded(padding, training=True, mask=np.zeros(len(padding), bool))  # all padding
    for ours, old in zip(padded.non_trainable_variables, before):
        np.testing.assert_array_equal(numpy(ours), old)


def test_sequence_mask_matches_keras_batch_normalization():
    rng = np.random.default_rng(10)
    x = rng.normal(1, 2, (6, 5, 3)).astype("float32")
    mask = rng.uniform(size=(6, 5)) < 0.7
    ours = GhostBatchNormalization(None, momentum=MOMENTUM, epsilon=EPSILON)
    plain = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPSILON)
    np.testing.assert_allclose(
        numpy(ours(x, training=True, mask=mask)),
        numpy(plain(x, training=True, mask=mask)),
        rtol=1e-4,
        atol=1e-4,
    )
    for a, b in zip(ours.non_trainable_variables, plain.non_trainable_variables):
        np.testing.assert_allclose(numpy(a), numpy(b), rtol=1e-5)
    with pytest.raises(ValueError, match="mask"):
        ours(x, training=True, mask=np.ones((6, 5, 3), bool))


def test_channels_first_axis_matches_channels_last():
    x = np.random.default_rng(11).normal(2, 3, (20, 3, 4, 4)).astype("float32")
    last = GhostBatchNormalization(8, momentum=MOMENTUM, epsilon=EPSILON)
    first = GhostBatchNormalization(8, momentum=MOMENTUM, epsilon=EPSILON, axis=1)
    channels_last = np.transpose(x, (0, 2, 3, 1))
    for training in (True, False):
        np.testing.assert_allclose(
            numpy(first(x, training=training)),
            np.transpose(numpy(last(channels_last, training=training)), (0, 3, 1, 2)),
            rtol=1e-5,
            atol=1e-5,
        )
    assert first.moving_mean.shape == (3,)
    for a, b in zip(first.non_trainable_variables, last.non_trainable_variables):
        np.testing.assert_allclose(numpy(a), numpy(b), rtol=1e-6)
    with pytest.raises(ValueError, match="axis"):
        GhostBatchNormalization(8, axis=0)(x)


def torch_batchnorm_per_chunk(batches, virtual: int, momentum: float, channel_axis: int = -1):
    """A numpy model of the reference: PyTorch's ``nn.BatchNorm2d`` run on each chunk.

    Each chunk of ``virtual`` consecutive examples (the last one smaller where the batch is
    not a multiple) updates ``running = (1 - p) running + p statistic`` with PyTorch's
    momentum ``p`` (Keras's ``1 - momentum``), the mean and the *unbiased* variance.
    """
    p = 1.0 - momentum
    channels = batches[0].shape[channel_axis]
    mean, var = np.zeros(channels), np.ones(channels)
    for x in batches:
        for start in range(0, len(x), virtual):
            chunk = np.moveaxis(x[start : start + virtual], channel_axis, -1).reshape(-1, channels)
            mean = (1 - p) * mean + p * chunk.mean(0)
            var = (1 - p) * var + p * chunk.var(0, ddof=1)
    return mean, var


@pytest.mark.parametrize(
    "shape, virtual, batches",
    [
        ((4, 4, 3), 8, (32, 32)),  # whole ghost batches
        ((4, 4, 3), 8, (20, 32, 5)),  # partial last ghost batch; a batch below one
        ((5,), 16, (100, 7)),  # dense inputs, 6 whole + 4, then one of 7
        ((3,), 2, (10, 10)),
    ],
)
def test_per_ghost_batch_moving_statistics_match_pytorch_per_chunk(shape, virtual, batches):
    rng = np.random.default_rng(12)
    xs = [rng.normal(2, 3, (b, *shape)).astype("float32") for b in batches]
    layer = GhostBatchNormalization(
        virtual, momentum=MOMENTUM, epsilon=EPSILON, moving_statistics="per_ghost_batch"
    )
    for x in xs:
        layer(x, training=True)
    mean, var = torch_batchnorm_per_chunk(xs, virtual, MOMENTUM)
    np.testing.assert_allclose(numpy(layer.moving_mean), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(numpy(layer.moving_variance), var, rtol=1e-4, atol=1e-5)


def test_per_ghost_batch_leaves_padding_out_and_keras_moves_once_per_call():
    """Padding chunks are no update; today's convention keeps ``momentum`` of the old value."""
    rng = np.random.default_rng(13)
    real = rng.normal(2, 3, (20, 4, 4, 3)).astype("float32")
    padded = np.concatenate([real, rng.normal(50, 9, (12, 4, 4, 3))]).astype("float32")
    layer = GhostBatchNormalization(8, momentum=MOMENTUM, moving_statistics="per_ghost_batch")
    layer(padded, training=True, mask=np.arange(32) < 20)
    mean, var = torch_batchnorm_per_chunk([real], 8, MOMENTUM)
    np.testing.assert_allclose(numpy(layer.moving_mean), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(numpy(layer.moving_variance), var, rtol=1e-4, atol=1e-5)
    # A batch of 16,000 in ghost batches of 128 with momentum 0.9 (WRN-16-4 at the end of
    # Smith's schedule): 0.9 of the old moving mean survives per call in Keras's convention,
    # 0.9 ** 125 (2e-6) in the reference's.
    x = np.zeros((1280, 1), "float32")
    for convention, share in (("keras", 0.9), ("per_ghost_batch", 0.9**10)):
        layer = GhostBatchNormalization(
            128, momentum=0.9, moving_mean_initializer="ones", moving_statistics=convention
        )
        layer(x, training=True)
        np.testing.assert_allclose(numpy(layer.moving_mean), [share], rtol=1e-5)


def test_moving_statistics_option_is_saved_and_validated():
    layer = GhostBatchNormalization(4, moving_statistics="per_ghost_batch")
    assert layer.get_config()["moving_statistics"] == "per_ghost_batch"
    copy = GhostBatchNormalization.from_config(layer.get_config())
    assert copy.moving_statistics == "per_ghost_batch"
    assert GhostBatchNormalization(4).moving_statistics == "keras"
    with pytest.raises(ValueError, match="moving_statistics must be one of keras, per_ghost"):
        GhostBatchNormalization(4, moving_statistics="pytorch")


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
def test_per_ghost_batch_in_train_steps_of_varying_batch_sizes_match_pytorch():
    """In compiled train steps (TensorFlow retraces with an unknown batch size)."""
    layer = GhostBatchNormalization(4, momentum=MOMENTUM, moving_statistics="per_ghost_batch")
    model = keras.Sequential([keras.Input((3,)), layer])
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(14)
    xs = [rng.normal(1, 2, (b, 3)).astype("float32") for b in (8, 6, 12, 7, 3)]
    for x in xs:
        model.train_on_batch(x, x)
    mean, var = torch_batchnorm_per_chunk(xs, 4, MOMENTUM)
    np.testing.assert_allclose(numpy(layer.moving_mean), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(numpy(layer.moving_variance), var, rtol=1e-4, atol=1e-5)
