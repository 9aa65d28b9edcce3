"""The command line's flags: the parser, the defaults per dataset family, the reference's spellings.

Flags follow the PyTorch reproduction of Smith et al. (``--batch_size --lr --epochs --model
--dataset --optimizer --factor --max --milestones --filename --mini_batch_size ...``); its
own spellings (``--LRD --steady --doubleEndFactor --mixedBSI --fastBSI --saveState
--rand_seed``) work too, as real booleans (``--LRD False`` turns nothing on). Defaults
follow the dataset: the MNIST experiment for the MNIST family, the reference CIFAR study
(WRN-16-4, 200 epochs, milestones 60/120/160, ...) for CIFAR. `parse` gives the flags with
every default filled; `bsi_keras.cli.spec.RunSpec.from_args` checks their values.

This module is longer than 400 lines because it is the one table of the command line's
flags (about seventy, each with its help text, which the README's flag table is generated
from); split, the table would be in several places.

Example:

>>> args = parse(["--dataset", "cifar10", "--LRD"])
>>> args.schedule, args.model, args.milestones
('decay_lr', 'wrn_16_4', [60, 120, 160])
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from bsi_keras import schedules
from bsi_keras.cli.checks import SpecError
from bsi_keras.data import available_datasets
from bsi_keras.layers import MOVING_STATISTICS
from bsi_keras.models import available_models, is_model_name
from bsi_keras.optimizers import OPTIMIZERS, is_optimizer_name
from bsi_keras.runtime import physical_batch
from bsi_keras.train_step import sam as sharpness_aware

SCHEDULES = (
    "increase_bs",
    "decay_lr",
    "hybrid",
    "constant",
    "mixed_bsi",
    "fast_bsi",
    "instant_bsi",
    "adaptive",
    "seesaw",
    "cbs_warmup",
)
COMPARED = ("decay_lr", "hybrid", "increase_bs")  # what --schedule all runs
# The reference study's switches, each naming a schedule.
SWITCHES = {
    "LRD": "decay_lr",
    "steady": "constant",
    "mixedBSI": "mixed_bsi",
    "fastBSI": "fast_bsi",
    "instant": "instant_bsi",
}
FAMILY_DEFAULTS = {
    "mnist": {
        "model": "mnist_cnn",
        "mini_batch_size": 10,
        "bn_statistics": "keras",
        "epochs": 6,
        "batch_size": 100,
        "lr": 0.05,
        "weight_decay": 0.0,
        "clip_norm": None,
        "max_physical_batch": None,
    },
    "cifar": {
        "model": "wrn_16_4",
        "mini_batch_size": 128,
        "bn_statistics": "per_ghost_batch",
        "epochs": 200,
        "batch_size": 128,
        "lr": 0.1,
        "weight_decay": 5e-4,
        "clip_norm": 5.0,
        "max_physical_batch": 1024,
    },
}
# Default milestones as fractions of --epochs: thirds for the MNIST family, the reference
# study's 60/120/160 of 200 epochs for CIFAR and for mixed_bsi (which steps three times).
MILESTONE_FRACTIONS = {"mnist": ((1, 3), (2, 3)), "cifar": ((3, 10), (6, 10), (8, 10))}
FAST_START = 6  # the reference's first epoch of batch doubling (fast_bsi, instant_bsi)
# Flags that --phases replaces: it sets the whole schedule.
PHASES_EXCLUDE = ("epochs", "batch_size", "lr", "milestones", "factor", "cap", "grow_steps")
FlagValue = str | int | float | bool | list[int] | None


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
        help="epochs after which the schedule steps (default: thirds of --epochs for the MNIST "
        "family; 0.3, 0.6, 0.8 of them for CIFAR and mixed_bsi, i.e. 60 120 160 of 200)",
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
        default=None,
        help=f"fast_bsi / instant_bsi: first (1-based) epoch of batch doubling (default: "
        f"{FAST_START}, or the last epoch of a shorter run)",
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
        "--ramp_rule",
        default="adam",
        choices=schedules.RAMP_RULES,
        help="seesaw: each fall of the base LR by --factor multiplies the batch by --factor "
        "and divides the LR by sqrt(--factor) (adam: Seesaw) or by 1 (sgd: Smith et al.)",
    )
    s.add_argument(
        "--cbs",
        default=None,
        metavar="FILE",
        help="cbs_warmup: a critical-batch trajectory (python -m bsi_keras.critical_batch's "
        "critical_batch.json, or a CSV with columns epoch,critical_batch)",
    )
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
        "--bn_statistics",
        default=None,
        choices=MOVING_STATISTICS,
        help="ghost batch norm moving statistics: one update per call with the ghost batches' "
        "mean biased statistics (keras, Keras 2's), or one per ghost batch with its unbiased "
        "variance (per_ghost_batch, the PyTorch reference studies')",
    )
    m.add_argument(
        "--weights",
        default=None,
        help="initial weights: a .weights.h5 or .keras file of the built model, or imagenet "
        "(mobilenet_v2: Keras's ImageNet weights, downloaded once)",
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
    m.add_argument(
        "--validation_examples",
        type=int,
        default=None,
        metavar="N",
        help="hold out the last N training images (of --num_train) and evaluate on them "
        "instead of the test set (val_accuracy is then validation accuracy)",
    )
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
        type=_physical_batch,
        default=None,
        help="run batches as micro-batches of at most this many examples accumulated into "
        "one update; 'auto': probe the device for the fastest (the default on GPUs and TPUs)",
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
    r.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        metavar="SEED",
        help="one run folder per seed, ROOT/seed_<k>/ (with --schedule all: "
        "ROOT/seed_<k>/<schedule>/; the schedules of a seed share weights and data order)",
    )
    r.add_argument(
        "--num_seeds",
        type=int,
        default=None,
        metavar="N",
        help="as --seeds 0 1 ... N-1",
    )
    _switch(r, "--deterministic", help="ask the backend for deterministic kernels (GPUs)")
    r.add_argument(
        "--compile_cache",
        default=None,
        metavar="FOLDER",
        help="JAX: keep compiled programs in FOLDER for later runs (default "
        "~/.cache/bsi_keras/jax; 'off' turns it off)",
    )
    _switch(
        r,
        "--distribute",
        help="data-parallel over every device, of every process on JAX (global batch sizes; "
        "JAX or TensorFlow; see the README's Scale section)",
    )
    r.add_argument(
        "--checkpoint_every",
        type=int,
        default=1,
        help="write the resumable checkpoint every this many epochs",
    )
    r.add_argument(
        "--eval_batch_size",
        type=int,
        default=None,
        help="evaluation batch size (default: 1000, or the whole test set if smaller)",
    )
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


def parse(
    argv: Sequence[str] | None, defaults: Mapping[str, FlagValue] | None = None
) -> argparse.Namespace:
    """Parse ``argv``; resolve the reference switches; fill the family defaults.

    Args:
        argv: the command line (None: ``sys.argv[1:]``).
        defaults: flag values (by ``dest``) that replace the parser's defaults, as a sweep
            recipe gives them; ``argv`` still overrides them.

    Raises:
        SpecError: flags that contradict each other.
    """
    parser = build_parser()
    parser.set_defaults(**(defaults or {}))
    args = parser.parse_args(argv)
    given = explicit_flags(argv)
    _check_contradictions(given, args)
    for flag, name in SWITCHES.items():
        if getattr(args, flag):
            args.schedule = name
    fill_defaults(args)
    return args


def fill_defaults(args: argparse.Namespace) -> None:
    """Replace every None default that follows the dataset family by the family's value
    (the physical batch: probed on an accelerator)."""
    if args.max_physical_batch is None and physical_batch.accelerator_present():
        args.max_physical_batch = physical_batch.AUTO
    for dest, value in FAMILY_DEFAULTS[family(args.dataset)].items():
        if getattr(args, dest) is None:
            setattr(args, dest, value)
    if args.fast_start is None:
        args.fast_start = min(FAST_START, args.epochs) if args.epochs >= 1 else FAST_START
    if args.milestones is None:
        args.milestones = default_milestones(args.schedule, args.dataset, args.epochs)


def default_milestones(schedule: str, dataset: str, epochs: int) -> list[int]:
    """The milestones of a run that gives none: `MILESTONE_FRACTIONS` of ``epochs``.

    Raises:
        SpecError: naming ``--epochs``, for a mixed_bsi run too short for 3 milestones.

    Example:

    >>> default_milestones("decay_lr", "mnist", 6), default_milestones("decay_lr", "cifar10", 200)
    ([2, 4], [60, 120, 160])
    >>> default_milestones("increase_bs", "mnist", 2), default_milestones("mixed_bsi", "mnist", 4)
    ([1], [1, 2, 3])
    """
    kind = "cifar" if schedule == "mixed_bsi" else family(dataset)
    fractions = MILESTONE_FRACTIONS[kind]
    if epochs < 2:
        return []
    milestones = sorted({min(max(epochs * a // b, 1), epochs - 1) for a, b in fractions})
    if schedule == "mixed_bsi" and len(milestones) < 3:
        raise SpecError(
            "--epochs",
            f"mixed_bsi steps at 3 milestones, so it needs at least 4 epochs (got {epochs}); "
            "give more --epochs, or --milestones with 3 epochs",
        )
    return milestones


def explicit_flags(argv: Sequence[str] | None) -> dict[str, FlagValue]:
    """Only the flags given on the command line (defaults left out), by ``dest``."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return vars(parser.parse_args(argv))


