"""The command line's flags: parsing, defaults per dataset family, checks, and the schedule.

Flags follow the PyTorch reproduction of Smith et al. (``--batch_size --lr --epochs --model
--dataset --optimizer --factor --max --milestones --filename --mini_batch_size ...``); its
own spellings (``--LRD --steady --doubleEndFactor --mixedBSI --fastBSI --saveState
--rand_seed``) work too, as real booleans (``--LRD False`` turns nothing on). Defaults
follow the dataset: the MNIST experiment for the MNIST family, the reference CIFAR study
(WRN-16-4, 200 epochs, milestones 60/120/160, ...) for CIFAR. Every value is checked
before any training; a bad one is refused with a message that names the flag.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

import keras

from bsi_keras import schedules
from bsi_keras.data import available_datasets
from bsi_keras.models import available_models, is_model_name
from bsi_keras.optimizers import OPTIMIZERS, is_optimizer_name
from bsi_keras.runtime import distribution
from bsi_keras.schedules import ScheduleError
from bsi_keras.train_step import LossDropout, StepOptions
from bsi_keras.train_step import sam as sharpness_aware
from bsi_keras.train_step.core import NoiseScaleOptions

SCHEDULES = (
    "increase_bs",
    "decay_lr",
    "hybrid",
    "constant",
    "mixed_bsi",
    "fast_bsi",
    "instant_bsi",
    "adaptive",
)
COMPARED = ("decay_lr", "hybrid", "increase_bs")
# The reference study's switches, each naming a schedule.
SWITCHES = {
    "LRD": "decay_lr",
    "steady": "constant",
    "mixedBSI": "mixed_bsi",
    "fastBSI": "fast_bsi",
    "instant": "instant_bsi",
}
# (train, test) sizes, so that a dry run and the flag checks need not load the data.
KNOWN_SIZES = {
    "mnist": (60_000, 10_000),
    "fashion_mnist": (60_000, 10_000),
    "mnist_sample": (4_000, 1_000),
    "synthetic": (1_000, 200),
    "synthetic_cifar": (1_000, 200),
    "cifar10": (50_000, 10_000),
    "cifar100": (50_000, 10_000),
}
FAMILY_DEFAULTS = {
    "mnist": {
        "model": "mnist_cnn",
        "mini_batch_size": 10,
        "epochs": 6,
        "batch_size": 100,
        "lr": 0.05,
        "milestones": None,
        "weight_decay": 0.0,
        "clip_norm": None,
        "max_physical_batch": None,
    },
    "cifar": {
        "model": "wrn_16_4",
        "mini_batch_size": 128,
        "epochs": 200,
        "batch_size": 128,
        "lr": 0.1,
        "milestones": [60, 120, 160],
        "weight_decay": 5e-4,
        "clip_norm": 5.0,
        "max_physical_batch": 1024,
    },
}
FLAG_OF_PARAM = {
    "max_batch_size": "--max",
    "lr_curve": "--lr_curve",
    "reference_batch": "--reference_batch",
}


def family(dataset: str) -> str:
    """The defaults family of a dataset: ``cifar`` or ``mnist``."""
    return "cifar" if "cifar" in dataset else "mnist"


class _Parser(argparse.ArgumentParser):
    """argparse, naming the flag before a stray value such as the ``-inf`` of
    ``--milestones 0 -inf`` (argparse reads it as an unknown flag)."""

    def parse_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        args = sys.argv[1:] if args is None else list(args)
        parsed, extras = self.parse_known_args(args, namespace)
        for extra in extras:
            before = [a.split("=")[0] for a in args[: args.index(extra)] if a.startswith("--")]
            if not extra.startswith("--") and before:
                self.error(
                    f"argument {before[-1]}: unexpected value {extra!r} (a value that starts "
                    f"with '-' reads as a flag; for a single value write {before[-1]}={extra})"
                )
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    """The parser; flags whose default follows the dataset family default to None here."""
    p = _Parser(
        prog="python -m bsi_keras.run",
        description="Train with a batch-size / learning-rate schedule into a run folder.",
    )
    s = p.add_argument_group("schedule")
    s.add_argument(
        "--schedule",
        default="increase_bs",
        choices=(*SCHEDULES, "all"),
        help="which schedule; 'all' compares decay_lr, hybrid and increase_bs",
    )
    for flag, name in SWITCHES.items():
        _switch(s, f"--{flag}", help=f"the reference's switch for --schedule {name}")
    s.add_argument(
        "--phases", default=None, help="explicit phases EPOCHSxBATCH@LR,... (overrides --schedule)"
    )
    s.add_argument("--epochs", type=int, default=None, help="total epochs")
    s.add_argument("--batch_size", type=int, default=None, help="initial batch size")
    s.add_argument("--lr", type=float, default=None, help="initial learning rate")
    s.add_argument(
        "--milestones",
        type=int,
        nargs="+",
        default=None,
        help="epochs after which the schedule steps (MNIST family: thirds of --epochs)",
    )
    s.add_argument(
        "--factor", type=float, default=5.0, help="batch multiplier / LR divisor at each milestone"
    )
    s.add_argument(
        "--max", type=int, default=None, help="largest batch size (default: the training set size)"
    )
    s.add_argument(
        "--cap",
        default="clamp",
        choices=schedules.CAP_POLICIES,
        help="at --max: clamp the batch, or decay the LR by the rest of the factor",
    )
    s.add_argument(
        "--grow_steps",
        type=int,
        default=1,
        help="hybrid: milestones that grow the batch before the LR decays",
    )
    _switch(
        s,
        "--doubleEndFactor",
        "--double_end_factor",
        help="increase_bs: the last milestone multiplies the batch by 2 x factor",
    )
    s.add_argument(
        "--factor1", type=float, default=4.0, help="mixed_bsi: LR divisor at milestone 1"
    )
    s.add_argument(
        "--factor2", type=float, default=4.0, help="mixed_bsi: batch multiplier at milestone 2"
    )
    s.add_argument(
        "--factor3", type=float, default=50.0, help="mixed_bsi: batch multiplier at milestone 3"
    )
    s.add_argument(
        "--fast_start",
        type=int,
        default=6,
        help="fast_bsi / instant_bsi: first (1-based) epoch of batch doubling",
    )
    s.add_argument(
        "--lr_growth", type=float, default=1.3, help="fast_bsi: LR multiplier per batch doubling"
    )
    _switch(
        s,
        "--regime_adaptation",
        help="train longer: each phase's epochs x ceil(batch / --reference_batch)",
    )
    s.add_argument(
        "--scale_lr",
        default="none",
        choices=schedules.SCALING_RULES,
        help="LR scaling with the batch size relative to --reference_batch",
    )
    s.add_argument(
        "--reference_batch",
        type=int,
        default=256,
        help="reference batch size of --scale_lr and --regime_adaptation",
    )
    s.add_argument(
        "--warmup_epochs",
        type=float,
        default=0.0,
        help="gradual warmup: linear per-update ramp over these epochs",
    )
    s.add_argument(
        "--lr_curve",
        default="constant",
        choices=schedules.CURVE_SHAPES,
        help="per-update LR shape inside the phases",
    )
    s.add_argument("--cycle_epochs", type=float, default=0.0, help="cyclic: epochs per half cycle")
    s.add_argument(
        "--coefficient",
        type=float,
        default=1.0,
        help="adaptive: the next batch is coefficient x the measured B_simple",
    )
    s.add_argument(
        "--theta",
        type=float,
        default=None,
        help="adaptive: Byrd et al.'s norm test, i.e. coefficient 1 / theta^2",
    )
    s.add_argument(
        "--noise_scale_every",
        type=int,
        default=None,
        help="measure the gradient noise scale every K updates (default: off; 1 for adaptive)",
    )
    s.add_argument(
        "--noise_scale_batch",
        type=int,
        default=None,
        help="the noise scale's small batch (default: a quarter of --batch_size, in ghost batches)",
    )
    s.add_argument("--min_lr", type=float, default=0.0, help="cosine / cyclic: lowest LR")
    s.add_argument(
        "--dry-run",
        "--dry_run",
        dest="dry_run",
        action="store_true",
        help="print the phase table and exit without training",
    )
    m = p.add_argument_group("model and data")
    m.add_argument(
        "--model",
        default=None,
        type=_model_name,
        help=f"{', '.join(available_models())}, or any wrn_<depth>_<width>[_preact]",
    )
    m.add_argument(
        "--mini_batch_size",
        type=int,
        default=None,
        help="ghost batch norm virtual batch size (0: the whole batch)",
    )
    m.add_argument(
        "--dataset",
        default="mnist_sample",
        choices=available_datasets(),
        help="mnist_sample is bundled and works offline",
    )
    m.add_argument(
        "--data-dir",
        "--data_dir",
        dest="data_dir",
        default=None,
        help="folder with local dataset files (IDX, npz, CIFAR pickles)",
    )
    m.add_argument("--num_train", type=int, default=None, help="use the first N training images")
    m.add_argument("--num_test", type=int, default=None, help="use the first N test images")
    _switch(m, "--no_augment", help="CIFAR: no random crops and flips")
    o = p.add_argument_group("optimizer and train step")
    o.add_argument(
        "--optimizer",
        default="momentum",
        type=_optimizer_name,
        help=f"{', '.join(OPTIMIZERS)}; prefixed sam_ or asam_ (sam_sgd, asam_adam, ...): "
        "SAM / ASAM with that base optimizer",
    )
    o.add_argument(
        "--rho",
        type=float,
        default=None,
        help=f"SAM / ASAM radius (default: {sharpness_aware.SAM_RHO} for SAM, "
        f"{sharpness_aware.ASAM_RHO} for ASAM)",
    )
    o.add_argument(
        "--eta",
        type=float,
        default=None,
        help=f"ASAM offset eta of T_w = abs(w) + eta (default {sharpness_aware.ASAM_ETA})",
    )
    o.add_argument(
        "--sam_m",
        type=int,
        default=None,
        help="m-sharpness: perturb each group of this many examples on its own "
        "(default: the whole batch)",
    )
    o.add_argument(
        "--momentum",
        type=float,
        default=None,
        help="momentum of sgd/momentum/nesterov (default 0 for sgd, else 0.9)",
    )
    o.add_argument(
        "--weight_decay",
        type=float,
        default=None,
        help="L2 weight decay as in PyTorch's SGD (decays every weight)",
    )
    o.add_argument("--clip_norm", type=float, default=None, help="clip the global gradient norm")
    o.add_argument(
        "--max_physical_batch",
        type=int,
        default=None,
        help="split larger batches into micro-batches and average their gradients",
    )
    _switch(
        o, "--reset_optimizer", "--resetGrad", help="fresh optimizer state at every phase change"
    )
    _switch(
        o,
        "--loss_dropout",
        "--lossDropout",
        help="skip the update when the batch loss fell below the previous batch's",
    )
    o.add_argument(
        "--loss_dropout_window",
        type=int,
        nargs=2,
        default=[3, 119],
        metavar=("FIRST", "LAST"),
        help="loss dropout: 1-based epochs, inclusive",
    )
    o.add_argument(
        "--loss_dropout_rule",
        default="lower",
        choices=("lower", "higher"),
        help="loss dropout: skip when the loss went lower (reference) or higher",
    )
    r = p.add_argument_group("run")
    r.add_argument(
        "--filename",
        default=None,
        help="run folder (default: runs/<dataset>_<model>_<schedule>_<time>)",
    )
    r.add_argument(
        "--resume",
        default=None,
        metavar="RUN_FOLDER",
        help="continue the run in this folder from its checkpoint",
    )
    r.add_argument(
        "--seed",
        "--rand_seed",
        dest="seed",
        type=int,
        default=0,
        help="seed of weights and data order",
    )
    _switch(r, "--deterministic", help="ask the backend for deterministic kernels (GPUs)")
    _switch(
        r,
        "--distribute",
        help="data-parallel over every local device (global batch sizes; JAX or TensorFlow)",
    )
    r.add_argument(
        "--checkpoint_every",
        type=int,
        default=1,
        help="write the resumable checkpoint every this many epochs",
    )
    r.add_argument("--eval_batch_size", type=int, default=1000, help="evaluation batch size")
    _switch(r, "--drop_remainder", help="drop each epoch's last partial batch")
    _switch(r, "--tensorboard", help="also write TensorBoard logs")
    _switch(
        r,
        "--saveState",
        "--save_state",
        help="keep a .keras snapshot of every epoch (weights/epoch_NNN.keras)",
    )
    r.add_argument(
        "--verbose",
        type=int,
        default=None,
        choices=(0, 1, 2),
        help="0 silent, 1 progress bar, 2 one line per epoch (default: 1 on a terminal, else 2)",
    )
    return p


def parse(argv: Sequence[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """Parse and check ``argv``; fill the family defaults; resolve the reference switches."""
    parser = build_parser()
    args = parser.parse_args(argv)
    given = explicit_flags(argv)
    _check_contradictions(parser, given, args)
    for flag, name in SWITCHES.items():
        if getattr(args, flag):
            args.schedule = name
    fill_defaults(args)
    return parser, args


def fill_defaults(args: argparse.Namespace) -> None:
    """Replace every None default that follows the dataset family by the family's value."""
    for dest, value in FAMILY_DEFAULTS[family(args.dataset)].items():
        if getattr(args, dest) is None:
            setattr(args, dest, value)
    if args.milestones is None:
        args.milestones = [args.epochs * k // 3 for k in (1, 2) if args.epochs >= 3]


def explicit_flags(argv: Sequence[str] | None) -> dict[str, Any]:
    """Only the flags given on the command line (defaults left out)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return vars(parser.parse_args(argv))


def check_values(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse out-of-range values, naming the flag."""
    for name in ("epochs", "batch_size", "eval_batch_size", "checkpoint_every", "reference_batch"):
        if getattr(args, name) < 1:
            parser.error(
                f"argument --{name}: must be a positive integer, got {getattr(args, name)}"
            )
    for name in ("num_train", "num_test", "max", "max_physical_batch"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"argument --{name}: must be a positive integer, got {value}")
    for name in ("lr", "factor", "factor1", "factor2", "factor3", "lr_growth"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            parser.error(f"argument --{name}: must be a positive number, got {value}")
    for name in ("weight_decay", "warmup_epochs", "cycle_epochs", "min_lr"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value >= 0):
            parser.error(f"argument --{name}: must be >= 0, got {value}")
    if args.momentum is not None and not 0.0 <= args.momentum < 1.0:
        parser.error(f"argument --momentum: must be in [0, 1), got {args.momentum}")
    if args.momentum and _base_optimizer(args) not in ("sgd", "momentum", "nesterov"):
        parser.error(f"argument --momentum: the {args.optimizer} optimizer takes no momentum")
    if args.clip_norm is not None and not (math.isfinite(args.clip_norm) and args.clip_norm > 0):
        parser.error(f"argument --clip_norm: must be a positive number, got {args.clip_norm}")
    if args.mini_batch_size < 0:
        parser.error(f"argument --mini_batch_size: must be >= 0, got {args.mini_batch_size}")
    if args.mini_batch_size > args.batch_size:
        parser.error(
            f"argument --mini_batch_size: the virtual batch {args.mini_batch_size} is larger "
            f"than the batch size {args.batch_size}"
        )
    if args.seed < 0:
        parser.error(f"argument --seed: must be >= 0, got {args.seed}")
    if args.no_augment and family(args.dataset) != "cifar":
        parser.error(f"argument --no_augment: {args.dataset} has no augmentation to turn off")
    first, last = args.loss_dropout_window
    if not 1 <= first <= last:
        parser.error(
            f"argument --loss_dropout_window: needs 1 <= FIRST <= LAST, got {first} {last}"
        )
    _check_sam(parser, args)
    _check_noise_scale(parser, args)
    if args.distribute:
        try:
            distribution.check_supported(keras.backend.backend())
        except ValueError as error:
            parser.error(f"argument --distribute: {error}")


def _check_noise_scale(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    every = args.noise_scale_every
    if every is not None and every < 0:
        parser.error(f"argument --noise_scale_every: must be >= 0, got {every}")
    if args.schedule == "adaptive" and every == 0:
        parser.error("argument --noise_scale_every: the adaptive schedule needs measurements")
    small = noise_scale_batch(args)
    if noise_scale_every(args) and not 1 <= small < args.batch_size:
        parser.error(
            f"argument --noise_scale_batch: must be between 1 and the batch size "
            f"{args.batch_size} (exclusive), got {small}"
        )
    if noise_scale_every(args) and sharpness_aware.split_name(args.optimizer)[1]:
        parser.error("argument --noise_scale_every: measures plain gradients, not with SAM")
    physical = args.max_physical_batch
    if noise_scale_every(args) and physical and small > physical:
        parser.error(f"argument --noise_scale_batch: {small} exceeds --max_physical_batch")
    if args.theta is not None and not (math.isfinite(args.theta) and args.theta > 0):
        parser.error(f"argument --theta: must be a positive number, got {args.theta}")
    if not (math.isfinite(args.coefficient) and args.coefficient > 0):
        parser.error(f"argument --coefficient: must be a positive number, got {args.coefficient}")


def train_size(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The number of training examples the run will use (loading the data only if unknown)."""
    sizes = KNOWN_SIZES.get(args.dataset) if not args.data_dir else None
    for flag, value, known in (
        ("num_train", args.num_train, sizes and sizes[0]),
        ("num_test", args.num_test, sizes and sizes[1]),
    ):
        if value is not None and known and value > known:
            parser.error(f"argument --{flag}: {args.dataset} has only {known} examples there")
    if args.num_train:
        return args.num_train
    if sizes:
        return sizes[0]
    from bsi_keras.data import load_dataset

    return len(load_dataset(args.dataset, args.data_dir).x_train)


def build_schedule(
    parser: argparse.ArgumentParser, args: argparse.Namespace, name: str, num_train: int
) -> schedules.Schedule:
    """The schedule ``name`` from the flags, refusing values that make no schedule."""
    if args.batch_size > num_train:
        parser.error(
            f"argument --batch_size: {args.batch_size} is larger than the training set "
            f"({num_train} examples)"
        )
    if args.max is not None and args.max > num_train:
        parser.error(f"argument --max: {args.max} is larger than the training set ({num_train})")
    if name == "adaptive":
        return _adaptive_schedule(parser, args, args.max or num_train)
    try:
        schedule = _base_schedule(parser, args, name, args.max or num_train)
        if args.regime_adaptation:
            schedule = schedules.stretch_epochs(schedule, args.reference_batch)
        schedule = schedules.scale_lr(schedule, args.scale_lr, args.reference_batch)
        schedule = schedules.with_curve(schedule, _curve(args))
    except ScheduleError as error:
        flag = FLAG_OF_PARAM.get(error.param, f"--{error.param}")
        parser.error(f"argument {flag}: {str(error).split(': ', 1)[1]}")
    smallest = min(phase.batch_size for phase in schedule.phases)
    if args.sam_m is not None and args.sam_m > smallest:
        parser.error(
            f"argument --sam_m: {args.sam_m} is larger than the batch size {smallest}; "
            "leave it out for one perturbation per batch"
        )
    return schedule


def step_options(args: argparse.Namespace) -> StepOptions:
    """The train step the flags ask for."""
    dropout = None
    if args.loss_dropout:
        first, last = args.loss_dropout_window
        dropout = LossDropout(first, last, args.loss_dropout_rule)
    sam = sharpness_aware.from_name(args.optimizer, args.rho, args.eta, args.sam_m)
    noise = None
    if noise_scale_every(args):
        noise = NoiseScaleOptions(noise_scale_every(args), noise_scale_batch(args))
    return StepOptions(
        max_physical_batch=args.max_physical_batch, loss_dropout=dropout, sam=sam, noise_scale=noise
    )


def noise_scale_every(args: argparse.Namespace) -> int:
    """How often the noise scale is measured (0: never).

    Every update for the adaptive schedule: `bench/noise_scale_cost.py` measures an epoch
    measured every 10 updates as at least as slow as one measured at every update (the step
    that picks between the two paths costs more than the measurement it saves).
    """
    if args.noise_scale_every is not None:
        return args.noise_scale_every
    return 1 if args.schedule == "adaptive" else 0


def noise_scale_batch(args: argparse.Namespace) -> int:
    """The noise scale's small batch: given, or a quarter of the batch in ghost batches."""
    if args.noise_scale_batch is not None:
        return args.noise_scale_batch
    ghost = args.mini_batch_size or 1
    return max(ghost, (args.batch_size // 4) // ghost * ghost)


def momentum(args: argparse.Namespace) -> float:
    """The momentum coefficient the optimizer will use (for the noise scale)."""
    if args.momentum is not None:
        return args.momentum
    return 0.9 if _base_optimizer(args) in ("momentum", "nesterov") else 0.0


def flag_table() -> str:
    """Every flag with its default(s) and help, as a Markdown table (used by the README)."""
    lines = ["| flag | default (MNIST family / CIFAR) | meaning |", "| --- | --- | --- |"]
    for action in build_parser()._actions:
        if not action.option_strings or action.dest == "help":
            continue
        flags = ", ".join(f"`{f}`" for f in action.option_strings)
        if action.dest in FAMILY_DEFAULTS["mnist"]:
            mnist, cifar = (FAMILY_DEFAULTS[f][action.dest] for f in ("mnist", "cifar"))
            default = f"`{mnist}` / `{cifar}`"
        else:
            default = "" if action.default in (None, False) else f"`{action.default}`"
        choices = f" ({', '.join(map(str, action.choices))})" if action.choices else ""
        lines.append(f"| {flags} | {default} | {(action.help or '').strip()}{choices} |")
    return "\n".join(lines)


PHASES_EXCLUDE = ("epochs", "batch_size", "lr", "milestones", "factor", "cap", "grow_steps")


def _check_contradictions(
    parser: argparse.ArgumentParser, given: dict[str, Any], args: argparse.Namespace
) -> None:
    """Refuse flags that contradict each other rather than silently ignore one."""
    switches = [flag for flag in SWITCHES if given.get(flag)]
    if len(switches) > 1:
        parser.error(f"argument --{switches[1]}: contradicts --{switches[0]}")
    if switches and "schedule" in given and given["schedule"] != SWITCHES[switches[0]]:
        parser.error(f"argument --{switches[0]}: contradicts --schedule {given['schedule']}")
    if given.get("doubleEndFactor") and (
        switches or given.get("schedule", "increase_bs") not in ("increase_bs",)
    ):
        parser.error("argument --doubleEndFactor: applies to the increase_bs schedule only")
    if "phases" in given:
        for dest in PHASES_EXCLUDE:
            if dest in given:
                parser.error(f"argument --{dest}: --phases already sets the whole schedule")
        if args.schedule == "all" or switches:
            parser.error("argument --phases: cannot be combined with another schedule")
    if "resume" in given and "filename" in given:
        parser.error("argument --resume: give either --filename or --resume, not both")


def _adaptive_schedule(
    parser: argparse.ArgumentParser, args: argparse.Namespace, max_batch: int
) -> schedules.AdaptiveSchedule:
    for flag in ("regime_adaptation", "warmup_epochs"):
        if getattr(args, flag):
            parser.error(f"argument --{flag}: not with --schedule adaptive")
    if args.lr_curve != "constant":
        parser.error("argument --lr_curve: not with --schedule adaptive")
    try:
        return schedules.AdaptiveSchedule(
            args.epochs,
            args.batch_size,
            args.lr,
            coefficient=args.coefficient,
            factor=args.factor,
            max_batch_size=max_batch,
            multiple_of=args.mini_batch_size or 1,
            scale_lr=args.scale_lr,
            theta=args.theta,
        )
    except ScheduleError as error:
        flag = FLAG_OF_PARAM.get(error.param, f"--{error.param}")
        parser.error(f"argument {flag}: {str(error).split(': ', 1)[1]}")


def _base_schedule(
    parser: argparse.ArgumentParser, args: argparse.Namespace, name: str, max_batch: int
) -> schedules.Schedule:
    if args.phases:
        try:
            return schedules.from_phases(args.phases)
        except ScheduleError as error:
            parser.error(f"argument --phases: {error}")
    common = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr}
    factor = int(args.factor) if float(args.factor).is_integer() else args.factor
    stepped = {**common, "milestones": args.milestones}
    capped = {"max_batch_size": max_batch, "cap": args.cap}
    if name == "constant":
        return schedules.constant(**common)
    if name == "decay_lr":
        return schedules.decay_lr(**stepped, factor=factor)
    if name == "increase_bs":
        return schedules.increase_bs(
            **stepped, factor=factor, double_end_factor=args.doubleEndFactor, **capped
        )
    if name == "hybrid":
        return schedules.hybrid(**stepped, factor=factor, grow_steps=args.grow_steps, **capped)
    if name == "mixed_bsi":
        factors = {"factor1": args.factor1, "factor2": args.factor2, "factor3": args.factor3}
        return schedules.mixed_bsi(**stepped, **factors, **capped)
    return schedules.fast_bsi(
        **common,
        max_batch_size=max_batch,
        start_epoch=args.fast_start - 1,
        lr_growth=args.lr_growth,
        milestones=args.milestones,
        instant=name == "instant_bsi",
    )


def _curve(args: argparse.Namespace) -> schedules.StepCurve | None:
    if args.lr_curve == "constant" and not args.warmup_epochs:
        return None
    # Goyal et al. ramp from the base LR to the scaled one; without scaling, from zero.
    start = args.lr if args.scale_lr != "none" else 0.0
    return schedules.StepCurve(
        args.lr_curve, args.warmup_epochs, start, args.cycle_epochs, args.min_lr
    )


def _switch(group: argparse._ArgumentGroup, *flags: str, help: str) -> None:
    """A real boolean flag: ``--flag`` or ``--flag true`` turns it on, ``--flag false`` off."""
    group.add_argument(
        *flags,
        dest=flags[0].lstrip("-"),
        nargs="?",
        const=True,
        default=False,
        type=_boolean,
        metavar="BOOL",
        help=help,
    )


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _base_optimizer(args: argparse.Namespace) -> str:
    return sharpness_aware.split_name(args.optimizer)[0]


def _check_sam(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse SAM options that are out of range or given without SAM."""
    variant = sharpness_aware.split_name(args.optimizer)[1]
    for name in ("rho", "eta", "sam_m"):
        if getattr(args, name) is not None and variant is None:
            parser.error(
                f"argument --{name}: applies to the sam_* and asam_* optimizers only, "
                f"not {args.optimizer}"
            )
    if args.eta is not None and variant == "sam":
        parser.error(f"argument --eta: applies to ASAM only (asam_*), not {args.optimizer}")
    if args.rho is not None and not (math.isfinite(args.rho) and args.rho > 0):
        parser.error(f"argument --rho: must be a positive number, got {args.rho}")
    if args.eta is not None and not (math.isfinite(args.eta) and args.eta >= 0):
        parser.error(f"argument --eta: must be >= 0, got {args.eta}")
    if args.sam_m is not None and args.sam_m < 1:
        parser.error(f"argument --sam_m: must be a positive integer, got {args.sam_m}")


def _optimizer_name(name: str) -> str:
    if not is_optimizer_name(name):
        raise argparse.ArgumentTypeError(
            f"invalid choice: {name!r} (choose from {', '.join(OPTIMIZERS)}, optionally "
            "prefixed sam_ or asam_)"
        )
    return name


def _model_name(name: str) -> str:
    if not is_model_name(name):
        raise argparse.ArgumentTypeError(
            f"invalid choice: {name!r} (choose from {', '.join(available_models())}, "
            "or wrn_<depth>_<width>[_preact])"
        )
    return name
