"""`RunSpec`: everything a run asks for, as small frozen parts, checked once.

The command line's flags become a `RunSpec` once (`RunSpec.from_args`); what follows --
the dry run, training, resuming, sweeps, the analysis of a run folder -- reads the spec,
never argparse. Every field is named as its flag's ``dest`` (a part's ``name`` is the flag
named as the part: ``--schedule``, ``--model``, ``--optimizer``), so a bad value anywhere
raises `SpecError` naming the flag. ``config.json`` stores `RunSpec.to_config`.

Example:

>>> spec = RunSpec.from_argv(["--dataset", "cifar10", "--optimizer", "sam_sgd"])
>>> spec.model.name, spec.schedule.milestones, spec.optimizer.sam()
('wrn_16_4', (60, 120, 160), SAM(rho=0.05, adaptive=False, eta=0.01, m=None))
>>> RunSpec.from_config(spec.to_config()) == spec
True
>>> dataclasses.replace(spec, run=dataclasses.replace(spec.run, seed=-1))
Traceback (most recent call last):
...
bsi_keras.cli.checks.SpecError: argument --seed: must be >= 0, got -1
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from bsi_keras.cli.checks import SpecError
from bsi_keras.cli.flags import (
    PHASES_EXCLUDE,
    FlagValue,
    build_parser,
    fill_defaults,
    parse,
)
from bsi_keras.cli.parts import ModelSpec, OptimizerSpec, RunOptions, StepSpec
from bsi_keras.cli.schedule_spec import ScheduleSpec
from bsi_keras.data import known_sizes
from bsi_keras.schedules import BaseSchedule
from bsi_keras.train_step import StepOptions
from bsi_keras.train_step.core import NoiseScaleOptions

# Flags whose dest an older command line spelled otherwise (read in older run folders).
RENAMED_DESTS = {"doubleEndFactor": "double_end_factor", "saveState": "save_state"}


Part = ScheduleSpec | ModelSpec | OptimizerSpec | StepSpec | RunOptions


@dataclass(frozen=True)
class RunSpec:
    """A whole run: its schedule, model, optimizer, train step and run options.

    Args:
        schedule, model, optimizer, step, run: the parts; each checks its own values, and
            the spec the values that span parts (a virtual batch no larger than the
            batch, the noise scale's small batch, SAM's ``m``).
    """

    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    step: StepSpec = field(default_factory=StepSpec)
    run: RunOptions = field(default_factory=RunOptions)

    PARTS: ClassVar[dict[str, type[Part]]] = {
        "schedule": ScheduleSpec,
        "model": ModelSpec,
        "optimizer": OptimizerSpec,
        "step": StepSpec,
        "run": RunOptions,
    }

    def __post_init__(self) -> None:
        ghost, batch = self.model.mini_batch_size, self.schedule.batch_size
        if ghost > batch:
            raise SpecError(
                "--mini_batch_size",
                f"the virtual batch {ghost} is larger than the batch size {batch}",
            )
        self._check_noise_scale()
        self._check_eval_batch()

    def _check_eval_batch(self) -> None:
        """Refuse an evaluation batch larger than the test set (None, the default, is 1000
        or the whole test set: `bsi_keras.driver.feeds.ValidationFeed` clamps it)."""
        sizes = None if self.model.data_dir else known_sizes(self.model.dataset)
        test_size = (
            self.model.validation_examples or self.model.num_test or (sizes[1] if sizes else None)
        )
        batch = self.run.eval_batch_size
        if batch is not None and test_size is not None and batch > test_size:
            raise SpecError(
                "--eval_batch_size", f"{batch} is larger than the test set ({test_size} examples)"
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunSpec:
        """The spec of parsed flags (`bsi_keras.cli.flags.parse`); extra attributes are
        ignored.

        Raises:
            SpecError: a value out of range, naming its flag.
        """
        return cls(**{part: _part(part, kind, vars(args)) for part, kind in cls.PARTS.items()})

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> RunSpec:
        """The spec of a command line (`bsi_keras.cli.flags.parse`, then `from_args`)."""
        return cls.from_args(parse(argv))

    def to_config(self) -> dict[str, dict[str, FlagValue]]:
        """A JSON-serializable description, inverse of `from_config` (``config.json``)."""
        return {
            part: {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
            for part, value in self._parts()
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Mapping[str, FlagValue]]) -> RunSpec:
        """Rebuild a spec written by `to_config` (checked again)."""
        return cls(**{part: kind(**config[part]) for part, kind in cls.PARTS.items()})

    @classmethod
    def from_run_config(cls, config: Mapping[str, object], folder: str) -> RunSpec:
        """The spec a run folder's ``config.json`` records: its ``spec``, or the parsed flags
        (``args``) of a folder written before there was a spec.

        Raises:
            SpecError: naming ``--resume``, for a config with neither.
        """
        if "spec" in config:
            try:
                return cls.from_config(config["spec"])
            except (TypeError, KeyError, AttributeError) as error:
                raise SpecError("--resume", f"{folder}'s spec is unreadable: {error}") from None
        if "args" not in config or "schedule" not in config:
            raise SpecError("--resume", f"{folder} was not written by this command line")
        return cls.from_args(_namespace(config["args"], config["schedule"]))

    def flags(self) -> dict[str, FlagValue]:
        """Every field by its flag's ``dest`` (``schedule``, ``lr``, ``save_state``, ...)."""
        return {
            _dest(part, name): value
            for part, values in self.to_config().items()
            for name, value in values.items()
        }

    def to_argv(self) -> list[str]:
        """Flags that give this spec again: those that differ from the parser's defaults.

        Example:

        >>> RunSpec(ScheduleSpec("decay_lr", epochs=3, milestones=(1,))).to_argv()[:6]
        ['--schedule', 'decay_lr', '--epochs', '3', '--batch_size', '100']
        """
        defaults = vars(build_parser().parse_args([]))
        argv: list[str] = []
        for dest, value in self.flags().items():
            default = defaults.get(dest)
            if value is None or value is False or (default is not None and value == default):
                continue
            if self.schedule.phases and dest in PHASES_EXCLUDE:
                continue  # --phases sets the whole schedule
            values = value if isinstance(value, list) else [] if value is True else [value]
            argv += [f"--{dest}", *map(str, values)]
        return argv

    def build_schedule(self, num_train: int) -> BaseSchedule:
        """The schedule for ``num_train`` training examples.

        Raises:
            SpecError: values that make no schedule on this training set.
        """
        schedule = self.schedule.build(num_train, self.model.mini_batch_size or 1)
        largest = max(setting.batch_size for setting in schedule.planned())
        if largest > num_train:
            flag = "--phases" if self.schedule.phases is not None else "--batch_size"
            raise SpecError(
                flag, f"a batch of {largest} is larger than the training set ({num_train} examples)"
            )
        smallest = min(setting.batch_size for setting in schedule.planned())
        m = self.optimizer.sam_m
        if m is not None and m > smallest:
            raise SpecError(
                "--sam_m",
                f"{m} is larger than the batch size {smallest}; leave it out for one "
                "perturbation per batch",
            )
        return schedule

    def step_options(self, physical: int | None = None) -> StepOptions:
        """The train step the spec asks for (``physical``: the probed physical batch)."""
        every = self.noise_scale_every()
        noise = NoiseScaleOptions(every, self.noise_scale_batch()) if every else None
        return StepOptions(
            max_physical_batch=physical or self.step.max_physical_batch,
            loss_dropout=self.step.dropout(),
            sam=self.optimizer.sam(),
            noise_scale=noise,
        )

    def noise_scale_every(self) -> int:
        """How often the noise scale is measured (0: never).

        Every update for the adaptive schedule: `bench/noise_scale_cost.py` measures an epoch
        measured every 10 updates as at least as slow as one measured at every update (the
        step that picks between the two paths costs more than the measurement it saves).
        """
        if self.step.noise_scale_every is not None:
            return self.step.noise_scale_every
        return 1 if self.schedule.name == "adaptive" else 0

    def noise_scale_batch(self) -> int:
        """The noise scale's small batch: given, or a quarter of the batch in ghost batches."""
        if self.step.noise_scale_batch is not None:
            return self.step.noise_scale_batch
        ghost = self.model.mini_batch_size or 1
        return max(ghost, (self.schedule.batch_size // 4) // ghost * ghost)

    def _check_noise_scale(self) -> None:
        if self.schedule.name == "adaptive" and self.step.noise_scale_every == 0:
            raise SpecError("--noise_scale_every", "the adaptive schedule needs measurements")
        if not self.noise_scale_every():
            return
        small, batch = self.noise_scale_batch(), self.schedule.batch_size
        if not 1 <= small < batch:
            raise SpecError(
                "--noise_scale_batch",
                f"must be between 1 and the batch size {batch} (exclusive), got {small}",
            )
        if self.optimizer.sam() is not None:
            raise SpecError("--noise_scale_every", "measures plain gradients, not with SAM")
        physical = self.step.max_physical_batch
        if isinstance(physical, int) and small > physical:
            raise SpecError("--noise_scale_batch", f"{small} exceeds --max_physical_batch")

    def _parts(self) -> list[tuple[str, Part]]:
        return [(part, getattr(self, part)) for part in self.PARTS]


def _part(part: str, kind: type[Part], values: Mapping[str, FlagValue]) -> Part:
    """The part ``kind`` of the flag values ``values`` (by dest)."""
    return kind(**{f.name: values[_dest(part, f.name)] for f in dataclasses.fields(kind)})


def _dest(part: str, name: str) -> str:
    """The flag ``dest`` of a part's field: a part's ``name`` is the flag named as the part."""
    return part if name == "name" else name


def _plain(value: FlagValue | tuple[int, ...]) -> FlagValue:
    return list(value) if isinstance(value, tuple) else value


def _namespace(args: Mapping[str, object], schedule: Mapping[str, object]) -> argparse.Namespace:
    """An older folder's ``args`` over today's defaults, each dest by today's name."""
    values = {RENAMED_DESTS.get(dest, dest): value for dest, value in args.items()}
    if values.get("schedule") == "all":  # one run of a comparison: the one it trained
        values["schedule"] = schedule["name"]
    # Folders of before trained with the one convention there was; a resume keeps it.
    values.setdefault("bn_statistics", "keras")
    namespace = argparse.Namespace(**{**vars(build_parser().parse_args([])), **values})
    fill_defaults(namespace)
    return namespace
