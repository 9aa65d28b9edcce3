"""Sweeps: named recipes that run a grid of runs, each into its own run folder.

``python -m bsi_keras.sweep RECIPE`` runs every run of the recipe that has not finished
(a finished run is skipped, an interrupted one resumed from its checkpoint, so a sweep can
be stopped and started again), then writes ``summary.csv``, ``summary.md`` and the figures
(final test error against batch size, test error against parameter updates). Each run is a
`RunSpec`: the recipe's flag values over the command line's defaults (`run_spec`);
``--dataset`` runs a recipe on another dataset (with that dataset's family defaults),
arguments after ``--`` go to every run, and ``--epochs`` then shortens it (`shortened`:
milestones or phases shrink in proportion).

Several workers may drain one sweep: start the same command several times, on one machine
or on machines sharing the file system, or as a SLURM job array with ``--shard K/N``. Each
run is trained by the one worker that holds its claim (`bsi_keras.cli.claims`: when a claim
is released or taken over); the summary is written by the worker that finds every run of
the sweep ended, and by no other. The first SIGINT or SIGTERM stops a worker: the run in
progress keeps its finished epochs, no further run starts, the runs left are printed and
the exit code is 128 + the signal's number; running the same command again continues. A
run whose flags are refused is reported and skipped; the sweep goes on and exits 1 at the
end.

Example:

>>> [name for name, _ in RECIPES["smith"]()]
['decay_lr', 'hybrid', 'increase_bs']

``sam_study`` (issue 16) is the SAM study's tuning grid: SGD with momentum at batch 128 and
2,048 (10 and 20 epochs) and SAM at 2,048, each on an LR grid (SAM also on a rho grid),
evaluated on a validation split; ``notebooks/sam_study.py`` chooses the settings and tests
them over five seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bsi_keras.cli import claims, flags
from bsi_keras.cli.checks import SpecError
from bsi_keras.cli.recipes import RECIPES, Overrides
from bsi_keras.cli.spec import RunSpec
from bsi_keras.run_folder import ENDED, RunFolder


class SweepStopped(Exception):
    """A signal stopped the sweep.

    Attributes:
        signum: the signal.
        remaining: the runs not finished (the interrupted one first).
    """

    def __init__(self, signum: int, remaining: Sequence[str]):
        name = signal.Signals(signum).name
        super().__init__(f"{name} received; runs not finished: {', '.join(remaining)}")
        self.signum = signum
        self.remaining = list(remaining)


def run_spec(
    overrides: Overrides,
    epochs: int | None = None,
    dataset: str | None = None,
    extra: Sequence[str] = (),
) -> RunSpec:
    """The spec of one recipe run.

    Args:
        overrides: the recipe's flag values by dest (over the parser's defaults).
        epochs: shorten the run to this many epochs (`shortened`).
        dataset: run on this dataset instead (its family's defaults fill the rest).
        extra: command-line flags for every run; they override the recipe's values.

    Raises:
        SpecError: a value out of range, naming its flag.

    Example:

    >>> spec = run_spec(dict(RECIPES["smith"]())["hybrid"], 10, "synthetic_cifar")
    >>> spec.schedule.name, spec.schedule.epochs, spec.model.dataset, spec.model.name
    ('hybrid', 10, 'synthetic_cifar', 'wrn_16_4')
    """
    values = {**overrides, **({"dataset": dataset} if dataset else {})}
    return shortened(RunSpec.from_args(flags.parse(list(extra), defaults=values)), epochs)


def shortened(spec: RunSpec, epochs: int | None) -> RunSpec:
    """``spec`` in ``epochs`` epochs (None: as it is).

    Milestones become the reference's 60/120/160 of 200 epochs in proportion; explicit
    ``--phases`` shrink their epochs in proportion.

    >>> spec = shortened(run_spec({"dataset": "cifar10", "schedule": "decay_lr"}), epochs=10)
    >>> spec.schedule.epochs, spec.schedule.milestones
    (10, (3, 6, 8))
    """
    if not epochs:
        return spec
    schedule = spec.schedule
    if schedule.phases:
        schedule = dataclasses.replace(schedule, phases=_shrink_phases(schedule.phases, epochs))
    else:
        fractions = (0.3, 0.6, 0.8)
        milestones = sorted({min(max(round(f * epochs), 1), epochs - 1) for f in fractions})
        schedule = dataclasses.replace(schedule, epochs=epochs, milestones=tuple(milestones))
    return dataclasses.replace(spec, schedule=schedule)


def _shrink_phases(text: str, epochs: int) -> str:
    from bsi_keras.schedules import Phase, format_phases, parse_phases

    phases = parse_phases(text)
    total = sum(p.epochs for p in phases)
    return format_phases(
        [Phase(max(1, round(p.epochs * epochs / total)), p.batch_size, p.lr) for p in phases]
    )


def run_sweep(
    recipe: str,
    root: str | Path,
    epochs: int | None = None,
    dataset: str | None = None,
    extra: Sequence[str] = (),
    only: Sequence[str] = (),
    seeds: Sequence[int] = (),
    shard: tuple[int, int] | None = None,
) -> list[Path]:
    """Run (or finish) every run of ``recipe`` under ``root / recipe``; write the summary.

    Every run's spec is checked before the first run starts; a refused one (here or when it
    meets its data) is reported and skipped. With ``seeds``, the sweep runs once per seed
    under ``root / seed_<k> / recipe`` (``--seed k`` added to ``extra``), one summary per
    seed; ``python -m bsi_keras.report ROOT`` aggregates them over seeds. Other workers
    may drain the same sweep meanwhile (`bsi_keras.cli.claims`).

    Args:
        shard: ``(K, N)``: only the runs ``K, K + N, ...`` of the sweep's order (None: all).

    Returns:
        The run folders of this worker's runs (its shard) that ended (finished, stopped or
        diverged), by whichever worker.

    Raises:
        SweepStopped: SIGINT or SIGTERM; no summary is written.
    """
    if seeds:
        return [
            run_folder
            for seed in seeds
            for run_folder in run_sweep(
                recipe,
                Path(root) / f"seed_{seed}",
                epochs,
                dataset,
                [*extra, "--seed", str(seed)],
                only,
                shard=shard,
            )
        ]
    folder = Path(root) / recipe
    runs = [(name, values) for name, values in RECIPES[recipe]() if not only or name in only]
    mine = [name for i, (name, _) in enumerate(runs) if claims.in_shard(i, shard)]
    specs = {
        name: _refused_or(lambda v=v: run_spec(v, epochs, dataset, extra), name, extra)
        for name, v in runs
    }
    settled = {name for name, spec in specs.items() if spec is None}  # refused: never run

    def ended() -> list[Path]:
        return [folder / n for n in mine if RunFolder(folder / n).status() in ENDED]

    with _recording_signals() as received:

        def run(name: str) -> None:
            code = _run_one(name, specs[name], folder / name, extra)
            settled.add(name)
            if code is not None and code >= 128:  # the driver stopped the run on a signal
                received.append(code - 128)

        claims.drain([n for n in mine if specs[n] is not None], folder, run, lambda: bool(received))
        if received:
            done = {path.relative_to(folder).as_posix() for path in ended()}
            raise SweepStopped(received[0], [n for n in mine if n not in done])
    _summarize_if_all_ended(folder, [name for name, _ in runs], settled)
    return ended()


def _summarize_if_all_ended(folder: Path, names: Sequence[str], settled: set[str]) -> None:
    """Write the sweep's summary if no run is left to anyone: each of ``names`` ended, or
    was refused or failed here. Two workers that find so at once write it once: the sweep
    folder's lock admits one, and a summary that would not change is not rewritten."""
    from bsi_keras.cli import report
    from bsi_keras.locks import FolderLock, FolderLocked

    ended = [folder / n for n in names if RunFolder(folder / n).status() in ENDED]
    if not ended or set(names) - settled - {p.relative_to(folder).as_posix() for p in ended}:
        if ended:
            print(f"summary left to the worker that ends the last run of {folder}")
        return
    try:
        with FolderLock(folder):
            table = report.summary_table(ended, fmt="csv")
            existing = folder / "summary.csv"
            if existing.is_file() and existing.read_text() == table:
                print(f"summary in {folder} is up to date")
                return
            write_summary(ended, folder)
    except FolderLocked:
        print(f"another worker writes the summary of {folder}")


