"""Batch-size and learning-rate schedules as pure data.

A schedule answers one question for the driver: *which batch size and learning rate does
epoch ``e`` use?* (`Schedule.at`). A fixed schedule is a list of `Phase` objects; the
builders below (`constant`, `decay_lr`, `increase_bs`, `hybrid`, `from_phases`) produce
the schedules of Smith et al. 2017 ("Don't Decay the Learning Rate, Increase the Batch
Size") and of the reference reproductions. Nothing here imports Keras, so every schedule
can be inspected and tested without training anything.

Example:

>>> s = increase_bs(epochs=6, batch_size=100, lr=0.1, milestones=[2, 4], factor=5)
>>> [(p.epochs, p.batch_size, p.lr) for p in s.phases]
[(2, 100, 0.1), (2, 500, 0.1), (2, 2500, 0.1)]
>>> s.total_updates(60_000)
1488
"""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

CAP_POLICIES = ("clamp", "decay_lr")


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
    """

    epochs: int
    batch_size: int
    lr: float

    def __post_init__(self) -> None:
        _check_positive_int("epochs", self.epochs)
        _check_positive_int("batch_size", self.batch_size)
        _check_positive_float("lr", self.lr)


@dataclass(frozen=True)
class EpochSetting:
    """What one epoch uses: the schedule's answer to `Schedule.at`.

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

    def phase_starts(self, plan: EpochPlan | int, drop_remainder: bool = False) -> list[int]:
        """The update index at which each phase starts."""
        plan = EpochPlan.of(plan, drop_remainder)
        starts, total = [], 0
        for phase in self.phases:
            starts.append(total)
            total += phase.epochs * plan.updates(phase.batch_size)
        return starts

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
        import numpy as np

        xp = xp or np
        plan = EpochPlan.of(plan, drop_remainder)
        starts = self.phase_starts(plan)
        index = xp.zeros_like(updates, dtype="int32")
        for start in starts[1:]:
            index = index + xp.where(updates >= start, 1, 0)
        lr = xp.take(xp.array([p.lr for p in self.phases], dtype="float32"), index)
        if self.curve is None:
            return lr
        total = self.total_updates(plan)
        first = plan.updates(self.phases[0].batch_size)
        return self.curve.apply(lr, updates, total, first, xp)

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

    def total_updates(self, plan: EpochPlan | int, drop_remainder: bool = False) -> int:
        """Parameter updates the whole schedule takes.

        Args:
            plan: the `EpochPlan`, or the training set size N.
            drop_remainder: with a training set size: whether the last partial batch of an
                epoch is dropped (floor) or kept as a smaller batch (ceil, the default).
        """
        plan = EpochPlan.of(plan, drop_remainder)
        return sum(p.epochs * plan.updates(p.batch_size) for p in self.phases)

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
        num_examples = plan.num_examples
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
                    "noise_scale": noise_scale(phase.lr, num_examples, phase.batch_size, momentum),
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


CURVE_SHAPES = ("constant", "cosine", "cyclic")