def as_typed(flag: str, argv: Sequence[str] | None) -> str:
    """The spelling of ``flag`` (``--`` and a dest, or any of its option strings) that
    ``argv`` used, else the parser's first (``--data_dir`` -> ``--data-dir``).

    Example:

    >>> as_typed("--seed", ["--rand_seed", "7"]), as_typed("--dry_run", [])
    ('--rand_seed', '--dry-run')
    """
    argv = sys.argv[1:] if argv is None else argv
    typed = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    for action in build_parser()._actions:
        if flag in action.option_strings or flag == f"--{action.dest}":
            return next((o for o in action.option_strings if o in typed), action.option_strings[0])
    return flag


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


def seed_list(args: argparse.Namespace) -> list[int] | None:
    """The seeds of ``--seeds`` or ``--num_seeds`` (None: one run with ``--seed``).

    Example:

    >>> seed_list(build_parser().parse_args(["--num_seeds", "3"]))
    [0, 1, 2]
    """
    if args.num_seeds is not None:
        return list(range(args.num_seeds))
    return None if args.seeds is None else list(args.seeds)


def _check_seeds(given: Mapping[str, FlagValue]) -> None:
    """Refuse ``--seeds`` or ``--num_seeds`` with ``--seed``, with each other, or out of range."""
    if "seeds" in given and "num_seeds" in given:
        raise SpecError("--num_seeds", "contradicts --seeds; give one of them")
    for flag in ("seeds", "num_seeds"):
        if flag in given and "seed" in given:
            raise SpecError(f"--{flag}", "contradicts --seed; give the seeds in one flag")
        if flag in given and "resume" in given:
            raise SpecError(f"--{flag}", "resume one run folder at a time (--resume FOLDER)")
    seeds = given.get("seeds") or []
    if any(seed < 0 for seed in seeds) or len(set(seeds)) != len(seeds):
        raise SpecError("--seeds", f"must be distinct and >= 0, got {' '.join(map(str, seeds))}")
    if "num_seeds" in given and given["num_seeds"] < 1:
        raise SpecError("--num_seeds", f"must be >= 1, got {given['num_seeds']}")


