"""Command line: ``python -m bsi_keras.run --schedule increase_bs``.

Flags follow the PyTorch reproduction of Smith et al. (``--batch_size --lr --epochs --model
--dataset --optimizer --factor --max --milestones --filename --mini_batch_size ...``). Every
value is checked before any training; a bad one stops with a message naming the flag.
``--schedule all`` runs decay_lr, hybrid and increase_bs from the same initial weights and
draws the comparison figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bsi_keras import schedules
from bsi_keras.data import available_datasets
from bsi_keras.models import available_models
from bsi_keras.optimizers import OPTIMIZERS
from bsi_keras.schedules import ScheduleError

SCHEDULES = ("increase_bs", "decay_lr", "hybrid", "constant")
COMPARED = ("decay_lr", "hybrid", "increase_bs")
# (train, test) sizes, so that a dry run and the flag checks need not load the data.
KNOWN_SIZES = {
    "mnist": (60_000, 10_000),
    "fashion_mnist": (60_000, 10_000),
    "mnist_sample": (4_000, 1_000),
    "synthetic": (1_000, 200),
    "cifar10": (50_000, 10_000),
    "cifar100": (50_000, 10_000),
}
FLAG_OF_PARAM = {
    "epochs": "--epochs",
    "batch_size": "--batch_size",
    "lr": "--lr",
    "milestones": "--milestones",
    "factor": "--factor",
    "max_batch_size": "--max",
    "cap": "--cap",
    "grow_steps": "--grow_steps",
    "phases": "--phases",
}


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (its help lists every flag with its default)."""
    p = argparse.ArgumentParser(
        prog="python -m bsi_keras.run",
        description="Train with a batch-size / learning-rate schedule into a run folder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    s = p.add_argument_group("schedule")
    s.add_argument(
        "--schedule",
        default="increase_bs",
        choices=(*SCHEDULES, "all"),
        help="which schedule; 'all' compares decay_lr, hybrid and increase_bs",
    )
    s.add_argument(
        "--phases", default=None, help="explicit phases EPOCHSxBATCH@LR,... (overrides --schedule)"
    )
    s.add_argument("--epochs", type=int, default=6, help="total epochs")
    s.add_argument("--batch_size", type=int, default=100, help="initial batch size")
    s.add_argument("--lr", type=float, default=0.05, help="initial learning rate")
    s.add_argument(
        "--milestones",
        type=int,
        nargs="+",
        default=None,
        help="epochs after which the schedule steps (default: thirds of --epochs)",
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
        default="mnist_cnn",
        type=_model_name,
        help=f"{', '.join(available_models())}, or any wrn_<depth>_<width>[_preact]",
    )
    m.add_argument(
        "--mini_batch_size",
        type=int,
        default=10,
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
        help="folder with local dataset files (IDX or npz)",
    )
    m.add_argument("--num_train", type=int, default=None, help="use the first N training images")
    m.add_argument("--num_test", type=int, default=None, help="use the first N test images")
    o = p.add_argument_group("optimizer")
    o.add_argument("--optimizer", default="momentum", choices=OPTIMIZERS)
    o.add_argument(
        "--momentum",
        type=float,
        default=None,
        help="momentum of sgd/momentum/nesterov (default 0 for sgd, else 0.9)",
    )
    o.add_argument(
        "--weight_decay",
        type=float,
        default=0.0,
        help="L2 weight decay as in PyTorch's SGD (decays every weight)",
    )
    o.add_argument("--clip_norm", type=float, default=None, help="clip the global gradient norm")
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
    r.add_argument("--seed", type=int, default=0, help="seed of weights and data order")
    r.add_argument(
        "--deterministic",
        action="store_true",
        help="ask the backend for deterministic kernels (matters on GPUs)",
    )
    r.add_argument(
        "--checkpoint_every",
        type=int,
        default=1,
        help="write the resumable checkpoint every this many epochs",
    )
    r.add_argument("--eval_batch_size", type=int, default=1000, help="evaluation batch size")
    r.add_argument(
        "--drop_remainder", action="store_true", help="drop each epoch's last partial batch"
    )
    r.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs")
    r.add_argument(
        "--saveState",
        "--save_state",
        dest="save_state",
        action="store_true",
        help="keep the weights of every epoch (weights/epoch_NNN.weights.h5)",
    )
    r.add_argument(
        "--verbose",
        type=int,
        default=None,
        choices=(0, 1, 2),
        help="0 silent, 1 progress bar, 2 one line per epoch (default: 1 on a terminal, else 2)",
    )
    return p


def _model_name(name: str) -> str:
    from bsi_keras.models import is_model_name

    if not is_model_name(name):
        raise argparse.ArgumentTypeError(
            f"invalid choice: {name!r} (choose from {', '.join(available_models())}, "
            "or wrn_<depth>_<width>[_preact])"
        )
    return name


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_contradictions(parser, argv, args)
    if args.resume:
        args = _resumed_args(parser, argv, args)
    _check_flags(parser, args)
    from bsi_keras.checkpoint import CheckpointError
    from bsi_keras.driver import TrainingInterrupted
    from bsi_keras.run_folder import RunFolderError

    try:
        return _run(parser, args)
    except (RunFolderError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except TrainingInterrupted as interrupted:
        print(
            f"stopped: {interrupted}. Resume with: python -m bsi_keras.run --resume "
            f"{interrupted.run_dir}",
            file=sys.stderr,
        )
        return 128 + interrupted.signum


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    num_train = _train_size(parser, args)
    names = COMPARED if args.schedule == "all" and not args.phases else (args.schedule,)
    built = {name: _build_schedule(parser, args, name, num_train) for name in names}
    if args.dry_run:
        for schedule in built.values():
            print_dry_run(schedule, num_train, _momentum(args))
        return 0
    from bsi_keras.data import DatasetUnavailable, load_dataset

    try:
        dataset = load_dataset(args.dataset, args.data_dir, args.num_train, args.num_test)
    except DatasetUnavailable as error:
        print(f"error: --dataset {args.dataset}: {error}", file=sys.stderr)
        return 1
    if len(dataset.x_train) != num_train:  # a local file of another size
        built = {n: _build_schedule(parser, args, n, len(dataset.x_train)) for n in names}
    _check_model(parser, args, dataset)
    root = Path(args.resume or args.filename or _default_folder(args))
    if args.deterministic:
        from bsi_keras.train_step.determinism import enable_determinism

        args.determinism = enable_determinism()
    results = {}
    for name, schedule in built.items():
        folder = root / name if len(built) > 1 else root
        results[name] = _train_one(args, dataset, schedule, folder)
        if results[name]["status"] != "finished":
            return 1
    if len(built) > 1:
        from bsi_keras import plots

        figure = plots.comparison_figure([root / n for n in built], root / "comparison.png")
        print(f"comparison figure: {figure}")
    return 0


def _build_model(args: argparse.Namespace, dataset: Any) -> Any:
    from bsi_keras.models import apply_weight_decay, get_model

    model = get_model(
        args.model,
        input_shape=dataset.input_shape,
        num_classes=dataset.num_classes,
        virtual_batch_size=args.mini_batch_size or None,
    )
    return apply_weight_decay(model, args.weight_decay)


def _check_model(parser: argparse.ArgumentParser, args: argparse.Namespace, dataset: Any) -> None:
    """Refuse a model that cannot take the dataset's inputs before any run starts."""
    try:
        _build_model(args, dataset)
    except (ValueError, TypeError) as error:
        parser.error(
            f"argument --model: {args.model} cannot be built for {dataset.name}'s inputs "
            f"{dataset.input_shape}: {error}"
        )


def _train_one(args: argparse.Namespace, dataset: Any, schedule: Any, folder: Path) -> dict:
    import keras

    from bsi_keras.experiment import train
    from bsi_keras.optimizers import get_optimizer

    keras.utils.set_random_seed(args.seed)
    model = _build_model(args, dataset)
    optimizer = get_optimizer(args.optimizer, schedule.at(0).lr, args.momentum, args.clip_norm)
    print(f"{schedule.name}: {_describe(schedule)} -> {folder}")
    _, summary = train(
        model,
        dataset,
        schedule,
        optimizer,
        folder,
        seed=args.seed,
        config={"args": vars(args), "command": " ".join(sys.argv)},
        tensorboard=args.tensorboard,
        save_every_epoch=args.save_state,
        verbose=args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2),
        eval_batch_size=args.eval_batch_size,
        drop_remainder=args.drop_remainder,
        checkpoint_every=args.checkpoint_every,
        resume=bool(args.resume),
    )
    print(
        f"{schedule.name}: {summary['status']}, test accuracy {summary['final_val_accuracy']:.4f}, "
        f"{summary['total_updates']} updates, {summary['train_seconds']:.1f} s training "
        f"(+{summary['compile_seconds']:.1f} s compile)"
    )
    return summary


def print_dry_run(schedule: Any, num_train: int, momentum: float) -> None:
    """Print a schedule's phase table and its total updates."""
    print(f"{schedule.name} on N = {num_train} training examples, momentum {momentum}:")
    header = (
        "phase",
        "epochs",
        "first_epoch",
        "batch_size",
        "lr",
        "updates_per_epoch",
        "cumulative_updates",
        "noise_scale",
    )
    print("  " + " ".join(f"{h:>18}" for h in header))
    for row in schedule.table(num_train, momentum):
        print("  " + " ".join(f"{row[h]:>18.6g}" for h in header))
    print(f"  total updates: {schedule.total_updates(num_train)}")


def flag_table() -> str:
    """Every flag with its default and help, as a Markdown table (used by the README)."""
    lines = ["| flag | default | meaning |", "| --- | --- | --- |"]
    for action in build_parser()._actions:
        if not action.option_strings or action.dest == "help":
            continue
        flags = ", ".join(f"`{f}`" for f in action.option_strings)
        default = "" if action.default in (None, False) else f"`{action.default}`"
        choices = f" ({', '.join(map(str, action.choices))})" if action.choices else ""
        lines.append(f"| {flags} | {default} | {(action.help or '').strip()}{choices} |")
    return "\n".join(lines)


RESUME_MAY_CHANGE = ("resume", "verbose")


def _resumed_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, args: argparse.Namespace
) -> argparse.Namespace:
    """The settings of the run being resumed; a flag that contradicts them is refused."""
    from bsi_keras.run_folder import RunFolder, RunFolderError

    try:
        stored = RunFolder.open_existing(args.resume).read_config().get("args")
    except RunFolderError as error:
        parser.error(f"argument --resume: {error}")
    if stored is None:
        parser.error(f"argument --resume: {args.resume} was not written by this command line")
    given = _explicit_flags(argv)
    for dest, value in given.items():
        if dest not in RESUME_MAY_CHANGE and stored.get(dest) != value:
            parser.error(
                f"argument --{dest}: {value!r} contradicts the run's config.json "
                f"({stored.get(dest)!r}); a resumed run keeps its settings"
            )
    resumed = argparse.Namespace(**{**vars(args), **stored, **given})
    if resumed.schedule == "all":  # one run of a comparison: its folder names the schedule
        resumed.schedule = Path(args.resume).name
    resumed.filename = None
    return resumed


