"""`RunState`: what a run's checkpoint holds besides the variables, and what resumes it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np


@dataclasses.dataclass
class RunState:
    """The driver's state of one run: all that a resumed run needs besides the variables.

    Saved as JSON in the checkpoint (`bsi_keras.checkpoint`); `bsi_keras.experiment` reads
    ``next_epoch`` from it to record where a resumed run starts.

    Args:
        seed: seed of the per-epoch data order (and augmentation).
        next_epoch: 0-based epoch to run next.
        rows: one dict per finished epoch: the logs the callbacks saw, plus text fields such
            as ``schedule_reason``. Adaptive schedules decide from them.
        last_lr: the learning rate the driver last set, to notice a callback's change.
        lr_multiplier: the product of the changes callbacks (ReduceLROnPlateau) made to the
            learning rate; it multiplies the schedule's.

    Example:

    >>> state = RunState(seed=7)
    >>> RunState.from_dict(state.to_dict()) == state
    True
    """

    seed: int
    next_epoch: int = 0
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    last_lr: float | None = None
    lr_multiplier: float = 1.0

    @classmethod
    def new(cls, seed: int | None) -> RunState:
        """The state of a run that has not started; a random seed if ``seed`` is None."""
        return cls(int(np.random.SeedSequence().entropy % 2**31) if seed is None else seed)

    @property
    def updates(self) -> int:
        """Parameter updates of the finished epochs."""
        return int(self.rows[-1]["updates"]) if self.rows else 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (the checkpoint's ``state_json``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> RunState:
        """The state of `to_dict`, as every checkpoint so far holds it."""
        names = {f.name for f in dataclasses.fields(cls)}
        if set(saved) != names:
            raise ValueError(f"a run state has the keys {sorted(names)}, got {sorted(saved)}")
        return cls(**saved)