def _check_contradictions(given: Mapping[str, FlagValue], args: argparse.Namespace) -> None:
    """Refuse flags that contradict each other rather than silently ignore one."""
    _check_seeds(given)
    switches = [flag for flag in SWITCHES if given.get(flag)]
    if len(switches) > 1:
        raise SpecError(f"--{switches[1]}", f"contradicts --{switches[0]}")
    if switches and "schedule" in given and given["schedule"] != SWITCHES[switches[0]]:
        raise SpecError(f"--{switches[0]}", f"contradicts --schedule {given['schedule']}")
    if given.get("double_end_factor") and (
        switches or given.get("schedule", "increase_bs") not in ("increase_bs",)
    ):
        raise SpecError("--doubleEndFactor", "applies to the increase_bs schedule only")
    if "phases" in given:
        for dest in PHASES_EXCLUDE:
            if dest in given:
                raise SpecError(f"--{dest}", "--phases already sets the whole schedule")
        if args.schedule == "all" or switches:
            raise SpecError("--phases", "cannot be combined with another schedule")
    if "resume" in given and "filename" in given:
        raise SpecError("--resume", "give either --filename or --resume, not both")


def _switch(group: argparse._ArgumentGroup, *flags: str, help: str) -> None:
    """A real boolean flag: ``--flag`` or ``--flag true`` turns it on, ``--flag false`` off.

    Its ``dest`` is the first snake_case spelling (``--saveState, --save_state``: save_state).
    """
    group.add_argument(
        *flags,
        dest=next((f for f in flags if f.islower()), flags[0]).lstrip("-"),
        nargs="?",
        const=True,
        default=False,
        type=_boolean,
        metavar="BOOL",
        help=help,
    )


def _physical_batch(text: str) -> int | str:
    if text == physical_batch.AUTO:
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or {physical_batch.AUTO!r}, got {text!r}"
        ) from None


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


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


def typed_command(argv: Sequence[str]) -> str:
    """The command line ``argv`` as the user typed it: ``python -m bsi_keras.X`` names the
    program (``argv[0]`` is this machine's path of ``bsi_keras/X.py``), the arguments quoted.

    Example:

    >>> typed_command(["/home/me/src/bsi_keras/sweep.py", "smith", "--root", "a b"])
    "python -m bsi_keras.sweep smith --root 'a b'"
    """
    program = Path(argv[0])
    if program.parent.name == "bsi_keras":
        module = "bsi_keras" if program.stem == "__main__" else f"bsi_keras.{program.stem}"
        typed = ["python", "-m", module]
    else:
        typed = [program.name]
    return shlex.join([*typed, *argv[1:]])
