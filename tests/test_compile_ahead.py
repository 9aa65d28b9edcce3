"""The next phase's micro-batch shape compiled in the background (`bsi_keras.driver.ahead`)."""

import keras
import numpy as np
import pytest

import bsi_keras
from bsi_keras import data, models, schedules
from bsi_keras.runtime import ahead_of_time
from bsi_keras.train_step import StepOptions

pytestmark = pytest.mark.skipif(
    not ahead_of_time.supported(), reason="compiles ahead on JAX and TensorFlow only"
)

# Batches 16 -> 32 -> 64 on micro-batches of at most 32: two shapes, 16 and 32.
SCHEDULE = schedules.Schedule(
    (schedules.Phase(2, 16, 0.05), schedules.Phase(2, 32, 0.05), schedules.Phase(1, 64, 0.05))
)


@pytest.fixture(scope="module")
def sample():
    return data.load_dataset("mnist_sample", num_train=200, num_test=10)


def _fit(sample, compile_ahead: bool, schedule=SCHEDULE) -> dict:
    keras.utils.set_random_seed(0)
    model = models.get_model("mnist_cnn", virtual_batch_size=8)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = bsi_keras.fit(
        model,
        sample.x_train,
        sample.y_train,
        schedule=schedule,
        verbose=0,
        seed=0,
        step_options=StepOptions(max_physical_batch=32, compile_ahead=compile_ahead),
    )
    return history.history


def test_the_next_shape_is_compiled_before_its_phase_with_the_same_results(sample):
    ahead, plain = _fit(sample, True), _fit(sample, False)
    # The phase at batch 32 finds its shape compiled ahead: it traces nothing itself.
    assert ahead["ahead_traces"] == [0, 0, 1, 0, 0]
    assert ahead["train_traces"] == [1, 0, 0, 0, 0]
    assert plain["train_traces"] == [1, 0, 1, 0, 0] and "ahead_traces" not in plain
    assert ahead["ahead_compile_seconds"][2] > 0
    # Batch 64 runs as two micro-batches of 32: no third shape, nothing more to compile.
    assert ahead["updates"] == plain["updates"]
    np.testing.assert_array_equal(ahead["loss"], plain["loss"])
    np.testing.assert_array_equal(ahead["accuracy"], plain["accuracy"])


def test_a_failed_background_compilation_stops_the_run_with_its_cause(sample, monkeypatch):
    def broken(model, train_function, signature):
        raise MemoryError("no room for the program")

    monkeypatch.setattr(ahead_of_time, "compile_train_step", broken)
    with pytest.raises(RuntimeError, match="ahead of time for micro-batches of 32") as caught:
        _fit(sample, True)
    assert isinstance(caught.value.__cause__, MemoryError)


def test_a_schedule_that_decides_from_measurements_compiles_nothing_ahead(sample, monkeypatch):
    """An adaptive schedule plans its first epoch only: nothing to compile ahead."""
    calls = []
    monkeypatch.setattr(ahead_of_time, "compile_train_step", lambda *args: calls.append(args))

    class Measured(schedules.FunctionSchedule):
        def planned(self):
            return [self.at(0)]

    _fit(sample, True, Measured(lambda epoch: (16 * 2**epoch, 0.05), epochs=2))
    assert calls == []


def test_with_batch_resizes_the_data_only():
    state, data_ = np.zeros((16, 3), "float32"), (np.zeros((16, 2), "float32"), None)
    arguments = (state, data_) if keras.backend.backend() == "jax" else (data_,)
    resized = ahead_of_time.with_batch(ahead_of_time.signature_of(arguments), 64)
    if keras.backend.backend() == "jax":
        assert resized[0].shape == (16, 3)
    x, missing = resized[-1]
    assert tuple(x.shape) == (64, 2) and missing is None
