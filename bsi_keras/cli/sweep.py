"""Sweeps: named recipes that run a grid of runs, each into its own run folder.

``python -m bsi_keras.sweep RECIPE`` runs every run of the recipe that has not finished
(a finished run is skipped, an interrupted one resumed from its checkpoint, so a sweep can
be stopped and started again), then writes ``summary.csv``, ``summary.md`` and the figures
(final test error against batch size, test error against parameter updates). Each run is a
`RunSpec`: the recipe's flag values over the command line's defaults (`run_spec`);
``--dataset`` runs a recipe on another dataset (with that dataset's family defaults),
arguments after ``--`` go to every run, and ``--epochs`` then shortens it (`shortened`:
milestones or phases shrink in proportion).

A sweep takes its folder's lock (`bsi_keras.locks.FolderLock`): a second sweep of the same
recipe and root is refused. The first SIGINT or SIGTERM stops it: the run in progress keeps
its finished epochs, no further run starts, the runs left are printed and the exit code is
128 + the signal's number; running the same command again continues. A run whose flags are
refused is reported and skipped; the sweep goes on and exits 1 at the end.

Example:

>>> [name for name, _ in RECIPES["smith"]()]
['decay_lr', 'hybrid', 'increase_bs']

``sam_study`` (issue 5) compares SGD with momentum at small to large batch sizes against
SAM, ASAM and SAM with m-sharpness (the same base optimizer) at the large ones, and Adam
against SAM-Adam, each on an LR grid whose diagonal is the linear scaling rule, for a
simple CNN on Fashion-MNIST (``mnist_cnn``) and on CIFAR-10 (Keskar's C1);
``notebooks/sam_study.py`` adds the sharpness of each solution and draws the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bsi_keras.cli import flags
from bsi_keras.cli.checks import SpecError
from bsi_keras.cli.flags import FlagValue
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


Overrides = Mapping[str, FlagValue]  # flag values by dest, over the parser's defaults
Run = tuple[str, Overrides]
CIFAR: Overrides = {"dataset": "cifar10"}


def _fixed_lr() -> list[Run]:
    return [
        (f"steady_{b}", {**CIFAR, "schedule": "constant", "batch_size": b, "lr": 0.1})
        for b in (128, 256, 512, 1024, 2048, 4096, 8192, 16384)
    ]


TUNED = (
    (128, 0.05),
    (256, 0.09),
    (512, 0.125),
    (1024, 0.155),
    (2048, 0.25),
    (4096, 0.5),
    (8192, 0.65),
    (16384, 1.25),
    (32768, 2.75),
    (50000, 3.0),
)


def _fixed_tuned() -> list[Run]:
    return [
        (f"lrd_{b}", {**CIFAR, "schedule": "decay_lr", "factor": 2.0, "batch_size": b, "lr": lr})
        for b, lr in TUNED
    ]


def _bsi_from_large() -> list[Run]:
    runs = []
    for b, lr in TUNED[1:7]:
        common = {**CIFAR, "factor": 2.0, "batch_size": b, "lr": lr}
        runs += [
            (f"bsi_{b}", {**common, "schedule": "increase_bs"}),
            (f"lrd_{b}", {**common, "schedule": "decay_lr"}),
        ]
    return runs


def _smith() -> list[Run]:
    return [
        (name, {**CIFAR, "schedule": name, "batch_size": 128, "lr": 0.1})
        for name in ("decay_lr", "hybrid", "increase_bs")
    ]


def _loss_dropout() -> list[Run]:
    # The reference's hard-coded schedule: LR/2 at 60; batch 16384 at LR 0.035 from 120;
    # batch 32768 from 160.
    phases = {"phases": "60x128@0.05,60x128@0.025,40x16384@0.035,40x32768@0.035"}
    return [
        ("loss_dropout", {**CIFAR, **phases, "loss_dropout": True}),
        ("baseline", {**CIFAR, **phases}),
    ]


# Seed 001's MobileNetV2 table (HaoKang-Timmy/large_batch_training) has two readings: the
# later upstream README trains from scratch at 0.1 x B / 256 with warmup; the seed's own
# text fine-tunes the ImageNet weights at 3e-4 x B / 32 without warmup. Both: cosine over
# 200 epochs, SGD momentum 0.9, weight decay 1e-4; ghost batches of 128, or the whole batch
# below that (the reference's plain batch norm).
MOBILENET_BATCHES = (32, 64, 128, 256, 512, 1024)
MOBILENET: Overrides = {
    **CIFAR,
    "model": "mobilenet_v2",
    "schedule": "constant",
    "scale_lr": "linear",
    "lr_curve": "cosine",
    "weight_decay": 1e-4,
}


def _mobilenet_runs(prefix: str, reading: Overrides) -> list[Run]:
    return [
        (f"{prefix}_{b}", {**MOBILENET, **reading, "batch_size": b, "mini_batch_size": min(b, 128)})
        for b in MOBILENET_BATCHES
    ]


def _mobilenet_scratch() -> list[Run]:
    reading = {"lr": 0.1, "reference_batch": 256, "warmup_epochs": 5.0}
    return _mobilenet_runs("mobilenet", reading)


def _mobilenet_finetune() -> list[Run]:
    reading = {"weights": "imagenet", "lr": 3e-4, "reference_batch": 32}
    return _mobilenet_runs("finetune", reading)


# Seed 003's grid: fixed batch sizes x {no rule, linear, sqrt scaling from LR 0.1 at 128}
# x {no warmup, 5 warmup epochs}, ghost batches of 128, the reference's LR decay.
SCALING_GRID_BATCHES = (128, 512, 2048, 8192)


def _scaling_grid() -> list[Run]:
    runs = []
    for b in SCALING_GRID_BATCHES:
        common = {
            **CIFAR,
            "schedule": "decay_lr",
            "batch_size": b,
            "lr": 0.1,
            "mini_batch_size": 128,
            "reference_batch": 128,
        }
        runs.append((f"b{b}_none", {**common, "scale_lr": "none"}))
        for rule in ("linear", "sqrt"):
            runs.append((f"b{b}_{rule}", {**common, "scale_lr": rule}))
            runs.append((f"b{b}_{rule}_warmup", {**common, "scale_lr": rule, "warmup_epochs": 5.0}))
    return runs


def _bsi_224() -> list[Run]:
    # Seed 000's "modified 2,048 BSI 2,2,4" (`--doubleEndFactor`): 2048 -> 4096 -> 8192 ->
    # 32768 at the tuned LR of batch 2048, against its LR-decay twin.
    common = {**CIFAR, "batch_size": 2048, "lr": 0.25, "factor": 2.0}
    return [
        ("bsi_224", {**common, "schedule": "increase_bs", "double_end_factor": True}),
        ("lrd_2048", {**common, "schedule": "decay_lr"}),
    ]


# The SAM study, per dataset: its flags, batch sizes (x4 apart, small to large) and the LR
# of the smallest batch size per optimizer family.
SAM_STUDY_DATASETS: dict[str, tuple[Overrides, tuple[int, ...], dict[str, float]]] = {
    "fashion": (
        {"dataset": "fashion_mnist", "model": "mnist_cnn", "epochs": 20, "save_state": True},
        (32, 128, 512, 2048),
        {"sgd": 0.0025, "adam": 2.5e-4},
    ),
    # Keskar et al.'s shallow CNN; its per-epoch weights (7 MB each) are not kept.
    "cifar10": (
        {**CIFAR, "model": "c1", "epochs": 50, "warmup_epochs": 2.0},
        (128, 512, 2048, 8192),
        {"sgd": 0.025, "adam": 1e-4},
    ),
}
# Label -> (optimizer flags, its LR family, whether it runs at every batch size or only at
# the large half).
SAM_STUDY_OPTIMIZERS: dict[str, tuple[Overrides, str, bool]] = {
    "momentum": ({"optimizer": "momentum"}, "sgd", True),
    "sam_momentum": ({"optimizer": "sam_momentum"}, "sgd", False),
    "asam_momentum": ({"optimizer": "asam_momentum"}, "sgd", False),
    # m-sharpness: a perturbation per group of 128 examples (Foret et al., section 4.1).
    "sam_momentum_m128": ({"optimizer": "sam_momentum", "sam_m": 128}, "sgd", False),
    "adam": ({"optimizer": "adam"}, "adam", True),
    "sam_adam": ({"optimizer": "sam_adam"}, "adam", False),
}


def sam_study_lrs(base_lr: float, count: int = 4) -> list[float]:
    """The SAM study's LR grid, ``base_lr * 4**k`` for ``k < count``.

    The batch sizes being x4 apart, the linear scaling rule (the LR proportional to the
    batch size, ``base_lr`` at the smallest) is the grid's diagonal.

    >>> sam_study_lrs(0.005)
    [0.005, 0.02, 0.08, 0.32]
    """
    return [float(f"{base_lr * 4**k:.6g}") for k in range(count)]


def _sam_study() -> list[Run]:
    runs = []
    for dataset, (base, batches, base_lrs) in SAM_STUDY_DATASETS.items():
        for label, (optimizer, family, every_batch) in SAM_STUDY_OPTIMIZERS.items():
            lrs = sam_study_lrs(base_lrs[family], len(batches))
            for batch in batches if every_batch else batches[len(batches) // 2 :]:
                common = {**base, "schedule": "constant", **optimizer, "batch_size": batch}
                runs += [
                    (f"{dataset}_{label}_b{batch}_lr{lr:g}", {**common, "lr": lr}) for lr in lrs
                ]
    return runs


RECIPES: dict[str, Callable[[], list[Run]]] = {
    "fixed_lr": _fixed_lr,
    "fixed_tuned": _fixed_tuned,
    "bsi_from_large": _bsi_from_large,
    "smith": _smith,
    "loss_dropout": _loss_dropout,
    "mobilenet_scratch": _mobilenet_scratch,
    "mobilenet": _mobilenet_scratch,  # the name before the fine-tuning reading was added
    "mobilenet_finetune": _mobilenet_finetune,
    "scaling_grid": _scaling_grid,
    "bsi_224": _bsi_224,
    "sam_study": _sam_study,
}


def register_recipe(name: str, recipe: Callable[[], list[Run]]) -> None:
    """Add a recipe (a function returning ``(run name, flag values by dest)`` pairs)."""
    if name in RECIPES:
        raise ValueError(f"a recipe named {name!r} exists")
    RECIPES[name] = recipe


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
) -> list[Path]:
    """Run (or finish) every run of ``recipe`` under ``root / recipe``; write the summary.

    Every run's spec is checked before the first run starts; a refused one (here or when it
    meets its data) is reported and skipped. With ``seeds``, the sweep runs once per seed
    under ``root / seed_<k> / recipe`` (``--seed k`` added to ``extra``), one summary per
    seed; ``python -m bsi_keras.report ROOT`` aggregates them over seeds.

    Returns:
        The run folders of the runs that ended (finished, stopped or diverged).

    Raises:
        SweepStopped: SIGINT or SIGTERM; no summary is written.
        bsi_keras.locks.FolderLocked: another sweep drains this folder.
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
            )
        ]
    from bsi_keras.locks import FolderLock

    folder = Path(root) / recipe
    runs = [(name, values) for name, values in RECIPES[recipe]() if not only or name in only]
    specs = {
        name: _refused_or(lambda v=v: run_spec(v, epochs, dataset, extra), name, extra)
        for name, v in runs
    }
    ended: list[Path] = []
    with FolderLock(folder), _recording_signals() as received:
        for name, spec in specs.items():
            code = _run_one(name, spec, folder / name, extra) if spec is not None else None
            if RunFolder(folder / name).status() in ENDED:
                ended.append(folder / name)
            if code is not None and code >= 128:  # the driver stopped the run on a signal
                received.append(code - 128)
            if received:
                done = {path.name for path in ended}
                raise SweepStopped(received[0], [n for n in specs if n not in done])
        if ended:
            write_summary(ended, folder)
    return ended


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

    status = RunFolder(run_folder).status()
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
    args = parser.parse_args(own)
    if args.seeds and {"--seed", "--rand_seed"} & set(extra):
        parser.error("argument --seeds: contradicts --seed after --; give the seeds in one flag")
    if args.epochs is not None and args.epochs < 2:
        parser.error("argument --epochs: a sweep run needs at least 2 epochs")
    if args.list:
        for name, overrides in RECIPES[args.recipe]():
            spec = _refused_or(
                lambda o=overrides: run_spec(o, args.epochs, args.dataset, extra), name, extra
            )
            if spec is not None:
                print(name, " ".join(spec.to_argv()))
        return 0
    unknown = sorted(set(args.runs) - {name for name, _ in RECIPES[args.recipe]()})
    if unknown:
        parser.error(f"argument --runs: {args.recipe} has no run {', '.join(unknown)}")
    from bsi_keras.locks import FolderLocked

    try:
        ended = run_sweep(
            args.recipe, args.root, args.epochs, args.dataset, extra, args.runs, args.seeds
        )
    except SweepStopped as stopped:
        print(f"sweep stopped: {stopped}. Run the same command again to continue.", file=sys.stderr)
        return 128 + stopped.signum
    except (FolderLocked, OSError) as error:  # another sweep; a root that is no folder
        print(f"error: {error}", file=sys.stderr)
        return 1
    expected = [name for name, _ in RECIPES[args.recipe]() if not args.runs or name in args.runs]
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
