"""Property-based: any flag values either run or are refused naming a flag, never a traceback.

The dry-run fuzz drives `bsi_keras.run.main` in this process; the fuzz of real runs starts a
fresh process per command line at the default verbosity, as a user types it; the data fuzz
fills ``--data-dir`` with damaged files and the folder fuzz damages a finished run folder
before ``--resume``. Every case the reliability issue reported is kept as an ``@example``.
The default suite runs a few examples of each; ``pytest -m slow tests/test_cli_fuzz.py``
runs many more.
"""

import io
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bsi_keras import cli, run
from bsi_keras.models import available_models
from bsi_keras.run_folder import read_log

WEIRD = st.sampled_from(["", "abc", "1e3", "-0", "nan", "inf", "-inf", "0x10", "1,2", "∞"])
INTS = st.one_of(st.integers(-5, 20), st.integers(-(10**12), 10**12), WEIRD)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-2, 2), st.just(1e300), WEIRD
)


def phase_spec():
    item = st.tuples(INTS, INTS, FLOATS).map(lambda t: f"{t[0]}x{t[1]}@{t[2]}")
    return st.lists(item, min_size=0, max_size=4).map(",".join)


def choice_or_junk(choices):
    return st.one_of(st.sampled_from(list(choices)), st.text(max_size=8))


FLAG_VALUES = {
    "--epochs": INTS,
    "--batch_size": INTS,
    "--lr": FLOATS,
    "--milestones": st.lists(INTS, min_size=1, max_size=4),
    "--factor": FLOATS,
    "--max": INTS,
    "--cap": choice_or_junk(["clamp", "decay_lr"]),
    "--grow_steps": INTS,
    "--schedule": choice_or_junk([*cli.SCHEDULES, "all"]),
    "--phases": phase_spec(),
    "--model": choice_or_junk(available_models()),
    "--dataset": choice_or_junk(["mnist_sample", "synthetic", "fashion_mnist", "cifar10"]),
    "--optimizer": choice_or_junk(["sgd", "momentum", "nesterov", "adam", "nadam"]),
    "--momentum": FLOATS,
    "--weight_decay": FLOATS,
    "--clip_norm": FLOATS,
    "--mini_batch_size": INTS,
    "--num_train": INTS,
    "--num_test": INTS,
    "--seed": INTS,
    "--eval_batch_size": INTS,
    "--checkpoint_every": INTS,
    "--resume": st.sampled_from(["/nonexistent/run", ".", "", "/dev/null"]),
    "--filename": st.sampled_from(["/nonexistent/never/written", "", "x" * 300, "/dev/null"]),
    "--rand_seed": INTS,
    "--fast_start": INTS,
    "--factor1": FLOATS,
    "--warmup_epochs": FLOATS,
    "--cycle_epochs": FLOATS,
    "--min_lr": FLOATS,
    "--lr_curve": choice_or_junk(["constant", "cosine", "cyclic"]),
    "--data-dir": st.sampled_from(["", "/nonexistent", "/dev/null"]),
}
# The reliability issue's dry-run cases (each was a traceback or silently accepted).
ISSUE_DRY_RUNS = [
    ["--seed", "4294967296"],
    ["--filename", "x" * 300],
    ["--resume", ""],
    ["--resume", "/dev/null"],
    ["--filename", ""],
    ["--phases", ""],
    ["--phases", "1x5000@0.1"],
    ["--schedule", "adaptive", "--phases", "2x100@0.1"],
    ["--phases", "2x100@0.1", "--max", "1000"],
    ["--schedule", "decay_lr", "--max", "1000"],
    ["--schedule", "constant", "--max", "1000"],
    ["--schedule", "fast_bsi", "--fast_start", "0"],
    ["--schedule", "fast_bsi", "--fast_start", "-3"],
    ["--factor", "0.5"],
    ["--schedule", "decay_lr", "--factor", "0.5"],
    ["--lr_curve", "cosine", "--min_lr", "1"],
    ["--lr_curve", "cyclic", "--cycle_epochs", "1e-300"],
    ["--warmup_epochs", "1e308"],
    ["--eval_batch_size", "1000000000"],
    ["--schedule", "mixed_bsi"],
    ["--schedule", "mixed_bsi", "--epochs", "3"],
    ["--dataset", "mnist", "--data-dir", "/nonexistent"],
    ["--dataset", "synthetic", "--data_dir", "."],
    ["--rand_seed", "-1"],
]


@st.composite
def command_lines(draw, flags=FLAG_VALUES):
    chosen = draw(st.lists(st.sampled_from(sorted(flags)), unique=True, max_size=7))
    argv = []
    for flag in chosen:
        value = draw(flags[flag])
        values = value if isinstance(value, list) else [value]
        argv += [flag, *(str(v) for v in values)]
    return argv


def check_outcome(argv, capsys) -> None:
    try:
        code = run.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text
    if code == 2:
        assert "error: argument --" in captured.err, captured.err
    elif code == 1:
        assert "error:" in captured.err or "diverged" in captured.out, text
    else:
        assert code == 0, (code, text)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(argv=command_lines())
