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
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import keras

from bsi_keras import optimizers
from bsi_keras.cli import checks
from bsi_keras.cli.checks import SpecError
from bsi_keras.cli.flags import (
    PHASES_EXCLUDE,
    FlagValue,
    build_parser,
    family,
    fill_defaults,
    parse,
)
from bsi_keras.cli.schedule_spec import ScheduleSpec
from bsi_keras.data import Dataset, available_datasets, known_sizes
from bsi_keras.layers import MOVING_STATISTICS
from bsi_keras.models import is_model_name
from bsi_keras.runtime import distribution, physical_batch
from bsi_keras.schedules import BaseSchedule
from bsi_keras.train_step import LossDropout, StepOptions
from bsi_keras.train_step import sam as sharpness_aware
from bsi_keras.train_step.core import NoiseScaleOptions

# Datasets that read no files (a --data-dir would be ignored).
NO_FILES = ("mnist_sample", "synthetic", "synthetic_cifar")
MAX_SEED = 2**32 - 1  # the backends' seeds are 32-bit
NAME_MAX = 255  # bytes of one path component on the usual file systems
# Flags whose dest an older command line spelled otherwise (read in older run folders).
RENAMED_DESTS = {"doubleEndFactor": "double_end_factor", "saveState": "save_state"}


@dataclass(frozen=True)
class ModelSpec:
    """The model and its data: ``--model --dataset --data_dir --num_train --num_test
    --mini_batch_size --weight_decay --no_augment --bn_statistics --weights``."""

    name: str = "mnist_cnn"
    dataset: str = "mnist_sample"
    data_dir: str | None = None
    num_train: int | None = None
    num_test: int | None = None
    mini_batch_size: int = 10
    weight_decay: float = 0.0
    no_augment: bool = False
    bn_statistics: str = "keras"
    weights: str | None = None

    def __post_init__(self) -> None:
        if not is_model_name(self.name):
            raise SpecError("--model", f"invalid choice: {self.name!r}")
        checks.one_of("--dataset", self.dataset, available_datasets())
        checks.positive_int("--num_train", self.num_train, optional=True)
        checks.positive_int("--num_test", self.num_test, optional=True)
        checks.non_negative_int("--mini_batch_size", self.mini_batch_size)
        checks.non_negative_number("--weight_decay", self.weight_decay)
        if self.data_dir is not None and not self.data_dir.strip():
            raise SpecError("--data_dir", "is empty: give a folder or leave it out")
        if self.data_dir is not None and self.dataset in NO_FILES:
            raise SpecError("--data_dir", f"{self.dataset} reads no files: leave it out")
        if self.no_augment and family(self.dataset) != "cifar":
            raise SpecError("--no_augment", f"{self.dataset} has no augmentation to turn off")
        checks.one_of("--bn_statistics", self.bn_statistics, MOVING_STATISTICS)
        self._check_weights()
        sizes = None if self.data_dir else known_sizes(self.dataset)
        for flag, value, known in zip(("num_train", "num_test"), self.subset, sizes or ()):
            if value is not None and value > known:
                raise SpecError(f"--{flag}", f"{self.dataset} has only {known} examples there")

    def _check_weights(self) -> None:
        if self.weights is None:
            return
        if self.weights == "imagenet":
            if self.name != "mobilenet_v2":
                raise SpecError(
                    "--weights", f"imagenet weights exist for mobilenet_v2 only, not {self.name}"
                )
            return
        if not self.weights.endswith((".weights.h5", ".keras")):
            raise SpecError(
                "--weights",
                f"expected imagenet, a .weights.h5 or a .keras file, got {self.weights!r}",
            )
        if not os.path.isfile(self.weights):
            raise SpecError("--weights", f"no such file: {self.weights}")

    @property
    def subset(self) -> tuple[int | None, int | None]:
        """``(num_train, num_test)``: the first examples used (None: all)."""
        return self.num_train, self.num_test

    def train_size(self) -> int:
        """The training examples the run will use (loading the data only if not known)."""
        sizes = None if self.data_dir else known_sizes(self.dataset)
        if self.num_train or sizes:
            return self.num_train or sizes[0]
        return len(self.load(subset=False).x_train)

    def load(self, subset: bool = True) -> Dataset:
        """The dataset (its first ``num_train`` / ``num_test`` examples where ``subset``).

        Raises:
            SpecError: the data cannot be had (naming ``--data_dir`` or ``--dataset``), or
                ``--num_train`` / ``--num_test`` beyond it.
        """
        from bsi_keras.data import DatasetUnavailable, SubsetTooLarge, load_dataset

        options = {"augment": False} if self.no_augment else {}
        try:
            return load_dataset(
                self.dataset, self.data_dir, *(self.subset if subset else ()), **options
            )
        except SubsetTooLarge as error:
            raise SpecError(f"--{error.param}", str(error).split(" ", 1)[1]) from None
        except DatasetUnavailable as error:
            raise SpecError("--data_dir" if self.data_dir else "--dataset", str(error)) from None


