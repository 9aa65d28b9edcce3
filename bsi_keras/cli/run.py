"""Command line: ``python -m bsi_keras.run --schedule increase_bs``; `execute` runs a `RunSpec`.

Trains a model with a batch-size / learning-rate schedule into a run folder (see
`bsi_keras.cli.flags` for the flags). ``--schedule all`` runs decay_lr, hybrid and
increase_bs from the same initial weights and draws the comparison figure; ``--resume
RUN_FOLDER`` continues a run from its checkpoint (`bsi_keras.cli.resume`); ``--dry-run``
prints the phase table.

Example:

>>> spec = RunSpec.from_argv(["--epochs", "3", "--batch_size", "300", "--drop_remainder"])
>>> execute(spec, dry_run=True)  # doctest: +ELLIPSIS
increase_bs on N = 4000 training examples, last partial batch dropped, momentum 0.9:
...
  total updates: 16
0
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras

from bsi_keras.cli import build, flags
from bsi_keras.cli.checks import SpecError
from bsi_keras.cli.dry_run import print_dry_run
from bsi_keras.cli.resume import comparison_runs, resumed_spec
from bsi_keras.cli.spec import RunSpec
from bsi_keras.data import Dataset
from bsi_keras.run_folder import ENDED
from bsi_keras.runtime import distribution
from bsi_keras.schedules import BaseSchedule, EpochPlan

DEFAULT_EVAL_BATCH = 1000  # --eval_batch_size left out (clamped to the test set's size)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code (2: a refused flag, named as
    typed)."""
    parser = flags.build_parser()
    try:
        _cluster()  # before anything asks the backend for its devices
        args = flags.parse(argv)
        if args.resume is not None:
            return resume(args.resume, flags.explicit_flags(argv), dry_run=args.dry_run)
        seeds = flags.seed_list(args)
        if seeds is not None:
            return execute_seeds(RunSpec.from_args(args), seeds, dry_run=args.dry_run)
        return execute(RunSpec.from_args(args), dry_run=args.dry_run)
    except SpecError as error:
        parser.error(f"argument {flags.as_typed(error.flag, argv)}: {error.message}")


def resume(folder: str, given: Mapping[str, flags.FlagValue], dry_run: bool = False) -> int:
    """Continue the run in ``folder``, or each unfinished run of a ``--schedule all`` folder
    (a run that never started is started with its siblings' spec; ended runs are skipped).

    Args:
        folder: a run folder, or the folder of a ``--schedule all`` comparison.
        given: the flags given with ``--resume`` (`bsi_keras.cli.resume.resumed_spec`).
        dry_run: print the phase tables only.

    Returns:
        The exit code, as `execute`'s (the worst of the comparison's runs).
    """
    runs = comparison_runs(folder)
    if not runs:
        spec, stored_schedule = resumed_spec(folder, given)
        return execute(spec, dry_run=dry_run, stored_schedule=stored_schedule)
    code = 0
    for run_folder, status in runs.items():
        if status in ENDED:
            print(f"{run_folder}: {status} before, skipped")
            continue
        if status is None:
            spec = _sibling_spec(runs, run_folder, given)
            code = max(code, execute(spec, dry_run=dry_run))
        else:
            spec, stored = resumed_spec(str(run_folder), given)
            code = max(code, execute(spec, dry_run=dry_run, stored_schedule=stored))
        if code >= 128:  # a signal: stop here
            return code
    if code == 0 and not dry_run:
        _compare(list(runs))
    return code


def _sibling_spec(
    runs: Mapping[Path, str | None], folder: Path, given: Mapping[str, flags.FlagValue]
) -> RunSpec:
    """The spec of a comparison run that never started: a started sibling's, with its own
    schedule and folder."""
    started = next(f for f, status in runs.items() if status is not None)
    spec, _ = resumed_spec(str(started), given)
    schedule = dataclasses.replace(spec.schedule, name=folder.name)
    run = dataclasses.replace(spec.run, filename=str(folder))
    return dataclasses.replace(spec, schedule=schedule, run=run)


def execute(
    spec: RunSpec,
    *,
    dry_run: bool = False,
    stored_schedule: Mapping[str, object] | None = None,
) -> int:
    """Train the run(s) of ``spec`` (or print their phase tables); return the exit code.

    Args:
        spec: the run; with ``--schedule all``, three runs into sub-folders.
        dry_run: print the phase tables and train nothing.
        stored_schedule: to resume: the run's ``config.json`` schedule, which the schedule
            rebuilt from ``spec`` must equal.

    Returns:
        0 when every run finished, 1 when one did not or its folder or data failed, 128 +
        the signal number when a signal stopped it.

    Raises:
        SpecError: a value that makes no run here (a batch larger than the training set, a
            model that cannot take the data, a schedule that differs from the stored one).
    """
    runs = _runs(spec)
    num_train = spec.model.train_size()
    built = _schedules(runs, num_train)
    if dry_run:
        plan = EpochPlan(num_train, spec.run.drop_remainder)
        for schedule in built:
            print_dry_run(schedule, plan, spec.optimizer.effective_momentum)
        return 0
    from bsi_keras.checkpoint import CheckpointError
    from bsi_keras.driver import TrainingInterrupted
    from bsi_keras.locks import FolderLocked
    from bsi_keras.run_folder import RunFolderError

    _cluster(spec)
    try:
        return _train_all(runs, built, num_train, stored_schedule)
    except (RunFolderError, CheckpointError, FolderLocked) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except TrainingInterrupted as interrupted:
        folder = _root(runs) if len(runs) > 1 else interrupted.run_dir
        print(
            f"stopped: {interrupted}. Resume with: python -m bsi_keras.run --resume {folder}",
            file=sys.stderr,
        )
        return 128 + interrupted.signum


