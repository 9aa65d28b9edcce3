"""The epoch loop: one ``model.fit`` call per epoch of the schedule, one run for callbacks.

`train` is the whole run and `run_epoch` one epoch; the pieces they call live next door:
`feeds` (the epoch's data), `lr` (its learning rate), `execution` (steps per call of the
train function), `bridge` (callbacks and timing), `ahead` (the next phase's shape compiled in
the background), `state` (what the checkpoint holds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from bsi_keras import checkpoint, train_step
from bsi_keras.checkpoint import RunState
from bsi_keras.driver import bridge, lr
from bsi_keras.driver.ahead import CompileAhead
from bsi_keras.driver.execution import MultiStep
from bsi_keras.driver.feeds import ArrayFeed, PyDatasetFeed, TFDatasetFeed, ValidationFeed
from bsi_keras.driver.signals import TrainingInterrupted, raise_if_received, stop_on_signals
from bsi_keras.optimizers import momentum_of, reset_state
from bsi_keras.schedules import BaseSchedule, EpochPlan, EpochSetting, noise_scale
from bsi_keras.train_step import StepOptions
from bsi_keras.train_step.state import StepState


@dataclass(frozen=True)
class Run:
    """What stays fixed for a run: the model, its schedule and data, and `fit`'s options."""

    model: keras.Model
    schedule: BaseSchedule
    feed: ArrayFeed | TFDatasetFeed | PyDatasetFeed
    plan: EpochPlan  # the one count of examples, steps and batch sizes per epoch
    validation: ValidationFeed | None
    callbacks: Sequence[keras.callbacks.Callback]
    verbose: int
    class_weight: Mapping[int, float] | None
    momentum_correction: bool
    checkpoint_dir: Path | None
    checkpoint_every: int
    delete_checkpoint_at_end: bool
    step_options: StepOptions | None
    reset_optimizer: bool
    accumulate: bool  # fixed-shape micro-batches, accumulated across calls of the step

    def physical_batch(self, batch_size: int) -> int | None:
        """The micro-batch shape of an epoch at ``batch_size`` (None: whole batches).

        A batch below the physical one is its own shape (at most one more shape per such
        batch size); its epoch's last, partial batch is padded to it.
        """
        if not self.accumulate:
            return None
        return min(batch_size, self.step_options.max_physical_batch)

    def steps(self, batch_size: int) -> int:
        """Train steps of an epoch at ``batch_size``: its batches, or their micro-batches."""
        sizes = self.plan.batch_sizes(batch_size)
        physical = self.physical_batch(batch_size)
        return len(sizes) if physical is None else sum(-(-size // physical) for size in sizes)


def train(run: Run, state: RunState) -> keras.callbacks.History:
    """Resume from ``run.checkpoint_dir`` if a checkpoint is there, then train to the end."""
    model, schedule = run.model, run.schedule
    lr.follow_curve(model.optimizer, schedule, run.plan)
    with (
        train_step.install(model, run.step_options, run.accumulate) as step_state,
        bridge.count_traces(model) as traces,
    ):
        if run.accumulate:
            run.feed.build_compiled_state(model)
        if run.checkpoint_dir and checkpoint.checkpoint_path(run.checkpoint_dir).is_file():
            state = checkpoint.load(run.checkpoint_dir, model)
        history = keras.callbacks.History()
        outer = keras.callbacks.CallbackList(
            [*run.callbacks, history],
            add_progbar=run.verbose != 0,
            model=model,
            verbose=run.verbose,
            epochs=schedule.epochs,
            steps=None,  # set per epoch, by `run_epoch`
        )
        multi_step, clock = MultiStep(model, outer.callbacks), bridge.CompileClock()
        ahead = CompileAhead(run, traces, multi_step)
        outer.on_train_begin()
        for epoch, past in enumerate(state.rows):
            history.on_epoch_end(epoch, past)
        history.status = "finished"
        row: dict[str, Any] = {}
        with stop_on_signals(model) as received:
            try:
                for epoch in range(state.next_epoch, schedule.epochs):
                    raise_if_received(received, epoch)
                    setting = schedule.at(epoch, state.rows)
                    physical = run.physical_batch(setting.batch_size)
                    compiled_ahead, waited = ahead.before_epoch(physical)
                    row = run_epoch(
                        run, state, setting, outer, multi_step, clock, step_state, received
                    )
                    row.update(traces.fields(), **compiled_ahead)
                    row["compile_seconds"] += waited
                    ahead.after_epoch(epoch, physical)
                    bridge.end_epoch(outer, history, epoch, row)
                    state.rows.append(row)
                    if math.isfinite(row.get("loss", 0.0)):
                        state.next_epoch = epoch + 1
                        _save_checkpoint(run, state)
                    else:
                        history.status = "diverged"
                        print(_diverged(row, epoch))
                    if epoch + 1 < schedule.epochs:
                        raise_if_received(received, epoch + 1)
                    if history.status != "finished" or model.stop_training:
                        break
            except TrainingInterrupted as interrupted:
                history.status = "interrupted"
                interrupted.history = history
                raise
            finally:
                ahead.close()
        outer.on_train_end(bridge.numbers(row))
    if history.status == "finished" and model.stop_training:
        history.status = "stopped"
    if run.delete_checkpoint_at_end and history.status != "diverged":
        checkpoint.checkpoint_path(run.checkpoint_dir).unlink(missing_ok=True)
    return history


def run_epoch(
    run: Run,
    state: RunState,
    setting: EpochSetting,
    outer: keras.callbacks.CallbackList,
    multi_step: MultiStep,
    clock: bridge.CompileClock,
    step_state: StepState | None,
    received: list[int],
) -> dict[str, Any]:
    """Train the epoch of ``setting`` with one ``model.fit`` call; return its row of the log."""
    model, plan, epoch = run.model, run.plan, setting.epoch
    if run.reset_optimizer and state.rows and state.rows[-1]["phase"] != setting.phase + 1:
        reset_state(model.optimizer, model.trainable_variables)
    epoch_lr = lr.apply(
        model.optimizer, run.schedule, plan, setting.lr, state, run.momentum_correction
    )
    if step_state is not None:
        step_state.begin_epoch(epoch)
    sizes = plan.batch_sizes(setting.batch_size)
    physical = run.physical_batch(setting.batch_size)
    if physical is None:
        inputs = run.feed.epoch(state.seed, epoch, setting.batch_size, plan)
    else:  # the steps are the micro-batches
        inputs = run.feed.micro_batches(state.seed, epoch, setting.batch_size, plan, physical)
        sizes = [physical] * run.steps(setting.batch_size)
    outer.set_params({"verbose": run.verbose, "epochs": run.schedule.epochs, "steps": len(sizes)})
    epoch_bridge = bridge.Bridge(outer, steps=len(sizes))
    updates_before = _updates(model)
    per_execution = multi_step.steps_per_execution(len(sizes))
    with multi_step.train_function(per_execution):
        model.fit(
            **inputs,
            class_weight=None if physical else run.class_weight,  # folded in by the feed
            initial_epoch=epoch,
            epochs=epoch + 1,
            shuffle=False,
            verbose=0,
            callbacks=[epoch_bridge],
        )
    raise_if_received(received, epoch)  # a signal stopped the epoch early: drop it
    row = {
        **epoch_bridge.epoch_logs,
        **_evaluate(model, run.validation),
        **_schedule_fields(model, setting, epoch_lr, plan),
        **clock.fields(epoch_bridge, sizes, per_execution),
        "epoch_updates": _updates(model) - updates_before,
    }
    row["updates"] = state.updates + row["epoch_updates"]
    return {k: (v if isinstance(v, (int, str)) else float(v)) for k, v in row.items()}


def _evaluate(model: keras.Model, validation: ValidationFeed | None) -> dict[str, float]:
    if validation is None:
        return {}
    results = model.evaluate(**validation.inputs(), verbose=0, return_dict=True)
    return {f"val_{name}": float(value) for name, value in results.items()}


def _schedule_fields(
    model: keras.Model, setting: EpochSetting, epoch_lr: float, plan: EpochPlan
) -> dict[str, Any]:
    examples = plan.examples(setting.batch_size)
    momentum = momentum_of(model.optimizer)
    fields = {
        "phase": setting.phase + 1,
        "batch_size": setting.batch_size,
        "learning_rate": epoch_lr,
        "noise_scale": noise_scale(epoch_lr, examples, setting.batch_size, momentum),
    }
    if setting.reason:  # text: `bridge.end_epoch` keeps it from Keras's callbacks
        fields["schedule_reason"] = setting.reason
    return fields


def _save_checkpoint(run: Run, state: RunState) -> None:
    """Every ``checkpoint_every`` epochs and after the last one."""
    last = state.next_epoch == run.schedule.epochs or run.model.stop_training
    if run.checkpoint_dir is not None and (last or state.next_epoch % run.checkpoint_every == 0):
        checkpoint.save(run.checkpoint_dir, run.model, state)


def _updates(model: keras.Model) -> int:
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def _diverged(row: Mapping[str, Any], epoch: int) -> str:
    return (
        f"Training diverged: the loss became {row['loss']} in epoch {epoch + 1} "
        f"(batch size {row['batch_size']}, learning rate {row['learning_rate']:g}). Finished "
        "epochs and the last good checkpoint are kept; try a smaller learning rate."
    )
