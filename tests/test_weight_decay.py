"""Weight decay through the builders' regularizers: every trainable weight, kept by `.keras`."""

import keras
import numpy as np
import pytest

from bsi_keras.models import available_models, get_model

DECAY = 5e-4


def numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def penalty(model: keras.Model) -> float:
    """PyTorch's SGD weight decay as a loss: ``DECAY / 2 * |w|^2`` over every trainable weight."""
    return DECAY / 2 * sum(float(np.sum(numpy(v) ** 2)) for v in model.trainable_variables)


@pytest.mark.parametrize("name", [*available_models(), "wrn_10_2_preact"])
def test_every_trainable_weight_is_decayed(name):
    model = get_model(name, weight_decay=DECAY)
    assert all(v.regularizer is not None for v in model.trainable_variables)
    assert len(model.losses) == len(model.trainable_variables)
    total = sum(float(numpy(loss)) for loss in model.losses)
    assert total == pytest.approx(penalty(model), rel=1e-5)


def test_no_decay_adds_no_loss_and_negative_decay_is_refused():
    assert get_model("mnist_cnn").losses == []
    assert get_model("mnist_cnn", weight_decay=0.0).losses == []
    with pytest.raises(ValueError, match=r"weight_decay must be >= 0, got -0\.1"):
        get_model("mnist_cnn", weight_decay=-0.1)


@pytest.mark.parametrize(
    ("name", "input_shape"), [("mnist_cnn", (28, 28, 1)), ("wrn_16_4", (8, 8, 3))]
)
def test_losses_and_predictions_survive_a_keras_round_trip(tmp_path, name, input_shape):
    keras.utils.set_random_seed(0)
    model = get_model(name, input_shape=input_shape, virtual_batch_size=4, weight_decay=DECAY)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, *input_shape)).astype("float32")
    y = rng.integers(0, 10, 8)
    model.fit(x, y, batch_size=8, verbose=0)  # moves the weights and the moving statistics
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    # One loss per trainable weight (6 for mnist_cnn), before and after.
    assert len(loaded.losses) == len(model.losses) == len(model.trainable_variables)
    np.testing.assert_array_equal(
        [numpy(loss) for loss in loaded.losses], [numpy(loss) for loss in model.losses]
    )
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