@dataclass(frozen=True)
class OptimizerSpec:
    """The optimizer: ``--optimizer --momentum --clip_norm`` and SAM's ``--rho --eta --sam_m``.

    ``momentum`` None is the optimizer's default (`bsi_keras.optimizers.default_momentum`).
    """

    name: str = "momentum"
    momentum: float | None = None
    clip_norm: float | None = None
    rho: float | None = None
    eta: float | None = None
    sam_m: int | None = None

    def __post_init__(self) -> None:
        if not optimizers.is_optimizer_name(self.name):
            raise SpecError("--optimizer", f"invalid choice: {self.name!r}")
        base, variant = sharpness_aware.split_name(self.name)
        if self.momentum is not None and not (
            checks.is_number(self.momentum) and 0.0 <= self.momentum < 1.0
        ):
            raise SpecError("--momentum", f"must be in [0, 1), got {self.momentum}")
        if self.momentum and base not in optimizers.SGD_FAMILY:
            raise SpecError("--momentum", f"the {self.name} optimizer takes no momentum")
        checks.positive_number("--clip_norm", self.clip_norm, optional=True)
        for flag in ("rho", "eta", "sam_m"):
            if getattr(self, flag) is not None and variant is None:
                raise SpecError(
                    f"--{flag}",
                    f"applies to the sam_* and asam_* optimizers only, not {self.name}",
                )
        if self.eta is not None and variant == "sam":
            raise SpecError("--eta", f"applies to ASAM only (asam_*), not {self.name}")
        checks.positive_number("--rho", self.rho, optional=True)
        checks.non_negative_number("--eta", self.eta, optional=True)
        checks.positive_int("--sam_m", self.sam_m, optional=True)

    @property
    def effective_momentum(self) -> float:
        """The momentum coefficient the optimizer uses (for the noise scale)."""
        return optimizers.default_momentum(self.name) if self.momentum is None else self.momentum

    def sam(self) -> sharpness_aware.SAM | None:
        """The train step's SAM / ASAM options (None for a plain optimizer)."""
        return sharpness_aware.from_name(self.name, self.rho, self.eta, self.sam_m)

    def build(self, lr: float) -> keras.optimizers.Optimizer:
        """A new optimizer at the initial learning rate ``lr``."""
        return optimizers.get_optimizer(self.name, lr, self.momentum, self.clip_norm)


@dataclass(frozen=True)
class StepSpec:
    """The train step: ``--max_physical_batch --reset_optimizer --loss_dropout*
    --noise_scale_every --noise_scale_batch`` (None: the defaults `RunSpec` resolves)."""

    max_physical_batch: int | str | None = None  # or "auto": probed on the device
    reset_optimizer: bool = False
    loss_dropout: bool = False
    loss_dropout_window: tuple[int, int] = (3, 119)
    loss_dropout_rule: str = "lower"
    noise_scale_every: int | None = None
    noise_scale_batch: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "loss_dropout_window", tuple(self.loss_dropout_window))
        if self.max_physical_batch != physical_batch.AUTO:
            checks.positive_int("--max_physical_batch", self.max_physical_batch, optional=True)
        first, last = self.loss_dropout_window
        if not 1 <= first <= last:
            raise SpecError(
                "--loss_dropout_window", f"needs 1 <= FIRST <= LAST, got {first} {last}"
            )
        checks.one_of("--loss_dropout_rule", self.loss_dropout_rule, ("lower", "higher"))
        checks.non_negative_int("--noise_scale_every", self.noise_scale_every, optional=True)
        checks.non_negative_int("--noise_scale_batch", self.noise_scale_batch, optional=True)

    def dropout(self) -> LossDropout | None:
        """The loss-dropout rule, or None."""
        if not self.loss_dropout:
            return None
        return LossDropout(*self.loss_dropout_window, self.loss_dropout_rule)


@dataclass(frozen=True)
class RunOptions:
    """How the run is kept and shown: ``--filename --seed --verbose --eval_batch_size
    --drop_remainder --checkpoint_every --tensorboard --save_state --deterministic
    --distribute --compile_cache``."""

    filename: str | None = None
    seed: int = 0
    verbose: int | None = None
    eval_batch_size: int | None = None
    drop_remainder: bool = False
    checkpoint_every: int = 1
    tensorboard: bool = False
    save_state: bool = False
    deterministic: bool = False
    distribute: bool = False
    compile_cache: str | None = None  # a folder, "off", or None for the default folder

    def __post_init__(self) -> None:
        checks.non_negative_int("--seed", self.seed)
        if self.seed > MAX_SEED:
            raise SpecError("--seed", f"must be at most 2**32 - 1 = {MAX_SEED}, got {self.seed}")
        self._check_filename()
        checks.positive_int("--eval_batch_size", self.eval_batch_size, optional=True)
        checks.positive_int("--checkpoint_every", self.checkpoint_every)
        if self.verbose not in (None, 0, 1, 2):
            raise SpecError("--verbose", f"invalid choice: {self.verbose} (choose from 0, 1, 2)")
        if self.distribute:
            try:
                distribution.check_supported(keras.backend.backend())
            except ValueError as error:
                raise SpecError("--distribute", str(error)) from None

    def _check_filename(self) -> None:
        if self.filename is None:
            return
        if not self.filename.strip():
            raise SpecError("--filename", "is empty: give a folder name or leave it out")
        long = [p for p in Path(self.filename).parts if len(p.encode()) > NAME_MAX]
        if long:
            raise SpecError(
                "--filename", f"a name of {len(long[0].encode())} bytes; at most {NAME_MAX}"
            )


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
        test_size = self.model.num_test or (sizes[1] if sizes else None)
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