def execute_seeds(spec: RunSpec, seeds: Sequence[int], *, dry_run: bool = False) -> int:
    """Train the run(s) of ``spec`` once per seed; return the exit code.

    Seed ``k`` trains into ``ROOT/seed_<k>/`` (``ROOT/seed_<k>/<schedule>/`` with
    ``--schedule all``), ``ROOT`` being ``--filename`` or the default folder. Each run sets
    its weights and data order from its seed, so the schedules of one seed are paired. A run
    that finished before is skipped and one that was interrupted is resumed, so the same
    command line finishes what an earlier one left. With more than one run, the comparison
    over seeds is drawn in ``ROOT/comparison.png`` and the test error against wall-clock in
    ``ROOT/wallclock.png``.

    Args:
        spec: the run (its ``--seed`` is replaced by each seed).
        seeds: the seeds, in order.
        dry_run: print the phase tables (the same for every seed) and train nothing.

    Returns:
        0 when every run finished, 1 when one did not (the other seeds still run), 128 +
        the signal number when a signal stopped one (the rest are not started).

    Example:

    >>> execute_seeds(RunSpec.from_argv(["--epochs", "1"]), [0, 1], dry_run=True)
    ... # doctest: +ELLIPSIS
    increase_bs on N = 4000 training examples, momentum 0.9:
    ...
    0
    """
    if dry_run:
        return execute(spec, dry_run=True)
    root = Path(spec.run.filename or _default_folder(spec))
    runs = [
        run
        for seed in seeds
        for run in _runs(
            dataclasses.replace(
                spec,
                run=dataclasses.replace(spec.run, seed=seed, filename=str(root / f"seed_{seed}")),
            )
        )
    ]
    for run in runs:
        _check_same_spec(run)
    code, finished = 0, []
    for run in runs:
        run_code = _execute_or_resume(run)
        keras.backend.clear_session()
        if run_code >= 128:
            return run_code
        code = max(code, run_code)
        finished += [Path(run.run.filename)] if run_code == 0 else []
    if len(finished) > 1:
        from bsi_keras import plots

        print(f"comparison figure: {plots.comparison_figure(finished, root / 'comparison.png')}")
        print(f"wall-clock figure: {plots.wallclock_figure(finished, root / 'wallclock.png')}")
    return code


def _check_same_spec(spec: RunSpec) -> None:
    """Refuse a run folder that holds a run of another spec (``--verbose`` aside).

    Raises:
        SpecError: naming ``--filename``.
    """
    config = Path(spec.run.filename) / "config.json"
    if not config.is_file():
        return
    stored = json.loads(config.read_text()).get("spec")
    wanted = json.loads(json.dumps(spec.to_config()))
    if stored is None or _but_verbose(stored) != _but_verbose(wanted):
        raise SpecError(
            "--filename", f"{config.parent} holds a run of another spec; choose another folder"
        )


def _but_verbose(config: Mapping[str, Mapping[str, object]]) -> dict[str, object]:
    return {**config, "run": {**config["run"], "verbose": None}}


def _execute_or_resume(spec: RunSpec) -> int:
    """Train ``spec`` into its folder: from the start, resumed, or not at all if it ended."""
    folder = Path(spec.run.filename)
    summary = folder / "summary.json"
    status = json.loads(summary.read_text())["status"] if summary.is_file() else None
    if status in ("finished", "stopped", "diverged"):  # a resume would not change them
        print(f"{folder}: {status} before, skipped")
        return 0 if status == "finished" else 1
    if not (folder / "config.json").is_file():
        return execute(spec)
    resumed, stored_schedule = resumed_spec(str(folder), {})
    return execute(resumed, stored_schedule=stored_schedule)


def _runs(spec: RunSpec) -> list[RunSpec]:
    """One spec per run folder: ``--schedule all`` is three, each with its own schedule."""
    names = spec.schedule.names()
    root = spec.run.filename or _default_folder(spec)
    if len(names) == 1:
        return [dataclasses.replace(spec, run=dataclasses.replace(spec.run, filename=root))]
    return [
        dataclasses.replace(
            spec,
            schedule=dataclasses.replace(spec.schedule, name=name),
            run=dataclasses.replace(spec.run, filename=str(Path(root) / name)),
        )
        for name in names
    ]