def _refused_or(make: Callable[[], Any], name: str, extra: Sequence[str]) -> Any:
    """``make()``, or None (the refusal printed) where it raises `SpecError`."""
    try:
        return make()
    except SpecError as error:
        print(f"{name}: refused: argument {flags.as_typed(error.flag, extra)}: {error.message}")
        return None


def _run_one(name: str, spec: RunSpec, run_folder: Path, extra: Sequence[str]) -> int | None:
    """Start, resume or skip one run; return its exit code (None: refused)."""
    from bsi_keras.cli.resume import resumed_spec
    from bsi_keras.cli.run import execute

    status = RunFolder(run_folder).status()  # read under the claim: another worker's run ended
    if status in ENDED:
        print(f"{name}: {status} before, skipped")
        return 0
    print(f"{name}: {'resuming' if status else 'starting'}")

    def train() -> int:
        if status is None:
            options = dataclasses.replace(spec.run, filename=str(run_folder))
            return execute(dataclasses.replace(spec, run=options))
        resumed, stored_schedule = resumed_spec(str(run_folder), {})
        return execute(resumed, stored_schedule=stored_schedule)

    code = _refused_or(train, name, extra)
    _clear_session()
    if code:
        print(f"{name}: ended with exit code {code}")
    return code


@contextlib.contextmanager
def _recording_signals() -> Iterator[list[int]]:
    """While the sweep runs, SIGINT and SIGTERM are recorded (the driver stops the run in
    progress on its own); the sweep stops before the next run. A second signal quits."""
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    previous = {}
    with contextlib.suppress(ValueError):  # not the main thread: nothing installed
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def sweep_runs(
    recipe: str, root: str | Path = "runs/sweeps", start: str | Path | None = None
) -> list[Path]:
    """The run folders (those with a ``log.csv``) of a sweep, found from anywhere in the repo.

    A sweep run from the repository's root writes ``runs/sweeps/RECIPE/<run>/``; a notebook
    runs in ``notebooks/``. The first ``root / recipe`` found in ``start`` or one of its
    parents is read.

    Args:
        recipe: the recipe's name (its folder under ``root``).
        root: the sweeps' folder, relative (as ``--root`` of the sweep command).
        start: where to start looking (default: the working directory).

    Returns:
        The run folders, sorted by name; empty where no such sweep folder exists.

    Example:

    >>> sweep_runs("smith", start="/nonexistent")
    []
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        sweep = folder / root / recipe
        if sweep.is_dir():
            return sorted(log.parent for log in sweep.glob("*/log.csv"))
    return []


def write_summary(folders: Sequence[Path], out: Path) -> None:
    """``summary.csv``, ``summary.md`` and the two sweep figures."""
    from bsi_keras import plots
    from bsi_keras.cli import report

    (out / "summary.csv").write_text(report.summary_table(folders, fmt="csv"))
    (out / "summary.md").write_text(report.summary_table(folders))
    plots.sweep_figure(folders, out / "sweep.png", title=out.name)
    print(report.summary_table(folders), end="")
    print(f"summary and figure in {out}")


def _clear_session() -> None:
    import keras

    keras.backend.clear_session()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bsi_keras.sweep RECIPE [--epochs N] [--dataset D] [-- run flags]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m bsi_keras.sweep", description=__doc__)
    parser.add_argument("recipe", choices=sorted(RECIPES))
    parser.add_argument("--root", default="runs/sweeps", help="folder of the sweep folders")
    parser.add_argument("--epochs", type=int, default=None, help="shorten every run")
    parser.add_argument("--dataset", default=None, help="run on another dataset")
    parser.add_argument("--runs", nargs="+", default=(), help="run only these runs")
    parser.add_argument("--list", action="store_true", help="print the runs and exit")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=(), help="run the sweep once per seed"
    )
    parser.add_argument(
        "--shard",
        type=claims.parse_shard,
        default=None,
        metavar="K/N",
        help="drain only the runs K, K+N, ... (0-based; a SLURM job array: "
        "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)",
    )
    args = parser.parse_args(own)
    if args.seeds and {"--seed", "--rand_seed"} & set(extra):
        parser.error("argument --seeds: contradicts --seed after --; give the seeds in one flag")
    if args.epochs is not None and args.epochs < 2:
        parser.error("argument --epochs: a sweep run needs at least 2 epochs")
    if args.list:
        for i, (name, overrides) in enumerate(RECIPES[args.recipe]()):
            if not claims.in_shard(i, args.shard):
                continue
            spec = _refused_or(
                lambda o=overrides: run_spec(o, args.epochs, args.dataset, extra), name, extra
            )
            if spec is not None:
                print(name, " ".join(spec.to_argv()))
        return 0
    unknown = sorted(set(args.runs) - {name for name, _ in RECIPES[args.recipe]()})
    if unknown:
        parser.error(f"argument --runs: {args.recipe} has no run {', '.join(unknown)}")
    try:
        ended = run_sweep(
            args.recipe,
            args.root,
            args.epochs,
            args.dataset,
            extra,
            args.runs,
            args.seeds,
            args.shard,
        )
    except SweepStopped as stopped:
        print(f"sweep stopped: {stopped}. Run the same command again to continue.", file=sys.stderr)
        return 128 + stopped.signum
    except OSError as error:  # a root that is no folder
        print(f"error: {error}", file=sys.stderr)
        return 1
    runs = [name for name, _ in RECIPES[args.recipe]() if not args.runs or name in args.runs]
    expected = [name for i, name in enumerate(runs) if claims.in_shard(i, args.shard)]
    roots = [Path(args.root, f"seed_{seed}") for seed in args.seeds] or [Path(args.root)]
    left = [
        str(root / name)
        for root in roots
        for name in expected
        if root / args.recipe / name not in ended
    ]
    if left:
        print(
            f"sweep incomplete: {', '.join(left)} did not end; see the messages above",
            file=sys.stderr,
        )
    return 1 if left else 0
