"""The custom train step: accumulation, loss dropout, optimizer reset, per-step LR curves."""

import keras
import numpy as np
import pytest

from bsi_keras import data, fit, models, schedules
from bsi_keras.optimizers import SGD, get_optimizer, set_learning_rate
from bsi_keras.train_step import LossDropout, StepOptions
from bsi_keras.train_step.core import skip_update

DATA = data.synthetic(200, (28, 28, 1), seed=1)


def numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


class Probe(keras.callbacks.Callback):
    """Records ``measure(model)`` at every epoch begin or end."""

    def __init__(self, measure, at="end"):
        super().__init__()
        self.measure, self.at, self.values = measure, at, []

    def on_epoch_begin(self, epoch, logs=None):
        if self.at == "begin":
            self.values.append(self.measure(self.model))

    def on_epoch_end(self, epoch, logs=None):
        if self.at == "end":
            self.values.append(self.measure(self.model))


def train(schedule, optimizer=None, callbacks=(), **options):
    keras.utils.set_random_seed(0)
    model = models.get_model("mnist_cnn", virtual_batch_size=10)
    model.compile(
        optimizer=optimizer or get_optimizer("momentum", 0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = fit(
        model,
        DATA.x_train,
        DATA.y_train,
        schedule=schedule,
        verbose=0,
        seed=0,
        callbacks=list(callbacks),
        **options,
    )
    return model, history


@pytest.mark.parametrize(("batch", "micro"), [(100, 30), (100, 50), (40, 10)])
def test_accumulated_micro_batches_equal_one_pass(batch, micro):
    """Ghost batches of 10 never straddle micro-batches that are multiples of 10."""
    schedule = schedules.constant(1, batch, 0.01)
    plain, plain_history = train(schedule)
    split, split_history = train(schedule, step_options=StepOptions(max_physical_batch=micro))
    assert split_history.history["epoch_updates"] == plain_history.history["epoch_updates"]
    assert split_history.history["loss"] == pytest.approx(plain_history.history["loss"], rel=1e-5)
    for a, b in zip(plain.trainable_variables, split.trainable_variables):
        np.testing.assert_allclose(numpy(a), numpy(b), rtol=1e-5, atol=1e-6)


def test_accumulation_across_phases_and_partial_batches():
    schedule = schedules.increase_bs(3, 30, 0.01, [1, 2], 2)  # 30, 60, 120 over 200 examples
    _, history = train(schedule, step_options=StepOptions(max_physical_batch=20))
    assert history.history["epoch_updates"] == [7, 4, 2]  # one update per logical batch
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.fixture
def mixed_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_accumulation_under_mixed_precision(mixed_bfloat16):
    """bfloat16 predictions of the micro-batches gather into the float32 batch output."""
    _, history = train(
        schedules.constant(1, 40, 0.01), step_options=StepOptions(max_physical_batch=20)
    )
    assert history.history["epoch_updates"] == [5]
    assert np.all(np.isfinite(history.history["loss"]))


def test_skip_update_rule():
    nan = float("nan")
    assert bool(skip_update(1.0, 2.0, 1.0, "lower")) is True
    assert bool(skip_update(3.0, 2.0, 1.0, "lower")) is False
    assert bool(skip_update(3.0, 2.0, 1.0, "higher")) is True
    assert bool(skip_update(1.0, 2.0, 0.0, "lower")) is False  # outside the window
    assert bool(skip_update(1.0, nan, 1.0, "lower")) is False  # no previous batch yet


def test_loss_dropout_skips_only_inside_the_window():
    dropout = LossDropout(first_epoch=2, last_epoch=3)
    _, history = train(
        schedules.constant(4, 10, 0.01), step_options=StepOptions(loss_dropout=dropout)
    )
    taken = history.history["epoch_updates"]
    assert taken[0] == taken[3] == 20
    assert 0 < taken[1] < 20 and 0 < taken[2] < 20
    assert history.history["updates"][-1] == sum(taken)
    _, higher = train(
        schedules.constant(2, 10, 0.01),
        step_options=StepOptions(
            loss_dropout=LossDropout(first_epoch=1, last_epoch=2, rule="higher")
        ),
    )
    assert all(0 < t < 20 for t in higher.history["epoch_updates"])


def test_reset_optimizer_clears_momentum_at_phase_changes():
    def momentum(model):
        if not model.optimizer.built:
            return 0.0
        return sum(float(np.abs(numpy(b)).sum()) for b in model.optimizer.buffers)

    schedule = schedules.increase_bs(3, 20, 0.01, [1, 2], 2)
    probe = Probe(momentum, at="begin")
    train(schedule, callbacks=[probe], reset_optimizer=True)
    assert probe.values == [0.0, 0.0, 0.0]
    probe = Probe(momentum, at="begin")
    train(schedule, callbacks=[probe])
    assert probe.values[1] > 0.0


def test_torch_convention_sgd_equals_keras_sgd_with_momentum_correction():
    """Goyal's correction makes Keras's SGD take PyTorch's steps across an LR change."""
    rng = np.random.default_rng(0)
    grads = [keras.ops.convert_to_tensor(rng.normal(size=3), "float32") for _ in range(6)]
    ours_w = keras.Variable(np.ones(3, "float32"))
    keras_w = keras.Variable(np.ones(3, "float32"))
    ours, theirs = SGD(0.1, momentum=0.9), keras.optimizers.SGD(0.1, momentum=0.9)
    for step, g in enumerate(grads):
        if step == 3:
            ours.learning_rate.assign(0.02)
            set_learning_rate(theirs, 0.02, momentum_correction=True)
        ours.apply([g], [ours_w])
        theirs.apply([g], [keras_w])
    np.testing.assert_allclose(numpy(ours_w), numpy(keras_w), rtol=1e-5)


def test_per_step_warmup_and_cosine_follow_the_schedule():
    base = schedules.constant(4, 20, 0.02)  # 10 updates per epoch
    curve = schedules.StepCurve(shape="cosine", warmup_epochs=1, warmup_start_lr=0.0)
    schedule = schedules.with_curve(base, curve)
    probe = Probe(lambda model: float(numpy(model.optimizer.learning_rate)))
    _, history = train(schedule, callbacks=[probe])
    updates = np.array(history.history["updates"], dtype="float32")
    np.testing.assert_allclose(probe.values, schedule.lr_at_updates(updates, 200), rtol=1e-5)
    assert history.history["learning_rate"][0] == 0.0  # the warmup's first update
    ramp = schedule.lr_at_updates(np.arange(12, dtype="float32"), 200)
    np.testing.assert_allclose(ramp[:11], 0.02 * np.arange(11) / 10, rtol=1e-5, atol=1e-7)


def test_curve_with_reduce_lr_on_plateau_is_refused():
    schedule = schedules.with_curve(
        schedules.constant(1, 20, 0.01), schedules.StepCurve(shape="cosine")
    )
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        train(schedule, callbacks=[keras.callbacks.ReduceLROnPlateau()])
