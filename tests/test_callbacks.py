"""Keras callbacks across phase boundaries behave as in one `model.fit`."""

import csv

import keras
import numpy as np
import pytest

from bsi_keras import data, fit, models, schedules
from bsi_keras.checkpoint import checkpoint_path

DATA = data.synthetic(400, (28, 28, 1), seed=1)
VALIDATION = (DATA.x_test, DATA.y_test)


def compiled_model(lr: float = 0.005) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = models.get_model("mnist_cnn")
    model.compile(
        optimizer=keras.optimizers.SGD(lr, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def run(schedule, callbacks=(), model=None, **options):
    model = model or compiled_model()
    history = fit(
        model,
        DATA.x_train,
        DATA.y_train,
        schedule=schedule,
        validation_data=VALIDATION,
        callbacks=list(callbacks),
        verbose=0,
        seed=0,
        **options,
    )
    return model, history


class Recorder(keras.callbacks.Callback):
    """Records every event a run-wide callback receives."""

    def __init__(self):
        super().__init__()
        self.events, self.epoch_logs, self.batches = [], [], 0

    def on_train_begin(self, logs=None):
        self.events.append("train_begin")

    def on_train_end(self, logs=None):
        self.events.append("train_end")

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(f"epoch_begin {epoch}")

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(f"epoch_end {epoch}")
        self.epoch_logs.append(dict(logs))

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


THREE_PHASES = schedules.increase_bs(6, 20, 0.005, [2, 4], 2)  # 20 -> 40 -> 80


def test_one_continuous_run_with_global_epochs():
    recorder = Recorder()
    _, history = run(THREE_PHASES, [recorder])
    assert recorder.events[0] == "train_begin" and recorder.events[-1] == "train_end"
    assert recorder.events.count("train_begin") == recorder.events.count("train_end") == 1
    assert [e for e in recorder.events if e.startswith("epoch_end")] == [
        f"epoch_end {e}" for e in range(6)
    ]
    assert [logs["batch_size"] for logs in recorder.epoch_logs] == [20, 20, 40, 40, 80, 80]
    assert all(logs["learning_rate"] == pytest.approx(0.005) for logs in recorder.epoch_logs)
    assert "val_loss" in recorder.epoch_logs[0]
    assert recorder.batches == 2 * (20 + 10 + 5)
    assert history.epoch == list(range(6))
    assert history.history["updates"] == [20, 40, 50, 60, 65, 70]


def test_early_stopping_ends_the_schedule_and_restores_the_best_weights():
    # The LR collapses in the second phase, so the loss stops improving there.
    schedule = schedules.from_phases("2x20@0.005,4x40@1e-12")
    recorder = Recorder()
    snapshots = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: snapshot.append(model.get_weights())
    )
    snapshot = []
    model = compiled_model()
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=1, min_delta=0.01, restore_best_weights=True
    )
    _, history = run(schedule, [snapshots, stopper, recorder], model=model)
    assert 3 <= len(history.epoch) < 6  # stopped inside the second phase
    assert history.status == "stopped"
    assert recorder.events.count("train_end") == 1
    best = int(np.argmin(history.history["val_loss"]))
    for restored, saved in zip(model.get_weights(), snapshot[best]):
        np.testing.assert_array_equal(restored, saved)


def test_model_checkpoint_global_epochs_and_best_across_phases(tmp_path):
    every = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "epoch{epoch:02d}.weights.h5"), save_weights_only=True
    )
    best = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "best.weights.h5"),
        monitor="val_loss",
        save_best_only=True,
        save_weights_only=True,
    )
    _, history = run(THREE_PHASES, [every, best])
    assert sorted(p.name for p in tmp_path.glob("epoch*")) == [
        f"epoch{e:02d}.weights.h5" for e in range(1, 7)
    ]
    assert best.best == pytest.approx(min(history.history["val_loss"]))


def test_csv_logger_writes_one_continuous_log(tmp_path):
    path = tmp_path / "log.csv"
    run(THREE_PHASES, [keras.callbacks.CSVLogger(str(path))])
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(6))
    assert [int(float(r["batch_size"])) for r in rows] == [20, 20, 40, 40, 80, 80]


def test_tensorboard_one_log_with_schedule_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run(THREE_PHASES, [keras.callbacks.TensorBoard(str(tmp_path))])
    train_dirs = list((tmp_path / "train").glob("events.out.tfevents.*"))
    assert len(train_dirs) == 1  # one writer for the whole schedule
    events = EventAccumulator(str(tmp_path / "train"), size_guidance={"tensors": 0}).Reload()
    steps = [e.step for e in events.Tensors("epoch_batch_size")]
    values = [
        float(keras.ops.convert_to_numpy(tensor_value(e)))
        for e in events.Tensors("epoch_batch_size")
    ]
    assert steps == list(range(6))  # the epoch axis counts global epochs
    assert values == [20, 20, 40, 40, 80, 80]
    assert "epoch_learning_rate" in events.Tags()["tensors"]


def tensor_value(event):
    from tensorboard.util import tensor_util

    return tensor_util.make_ndarray(event.tensor_proto)


def test_reduce_lr_on_plateau_multiplies_the_schedule():
    schedule = schedules.decay_lr(6, 20, 0.004, [2, 4], 2)  # 0.004, 0.002, 0.001
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=0, min_delta=100.0, min_lr=0.0
    )
    _, history = run(schedule, [plateau])
    scheduled = [0.004, 0.004, 0.002, 0.002, 0.001, 0.001]
    # The plateau never ends after the first epoch: one halving at the end of each later one.
    expected = [lr * 0.5 ** max(0, epoch - 1) for epoch, lr in enumerate(scheduled)]
    np.testing.assert_allclose(history.history["learning_rate"], expected, rtol=1e-5)