@dataclass(frozen=True)
class StepCurve:
    """How the learning rate moves from update to update inside the phases.

    The phases give each update a base LR; the curve reshapes it:

    - ``shape="cosine"``: cosine annealing of the base LR to ``min_lr`` over the run
      (after the warmup);
    - ``shape="cyclic"``: Smith's triangular cyclic LR between ``min_lr`` and the base LR,
      ``cycle_epochs`` epochs (of the first phase's length) per half cycle;
    - ``warmup_epochs``: Goyal et al.'s gradual warmup, a linear ramp per update from
      ``warmup_start_lr`` to the LR the rest of the curve gives.

    Args:
        shape: one of `CURVE_SHAPES`.
        warmup_epochs: epochs of warmup (counted in first-phase updates).
        warmup_start_lr: the LR of the first update.
        cycle_epochs: half-cycle length of the cyclic shape, in epochs.
        min_lr: the lowest LR of the cosine and cyclic shapes.
    """

    shape: str = "constant"
    warmup_epochs: float = 0.0
    warmup_start_lr: float = 0.0
    cycle_epochs: float = 0.0
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        if self.shape not in CURVE_SHAPES:
            raise ScheduleError("lr_curve", f"must be one of {', '.join(CURVE_SHAPES)}")
        if self.warmup_epochs < 0 or self.warmup_start_lr < 0 or self.min_lr < 0:
            raise ScheduleError("warmup_epochs", "warmup and minimum LRs must be >= 0")
        if self.shape == "cyclic" and not self.cycle_epochs > 0:
            raise ScheduleError("cycle_epochs", "the cyclic LR needs cycle_epochs > 0")

    def apply(self, lr: Any, updates: Any, total: int, per_epoch: int, xp: Any) -> Any:
        """Reshape the phases' LR ``lr`` at ``updates`` (see the class docstring)."""
        warmup = self.warmup_epochs * per_epoch
        t = updates * 1.0
        if self.shape == "cosine":
            progress = xp.minimum(xp.maximum(t - warmup, 0.0) / max(total - warmup, 1.0), 1.0)
            lr = self.min_lr + (lr - self.min_lr) * 0.5 * (1.0 + xp.cos(math.pi * progress))
        elif self.shape == "cyclic":
            half = self.cycle_epochs * per_epoch
            position = xp.abs(t / half - 2.0 * xp.floor(t / (2.0 * half)) - 1.0)
            lr = self.min_lr + (lr - self.min_lr) * xp.maximum(0.0, 1.0 - position)
        if warmup > 0:
            ramp = self.warmup_start_lr + (lr - self.warmup_start_lr) * t / warmup
            lr = xp.where(t < warmup, ramp, lr)
        return lr


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
        _check_positive_int("epochs", self.epochs)

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
            batch_size, lr = self.fn(epoch)
            phase = Phase(1, int(batch_size), float(lr))
            if phases and (phases[-1].batch_size, phases[-1].lr) == (phase.batch_size, phase.lr):
                phases[-1] = Phase(phases[-1].epochs + 1, phase.batch_size, phase.lr)
            else:
                phases.append(phase)
        return Schedule(tuple(phases), name=self.name)


