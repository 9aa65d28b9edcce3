"""The schedule part of a run spec: the schedule flags as one frozen value, and its schedule.

Example:

>>> spec = ScheduleSpec("increase_bs", epochs=6, batch_size=100, lr=0.1, milestones=(2, 4))
>>> spec.build(4000).describe()
'2x100@0.1, 2x500@0.1, 2x2500@0.1'
>>> ScheduleSpec("constant", lr=-1.0)
Traceback (most recent call last):
...
bsi_keras.cli.checks.SpecError: argument --lr: must be a positive number, got -1.0
"""

from __future__ import annotations

from dataclasses import dataclass

from bsi_keras import schedules
from bsi_keras.cli import checks
from bsi_keras.cli.checks import SpecError
from bsi_keras.cli.flags import COMPARED, SCHEDULES
from bsi_keras.schedules import BaseSchedule, ScheduleError

# The schedules each flag changes (a value given to another schedule would be ignored).
USES_MAX = tuple(name for name in SCHEDULES if name not in ("constant", "decay_lr"))
USES_FACTOR = ("increase_bs", "decay_lr", "hybrid", "adaptive", "seesaw")  # >= 1: x batch, / LR
FAST = ("fast_bsi", "instant_bsi")
# Schedule parameters whose flag has another name.
FLAG_OF_PARAM = {
    "max_batch_size": "--max",
    "lr_curve": "--lr_curve",
    "reference_batch": "--reference_batch",
    "trajectory": "--cbs",
    "step_factor": "--factor",
}