@example(argv=["--batch_size", "0", "--phases", "", "--milestones", "0", "-inf"])  # found on JAX
def test_any_flags_are_checked_before_training(argv, capsys):
    """Dry runs: every combination passes every check, or is refused naming a flag."""
    check_outcome([*argv, "--dry-run"], capsys)


for _case in ISSUE_DRY_RUNS:
    test_any_flags_are_checked_before_training = example(argv=_case)(
        test_any_flags_are_checked_before_training
    )


SMALL = {
    "--epochs": st.integers(-1, 2),
    "--batch_size": st.integers(-1, 300),
    "--lr": st.sampled_from([-1.0, 0.0, 1e-3, 0.1, 10.0, 1e30]),
    "--milestones": st.lists(st.integers(-1, 3), min_size=1, max_size=2),
    "--factor": st.sampled_from([0.5, 2.0, 5.0, 1e300]),
    "--mini_batch_size": st.integers(-1, 40),
    "--model": st.sampled_from(["mnist_cnn", "f1", "mnist_f1", "nonsense"]),
    "--optimizer": st.sampled_from(["sgd", "adam", "nesterov"]),
    "--momentum": st.sampled_from([0.0, 0.5, 1.0]),
    "--schedule": st.sampled_from([*cli.SCHEDULES, "all"]),
    "--num_test": st.integers(-1, 60),
}
counter = itertools.count()


@pytest.mark.filterwarnings("ignore")
@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(argv=command_lines(SMALL))
def test_small_real_runs_run_or_are_refused(argv, capsys, tmp_path):
    folder = tmp_path / f"run{next(counter)}"
    base = ["--dataset", "mnist_sample", "--num_train", "150", "--verbose", "0"]
    check_outcome([*base, "--num_test", "50", *argv, "--filename", str(folder)], capsys)


def check_fresh(argv: list[str], cwd: Path) -> None:
    """``python -m bsi_keras.run ARGV`` in a fresh process, at the default verbosity."""
    done = subprocess.run(
        [sys.executable, "-m", "bsi_keras.run", *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    text = done.stdout + done.stderr
    assert "Traceback" not in text, text
    if done.returncode == 2:
        assert "error: argument --" in done.stderr, text
    elif done.returncode == 1:
        assert "error:" in done.stderr or "diverged" in done.stdout, text
    else:
        assert done.returncode == 0, text


FRESH_BASE = ["--dataset", "mnist_sample", "--num_train", "150", "--num_test", "50"]
ISSUE_RUNS = [  # the issue's real-run cases (tracebacks, a folder left behind, the progbar)
    ["--schedule", "adaptive", "--epochs", "2"],
    ["--phases", "1x5000@0.1"],
    ["--schedule", "all", "--epochs", "2", "--batch_size", "30"],
    ["--seed", "4294967296"],
    ["--eval_batch_size", "1000000000"],
]


def fresh_run(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as cwd:
        check_fresh([*FRESH_BASE, *argv, "--filename", "run"], Path(cwd))


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=3, deadline=None)
@given(argv=command_lines(SMALL))
def test_fresh_processes_run_or_refuse(argv):
    fresh_run(argv)


for _case in ISSUE_RUNS[:2]:
    test_fresh_processes_run_or_refuse = example(argv=_case)(test_fresh_processes_run_or_refuse)


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(argv=command_lines(SMALL))
def test_many_fresh_processes_run_or_refuse(argv):
    fresh_run(argv)


for _case in ISSUE_RUNS:
    test_many_fresh_processes_run_or_refuse = example(argv=_case)(
        test_many_fresh_processes_run_or_refuse
    )


# --data-dir contents: the files a loader looks for, each valid, damaged or absent.
DATA_FILES = {
    "mnist": [
        "mnist.npz",
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "train-images-idx3-ubyte.gz",
    ],
    "cifar10": [
        "cifar10.npz",
        "cifar-10-batches-py/test_batch",
        "cifar-10-batches-py/data_batch_1",
        "test_batch",
    ],
}
CONTENTS = st.sampled_from(
    [
        "garbage",
        "empty",
        "idx_header",
        "zip_header",
        "npz_partial",
        "npz_unequal",
        "gzip_garbage",
        "pickle_partial",
    ]
)


def content(kind: str, rng_bytes: bytes) -> bytes:
    import gzip
    import pickle

    import numpy as np

    def npz(**arrays) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    return {
        "garbage": rng_bytes,
        "empty": b"",
        "idx_header": bytes([0, 0, 8, 3, 0, 0, 0, 9]) + rng_bytes,
        "zip_header": b"PK\x03\x04" + rng_bytes,
        "npz_partial": npz(x_train=np.zeros((2, 28, 28), "uint8")),
        "npz_unequal": npz(
            x_train=np.zeros((4, 28, 28), "uint8"),
            y_train=np.zeros(3),
            x_test=np.zeros((2, 28, 28), "uint8"),
            y_test=np.zeros(2),
        ),
        "gzip_garbage": gzip.compress(rng_bytes),
        "pickle_partial": pickle.dumps({b"data": rng_bytes}),
    }[kind]


@st.composite
def data_dirs(draw):
    dataset = draw(st.sampled_from(sorted(DATA_FILES)))
    names = draw(st.lists(st.sampled_from(DATA_FILES[dataset]), unique=True, max_size=4))
    files = {name: content(draw(CONTENTS), draw(st.binary(max_size=64))) for name in names}
    return dataset, files


def offline(*args, **kwargs):
    raise OSError("offline (the fuzz never downloads)")


def check_data_dir(dataset: str, files: dict[str, bytes], capsys) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for name, data in files.items():
            (Path(folder) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(folder) / name).write_bytes(data)
        argv = ["--dataset", dataset, "--data-dir", folder, "--epochs", "2", "--dry-run"]
        check_outcome(argv, capsys)


@pytest.fixture
def no_downloads(monkeypatch):
    import keras

    for name in ("mnist", "cifar10"):
        monkeypatch.setattr(getattr(keras.datasets, name), "load_data", offline)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=data_dirs())
@example(case=("mnist", {"mnist.npz": b"PK\x03\x04 not a zip"}))
@example(case=("mnist", {"train-images-idx3-ubyte.gz": b"\x1f\x8b not gzip"}))
@example(case=("cifar10", {"cifar-10-batches-py/test_batch": b"not a pickle"}))
@example(case=("mnist", {}))
def test_any_data_dir_loads_or_is_refused_naming_it(case, capsys, no_downloads):
    check_data_dir(*case, capsys)


@pytest.mark.slow
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=data_dirs())
def test_many_data_dirs_load_or_are_refused(case, capsys, no_downloads):
    check_data_dir(*case, capsys)