@dataclass(frozen=True)
class AdaptiveSchedule(BaseSchedule):
    """Grow the batch size to the measured gradient noise scale (McCandlish et al. 2018).

    Epoch 0 runs at ``batch_size``. After every epoch the driver's log carries the measured
    simple noise scale ``gns_b_simple`` (`bsi_keras.analysis.noise_scale`); the next epoch's
    batch is ``coefficient * B_simple`` rounded down to a multiple of ``multiple_of`` (the
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

    Example:

    >>> s = AdaptiveSchedule(4, 100, 0.1, factor=2, max_batch_size=1000, multiple_of=10)
    >>> s.at(1, [{"batch_size": 100, "gns_b_simple": 150.0}]).batch_size
    150
    >>> s.at(2, [{"batch_size": 100}, {"batch_size": 150, "gns_b_simple": 900.0}]).batch_size
    300
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
        _check_positive_float("coefficient", self.coefficient)
        if not self.factor > 1:
            raise ScheduleError("factor", f"must be > 1, got {self.factor}")
        _check_positive_int("multiple_of", self.multiple_of)
        if self.scale_lr not in SCALING_RULES:
            raise ScheduleError("scale_lr", f"must be one of {', '.join(SCALING_RULES)}")
        if self.theta is not None:
            _check_positive_float("theta", self.theta)
            if self.coefficient != 1.0:
                raise ScheduleError("theta", "give theta or coefficient, not both")
            object.__setattr__(self, "coefficient", 1.0 / self.theta**2)
        if self.max_batch_size is not None and self.max_batch_size < self.batch_size:
            raise ScheduleError("max_batch_size", "is smaller than the initial batch size")

    def at(self, epoch: int, history: Sequence[Mapping[str, Any]] = ()) -> EpochSetting:
        """The setting of 0-based ``epoch`` given the logs of the epochs before it."""
        if not 0 <= epoch < self.epochs:
            raise IndexError(f"epoch {epoch} is outside the schedule's {self.epochs} epochs")
        if epoch == 0 or not history:
            return EpochSetting(epoch, 0, self.batch_size, self.lr)
        current = int(history[-1]["batch_size"])
        measured = float(history[-1].get("gns_b_simple", math.nan))
        batch, reason = self._next_batch(current, measured)
        phase = sum(1 for a, b in itertools.pairwise(history) if a["batch_size"] != b["batch_size"])
        phase += batch != current
        return EpochSetting(epoch, phase, batch, self._lr(batch), reason)

    def _next_batch(self, current: int, measured: float) -> tuple[int, str]:
        if not math.isfinite(measured) or measured <= 0:
            return current, f"no usable noise scale measured ({measured}); batch held"
        target = self.coefficient * measured
        batch = int(target // self.multiple_of) * self.multiple_of
        limits = [current * self.factor]
        if self.max_batch_size is not None:
            limits.append(self.max_batch_size)
        batch = max(current, min([batch, *[int(limit) for limit in limits]]))
        if batch == current:
            return current, f"B_simple {measured:.4g} x {self.coefficient:g}: batch held"
        return batch, f"B_simple {measured:.4g} x {self.coefficient:g} = {target:.4g} -> {batch}"

    def _lr(self, batch: int) -> float:
        if self.scale_lr == "none":
            return self.lr
        power = 1.0 if self.scale_lr == "linear" else 0.5
        return self.lr * (batch / self.batch_size) ** power

    def tabulated(self) -> Schedule:
        return self.fastest_growth()

    def planned(self) -> list[EpochSetting]:
        return [self.at(0)]  # later epochs depend on measurements

    def describe(self) -> str:
        return f"adaptive from {self.batch_size}@{self.lr:g}"

    def fastest_growth(self) -> Schedule:
        """The fixed schedule the rule follows if every measurement asks for more."""
        batch, phases = self.batch_size, []
        for _ in range(self.epochs):
            phases.append(Phase(1, batch, self._lr(batch)))
            grown = int(batch * self.factor)
            batch = min(grown, self.max_batch_size) if self.max_batch_size else grown
        merged = FunctionSchedule(lambda e: (phases[e].batch_size, phases[e].lr), self.epochs)
        return Schedule(merged.to_schedule().phases, f"{self.name} (fastest growth)")

    def to_config(self) -> dict[str, Any]:
        """A JSON-serializable description, inverse of `schedules.from_config`."""
        return {"name": self.name, "adaptive": asdict(self)}


def from_config(config: Mapping[str, Any]) -> BaseSchedule:
    """Rebuild any schedule from its ``to_config()`` (as ``config.json`` stores it).

    >>> s = increase_bs(6, 100, 0.1, [2, 4], 5)
    >>> from_config(s.to_config()) == s
    True
    >>> a = AdaptiveSchedule(4, 100, 0.1, theta=0.5)
    >>> from_config(a.to_config()) == a
    True
    """
    if "adaptive" in config:
        options = dict(config["adaptive"])
        if options.get("theta") is not None:
            options.pop("coefficient", None)  # derived from theta
        return AdaptiveSchedule(**options)
    return Schedule.from_config(config)


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


def constant(epochs: int, batch_size: int, lr: float) -> Schedule:
    """Neither the batch size nor the LR changes (the reference's ``--steady``).

    >>> constant(3, 128, 0.1).phases
    (Phase(epochs=3, batch_size=128, lr=0.1),)
    """
    return Schedule(
        (Phase(epochs, batch_size, lr),),
        name="constant",
        params={"epochs": epochs, "batch_size": batch_size, "lr": lr},
    )


def decay_lr(
    epochs: int, batch_size: int, lr: float, milestones: Sequence[int], factor: float = 5
) -> Schedule:
    """Divide the LR by ``factor`` at each milestone; the batch size stays.

    Args:
        epochs: total epochs.
        batch_size: the batch size throughout.
        lr: the initial learning rate.
        milestones: 0-based epochs at which the LR is divided (strictly increasing,
            each in ``1 .. epochs - 1``). The reference's 60/120/160 of 200 epochs.
        factor: the divisor (> 1).

    >>> [p.lr for p in decay_lr(6, 100, 0.15, [2, 4], 5).phases]
    [0.15, 0.03, 0.006]
    """
    steps = [(1.0, factor)] * len(milestones)
    return stepped(epochs, batch_size, lr, milestones, steps, name="decay_lr", factor=factor)


def increase_bs(
    epochs: int,
    batch_size: int,
    lr: float,
    milestones: Sequence[int],
    factor: float = 5,
    max_batch_size: int | None = None,
    cap: str = "clamp",
    double_end_factor: bool = False,
) -> Schedule:
    """Multiply the batch size by ``factor`` at each milestone; the LR stays.

    Args:
        epochs, batch_size, lr, milestones, factor: as in `decay_lr`.
        max_batch_size: the largest batch size (None: no cap; the command line uses the
            training set size).
        cap: what happens when the cap stops the growth: ``"clamp"`` leaves the LR alone,
            as the reference PyTorch study does; ``"decay_lr"`` puts the rest of the factor
            into an LR decay, so the noise scale ``lr * N / B`` keeps following `decay_lr`
            exactly (Smith et al.'s advice for hardware limits).
        double_end_factor: the last milestone multiplies by ``2 * factor`` (the reference's
            ``--doubleEndFactor``, e.g. 2048 -> 4096 -> 8192 -> 32768 with factor 2).

    >>> [p.batch_size for p in increase_bs(8, 128, 0.1, [2, 4, 6], 5, max_batch_size=5000).phases]
    [128, 640, 3200, 5000]
    >>> [p.batch_size for p in increase_bs(8, 2048, 0.25, [2, 4, 6], 2,
    ...                                    double_end_factor=True).phases]
    [2048, 4096, 8192, 32768]
    """
    steps = [(factor, 1.0)] * len(milestones)
    if double_end_factor and steps:
        steps[-1] = (2 * factor, 1.0)
    schedule = stepped(
        epochs, batch_size, lr, milestones, steps, max_batch_size, cap, "increase_bs", factor
    )
    return (
        _with_params(schedule, double_end_factor=double_end_factor)
        if double_end_factor
        else (schedule)
    )


def mixed_bsi(
    epochs: int,
    batch_size: int,
    lr: float,
    milestones: Sequence[int],
    factor1: float = 4,
    factor2: float = 4,
    factor3: float = 50,
    max_batch_size: int | None = None,
    cap: str = "clamp",
) -> Schedule:
    """The reference study's mixed schedule: LR / factor1, then batch x factor2, x factor3.

    Its final run (``mixedSchedule/C10W164SGD``): factors 4, 4, 50 turn LR 0.1 into 0.025 at
    epoch 60 and batch 128 into 512 at 120 and 25,600 at 160. (The reference's default
    ``--factor1 0.25`` multiplied the LR by 4; ``factor1`` here is a divisor, default 4.)

    >>> s = mixed_bsi(200, 128, 0.1, [60, 120, 160], max_batch_size=50_000)
    >>> [(p.batch_size, p.lr) for p in s.phases]
    [(128, 0.1), (128, 0.025), (512, 0.025), (25600, 0.025)]
    """
    if len(milestones) != 3:
        raise ScheduleError("milestones", f"mixed_bsi needs exactly 3 milestones, got {milestones}")
    steps = [(1.0, factor1), (factor2, 1.0), (factor3, 1.0)]
    schedule = stepped(epochs, batch_size, lr, milestones, steps, max_batch_size, cap, "mixed_bsi")
    return _with_params(schedule, factor1=factor1, factor2=factor2, factor3=factor3)


def fast_bsi(
    epochs: int,
    batch_size: int,
    lr: float,
    max_batch_size: int,
    start_epoch: int = 5,
    growth: float = 2,
    lr_growth: float = 1.3,
    milestones: Sequence[int] = (60, 120, 160),
    lr_divisor: float = 2,
    instant: bool = False,
) -> Schedule:
    """The reference study's fast BSI: from ``start_epoch`` grow the batch every epoch.

    Every epoch from ``start_epoch`` (0-based; the reference's epoch 6) the batch is
    multiplied by ``growth`` and the LR by ``lr_growth`` until the batch reaches
    ``max_batch_size``; ``instant`` jumps to that end point at once. Independently, the LR
    is divided by ``lr_divisor`` at each milestone. From 128 at LR 0.05 with a cap of 8192,
    the end point is batch 8192 at LR 0.05 * 1.3**6 = 0.2413, as the reference's
    ``--instant`` hard-codes.

    >>> s = fast_bsi(10, 128, 0.05, max_batch_size=1024, start_epoch=2, milestones=[8])
    >>> [(e.batch_size, round(e.lr, 5)) for e in s.settings()][:6]
    [(128, 0.05), (128, 0.05), (256, 0.065), (512, 0.0845), (1024, 0.10985), (1024, 0.10985)]
    """
    _check_positive_int("max_batch_size", max_batch_size)
    if max_batch_size < batch_size:
        raise ScheduleError("max_batch_size", "is smaller than the initial batch size")
    if not growth > 1:
        raise ScheduleError("factor", f"growth must be > 1, got {growth}")
    _check_milestones(milestones, epochs)
    doublings = math.ceil(math.log(max_batch_size / batch_size, growth) - 1e-9)
    per_epoch = []
    for epoch in range(epochs):
        grown = min(doublings, epoch - start_epoch + 1) if epoch >= start_epoch else 0
        if instant and epoch >= start_epoch:
            grown = doublings
        decays = sum(1 for m in milestones if epoch >= m)
        batch = min(max_batch_size, round(batch_size * growth**grown))
        per_epoch.append((batch, lr * lr_growth**grown / lr_divisor**decays))
    schedule = FunctionSchedule(lambda e: per_epoch[e], epochs, "fast_bsi").to_schedule()
    params = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "max_batch_size": max_batch_size,
        "start_epoch": start_epoch,
        "growth": growth,
        "lr_growth": lr_growth,
        "milestones": list(milestones),
        "lr_divisor": lr_divisor,
        "instant": instant,
    }
    return Schedule(schedule.phases, "instant_bsi" if instant else "fast_bsi", params)


SCALING_RULES = ("none", "linear", "sqrt")


def scale_lr(schedule: Schedule, rule: str, reference_batch: int = 256) -> Schedule:
    """Scale every phase's LR with its batch size: Goyal's linear or Hoffer's sqrt rule.

    ``linear``: ``lr * B / reference_batch``; ``sqrt``: ``lr * sqrt(B / reference_batch)``.

    >>> [p.lr for p in scale_lr(constant(2, 1024, 0.1), "linear").phases]
    [0.4]
    """
    if rule not in SCALING_RULES:
        raise ScheduleError("scale_lr", f"must be one of {', '.join(SCALING_RULES)}")
    _check_positive_int("reference_batch", reference_batch)
    if rule == "none":
        return schedule
    power = 1.0 if rule == "linear" else 0.5
    phases = tuple(
        Phase(p.epochs, p.batch_size, p.lr * (p.batch_size / reference_batch) ** power)
        for p in schedule.phases
    )
    params = {**schedule.params, "scale_lr": rule, "reference_batch": reference_batch}
    return Schedule(phases, schedule.name, params, schedule.curve)


def stretch_epochs(schedule: Schedule, reference_batch: int) -> Schedule:
    """Hoffer et al.'s regime adaptation: train longer so the update count matches.

    Each phase's epochs are multiplied by ``ceil(B / reference_batch)``, so a phase at a
    large batch takes as many updates as it would at the reference batch size.

    >>> [p.epochs for p in stretch_epochs(increase_bs(4, 128, 0.1, [2], 2), 128).phases]
    [2, 4]
    """
    _check_positive_int("reference_batch", reference_batch)
    phases = tuple(
        Phase(p.epochs * math.ceil(p.batch_size / reference_batch), p.batch_size, p.lr)
        for p in schedule.phases
    )
    params = {**schedule.params, "regime_adaptation": reference_batch}
    return Schedule(phases, schedule.name, params, schedule.curve)


def with_curve(schedule: Schedule, curve: StepCurve | None) -> Schedule:
    """The same phases with a per-step LR curve (warmup, cosine, cyclic).

    >>> s = with_curve(constant(10, 100, 0.1), StepCurve(shape="cosine"))
    >>> [round(float(s.lr_at_updates(t, 1000)), 4) for t in (0, 50, 100)]
    [0.1, 0.05, 0.0]
    """
    return Schedule(schedule.phases, schedule.name, schedule.params, curve)


def hybrid(
    epochs: int,
    batch_size: int,
    lr: float,
    milestones: Sequence[int],
    factor: float = 5,
    grow_steps: int = 1,
    max_batch_size: int | None = None,
    cap: str = "clamp",
) -> Schedule:
    """Grow the batch at the first ``grow_steps`` milestones, then decay the LR.

    Smith et al.'s hybrid schedule, which mimics a hardware limit on the batch size.

    >>> s = hybrid(6, 100, 0.05, [2, 4], factor=5, grow_steps=1)
    >>> [(p.batch_size, round(p.lr, 6)) for p in s.phases]
    [(100, 0.05), (500, 0.05), (500, 0.01)]
    """
    if not isinstance(grow_steps, int) or not 0 <= grow_steps <= len(milestones):
        raise ScheduleError(
            "grow_steps", f"must be an integer in 0..{len(milestones)}, got {grow_steps!r}"
        )
    steps = [(factor, 1.0)] * grow_steps + [(1.0, factor)] * (len(milestones) - grow_steps)
    schedule = stepped(
        epochs, batch_size, lr, milestones, steps, max_batch_size, cap, "hybrid", factor
    )
    return _with_params(schedule, grow_steps=grow_steps)


def stepped(
    epochs: int,
    batch_size: int,
    lr: float,
    milestones: Sequence[int],
    steps: Sequence[tuple[float, float]],
    max_batch_size: int | None = None,
    cap: str = "clamp",
    name: str = "stepped",
    factor: float | None = None,
) -> Schedule:
    """The mechanism behind every milestone schedule.

    At milestone ``k`` the batch size is multiplied by ``steps[k][0]`` and the LR divided
    by ``steps[k][1]``; ``max_batch_size`` and ``cap`` act as in `increase_bs`.

    Args:
        epochs, batch_size, lr, milestones: as in `decay_lr`.
        steps: one ``(batch_multiplier, lr_divisor)`` pair per milestone.
        max_batch_size, cap: as in `increase_bs`.
        name: the schedule's label.
        factor: recorded in the schedule's params, for the run config.

    >>> [p.lr for p in stepped(4, 64, 0.4, [2], [(1.0, 4.0)]).phases]
    [0.4, 0.1]
    """
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch_size", batch_size)
    _check_positive_float("lr", lr)
    milestones = _check_milestones(milestones, epochs)
    if len(steps) != len(milestones):
        raise ScheduleError("milestones", f"{len(milestones)} milestones but {len(steps)} steps")
    for multiplier, divisor in steps:
        _check_positive_float("factor", multiplier)
        _check_positive_float("factor", divisor)
    if cap not in CAP_POLICIES:
        raise ScheduleError("cap", f"must be one of {', '.join(CAP_POLICIES)}, got {cap!r}")
    if max_batch_size is not None:
        _check_positive_int("max_batch_size", max_batch_size)
        if max_batch_size < batch_size:
            raise ScheduleError(
                "max_batch_size",
                f"{max_batch_size} is smaller than the initial batch size {batch_size}",
            )
    wanted_batch, wanted_lr = float(batch_size), float(lr)
    phases = []
    bounds = [0, *milestones, epochs]
    for k in range(len(bounds) - 1):
        if k > 0:
            wanted_batch *= steps[k - 1][0]
            wanted_lr /= steps[k - 1][1]
        actual = wanted_batch if max_batch_size is None else min(wanted_batch, max_batch_size)
        phase_lr = wanted_lr * actual / wanted_batch if cap == "decay_lr" else wanted_lr
        if not math.isfinite(actual) or not phase_lr > 0:
            raise ScheduleError(
                "factor",
                f"{factor if factor is not None else 'the step factors'} makes the batch size "
                "overflow or the learning rate underflow; use a smaller factor or a cap",
            )
        phases.append(Phase(bounds[k + 1] - bounds[k], max(1, round(actual)), phase_lr))
    params = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "milestones": list(milestones),
        "factor": factor,
        "max_batch_size": max_batch_size,
        "cap": cap,
    }
    return Schedule(tuple(phases), name=name, params=params)


def from_phases(spec: str | Sequence[Phase], name: str = "phases") -> Schedule:
    """A schedule from an explicit phase list.

    Args:
        spec: either phases, or a string ``"EPOCHSxBATCH@LR,..."`` such as
            ``"2x100@0.1,2x500@0.1,2x2500@0.1"``.
        name: the schedule's label.

    >>> [p.batch_size for p in from_phases("2x100@0.1,2x500@0.1").phases]
    [100, 500]
    """
    phases = parse_phases(spec) if isinstance(spec, str) else tuple(spec)
    return Schedule(phases, name=name, params={"phases": format_phases(phases)})


def parse_phases(text: str) -> tuple[Phase, ...]:
    """Phases from the text form ``EPOCHSxBATCH@LR,...`` (the one place that reads it).

    >>> parse_phases("2x100@0.1, 1x500@0.02")
    (Phase(epochs=2, batch_size=100, lr=0.1), Phase(epochs=1, batch_size=500, lr=0.02))
    """
    return tuple(_parse_phase(item) for item in text.split(",") if item.strip())


def format_phases(phases: Sequence[Phase]) -> str:
    """The text form of ``phases``, inverse of `parse_phases`.

    >>> format_phases(increase_bs(6, 100, 0.1, [2, 4], 5).phases)
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


def _with_params(schedule: Schedule, **extra: Any) -> Schedule:
    return Schedule(schedule.phases, schedule.name, {**schedule.params, **extra})


def _check_milestones(milestones: Sequence[int], epochs: int) -> tuple[int, ...]:
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


def _check_positive_int(param: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ScheduleError(param, f"must be a positive integer, got {value!r}")


def _check_positive_float(param: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScheduleError(param, f"must be a positive number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ScheduleError(param, f"must be a positive finite number, got {value!r}")