@dataclass(frozen=True)
class ScheduleSpec:
    """The batch-size / learning-rate schedule a run asks for (one field per flag).

    Args:
        name: ``--schedule``: one of `bsi_keras.cli.flags.SCHEDULES`, or ``all`` (decay_lr,
            hybrid and increase_bs side by side).
        phases: ``--phases`` ``EPOCHSxBATCH@LR,...``: the whole schedule, or None.
        epochs, batch_size, lr, milestones, factor, max, cap, grow_steps, double_end_factor,
        factor1, factor2, factor3, fast_start, lr_growth: the builders' parameters
            (`bsi_keras.schedules`), as the flags of the same names.
        regime_adaptation, scale_lr, reference_batch, warmup_epochs, lr_curve, cycle_epochs,
        min_lr: the transforms applied to the built schedule.
        coefficient, theta: the adaptive schedule's rule.
        ramp_rule: ``seesaw``: the batch ramp of the LR schedule the other flags describe
            (`bsi_keras.schedules.from_lr_schedule`): ``decay_lr`` (``--milestones
            --factor``), or with ``--lr_curve cosine`` / ``cyclic`` that curve over
            ``--epochs``; each fall of its LR by ``--factor`` is a step of the ramp.
        cbs: ``cbs_warmup``: the file of a measured critical-batch trajectory
            (`bsi_keras.analysis.critical_batch.read_trajectory`).
    """

    name: str = "increase_bs"
    phases: str | None = None
    epochs: int = 6
    batch_size: int = 100
    lr: float = 0.05
    milestones: tuple[int, ...] = (2, 4)
    factor: float = 5.0
    max: int | None = None
    cap: str = "clamp"
    grow_steps: int = 1
    double_end_factor: bool = False
    factor1: float = 4.0
    factor2: float = 4.0
    factor3: float = 50.0
    fast_start: int = 6
    lr_growth: float = 1.3
    regime_adaptation: bool = False
    scale_lr: str = "none"
    reference_batch: int = 256
    warmup_epochs: float = 0.0
    lr_curve: str = "constant"
    cycle_epochs: float = 0.0
    min_lr: float = 0.0
    coefficient: float = 1.0
    theta: float | None = None
    ramp_rule: str = "adam"
    cbs: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(self.milestones))
        checks.one_of("--schedule", self.name, (*SCHEDULES, "all"))
        checks.one_of("--cap", self.cap, schedules.CAP_POLICIES)
        checks.one_of("--scale_lr", self.scale_lr, schedules.SCALING_RULES)
        checks.one_of("--lr_curve", self.lr_curve, schedules.CURVE_SHAPES)
        for flag in ("epochs", "batch_size", "reference_batch"):
            checks.positive_int(f"--{flag}", getattr(self, flag))
        checks.positive_int("--max", self.max, optional=True)
        for flag in ("lr", "factor", "factor1", "factor2", "factor3", "lr_growth"):
            checks.positive_number(f"--{flag}", getattr(self, flag))
        for flag in ("warmup_epochs", "cycle_epochs", "min_lr"):
            checks.non_negative_number(f"--{flag}", getattr(self, flag))
        checks.positive_number("--theta", self.theta, optional=True)
        checks.positive_number("--coefficient", self.coefficient)
        checks.positive_int("--fast_start", self.fast_start)
        if self.name == "adaptive":
            for flag in ("regime_adaptation", "warmup_epochs", "phases"):
                if getattr(self, flag):
                    raise SpecError(f"--{flag}", "not with --schedule adaptive")
            if self.lr_curve != "constant":
                raise SpecError("--lr_curve", "not with --schedule adaptive")
        self._check_ramp_flags()
        self._check_phases()
        self._check_factors()
        self._check_curve()

    def _check_ramp_flags(self) -> None:
        checks.one_of("--ramp_rule", self.ramp_rule, schedules.RAMP_RULES)
        if self.ramp_rule != "adam" and self.name != "seesaw":
            raise SpecError("--ramp_rule", "applies to --schedule seesaw only")
        if self.name == "seesaw":
            # The ramp sets the LR of every batch itself, from the base's LR per epoch.
            for flag in ("regime_adaptation", "warmup_epochs"):
                if getattr(self, flag):
                    raise SpecError(f"--{flag}", "not with --schedule seesaw")
            if self.scale_lr != "none":
                raise SpecError("--scale_lr", "not with --schedule seesaw (it sets the LR)")
        if self.name == "cbs_warmup" and self.cbs is None:
            raise SpecError("--cbs", "--schedule cbs_warmup needs a trajectory file")
        if self.name != "cbs_warmup" and self.cbs is not None:
            raise SpecError("--cbs", "applies to --schedule cbs_warmup only")

    def _check_phases(self) -> None:
        if self.phases is not None and not self.phases.strip():
            raise SpecError("--phases", "is empty: give EPOCHSxBATCH@LR,... or leave it out")
        if self.max is not None and (self.phases is not None or self.name not in USES_MAX):
            what = "--phases" if self.phases is not None else f"--schedule {self.name}"
            raise SpecError("--max", f"{what} never grows the batch: leave --max out")

    def _check_factors(self) -> None:
        """Refuse factors that turn a schedule around (a batch that shrinks, an LR that
        grows) and a fast start the run never reaches."""
        if self.phases is None and self.name in USES_FACTOR and self.factor < 1:
            raise SpecError(
                "--factor",
                f"must be >= 1 (it multiplies the batch or divides the LR), got {self.factor}",
            )
        if self.phases is None and self.name == "mixed_bsi":
            for flag in ("factor1", "factor2", "factor3"):
                if getattr(self, flag) < 1:
                    raise SpecError(f"--{flag}", f"must be >= 1, got {getattr(self, flag)}")
        if self.phases is None and self.name in FAST and self.fast_start > self.epochs:
            raise SpecError(
                "--fast_start",
                f"epoch {self.fast_start} is after the last (--epochs {self.epochs})",
            )

    def _check_curve(self) -> None:
        """Refuse curve values the curve would ignore or that leave no useful LR."""
        if self.warmup_epochs > self.epochs:
            raise SpecError(
                "--warmup_epochs", f"{self.warmup_epochs:g} is longer than the run ({self.epochs})"
            )
        if self.lr_curve == "constant" and self.min_lr:
            raise SpecError("--min_lr", "applies to --lr_curve cosine or cyclic only")
        if self.lr_curve != "cyclic" and self.cycle_epochs:
            raise SpecError("--cycle_epochs", "applies to --lr_curve cyclic only")
        if self.lr_curve != "constant" and self.phases is None and self.min_lr >= self.lr:
            raise SpecError("--min_lr", f"must be below --lr ({self.lr:g}), got {self.min_lr:g}")

    def names(self) -> tuple[str, ...]:
        """The schedules this spec runs: the three compared ones for ``all``, else its own."""
        return COMPARED if self.name == "all" and self.phases is None else (self.name,)

    def build(self, num_train: int, multiple_of: int = 1) -> BaseSchedule:
        """The schedule for a training set of ``num_train`` examples.

        Args:
            num_train: the training examples per epoch.
            multiple_of: the adaptive schedule's batch sizes are multiples of this (the
                ghost batch size).

        Raises:
            SpecError: values that make no schedule here, naming the flag.
        """
        if self.batch_size > num_train:
            raise SpecError(
                "--batch_size",
                f"{self.batch_size} is larger than the training set ({num_train} examples)",
            )
        if self.max is not None and self.max > num_train:
            raise SpecError("--max", f"{self.max} is larger than the training set ({num_train})")
        if self.name == "all" and self.phases is None:
            raise SpecError("--schedule", "'all' is three runs: build each of names()")
        max_batch = self.max or num_train
        try:
            if self.name == "adaptive":
                return self._adaptive(max_batch, multiple_of)
            if self.name == "seesaw":
                return self._seesaw(max_batch, num_train)
            schedule = self._base(max_batch, multiple_of)
            if self.regime_adaptation:
                schedule = schedules.stretch_epochs(schedule, self.reference_batch)
            schedule = schedules.scale_lr(schedule, self.scale_lr, self.reference_batch)
            self._check_cycle(schedule, num_train)
            return schedules.with_curve(schedule, self._curve())
        except ScheduleError as error:
            flag = FLAG_OF_PARAM.get(error.param, f"--{error.param}")
            raise SpecError(flag, str(error).split(": ", 1)[1]) from None

    def _check_cycle(self, schedule: schedules.Schedule, num_train: int) -> None:
        """A cyclic half cycle of at least one update (the first phase's)."""
        per_epoch = -(-num_train // schedule.phases[0].batch_size)
        if self.lr_curve == "cyclic" and self.cycle_epochs * per_epoch < 1:
            raise SpecError(
                "--cycle_epochs",
                f"{self.cycle_epochs:g} epochs is less than one update ({per_epoch} per epoch)",
            )

    def _adaptive(self, max_batch: int, multiple_of: int) -> schedules.AdaptiveSchedule:
        return schedules.AdaptiveSchedule(
            self.epochs,
            self.batch_size,
            self.lr,
            coefficient=self.coefficient,
            factor=self.factor,
            max_batch_size=max_batch,
            multiple_of=multiple_of,
            scale_lr=self.scale_lr,
            theta=self.theta,
        )

    def _seesaw(self, max_batch: int, num_train: int) -> schedules.Schedule:
        if self.lr_curve == "constant":
            base = schedules.decay_lr(
                self.epochs, self.batch_size, self.lr, list(self.milestones), self.factor
            )
        else:
            base = schedules.with_curve(
                schedules.constant(self.epochs, self.batch_size, self.lr), self._curve()
            )
        return schedules.from_lr_schedule(
            base,
            rule=self.ramp_rule,
            step_factor=self.factor,
            max_batch_size=max_batch,
            cap=self.cap,
            num_examples=num_train,
            name="seesaw",
        )

    def _cbs_warmup(self, max_batch: int, multiple_of: int) -> schedules.Schedule:
        from bsi_keras.analysis.critical_batch import read_trajectory

        try:
            trajectory = read_trajectory(self.cbs)
        except (OSError, ValueError) as error:
            raise SpecError("--cbs", str(error)) from None
        # A measurement at or after the last epoch changes no epoch this run trains.
        points = [(epoch, batch) for epoch, batch in trajectory if epoch < self.epochs]
        if not points:
            raise SpecError("--cbs", f"{self.cbs} has no measurement before epoch {self.epochs}")
        return schedules.cbs_warmup(
            self.epochs,
            points,
            self.lr,
            batch_size=self.batch_size,
            max_batch_size=max_batch,
            multiple_of=multiple_of,
        )

    def _base(self, max_batch: int, multiple_of: int) -> schedules.Schedule:
        if self.phases is not None:
            try:
                return schedules.from_phases(self.phases)
            except ScheduleError as error:
                raise SpecError("--phases", str(error)) from None
        common = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}
        factor = int(self.factor) if float(self.factor).is_integer() else self.factor
        stepped = {**common, "milestones": list(self.milestones)}
        capped = {"max_batch_size": max_batch, "cap": self.cap}
        if self.name == "constant":
            return schedules.constant(**common)
        if self.name == "cbs_warmup":
            return self._cbs_warmup(max_batch, multiple_of)
        if self.name == "decay_lr":
            return schedules.decay_lr(**stepped, factor=factor)
        if self.name == "increase_bs":
            return schedules.increase_bs(
                **stepped, factor=factor, double_end_factor=self.double_end_factor, **capped
            )
        if self.name == "hybrid":
            return schedules.hybrid(**stepped, factor=factor, grow_steps=self.grow_steps, **capped)
        if self.name == "mixed_bsi":
            factors = {"factor1": self.factor1, "factor2": self.factor2, "factor3": self.factor3}
            return schedules.mixed_bsi(**stepped, **factors, **capped)
        return schedules.fast_bsi(
            **common,
            max_batch_size=max_batch,
            start_epoch=self.fast_start - 1,
            lr_growth=self.lr_growth,
            milestones=list(self.milestones),
            instant=self.name == "instant_bsi",
        )

    def _curve(self) -> schedules.StepCurve | None:
        if self.lr_curve == "constant" and not self.warmup_epochs:
            return None
        # Goyal et al. ramp from the base LR to the scaled one; without scaling, from zero.
        start = self.lr if self.scale_lr != "none" else 0.0
        return schedules.StepCurve(
            self.lr_curve, self.warmup_epochs, start, self.cycle_epochs, self.min_lr
        )