# Damaged run folders: a finished run, its files deleted, cut or overwritten, then resumed.
FOLDER_FILES = ["config.json", "log.csv", "summary.json", "checkpoint.npz", ".lock"]
DAMAGES = st.sampled_from(["delete", "empty", "cut_half", "cut_line", "garbage", "stale_lock"])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz_finished") / "run"
    argv = [*FRESH_BASE, "--epochs", "2", "--batch_size", "30", "--mini_batch_size", "10"]
    assert run.main([*argv, "--verbose", "0", "--filename", str(folder)]) == 0
    return folder


def damage(path: Path, how: str, noise: bytes) -> None:
    if how == "stale_lock":
        path.with_name(".lock").write_text(json.dumps({"pid": 2**22 + 7, "host": os.uname()[1]}))
    elif not path.exists():
        return
    elif how == "delete":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "cut_half":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif how == "cut_line":
        path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:2]))
    else:
        path.write_bytes(noise)


def check_damaged_folder(finished: Path, damages: list, capsys) -> None:
    with tempfile.TemporaryDirectory() as parent:
        folder = Path(parent) / "run"
        shutil.copytree(finished, folder)
        for name, how, noise in damages:
            damage(folder / name, how, noise)
        checkpoint_intact = (
            (folder / "checkpoint.npz").read_bytes() == (finished / "checkpoint.npz").read_bytes()
            if (folder / "checkpoint.npz").exists()
            else False
        )
        try:
            code = run.main(["--resume", str(folder)])
        except SystemExit as exit_:
            code = exit_.code
        captured = capsys.readouterr()
        text = captured.out + captured.err
        assert "Traceback" not in text
        assert code in (0, 1, 2), text
        if code == 2:
            assert "error: argument --resume" in captured.err, text
        if code == 1:
            assert "error:" in captured.err, text
        if code == 0 and checkpoint_intact:  # no row lost: the checkpoint's rows are back
            assert read_log(folder / "log.csv") == read_log(finished / "log.csv")


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    damages=st.lists(
        st.tuples(st.sampled_from(FOLDER_FILES), DAMAGES, st.binary(max_size=40)),
        min_size=1,
        max_size=3,
    )
)
@example(damages=[("log.csv", "cut_line", b"")])
@example(damages=[("log.csv", "empty", b"")])
@example(damages=[("log.csv", "delete", b"")])
@example(damages=[("log.csv", "garbage", b"\xff\xfe\x00\x9c")])
@example(damages=[("summary.json", "cut_half", b"")])
@example(damages=[("config.json", "garbage", b"[]")])
@example(damages=[("config.json", "delete", b"")])
@example(damages=[(".lock", "stale_lock", b"")])
def test_a_damaged_run_folder_resumes_or_is_refused(damages, finished, capsys):
    check_damaged_folder(finished, damages, capsys)


@pytest.mark.slow
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    damages=st.lists(
        st.tuples(st.sampled_from(FOLDER_FILES), DAMAGES, st.binary(max_size=40)),
        min_size=1,
        max_size=3,
    )
)
def test_many_damaged_run_folders_resume_or_are_refused(damages, finished, capsys):
    check_damaged_folder(finished, damages, capsys)
