"""The schedule protocol and its two tabulated implementations.

`BaseSchedule` is what the driver, the command line and the run folder know of a schedule:
its length, each epoch's setting (`at`), and its config. `Schedule` is a fixed list of
phases (every builder returns one); `FunctionSchedule` evaluates a function of the epoch.
"""

from __future__ import annotations

import abc
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from bsi_keras.schedules.curves import StepCurve
from bsi_keras.schedules.phases import (
    EpochPlan,
    EpochSetting,
    Phase,
    ScheduleError,
    check_positive_int,
    format_phases,
    noise_scale,
)


class BaseSchedule(abc.ABC):
    """What every schedule answers: its length, each epoch's setting, and its config.

    Fixed (`Schedule`), function (`FunctionSchedule`) and adaptive (`AdaptiveSchedule`)
    schedules implement it; the driver, the command line and the run folder know schedules
    through this type only.

    Attributes:
        epochs: total number of epochs.
        name: a short label used in run folders and plots.
        curve: the per-update LR curve (`StepCurve`) or None; fixed schedules only.
        measures_noise_scale: whether the schedule decides from the measured gradient
            noise scale (then the train step must measure it).
    """

    epochs: int
    name: str
    curve: StepCurve | None = None
    measures_noise_scale: ClassVar[bool] = False

    @abc.abstractmethod
    def at(self, epoch: int, history: Sequence[Mapping[str, Any]] = ()) -> EpochSetting:
        """The setting of 0-based ``epoch`` given the logs of the epochs before it."""

    @abc.abstractmethod
    def to_config(self) -> dict[str, Any]:
        """A JSON-serializable description, inverse of `schedules.from_config`."""

    @abc.abstractmethod
    def tabulated(self) -> Schedule:
        """The fixed schedule a dry run shows (for an adaptive one, its fastest growth)."""

    def planned(self) -> list[EpochSetting]:
        """The settings known before training (every epoch, unless measurements decide)."""
        return self.tabulated().settings()

    def describe(self) -> str:
        """A one-line description of the phases, for logs."""
        phases = self.tabulated().phases
        text = format_phases(phases).replace(",", ", ")
        return text if len(text) < 200 else f"{len(phases)} phases"


