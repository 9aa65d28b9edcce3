"""Phases, epoch settings and the epoch plan: the data every schedule is made of.

Also the one reader and writer of the phase text ``EPOCHSxBATCH@LR,...``, the two formulas
the dry run prints (updates per epoch, Smith et al.'s noise scale), and the validation
helpers the other modules of `bsi_keras.schedules` share (each error names its parameter).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class ScheduleError(ValueError):
    """A schedule parameter is invalid.

    Attributes:
        param: the name of the offending parameter (e.g. ``"milestones"``), so that a
            command line can name the matching flag.
    """

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param


@dataclass(frozen=True)
class Phase:
    """A run of epochs with one batch size and one learning rate.

    Args:
        epochs: number of epochs in the phase (>= 1).
        batch_size: examples per parameter update (>= 1).
        lr: learning rate (> 0).

    Example:

    >>> Phase(2, 100, 0.1)
    Phase(epochs=2, batch_size=100, lr=0.1)
    >>> Phase(2, 0, 0.1)
    Traceback (most recent call last):
    ...
    bsi_keras.schedules.phases.ScheduleError: batch_size: must be a positive integer, got 0
    """

    epochs: int
    batch_size: int
    lr: float

    def __post_init__(self) -> None:
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        check_positive_float("lr", self.lr)


@dataclass(frozen=True)
class EpochSetting:
    """What one epoch uses: the schedule's answer to `BaseSchedule.at`.

    Attributes:
        epoch: 0-based epoch index.
        phase: 0-based index of the phase the epoch belongs to.
        batch_size: examples per update in this epoch.
        lr: learning rate in this epoch.
        reason: why the setting changed, for schedules that decide from measurements.
    """

    epoch: int
    phase: int
    batch_size: int
    lr: float
    reason: str = ""


@dataclass(frozen=True)
class EpochPlan:
    """How one epoch of ``num_examples`` is cut into batches: the one place that counts updates.

    The dry run, the schedules' update totals, the per-update LR curves and the driver all
    ask this object, so that they count the same updates.

    Args:
        num_examples: training examples per epoch (N).
        drop_remainder: drop the epoch's last partial batch (floor updates) instead of
            training on it as a smaller batch (ceil updates, the default, as the references).

    Example:

    >>> plan = EpochPlan(1_000, drop_remainder=False)
    >>> plan.updates(300), plan.examples(300), plan.batch_sizes(300)
    (4, 1000, [300, 300, 300, 100])
    >>> EpochPlan(1_000, drop_remainder=True).batch_sizes(300)
    [300, 300, 300]
    """

    num_examples: int
    drop_remainder: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.num_examples, bool) or not isinstance(self.num_examples, int):
            raise ScheduleError("num_examples", f"must be an integer, got {self.num_examples!r}")
        if self.num_examples < 0:
            raise ScheduleError("num_examples", f"must be >= 0, got {self.num_examples}")

    @classmethod
    def of(cls, plan: EpochPlan | int, drop_remainder: bool = False) -> EpochPlan:
        """``plan`` itself, or the plan of ``plan`` examples (an int, as older calls pass)."""
        return plan if isinstance(plan, EpochPlan) else cls(int(plan), drop_remainder)

    def updates(self, batch_size: int) -> int:
        """Parameter updates in one epoch at ``batch_size``."""
        if self.drop_remainder:
            return self.num_examples // batch_size
        return math.ceil(self.num_examples / batch_size)

    def examples(self, batch_size: int) -> int:
        """Examples trained on in one epoch at ``batch_size``."""
        if self.drop_remainder:
            return self.num_examples - self.num_examples % batch_size
        return self.num_examples

    def batch_sizes(self, batch_size: int) -> list[int]:
        """The sizes of the epoch's batches, in order (the last one may be partial)."""
        full, rest = divmod(self.examples(batch_size), batch_size)
        return [batch_size] * full + ([rest] if rest else [])


def updates_per_epoch(num_examples: int, batch_size: int, drop_remainder: bool = False) -> int:
    """Parameter updates in one epoch of ``num_examples`` at ``batch_size``.

    >>> updates_per_epoch(50_000, 128), updates_per_epoch(50_000, 128, drop_remainder=True)
    (391, 390)
    """
    return EpochPlan(num_examples, drop_remainder).updates(batch_size)


def noise_scale(lr: float, num_examples: int, batch_size: int, momentum: float = 0.0) -> float:
    """Smith et al.'s SGD noise scale ``g = lr * N / (B * (1 - momentum))``.

    >>> noise_scale(0.1, 50_000, 128)
    39.0625
    """
    return lr * num_examples / (batch_size * (1.0 - momentum))


def parse_phases(text: str) -> tuple[Phase, ...]:
    """Phases from the text form ``EPOCHSxBATCH@LR,...`` (the one place that reads it).

    >>> parse_phases("2x100@0.1, 1x500@0.02")
    (Phase(epochs=2, batch_size=100, lr=0.1), Phase(epochs=1, batch_size=500, lr=0.02))
    """
    return tuple(_parse_phase(item) for item in text.split(",") if item.strip())


def format_phases(phases: Sequence[Phase]) -> str:
    """The text form of ``phases``, inverse of `parse_phases` (the one place that writes it).

    >>> format_phases((Phase(2, 100, 0.1), Phase(2, 500, 0.1), Phase(2, 2500, 0.1)))
    '2x100@0.1,2x500@0.1,2x2500@0.1'
    """
    return ",".join(f"{p.epochs}x{p.batch_size}@{p.lr:g}" for p in phases)


def _parse_phase(item: str) -> Phase:
    text = item.strip()
    try:
        epochs_batch, lr = text.split("@")
        epochs, batch_size = epochs_batch.lower().split("x")
        return Phase(int(epochs), int(batch_size), float(lr))
    except ScheduleError:
        raise
    except ValueError:
        raise ScheduleError(
            "phases", f"{text!r} is not of the form EPOCHSxBATCH@LR (e.g. 2x100@0.1)"
        ) from None


def check_milestones(milestones: Sequence[int], epochs: int) -> tuple[int, ...]:
    """``milestones`` as a tuple, once they are strictly increasing integers in 1..epochs-1."""
    values = tuple(milestones)
    for m in values:
        if isinstance(m, bool) or not isinstance(m, int):
            raise ScheduleError("milestones", f"must be integers, got {m!r}")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ScheduleError("milestones", f"must be strictly increasing, got {list(values)}")
    if values and (values[0] < 1 or values[-1] >= epochs):
        raise ScheduleError(
            "milestones",
            f"must lie between 1 and {epochs - 1} (the last epoch) for {epochs} epochs, "
            f"got {list(values)}",
        )
    return values


def check_positive_int(param: str, value: Any) -> None:
    """Refuse ``value`` for ``param`` unless it is an integer >= 1 (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ScheduleError(param, f"must be a positive integer, got {value!r}")


def check_positive_float(param: str, value: Any) -> None:
    """Refuse ``value`` for ``param`` unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScheduleError(param, f"must be a positive number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ScheduleError(param, f"must be a positive finite number, got {value!r}")


def check_choice(param: str, value: Any, choices: Sequence[str]) -> None:
    """Refuse ``value`` for ``param`` unless it is one of ``choices``."""
    if value not in choices:
        raise ScheduleError(param, f"must be one of {', '.join(choices)}, got {value!r}")
