"""Command line: ``python -m bsi_keras.run --schedule increase_bs``.

Trains a model with a batch-size / learning-rate schedule into a run folder (see
`bsi_keras.cli` for the flags). ``--schedule all`` runs decay_lr, hybrid and increase_bs
from the same initial weights and draws the comparison figure; ``--resume RUN_FOLDER``
continues a run from its checkpoint; ``--dry-run`` prints the phase table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bsi_keras import cli
from bsi_keras.schedules import AdaptiveSchedule, BaseSchedule

RESUME_MAY_CHANGE = ("resume", "verbose")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser, args = cli.parse(argv)
    if args.resume:
        args = _resumed_args(parser, argv, args)
    cli.check_values(parser, args)
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


def print_dry_run(schedule: BaseSchedule, num_train: int, momentum: float) -> None:
    """Print a schedule's phase table and its total updates."""
    if isinstance(schedule, AdaptiveSchedule):
        print(
            f"adaptive: starts at batch {schedule.batch_size}, LR {schedule.lr:g}; after each "
            f"epoch the batch becomes {schedule.coefficient:g} x the measured B_simple (in "
            f"multiples of {schedule.multiple_of}), never shrinking, at most x{schedule.factor:g} "
            f"per epoch, capped at {schedule.max_batch_size}. The batch sizes depend on "
            "measurements; the fastest growth the rule allows:"
        )
    schedule = schedule.tabulated()
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
    if schedule.curve is not None:
        print(f"  per-update LR curve: {schedule.curve}")
    print(f"  total updates: {schedule.total_updates(num_train)}")


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    num_train = cli.train_size(parser, args)
    names = cli.COMPARED if args.schedule == "all" and not args.phases else (args.schedule,)
    built = {name: cli.build_schedule(parser, args, name, num_train) for name in names}
    if args.dry_run:
        for schedule in built.values():
            print_dry_run(schedule, num_train, cli.momentum(args))
        return 0
    from bsi_keras.data import DatasetUnavailable, load_dataset

    try:
        options = {"augment": False} if args.no_augment else {}
        dataset = load_dataset(
            args.dataset, args.data_dir, args.num_train, args.num_test, **options
        )
    except DatasetUnavailable as error:
        print(f"error: --dataset {args.dataset}: {error}", file=sys.stderr)
        return 1
    if len(dataset.x_train) != num_train:  # a local file of another size
        built = {n: cli.build_schedule(parser, args, n, len(dataset.x_train)) for n in names}
    _check_model(parser, args, dataset)
    root = Path(args.resume or args.filename or _default_folder(args))
    if args.deterministic:
        from bsi_keras.runtime.determinism import enable_determinism

        args.determinism = enable_determinism()
    for name, schedule in built.items():
        folder = root / name if len(built) > 1 else root
        if _train_one(args, dataset, schedule, folder)["status"] != "finished":
            return 1
    if len(built) > 1:
        from bsi_keras import plots

        figure = plots.comparison_figure([root / n for n in built], root / "comparison.png")
        print(f"comparison figure: {figure}")
    return 0


def _build_model(args: argparse.Namespace, dataset: Any) -> Any:
    from bsi_keras.models import get_model

    return get_model(
        args.model,
        input_shape=dataset.input_shape,
        num_classes=dataset.num_classes,
        virtual_batch_size=args.mini_batch_size or None,
        weight_decay=args.weight_decay,
    )


def _check_model(parser: argparse.ArgumentParser, args: argparse.Namespace, dataset: Any) -> None:
    """Refuse a model that cannot take the dataset's inputs before any run starts."""
    try:
        _build_model(args, dataset)
    except (ValueError, TypeError) as error:
        parser.error(
            f"argument --model: {args.model} cannot be built for {dataset.name}'s inputs "
            f"{dataset.input_shape}: {error}"
        )


def _train_one(
    args: argparse.Namespace, dataset: Any, schedule: BaseSchedule, folder: Path
) -> dict:
    import keras

    from bsi_keras.experiment import train
    from bsi_keras.optimizers import get_optimizer

    keras.utils.set_random_seed(args.seed)
    with _distribution_scope(args):
        model = _build_model(args, dataset)
        optimizer = get_optimizer(args.optimizer, schedule.at(0).lr, args.momentum, args.clip_norm)
    print(f"{schedule.name}: {schedule.describe()} -> {folder}")
    _, summary = train(
        model,
        dataset,
        schedule,
        optimizer,
        folder,
        seed=args.seed,
        config={"args": vars(args), "command": " ".join(sys.argv)},
        tensorboard=args.tensorboard,
        save_every_epoch=args.saveState,
        verbose=args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2),
        eval_batch_size=args.eval_batch_size,
        drop_remainder=args.drop_remainder,
        checkpoint_every=args.checkpoint_every,
        step_options=cli.step_options(args),
        reset_optimizer=args.reset_optimizer,
        resume=bool(args.resume),
    )
    accuracy = summary["final_val_accuracy"]
    print(
        f"{schedule.name}: {summary['status']}, test accuracy "
        f"{'n/a' if accuracy is None else f'{accuracy:.4f}'}, {summary['total_updates']} "
        f"updates, {summary['train_seconds']:.1f} s training "
        f"(+{summary['compile_seconds']:.1f} s compile)"
    )
    return summary


def _distribution_scope(args: argparse.Namespace) -> Any:
    """The scope models are built in: data-parallel with ``--distribute``."""
    if not args.distribute:
        return contextlib.nullcontext()
    from bsi_keras.runtime.distribution import data_parallel

    scope, devices = data_parallel()
    print(f"data-parallel over {devices} devices; batch sizes are global")
    return scope


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
    given = cli.explicit_flags(argv)
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


def _default_folder(args: argparse.Namespace) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"runs/{args.dataset}_{args.model}_{args.schedule}_{args.optimizer}_{stamp}"


if __name__ == "__main__":
    sys.exit(main())
