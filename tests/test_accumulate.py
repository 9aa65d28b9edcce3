"""The accumulating train step: padded, fixed-shape micro-batches give the logical batch's step."""

import types

import keras
import numpy as np
import pytest

from bsi_keras import data, models
from bsi_keras.train_step import accumulate, keras_private


def _model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = models.get_model("mnist_cnn", virtual_batch_size=10, weight_decay=1e-3)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _accumulating(model: keras.Model, x: np.ndarray, y: np.ndarray) -> keras.Model:
    keras_private.build_compiled_state(model, x[:1], y[:1])
    accumulators = accumulate.Accumulators(model.optimizer, model.trainable_variables)
    make = (
        accumulate.make_jax_train_step
        if keras.backend.backend() == "jax"
        else accumulate.make_stateful_train_step
    )
    model.train_step = types.MethodType(make(accumulators), model)
    model.train_function = None
    return model


def _micro_batches(x, y, physical: int):
    """The micro-batches of one update of ``len(x)`` examples, padded to ``physical``."""
    count = -(-len(x) // physical)
    slots = count * physical
    real = (np.arange(slots) < len(x)).astype("float32")
    index = np.minimum(np.arange(slots), len(x) - 1)
    ends = np.repeat((np.arange(count) == count - 1).astype("float32"), physical)
    packed = accumulate.pack(None, real, ends)
    return [
        (x[index][i : i + physical], y[index][i : i + physical], packed[i : i + physical])
        for i in range(0, slots, physical)
    ]


def _moving_statistics(model: keras.Model) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]


def _weights(model: keras.Model) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]


@pytest.fixture(scope="module")
def batch():
    ds = data.load_dataset("mnist_sample", num_train=64, num_test=10)
    return ds.x_train, ds.y_train


def test_a_padded_batch_steps_as_the_unpadded_one(batch):
    """13 examples padded to 16: same update, loss, accuracy and moving statistics."""
    x, y = batch[0][:13], batch[1][:13]
    reference = _model()
    expected = reference.train_on_batch(x, y, return_dict=True)
    padded = _accumulating(_model(), x, y)
    ((xp, yp, packed),) = _micro_batches(x, y, 16)
    logs = padded.train_on_batch(xp, yp, sample_weight=packed, return_dict=True)
    assert int(keras.ops.convert_to_numpy(padded.optimizer.iterations)) == 1
    np.testing.assert_allclose(logs["loss"], expected["loss"], rtol=1e-5)
    np.testing.assert_allclose(logs["accuracy"], expected["accuracy"], rtol=1e-6)
    for got, want in zip(_weights(padded), _weights(reference)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    for got, want in zip(_moving_statistics(padded), _moving_statistics(reference)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_micro_batches_accumulate_into_the_logical_batch_gradient(batch):
    """37 examples as micro-batches of 20 (the last padded): the update of the logical
    batch's mean loss (ghost batches of 10 are the same either way), one update only."""
    x, y = batch[0][:37], batch[1][:37]
    reference = _model()
    reference.train_on_batch(x, y)
    accumulating = _accumulating(_model(), x, y)
    micro = _micro_batches(x, y, 20)
    assert len(micro) == 2
    for xp, yp, packed in micro:
        accumulating.train_on_batch(xp, yp, sample_weight=packed)
    assert int(keras.ops.convert_to_numpy(accumulating.optimizer.iterations)) == 1
    for got, want in zip(_weights(accumulating), _weights(reference)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    accumulators = [v for v in accumulating.optimizer.variables if v.name.startswith("accumulated")]
    assert accumulators and all(not np.any(keras.ops.convert_to_numpy(v)) for v in accumulators), (
        "the accumulators start afresh after an update"
    )


def test_weights_scale_the_loss_as_keras_does(batch):
    """Per-example weights with padding: the mean over the real examples of w * loss."""
    x, y = batch[0][:6], batch[1][:6]
    weight = np.linspace(0.5, 2.0, 6).astype("float32")
    reference = _model()
    expected = reference.train_on_batch(x, y, sample_weight=weight, return_dict=True)
    padded = _accumulating(_model(), x, y)
    index = np.minimum(np.arange(8), 5)
    real = (np.arange(8) < 6).astype("float32")
    packed = accumulate.pack(weight[index], real, np.ones(8, "float32"))
    logs = padded.train_on_batch(x[index], y[index], sample_weight=packed, return_dict=True)
    np.testing.assert_allclose(logs["loss"], expected["loss"], rtol=1e-5)
    for got, want in zip(_weights(padded), _weights(reference)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def _fit(schedule, physical: int | None, ds, **options):
    import bsi_keras
    from bsi_keras.train_step import StepOptions

    model = _model()
    history = bsi_keras.fit(
        model,
        ds.x_train,
        ds.y_train,
        schedule=schedule,
        verbose=0,
        seed=0,
        step_options=StepOptions(max_physical_batch=physical) if physical else None,
        **options,
    )
    return model, history.history


@pytest.fixture(scope="module")
def sample():
    return data.load_dataset("mnist_sample", num_train=390, num_test=10)


def test_growing_the_batch_traces_no_more_than_a_constant_batch(sample):
    """Batches 10 -> 50 -> 250 over 390 examples (partial batches in every phase but the
    first) as micro-batches of 10 trace the train step as often as constant batch 10."""
    from bsi_keras import schedules

    growing = schedules.increase_bs(6, 10, 0.05, [2, 4], 5)
    constant = schedules.constant(6, 10, 0.05)
    _, grown = _fit(growing, 10, sample)
    _, steady = _fit(constant, 10, sample)
    assert sum(grown["train_traces"]) == sum(steady["train_traces"]) >= 1
    assert grown["train_traces"][0] >= 1 and not any(grown["train_traces"][1:])
    assert grown["updates"][-1] == growing.total_updates(390)  # 39 + 39 + 8 + 8 + 2 + 2


def test_micro_batches_train_as_the_in_step_split(sample, monkeypatch):
    """The same trajectory as splitting each batch inside one step (the path SAM takes)."""
    from bsi_keras import schedules, train_step

    schedule = schedules.increase_bs(3, 20, 0.05, [1, 2], 3)  # 20, 60, 180: 390 = 2 x 180 + 30
    accumulated, logs = _fit(schedule, 20, sample)
    monkeypatch.setattr(train_step, "accumulates", lambda model, options: False)
    split, reference = _fit(schedule, 20, sample)
    assert logs["updates"] == reference["updates"]
    np.testing.assert_allclose(logs["loss"], reference["loss"], rtol=1e-4)
    np.testing.assert_allclose(logs["accuracy"], reference["accuracy"], rtol=1e-6)
    for got, want in zip(accumulated.variables, split.variables):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want), rtol=1e-3, atol=1e-5
        )


def test_drop_remainder_and_class_weights_with_micro_batches(sample):
    from bsi_keras import schedules

    schedule = schedules.constant(1, 50, 0.05)
    _, dropped = _fit(schedule, 20, sample, drop_remainder=True)
    assert dropped["updates"] == [7.0]  # floor(390 / 50)
    _, weighted = _fit(schedule, 20, sample, class_weight={c: 2.0 for c in range(10)})
    _, plain = _fit(schedule, 20, sample)
    # Doubling every class weight doubles the data loss; the weight decay stays.
    assert weighted["loss"][0] > plain["loss"][0] * 1.5