@dataclass(frozen=True)
class Schedule(BaseSchedule):
    """A fixed schedule: consecutive phases, each with its batch size and learning rate.

    Args:
        phases: the phases in order.
        name: a short label used in run folders and plots.
        params: the builder arguments, recorded so a run's config says how it was made.
        curve: the per-update LR curve inside the phases, or None.

    Example:

    >>> s = Schedule((Phase(2, 100, 0.1), Phase(1, 500, 0.1)), name="custom")
    >>> s.epochs, s.milestones
    (3, (2,))
    >>> s.at(2).batch_size
    500
    """

    phases: tuple[Phase, ...]
    name: str = "custom"
    params: Mapping[str, Any] = field(default_factory=dict, compare=False)
    curve: StepCurve | None = None

    def __post_init__(self) -> None:
        if not self.phases:
            raise ScheduleError("phases", "a schedule needs at least one phase")
        object.__setattr__(self, "phases", tuple(self.phases))

    @property
    def epochs(self) -> int:  # type: ignore[override]  # derived from the phases
        """Total number of epochs."""
        return sum(p.epochs for p in self.phases)

    @property
    def milestones(self) -> tuple[int, ...]:
        """Epochs (0-based) at which a new phase starts, excluding epoch 0."""
        starts, total = [], 0
        for phase in self.phases[:-1]:
            total += phase.epochs
            starts.append(total)
        return tuple(starts)

    def at(self, epoch: int, history: Sequence[Mapping[str, float]] = ()) -> EpochSetting:
        """Return the setting of 0-based ``epoch``; a fixed schedule ignores ``history``.

        Args:
            epoch: 0-based epoch index, ``0 <= epoch < self.epochs``.
            history: per-epoch logs measured so far (used by adaptive schedules only).

        Returns:
            The `EpochSetting` for that epoch.
        """
        if not 0 <= epoch < self.epochs:
            raise IndexError(f"epoch {epoch} is outside the schedule's {self.epochs} epochs")
        end = 0
        for index, phase in enumerate(self.phases):
            end += phase.epochs
            if epoch < end:
                return EpochSetting(epoch, index, phase.batch_size, phase.lr)
        raise AssertionError("unreachable")

    def settings(self) -> list[EpochSetting]:
        """Every epoch's setting, in order."""
        return [self.at(e) for e in range(self.epochs)]

    def tabulated(self) -> Schedule:
        return self

    def phase_starts(self, plan: EpochPlan | int, drop_remainder: bool = False) -> list[int]:
        """The update index at which each phase starts."""
        plan = EpochPlan.of(plan, drop_remainder)
        starts, total = [], 0
        for phase in self.phases:
            starts.append(total)
            total += phase.epochs * plan.updates(phase.batch_size)
        return starts

    def total_updates(self, plan: EpochPlan | int, drop_remainder: bool = False) -> int:
        """Parameter updates the whole schedule takes.

        Args:
            plan: the `EpochPlan`, or the training set size N.
            drop_remainder: with a training set size: whether the last partial batch of an
                epoch is dropped (floor) or kept as a smaller batch (ceil, the default).
        """
        plan = EpochPlan.of(plan, drop_remainder)
        return sum(p.epochs * plan.updates(p.batch_size) for p in self.phases)

    def lr_function(self, plan: EpochPlan | int) -> Callable[[Any, Any], Any]:
        """The per-update LR as one function ``(updates, xp) -> lr``, resolved for ``plan``.

        Phase boundaries and the curve are worked out here, once; the function evaluates
        array arithmetic only, so a compiled train step can call it at every update.

        Args:
            plan: the `EpochPlan` (or the training set size): it places the phase
                boundaries in updates.

        Example:

        >>> import numpy as np
        >>> s = Schedule((Phase(1, 50, 0.1), Phase(1, 100, 0.02)))
        >>> lr_at = s.lr_function(EpochPlan(100))
        >>> [round(float(v), 4) for v in lr_at(np.arange(4), np)]
        [0.1, 0.1, 0.02, 0.02]
        """
        plan = EpochPlan.of(plan)
        boundaries = self.phase_starts(plan)[1:]
        lrs = [p.lr for p in self.phases]
        curve = None
        if self.curve is not None:
            per_epoch = plan.updates(self.phases[0].batch_size)
            curve = self.curve.resolve(self.total_updates(plan), per_epoch)

        def lr_at(updates: Any, xp: Any) -> Any:
            index = xp.zeros_like(updates, dtype="int32")
            for start in boundaries:
                index = index + xp.where(updates >= start, 1, 0)
            lr = xp.take(xp.array(lrs, dtype="float32"), index)
            return lr if curve is None else curve(lr, updates * 1.0, xp)

        return lr_at

    def lr_at_updates(
        self, updates: Any, plan: EpochPlan | int, drop_remainder: bool = False, xp: Any = None
    ) -> Any:
        """The learning rate of update(s) ``updates`` (0-based), per-step curve included.

        Args:
            updates: update indices (an array of ``xp``).
            plan: the `EpochPlan` (or the training set size): it places the phase
                boundaries in updates.
            drop_remainder: with a training set size, as in `EpochPlan`.
            xp: the array module, numpy (default) or `keras.ops`, so the same formula
                runs in a dry run and inside a compiled train step.

        Returns:
            Learning rates with the shape of ``updates``.
        """
        import numpy as np  # only here: building and inspecting schedules needs no numpy

        return self.lr_function(EpochPlan.of(plan, drop_remainder))(updates, xp or np)

    def table(self, plan: EpochPlan | int, momentum: float = 0.0) -> list[dict[str, float]]:
        """One row per phase for a dry run.

        Args:
            plan: the `EpochPlan` (its ``drop_remainder`` counts the updates), or the
                training set size N.
            momentum: the optimizer's momentum, for the noise scale.

        Returns:
            Dicts with ``phase, epochs, first_epoch, batch_size, lr, updates_per_epoch,
            cumulative_updates, noise_scale`` where the noise scale is Smith et al.'s
            ``lr * N / (B * (1 - momentum))``.
        """
        plan = EpochPlan.of(plan)
        rows, cumulative, first = [], 0, 0
        for index, phase in enumerate(self.phases):
            per_epoch = plan.updates(phase.batch_size)
            cumulative += per_epoch * phase.epochs
            rows.append(
                {
                    "phase": index,
                    "epochs": phase.epochs,
                    "first_epoch": first + 1,
                    "batch_size": phase.batch_size,
                    "lr": phase.lr,
                    "updates_per_epoch": per_epoch,
                    "cumulative_updates": cumulative,
                    "noise_scale": noise_scale(
                        phase.lr, plan.num_examples, phase.batch_size, momentum
                    ),
                }
            )
            first += phase.epochs
        return rows

    def to_config(self) -> dict[str, Any]:
        """A JSON-serializable description, inverse of `Schedule.from_config`."""
        return {
            "name": self.name,
            "params": dict(self.params),
            "phases": [asdict(p) for p in self.phases],
            "curve": asdict(self.curve) if self.curve else None,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Schedule:
        """Rebuild a schedule written by `Schedule.to_config`."""
        curve = config.get("curve")
        return cls(
            tuple(Phase(**p) for p in config["phases"]),
            name=config.get("name", "custom"),
            params=config.get("params", {}),
            curve=StepCurve(**curve) if curve else None,
        )


@dataclass(frozen=True)
class FunctionSchedule(BaseSchedule):
    """A schedule given as a function ``epoch -> (batch_size, lr)``.

    In the style of `keras.callbacks.LearningRateScheduler`: the function receives the
    0-based epoch and returns that epoch's batch size and learning rate. Consecutive epochs
    with the same pair form one phase.

    Args:
        fn: the function.
        epochs: total number of epochs.
        name: a label for logs and plots.

    Example:

    >>> s = FunctionSchedule(lambda e: (128 * 2 ** (e // 2), 0.1), epochs=4)
    >>> [s.at(e).batch_size for e in range(4)], s.at(3).phase
    ([128, 128, 256, 256], 1)
    """

    fn: Callable[[int], tuple[int, float]]
    epochs: int
    name: str = "function"

    def __post_init__(self) -> None:
        check_positive_int("epochs", self.epochs)

    def at(self, epoch: int, history: Sequence[Mapping[str, float]] = ()) -> EpochSetting:
        """Return the setting of 0-based ``epoch`` (see `Schedule.at`)."""
        return self.to_schedule().at(epoch)

    def tabulated(self) -> Schedule:
        return self.to_schedule()

    def to_config(self) -> dict[str, Any]:
        """The config of the evaluated phases (a function itself cannot be saved)."""
        return self.to_schedule().to_config()

    def to_schedule(self) -> Schedule:
        """Evaluate the function at every epoch and merge equal neighbours into phases."""
        phases: list[Phase] = []
        for epoch in range(self.epochs):
            batch_size, lr = _checked(self.fn(epoch), epoch)
            phase = Phase(1, batch_size, lr)
            if phases and (phases[-1].batch_size, phases[-1].lr) == (phase.batch_size, phase.lr):
                phases[-1] = Phase(phases[-1].epochs + 1, phase.batch_size, phase.lr)
            else:
                phases.append(phase)
        return Schedule(tuple(phases), name=self.name)


def _checked(value: Any, epoch: int) -> tuple[int, float]:
    """A schedule function's ``(batch_size, lr)``, refused unless an integer and a number."""
    is_pair = isinstance(value, tuple | list) and len(value) == 2
    batch_size, lr = value if is_pair else (None, None)
    integral = isinstance(batch_size, numbers.Integral) and not isinstance(batch_size, bool)
    numeric = isinstance(lr, numbers.Real) and not isinstance(lr, bool)
    if not (is_pair and integral and numeric):
        raise ScheduleError(
            "schedule",
            f"the schedule function must return (batch_size: int, lr: float) for epoch "
            f"{epoch}, got {value!r}",
        )
    return int(batch_size), float(lr)
