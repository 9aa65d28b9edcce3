"""SIGINT/SIGTERM during a run: stop after the current step, keep every finished epoch."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras


class TrainingInterrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT or SIGTERM; finished epochs are kept.

    Attributes:
        signum: the signal that stopped the run.
        epoch: 0-based epoch that was in progress (and dropped).
        history: the finished epochs' history.
        run_dir: the run folder, where one is known (set by `bsi_keras.experiment.train`).
    """

    def __init__(self, signum: int, epoch: int):
        name = signal.Signals(signum).name
        super().__init__(f"{name} received during epoch {epoch + 1}; that epoch was dropped")
        self.signum = signum
        self.epoch = epoch
        self.history: keras.callbacks.History | None = None
        self.run_dir: Path | None = None


def raise_if_received(received: list[int], epoch: int) -> None:
    """Raise `TrainingInterrupted` for ``epoch`` if a signal came."""
    if received:
        raise TrainingInterrupted(received[0], epoch)


@contextmanager
def stop_on_signals(model: keras.Model) -> Iterator[list[int]]:
    """While training, SIGINT/SIGTERM stop after the current step instead of killing.

    Yields the list that receives the signal numbers; outside the main thread signals
    cannot be caught, and nothing is installed.
    """
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if received:  # a second signal: the user wants out now
            raise KeyboardInterrupt
        received.append(signum)
        model.stop_training = True

    previous = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread
        pass
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
