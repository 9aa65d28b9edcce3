"""Compile the next phase's micro-batch shape in the background while this phase trains.

With accumulation across calls (`train_step.accumulate`), an epoch at batch ``B`` runs
micro-batches of ``min(B, P)`` examples: every batch at or above the physical batch ``P``
shares one compiled shape, and each distinct batch below it is one more. A fixed schedule
says in advance which epoch needs which shape, so after each epoch `CompileAhead` starts
compiling the nearest shape not compiled yet in a background thread
(`runtime.ahead_of_time`), and the epoch that needs it waits only for what is left of that
compilation. An adaptive schedule decides its batches from measurements: nothing is known
ahead, and each shape compiles at its first batch as before.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bsi_keras.driver.bridge import TraceCounter
from bsi_keras.driver.execution import MultiStep
from bsi_keras.driver.feeds import Background
from bsi_keras.runtime import ahead_of_time

if TYPE_CHECKING:
    from bsi_keras.driver.loop import Run


class CompileAhead:
    """The background compilations of one run, one at a time.

    Args:
        run: the run (`driver.loop.Run`): its schedule's planned epochs and their shapes.
        traces: the run's trace counter, which keeps the step's signature for this.
        multi_step: the train functions the epochs call (TensorFlow traces into one).

    Each epoch's row gets ``ahead_traces`` (the traces compiled ahead for the shape it
    waited for) and ``ahead_compile_seconds`` (their wall seconds in the background
    thread); the seconds it waited count as its compile seconds.
    """

    def __init__(self, run: Run, traces: TraceCounter, multi_step: MultiStep):
        self.run, self.traces, self.multi_step = run, traces, multi_step
        options = run.step_options
        self.active = (
            run.accumulate
            and options.compile_ahead
            and not run.model.run_eagerly
            and ahead_of_time.supported()
        )
        planned = run.schedule.planned() if self.active else []
        self.batches = {s.epoch: s.batch_size for s in planned}  # epoch -> batch size
        self.compiled: set[int] = set()  # shapes trained or compiled ahead
        self.pending: tuple[int, Background, int] | None = None  # shape, thread, traces before
        traces.keep_signature = self.active

    def before_epoch(self, physical: int | None) -> tuple[dict[str, float], float]:
        """Wait for the background compilation if an epoch of micro-batches of ``physical``
        needs it or would trace beside it.

        Returns:
            The row's fields, and the seconds waited (compile time the epoch paid).
        """
        if not self.active:
            return {}, 0.0
        if self.pending is None or (physical != self.pending[0] and physical in self.compiled):
            return {"ahead_traces": 0, "ahead_compile_seconds": 0.0}, 0.0
        start = time.perf_counter()
        fields = self.wait()
        return fields, time.perf_counter() - start

    def after_epoch(self, epoch: int, physical: int | None) -> None:
        """Mark ``physical`` compiled; start compiling the next planned shape not compiled."""
        if not self.active:
            return
        self.compiled.add(physical)
        signature = self.traces.signature
        if self.pending is not None or signature is None:
            return
        upcoming = (self.batches[e] for e in sorted(self.batches) if e > epoch)
        batch = next((b for b in upcoming if self.run.physical_batch(b) not in self.compiled), None)
        if batch is None:
            return
        shape = self.run.physical_batch(batch)
        function = self.multi_step.function_for(self.run.steps(batch))
        if function is None:  # TensorFlow: that train function is made by its first fit
            return
        model, resized = self.run.model, ahead_of_time.with_batch(signature, shape)

        def compile_shape() -> float:
            start = time.perf_counter()
            ahead_of_time.compile_train_step(model, function, resized)
            return time.perf_counter() - start

        traces_before = self.traces.ahead  # read before the thread starts tracing
        self.pending = (shape, Background(compile_shape), traces_before)

    def wait(self) -> dict[str, float]:
        """Wait for the compilation in progress; its traces and seconds.

        Raises:
            RuntimeError: the compilation failed (its error is the cause).
        """
        shape, background, traces_before = self.pending
        self.pending = None
        try:
            seconds = background.result()
        except Exception as error:
            raise RuntimeError(
                f"compiling the train step ahead of time for micro-batches of {shape} "
                f"failed: {type(error).__name__}: {error}. StepOptions(compile_ahead=False) "
                "compiles each shape at its first batch instead"
            ) from error
        self.compiled.add(shape)
        return {
            "ahead_traces": self.traces.ahead - traces_before,
            "ahead_compile_seconds": seconds,
        }

    def close(self) -> None:
        """Wait for a compilation still running (so that no thread traces the model after
        the run), without raising: the run is over."""
        if self.pending is not None:
            self.pending[1].thread.join()
            self.pending = None
