"""The parts of a `bsi_keras.cli.RunSpec` besides its schedule: the model and its data, the
optimizer, the train step and the run's options; each a frozen dataclass that checks its
own values when it is made, naming the flag of a bad one (`SpecError`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import keras

from bsi_keras import optimizers
from bsi_keras.cli import checks
from bsi_keras.cli.checks import SpecError
from bsi_keras.cli.flags import family
from bsi_keras.data import Dataset, available_datasets, known_sizes
from bsi_keras.layers import MOVING_STATISTICS
from bsi_keras.models import is_model_name
from bsi_keras.runtime import distribution, physical_batch
from bsi_keras.train_step import LossDropout
from bsi_keras.train_step import sam as sharpness_aware

# Datasets that read no files (a --data-dir would be ignored).
NO_FILES = ("mnist_sample", "synthetic", "synthetic_cifar")
MAX_SEED = 2**32 - 1  # the backends' seeds are 32-bit
NAME_MAX = 255  # bytes of one path component on the usual file systems


@dataclass(frozen=True)
class ModelSpec:
    """The model and its data: ``--model --dataset --data_dir --num_train --num_test
    --validation_examples --mini_batch_size --weight_decay --no_augment --bn_statistics
    --weights``.

    ``validation_examples`` N holds out the last N of the (first ``num_train``) training
    examples as the evaluation set, in the test set's place (`bsi_keras.data.hold_out_validation`).
    """

    name: str = "mnist_cnn"
    dataset: str = "mnist_sample"
    data_dir: str | None = None
    num_train: int | None = None
    num_test: int | None = None
    validation_examples: int | None = None
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
        checks.positive_int("--validation_examples", self.validation_examples, optional=True)
        if self.validation_examples is not None and self.num_test is not None:
            raise SpecError(
                "--num_test", "the test set is not used with --validation_examples: leave it out"
            )
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
        train = self.num_train or (sizes[0] if sizes else None)
        held_out = self.validation_examples
        if held_out is not None and train is not None and held_out >= train:
            raise SpecError(
                "--validation_examples", f"{held_out} leaves no training examples of {train}"
            )

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
            return (self.num_train or sizes[0]) - (self.validation_examples or 0)
        return len(self.load().x_train)

    def load(self) -> Dataset:
        """The dataset: its first ``num_train`` / ``num_test`` examples, the last
        ``validation_examples`` training examples held out in the test set's place.

        Raises:
            SpecError: the data cannot be had (naming ``--data_dir`` or ``--dataset``), or
                ``--num_train`` / ``--num_test`` / ``--validation_examples`` beyond it.
        """
        from bsi_keras.data import (
            DatasetUnavailable,
            SubsetTooLarge,
            hold_out_validation,
            load_dataset,
        )

        options = {"augment": False} if self.no_augment else {}
        try:
            dataset = load_dataset(self.dataset, self.data_dir, *self.subset, **options)
            if self.validation_examples is None:
                return dataset
            return hold_out_validation(dataset, self.validation_examples)
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