def test_terminate_on_nan_stops_the_whole_schedule():
    model = compiled_model()
    poison = keras.callbacks.LambdaCallback(  # NaN weights from the second epoch on
        on_epoch_end=lambda epoch, logs: model.layers[-1].kernel.assign(
            np.full(model.layers[-1].kernel.shape, np.nan, "float32")
        )
    )
    recorder = Recorder()
    _, history = run(
        THREE_PHASES, [poison, keras.callbacks.TerminateOnNaN(), recorder], model=model
    )
    assert len(history.epoch) == 2 and history.status == "diverged"
    assert not np.isfinite(history.history["loss"][-1])
    assert recorder.events.count("train_end") == 1


class StopAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("simulated crash")


def test_backup_and_restore_is_the_driver_checkpoint(tmp_path):
    _, reference = run(THREE_PHASES)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(THREE_PHASES, [backup, StopAt(3)])
    assert checkpoint_path(tmp_path / "backup").is_file()
    recorder = Recorder()
    _, history = run(
        THREE_PHASES, [keras.callbacks.BackupAndRestore(str(tmp_path / "backup")), recorder]
    )
    # Epochs 0-2 come from the backup; 3-5 run again (the crash hit before epoch 3 was saved).
    assert [e for e in recorder.events if e.startswith("epoch_end")] == [
        "epoch_end 3",
        "epoch_end 4",
        "epoch_end 5",
    ]
    assert history.epoch == list(range(6))
    np.testing.assert_allclose(history.history["loss"], reference.history["loss"], rtol=1e-5)
    assert not checkpoint_path(tmp_path / "backup").exists()  # delete_checkpoint=True


def test_function_schedule_and_validation_split():
    _, history = run(lambda epoch: (20 if epoch < 2 else 60, 0.005), epochs=3)
    assert history.history["batch_size"] == [20, 20, 60]
    model = compiled_model()
    history = fit(
        model,
        DATA.x_train,
        DATA.y_train,
        schedule=schedules.constant(1, 50, 0.005),
        validation_split=0.25,
        verbose=0,
    )
    assert history.history["epoch_updates"] == [6]  # 300 of 400 examples train
    assert "val_accuracy" in history.history


def test_class_weight_passes_through():
    _, plain = run(schedules.constant(1, 50, 0.005))
    _, weighted = run(schedules.constant(1, 50, 0.005), class_weight={0: 10.0})
    assert weighted.history["loss"][0] != pytest.approx(plain.history["loss"][0])


def test_tf_data_and_py_dataset_inputs():
    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.batch_size = 1

        def __len__(self):
            return int(np.ceil(len(DATA.x_train) / self.batch_size))

        def __getitem__(self, index):
            part = slice(index * self.batch_size, (index + 1) * self.batch_size)
            return DATA.x_train[part], DATA.y_train[part]

    model = compiled_model()
    history = fit(model, Batches(), schedule=THREE_PHASES, verbose=0)
    assert history.history["epoch_updates"] == [20, 20, 10, 10, 5, 5]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        dataset = tf.data.Dataset.from_tensor_slices((DATA.x_train, DATA.y_train)).batch(7)
        history = fit(compiled_model(), dataset, schedule=THREE_PHASES, verbose=0, seed=0)
        assert history.history["epoch_updates"] == [20, 20, 10, 10, 5, 5]


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="PyTorch runs eagerly")
def test_traces_once_per_batch_shape():
    """A three-phase schedule traces the train step once per distinct batch shape."""
    model = compiled_model()
    traces = []
    step = model.train_step

    def counting_step(*args):
        traces.append(1)  # runs only while tracing: the compiled step does not call Python
        return step(*args)

    model.train_step = counting_step
    run(THREE_PHASES, model=model)  # 400 examples: 20, 40, 80 all divide it
    assert 1 <= len(traces) <= 3
    traces.clear()
    uneven = schedules.increase_bs(3, 30, 0.005, [1, 2], 2)  # 30, 60, 120: all leave a rest
    run(uneven, model=model, drop_remainder=True)
    assert len(traces) <= 3


@pytest.mark.parametrize("verbose", [1, 2])
def test_adaptive_schedule_reasons_stay_out_of_keras_logs(verbose, capsys):
    """The progress bar averages every log value: a text field used to crash it."""
    from bsi_keras.train_step import StepOptions
    from bsi_keras.train_step.core import NoiseScaleOptions

    recorder = Recorder()
    history = fit(
        compiled_model(),
        DATA.x_train,
        DATA.y_train,
        schedule=schedules.AdaptiveSchedule(3, 20, 0.005, multiple_of=10, max_batch_size=80),
        callbacks=[recorder],
        verbose=verbose,
        seed=0,
        step_options=StepOptions(noise_scale=NoiseScaleOptions(every=1, small_batch=10)),
    )
    assert history.epoch == [0, 1, 2] and history.status == "finished"
    assert "loss" in capsys.readouterr().out  # the progress bar printed its epochs
    assert all(not isinstance(v, str) for logs in recorder.epoch_logs for v in logs.values())
    assert len(history.history["schedule_reason"]) == 2  # epochs 2 and 3 say why
    assert all(r.startswith(("B_simple", "no usable")) for r in history.history["schedule_reason"])


def test_uncompiled_model_is_refused():
    with pytest.raises(ValueError, match=r"compile the model before calling bsi_keras\.fit"):
        fit(
            models.get_model("mnist_cnn"),
            DATA.x_train,
            DATA.y_train,
            schedule=schedules.constant(1, 20, 0.005),
            verbose=0,
        )