def _schedules(runs: Sequence[RunSpec], num_train: int) -> list[BaseSchedule]:
    return [run.build_schedule(num_train) for run in runs]


def _train_all(
    runs: Sequence[RunSpec],
    built: Sequence[BaseSchedule],
    num_train: int,
    stored_schedule: Mapping[str, object] | None,
) -> int:
    dataset = runs[0].model.load()
    eval_batch = runs[0].run.eval_batch_size
    if eval_batch is not None and eval_batch > len(dataset.x_test):  # files of another size
        raise SpecError(
            "--eval_batch_size",
            f"{eval_batch} is larger than the test set ({len(dataset.x_test)} examples)",
        )
    if len(dataset.x_train) != num_train:  # a local file of another size
        built = _schedules(runs, len(dataset.x_train))
    if stored_schedule is not None:
        _check_stored(built[0], stored_schedule, runs[0].run.filename)
    build.check_model(runs[0], dataset)
    record = {"command": flags.typed_command(sys.argv)}
    from bsi_keras.runtime import compilation_cache

    cache = compilation_cache.enable(runs[0].run.compile_cache)
    if cache is not None:
        record["compile_cache"] = str(cache)
    if runs[0].run.deterministic:
        from bsi_keras.runtime.determinism import enable_determinism

        record["determinism"] = enable_determinism()
    code = 0
    for run, schedule in zip(runs, built, strict=True):  # one diverging skips no other
        summary = _train_one(run, dataset, schedule, record, resume=stored_schedule is not None)
        code = max(code, 0 if summary["status"] == "finished" else 1)
    if len(runs) > 1 and code == 0:
        _compare([Path(run.run.filename) for run in runs])
    return code


def _compare(folders: Sequence[Path]) -> None:
    from bsi_keras import plots

    figure = plots.comparison_figure(folders, folders[0].parent / "comparison.png")
    print(f"comparison figure: {figure}")


def _root(runs: Sequence[RunSpec]) -> Path:
    """The folder of a ``--schedule all`` comparison's runs."""
    return Path(runs[0].run.filename).parent


def _check_stored(schedule: BaseSchedule, stored: Mapping[str, object], folder: str) -> None:
    """Refuse to resume a run whose spec no longer rebuilds the schedule it trained with."""
    if json.loads(json.dumps(schedule.to_config())) != stored:
        raise SpecError(
            "--resume",
            f"the schedule rebuilt from {folder}'s spec ({schedule.describe()}) is not the "
            "one in its config.json; refusing to resume it with another schedule",
        )


def _train_one(
    spec: RunSpec,
    dataset: Dataset,
    schedule: BaseSchedule,
    record: Mapping[str, str],
    resume: bool,
) -> dict:
    from bsi_keras.experiment import train

    options = spec.run
    keras.utils.set_random_seed(options.seed)
    with distribution.scope(options.distribute):
        model = build.build_model(spec, dataset)
        optimizer = spec.optimizer.build(schedule.at(0).lr)
    physical, record = build.probed_physical_batch(
        spec, model, optimizer, dataset, schedule, record
    )
    print(f"{schedule.name}: {schedule.describe()} -> {options.filename}")
    verbose = options.verbose if options.verbose is not None else (1 if sys.stdout.isatty() else 2)
    _, summary = train(
        model,
        dataset,
        schedule,
        optimizer,
        options.filename,
        seed=options.seed,
        config={"spec": spec.to_config(), **record},
        tensorboard=options.tensorboard,
        save_every_epoch=options.save_state,
        verbose=verbose,
        eval_batch_size=options.eval_batch_size or DEFAULT_EVAL_BATCH,
        drop_remainder=options.drop_remainder,
        checkpoint_every=options.checkpoint_every,
        step_options=spec.step_options(physical),
        reset_optimizer=spec.step.reset_optimizer,
        resume=resume,
    )
    accuracy = summary["final_val_accuracy"]
    evaluated = "test" if spec.model.validation_examples is None else "validation"
    print(
        f"{schedule.name}: {summary['status']}, {evaluated} accuracy "
        f"{'n/a' if accuracy is None else f'{accuracy:.4f}'}, {summary['total_updates']} "
        f"updates, {summary['train_seconds']:.1f} s training "
        f"(+{summary['compile_seconds']:.1f} s compile)"
    )
    return summary


def _cluster(spec: RunSpec | None = None) -> None:
    """Join the processes the environment names (`bsi_keras.runtime.distribution`); with
    ``spec``, refuse one they cannot train together (naming ``--distribute``)."""
    try:
        if spec is None:
            distribution.join_cluster()
        else:
            distribution.check_run(spec.run.distribute, spec.step.max_physical_batch is not None)
    except ValueError as error:
        raise SpecError("--distribute", str(error)) from None


def _default_folder(spec: RunSpec) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    parts = (spec.model.dataset, spec.model.name, spec.schedule.name, spec.optimizer.name)
    return f"runs/{'_'.join(parts)}_{stamp}"