def _explicit_flags(argv: Sequence[str] | None) -> dict[str, Any]:
    """Only the flags given on the command line (defaults left out)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return vars(parser.parse_args(argv))


PHASES_EXCLUDE = ("epochs", "batch_size", "lr", "milestones", "factor", "cap", "grow_steps")


def _check_contradictions(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, args: argparse.Namespace
) -> None:
    """Refuse flags that contradict each other rather than silently ignore one."""
    given = _explicit_flags(argv)
    if "phases" in given:
        for dest in PHASES_EXCLUDE:
            if dest in given:
                parser.error(f"argument --{dest}: --phases already sets the whole schedule")
        if args.schedule == "all":
            parser.error("argument --phases: cannot be combined with --schedule all")
    if "resume" in given and "filename" in given:
        parser.error("argument --resume: give either --filename or --resume, not both")


def _check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    positive = ("epochs", "batch_size", "eval_batch_size", "checkpoint_every")
    for name in positive:
        if getattr(args, name) < 1:
            value = getattr(args, name)
            parser.error(f"argument --{name}: must be a positive integer, got {value}")
    for name in ("num_train", "num_test", "max"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"argument --{name}: must be a positive integer, got {value}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        parser.error(f"argument --lr: must be a positive number, got {args.lr}")
    if not (math.isfinite(args.factor) and args.factor > 0):
        parser.error(f"argument --factor: must be a positive number, got {args.factor}")
    if args.momentum is not None and not 0.0 <= args.momentum < 1.0:
        parser.error(f"argument --momentum: must be in [0, 1), got {args.momentum}")
    if args.momentum and args.optimizer not in ("sgd", "momentum", "nesterov"):
        parser.error(f"argument --momentum: the {args.optimizer} optimizer takes no momentum")
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        parser.error(f"argument --weight_decay: must be >= 0, got {args.weight_decay}")
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


def _train_size(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
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


def _build_schedule(
    parser: argparse.ArgumentParser, args: argparse.Namespace, name: str, num_train: int
) -> Any:
    if args.batch_size > num_train:
        parser.error(
            f"argument --batch_size: {args.batch_size} is larger than the training set "
            f"({num_train} examples)"
        )
    if args.max is not None and args.max > num_train:
        parser.error(f"argument --max: {args.max} is larger than the training set ({num_train})")
    max_batch = args.max or num_train
    milestones = args.milestones or [args.epochs * k // 3 for k in (1, 2) if args.epochs >= 3]
    factor = int(args.factor) if float(args.factor).is_integer() else args.factor
    if args.phases:
        try:
            schedule = schedules.from_phases(args.phases)
        except ScheduleError as error:
            parser.error(f"argument --phases: {error}")
        if any(p.batch_size > num_train for p in schedule.phases):
            parser.error(f"argument --phases: a batch size exceeds the {num_train} examples")
        return schedule
    try:
        common = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr}
        if name == "constant":
            return schedules.constant(**common)
        if name == "decay_lr":
            return schedules.decay_lr(**common, milestones=milestones, factor=factor)
        capped = {"max_batch_size": max_batch, "cap": args.cap}
        if name == "increase_bs":
            return schedules.increase_bs(**common, milestones=milestones, factor=factor, **capped)
        return schedules.hybrid(
            **common, milestones=milestones, factor=factor, grow_steps=args.grow_steps, **capped
        )
    except ScheduleError as error:
        flag = FLAG_OF_PARAM.get(error.param, f"--{error.param}")
        parser.error(f"argument {flag}: {str(error).split(': ', 1)[1]}")


def _momentum(args: argparse.Namespace) -> float:
    if args.momentum is not None:
        return args.momentum
    return 0.9 if args.optimizer in ("momentum", "nesterov") else 0.0


def _describe(schedule: Any) -> str:
    return ", ".join(f"{p.epochs}x{p.batch_size}@{p.lr:g}" for p in schedule.phases)


def _default_folder(args: argparse.Namespace) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"runs/{args.dataset}_{args.model}_{args.schedule}_{args.optimizer}_{stamp}"


if __name__ == "__main__":
    sys.exit(main())
