"""The adaptive schedule: the batch size follows the measured gradient noise scale."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from bsi_keras.schedules.base import BaseSchedule, FunctionSchedule, Schedule
from bsi_keras.schedules.phases import (
    EpochSetting,
    Phase,
    ScheduleError,
    check_choice,
    check_positive_float,
    check_positive_int,
)
from bsi_keras.schedules.transforms import SCALING_RULES, scaled_lr


@dataclass(frozen=True)
class AdaptiveSchedule(BaseSchedule):
    """Grow the batch size to the measured gradient noise scale (McCandlish et al. 2018).

    Epoch 0 runs at ``batch_size``. After every epoch the driver's log carries the measured
    simple noise scale ``gns_b_simple`` (`bsi_keras.train_step.noise_scale`: a moving
    average over a window of training examples) and its standard error ``gns_b_simple_se``,
    which the reason of every decision records (the rule acts on the value alone); the next
    epoch's batch is ``coefficient * B_simple`` rounded down to a multiple of ``multiple_of`` (the
    ghost-batch size), never smaller than the current batch, at most ``factor`` times it,
    and at most ``max_batch_size``. The LR is held, or follows the batch by ``scale_lr``
    (linear or sqrt, relative to the initial batch).

    Byrd et al.'s norm test (grow while ``tr(Sigma) / B > theta^2 |G|^2``) is this rule with
    ``coefficient = 1 / theta^2``: pass ``theta`` instead of ``coefficient``.

    A schedule that depends on measurements cannot be tabulated before training: a dry run
    shows the first epoch and the fastest growth the rule allows.

    Args:
        epochs: total epochs.
        batch_size: the initial batch size.
        lr: the initial learning rate.
        coefficient: the multiple of B_simple to aim at.
        factor: the largest growth per change.
        max_batch_size: the cap.
        multiple_of: batch sizes are multiples of this.
        scale_lr: ``"none"``, ``"linear"`` or ``"sqrt"``.
        theta: the norm test's threshold (then ``coefficient`` must be left at 1).
        name: a label for logs and plots.

    Example:

    >>> s = AdaptiveSchedule(4, 100, 0.1, factor=2, max_batch_size=1000, multiple_of=10)
    >>> s.at(1, [{"batch_size": 100, "gns_b_simple": 150.0}]).batch_size
    150
    >>> s.at(2, [{"batch_size": 100}, {"batch_size": 150, "gns_b_simple": 900.0}]).batch_size
    300
    >>> s.at(1, [{"batch_size": 100, "gns_b_simple": 150.0, "gns_b_simple_se": 36.0}]).reason
    'B_simple 150 (se 36) x 1 = 150 -> 150'
    """

    epochs: int
    batch_size: int
    lr: float
    coefficient: float = 1.0
    factor: float = 2.0
    max_batch_size: int | None = None
    multiple_of: int = 1
    scale_lr: str = "none"
    theta: float | None = None
    name: str = "adaptive"
    measures_noise_scale: ClassVar[bool] = True

    def __post_init__(self) -> None:
        Phase(self.epochs, self.batch_size, self.lr)  # validates the three
        check_positive_float("coefficient", self.coefficient)
        if not self.factor > 1:
            raise ScheduleError("factor", f"must be > 1, got {self.factor}")
        check_positive_int("multiple_of", self.multiple_of)
        check_choice("scale_lr", self.scale_lr, SCALING_RULES)
        if self.theta is not None:
            check_positive_float("theta", self.theta)
            if self.coefficient != 1.0:
                raise ScheduleError("theta", "give theta or coefficient, not both")
            object.__setattr__(self, "coefficient", 1.0 / self.theta**2)
        if self.max_batch_size is not None and self.max_batch_size < self.batch_size:
            raise ScheduleError("max_batch_size", "is smaller than the initial batch size")

    def at(self, epoch: int, history: Sequence[Mapping[str, Any]] = ()) -> EpochSetting:
        """The setting of 0-based ``epoch`` given the logs of the epochs before it.

        Args:
            epoch: 0-based epoch index, ``0 <= epoch < self.epochs``.
            history: the logs of epochs ``0 .. epoch - 1``, each with ``batch_size`` and,
                where measured, ``gns_b_simple`` (and ``gns_b_simple_se``).
        """
        if not 0 <= epoch < self.epochs:
            raise IndexError(f"epoch {epoch} is outside the schedule's {self.epochs} epochs")
        if epoch == 0 or not history:
            return EpochSetting(epoch, 0, self.batch_size, self.lr)
        current = int(history[-1]["batch_size"])
        measured = float(history[-1].get("gns_b_simple", math.nan))
        error = float(history[-1].get("gns_b_simple_se", math.nan))
        batch, reason = self._next_batch(current, measured, error)
        phase = sum(1 for a, b in itertools.pairwise(history) if a["batch_size"] != b["batch_size"])
        phase += batch != current
        return EpochSetting(epoch, phase, batch, self._lr(batch), reason)

    def _next_batch(self, current: int, measured: float, error: float) -> tuple[int, str]:
        if not math.isfinite(measured) or measured <= 0:
            return current, f"no usable noise scale measured ({measured}); batch held"
        # Logs written before the error was measured, or an epoch with one measurement,
        # have none to give.
        value = f"{measured:.4g}" + (f" (se {error:.2g})" if math.isfinite(error) else "")
        target = self.coefficient * measured
        batch = int(target // self.multiple_of) * self.multiple_of
        limits = [current * self.factor]
        if self.max_batch_size is not None:
            limits.append(self.max_batch_size)
        batch = max(current, min([batch, *[int(limit) for limit in limits]]))
        if batch == current:
            return current, f"B_simple {value} x {self.coefficient:g}: batch held"
        return batch, f"B_simple {value} x {self.coefficient:g} = {target:.4g} -> {batch}"

    def _lr(self, batch: int) -> float:
        return scaled_lr(self.lr, batch, self.batch_size, self.scale_lr)

    def tabulated(self) -> Schedule:
        return self.fastest_growth()

    def planned(self) -> list[EpochSetting]:
        return [self.at(0)]  # later epochs depend on measurements

    def describe(self) -> str:
        return f"adaptive from {self.batch_size}@{self.lr:g}"

    def fastest_growth(self) -> Schedule:
        """The fixed schedule the rule follows if every measurement asks for more.

        >>> AdaptiveSchedule(4, 100, 0.1, factor=2, max_batch_size=300).fastest_growth().phases
        (Phase(epochs=1, batch_size=100, lr=0.1), Phase(epochs=1, batch_size=200, lr=0.1),
         Phase(epochs=2, batch_size=300, lr=0.1))
        """
        batches = [self.batch_size]
        for _ in range(self.epochs - 1):
            grown = int(batches[-1] * self.factor)
            batches.append(min(grown, self.max_batch_size) if self.max_batch_size else grown)
        name = f"{self.name} (fastest growth)"
        fastest = FunctionSchedule(lambda e: (batches[e], self._lr(batches[e])), self.epochs, name)
        return fastest.to_schedule()

    def to_config(self) -> dict[str, Any]:
        """A JSON-serializable description, inverse of `schedules.from_config`."""
        return {"name": self.name, "adaptive": asdict(self)}
