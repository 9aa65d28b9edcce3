"""The reliability issue's cases: no traceback, no silent acceptance, no log row lost.

Each case the issue reported is a test here (numbers are the issue's sections).
"""

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from bsi_keras import checkpoint, run
from bsi_keras.cli import sweep
from bsi_keras.locks import LOCK_NAME, FolderLock, FolderLocked
from bsi_keras.run_folder import read_log

TINY = ["--dataset", "mnist_sample", "--num_train", "200", "--num_test", "50", "--verbose", "0"]
TEN = ["--batch_size", "20", "--mini_batch_size", "10"]


def outcome(argv, capsys) -> tuple[int, str]:
    """The exit code and the output of the command line (a refusal exits 2)."""
    try:
        code = run.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text
    return code, text


def refused(argv, capsys, flag: str) -> str:
    code, text = outcome(argv, capsys)
    assert code == 2 and f"argument {flag}:" in text, text
    return text


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished") / "run"
    assert run.main([*TINY, *TEN, "--epochs", "3", "--filename", str(folder)]) == 0
    return folder


# 5. Tracebacks where a message is promised.


@pytest.mark.parametrize(
    ("argv", "flag", "words"),
    [
        (["--seed", "4294967296"], "--seed", "2**32 - 1"),
        (["--rand_seed", "4294967296"], "--rand_seed", "2**32 - 1"),
        (["--filename", "x" * 300], "--filename", "at most 255"),
        (["--phases", "1x5000@0.1"], "--phases", "larger than the training set"),
    ],
)
def test_values_that_raised_are_refused(argv, flag, words, capsys):
    assert words in refused([*TINY, *argv], capsys, flag)


@pytest.mark.parametrize("target", ["file", "/dev/null"])
def test_filename_naming_a_file_is_refused(target, tmp_path, capsys):
    path = tmp_path / "a_file" if target == "file" else target
    if target == "file":
        path.write_text("keep")
    code, text = outcome([*TINY, "--epochs", "1", "--filename", str(path)], capsys)
    assert code == 1 and "is not a folder" in text
    assert target != "file" or path.read_text() == "keep"


def test_a_refused_batch_leaves_no_folder_behind(tmp_path, capsys):
    folder = tmp_path / "run"
    for _ in range(2):  # the retry gets the same refusal, not 'already exists'
        refused([*TINY, "--phases", "1x5000@0.1", "--filename", str(folder)], capsys, "--phases")
        assert not folder.exists()


def idx(values: np.ndarray, dims: tuple[int, ...]) -> bytes:
    header = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + values.astype(np.uint8).tobytes()


def write_mnist(folder, train: int = 30, test: int = 10, labels: int | None = None) -> None:
    folder.mkdir(exist_ok=True)
    for split, n, m in (("train", train, labels or train), ("t10k", test, test)):
        (folder / f"{split}-images-idx3-ubyte").write_bytes(idx(np.zeros(n * 784), (n, 28, 28)))
        (folder / f"{split}-labels-idx1-ubyte").write_bytes(idx(np.arange(m) % 10, (m,)))


def damage(kind: str, folder) -> str:
    """Fill ``folder`` with one kind of damaged data; return the dataset to ask for."""
    folder.mkdir(exist_ok=True)
    if kind == "garbage_idx":
        write_mnist(folder)
        (folder / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    elif kind == "garbage_npz":
        (folder / "mnist.npz").write_bytes(b"PK\x03\x04 not a zip")
    elif kind == "garbage_gzip":
        write_mnist(folder)
        (folder / "train-images-idx3-ubyte").unlink()
        (folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not gzip")
    elif kind == "arrays_missing":
        np.savez(folder / "mnist.npz", x_train=np.zeros((3, 28, 28), np.uint8))
    elif kind == "unequal_lengths":
        write_mnist(folder, labels=20)
    elif kind == "incomplete_cifar":
        batches = folder / "cifar-10-batches-py"
        batches.mkdir()
        (batches / "test_batch").write_bytes(gzip.compress(b"not a pickle"))
        return "cifar10"
    return "mnist"


@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "garbage_idx",
        "garbage_npz",
        "garbage_gzip",
        "arrays_missing",
        "unequal_lengths",
        "incomplete_cifar",
    ],
)
def test_every_data_dir_problem_is_a_message(kind, tmp_path, capsys):
    folder = tmp_path / "data"
    dataset = "mnist" if kind == "missing" else damage(kind, folder)
    text = refused(
        ["--dataset", dataset, "--data-dir", str(folder), "--epochs", "2", "--dry-run"],
        capsys,
        "--data-dir",
    )
    assert str(folder) in text


def test_an_empty_data_dir_and_no_network_is_a_message(tmp_path, monkeypatch, capsys):
    def offline():
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    text = refused(
        ["--dataset", "mnist", "--data_dir", str(tmp_path), "--dry-run"], capsys, "--data_dir"
    )
    assert "network is unreachable" in text  # DatasetUnavailable's message, not a traceback
    argv = ["--dataset", "mnist", "--epochs", "1", "--filename", str(tmp_path / "r")]
    assert "mnist_sample" in refused(argv, capsys, "--dataset")  # the hint: use the sample


def test_num_train_beyond_the_file_is_refused(tmp_path, capsys):
    write_mnist(tmp_path)
    argv = ["--dataset", "mnist", "--data-dir", str(tmp_path), "--num_train", "31", "--verbose"]
    text = refused(
        [*argv, "0", "--batch_size", "10", "--filename", str(tmp_path / "r")], capsys, "--num_train"
    )
    assert "between 1 and 30" in text and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "config", [None, "{not json", "[]", "{}", '{"spec": 3, "schedule": {}}', b"\xff\xfe\x00"]
)
def test_resume_of_a_file_or_a_damaged_config_is_refused(config, tmp_path, capsys):
    target = tmp_path / "run"
    if config is None:
        target.write_text("a file")
    else:
        target.mkdir()
        path = target / "config.json"
        path.write_bytes(config) if isinstance(config, bytes) else path.write_text(config)
    refused(["--resume", str(target)], capsys, "--resume")


def test_a_model_too_large_to_build_is_refused(monkeypatch, capsys):
    from bsi_keras import models

    def huge(input_shape, **options):
        raise MemoryError("Unable to allocate 400 GiB")

    monkeypatch.setitem(models._REGISTRY, "huge", huge)
    assert "400 GiB" in refused([*TINY, "--model", "huge"], capsys, "--model")


def test_a_disk_that_fills_mid_run_is_a_message_and_a_summary(tmp_path, monkeypatch, capsys):
    save, calls = checkpoint.save, []

    def full_after_one(folder, model, state):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return save(folder, model, state)

    monkeypatch.setattr(checkpoint, "save", full_after_one)
    folder = tmp_path / "run"
    code, text = outcome([*TINY, *TEN, "--epochs", "3", "--filename", str(folder)], capsys)
    assert code == 1 and "No space left on device" in text and "--resume" in text
    assert json.loads((folder / "summary.json").read_text())["status"] == "failed"
    monkeypatch.setattr(checkpoint, "save", save)
    assert outcome(["--resume", str(folder)], capsys)[0] == 0  # room again: it finishes
    assert len(read_log(folder / "log.csv")) == 3


# 6. Silent acceptance.


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--resume", ""], "--resume"),
        (["--filename", ""], "--filename"),
        (["--phases", ""], "--phases"),
        (["--schedule", "adaptive", "--phases", "2x100@0.1"], "--phases"),
        (["--phases", "2x100@0.1", "--max", "1000"], "--max"),
        (["--schedule", "decay_lr", "--max", "1000"], "--max"),
        (["--schedule", "constant", "--max", "1000"], "--max"),
        (["--schedule", "fast_bsi", "--fast_start", "0"], "--fast_start"),
        (["--schedule", "fast_bsi", "--fast_start", "-2"], "--fast_start"),
        (["--schedule", "fast_bsi", "--fast_start", "9"], "--fast_start"),
        (["--factor", "0.5"], "--factor"),
        (["--schedule", "decay_lr", "--factor", "0.5"], "--factor"),
        (["--schedule", "mixed_bsi", "--factor2", "0.5"], "--factor2"),
        (["--lr_curve", "cosine", "--lr", "0.05", "--min_lr", "0.1"], "--min_lr"),
        (["--min_lr", "0.01"], "--min_lr"),
        (["--lr_curve", "cyclic", "--cycle_epochs", "1e-300"], "--cycle_epochs"),
        (["--cycle_epochs", "2"], "--cycle_epochs"),
        (["--warmup_epochs", "1e308"], "--warmup_epochs"),
        (["--eval_batch_size", "1000000000"], "--eval_batch_size"),
        (["--dataset", "synthetic", "--data-dir", "/tmp"], "--data-dir"),
    ],
)
def test_values_a_run_would_ignore_or_mangle_are_refused(argv, flag, capsys):
    refused(
        [*TINY, *argv, "--dry-run"] if "--dataset" not in argv else [*argv, "--dry-run"],
        capsys,
        flag,
    )


def test_the_default_eval_batch_fits_a_small_test_set(tmp_path):
    from bsi_keras.driver.feeds import ValidationFeed

    assert ValidationFeed((np.zeros((5, 2)), np.zeros(5)), 10**9).batch_size == 5


# 4. The log is reconciled with the checkpoint on resume.


def cut_at_a_line(log):
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:2]))


@pytest.mark.parametrize(
    "damage_log",
    [
        cut_at_a_line,
        lambda log: log.write_text(""),
        lambda log: log.unlink(),
        lambda log: log.write_bytes(b"\xff\xfe\x00garbage\x9c" * 50),
        lambda log: log.write_text(log.read_text()[:-15]),  # cut mid-row
    ],
    ids=["cut_at_a_line", "emptied", "deleted", "binary_garbage", "cut_mid_row"],
)
def test_resume_restores_every_row_from_the_checkpoint(damage_log, finished_run, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(finished_run, folder)
    rows = read_log(folder / "log.csv")
    damage_log(folder / "log.csv")
    code, text = outcome(["--resume", str(folder)], capsys)
    assert code == 0 and "rewritten from the checkpoint" in text
    assert read_log(folder / "log.csv") == rows


def test_an_intact_log_is_left_alone(finished_run, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(finished_run, folder)
    before = (folder / "log.csv").read_bytes()
    code, text = outcome(["--resume", str(folder)], capsys)
    assert code == 0 and "note:" not in text and (folder / "log.csv").read_bytes() == before


# 7. Two processes on one folder.


def test_folder_lock_names_its_owner_and_takes_over_a_stale_one(tmp_path):
    with FolderLock(tmp_path / "a") as lock:
        owner = json.loads(lock.path.read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(FolderLocked, match=f"process {os.getpid()} on"):
            FolderLock(tmp_path / "a").acquire()
    assert not (tmp_path / "a").exists()  # the lock made the folder, and it stayed empty
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    (tmp_path / "b").mkdir()
    stale = {"pid": int(dead.stdout), "host": socket.gethostname(), "started": "then"}
    (tmp_path / "b" / LOCK_NAME).write_text(json.dumps(stale))
    with FolderLock(tmp_path / "b") as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    other_host = {"pid": 1, "host": "elsewhere", "started": "now"}
    (tmp_path / "b" / LOCK_NAME).write_text(json.dumps(other_host))
    with pytest.raises(FolderLocked, match="elsewhere"):
        FolderLock(tmp_path / "b").acquire()


def test_resume_of_a_folder_another_process_trains_is_refused(tmp_path, capsys):
    folder = tmp_path / "run"
    argv = [*TINY[:2], "--num_train", "2000", "--batch_size", "10", "--lr", "0.01", "--epochs", "4"]
    process = subprocess.Popen(
        [sys.executable, "-m", "bsi_keras.run", *argv, "--filename", str(folder)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not (folder / "config.json").exists() and time.monotonic() < deadline:
            assert process.poll() is None
            time.sleep(0.05)
        code, text = outcome(["--resume", str(folder)], capsys)
        assert code == 1 and f"in use by process {process.pid}" in text
    finally:
        process.kill()
        process.wait()
    code, _ = outcome(["--resume", str(folder), "--verbose", "0"], capsys)  # stale: taken over
    assert code == 0 and len(read_log(folder / "log.csv")) == 4


# 8. --schedule all after an interruption and a divergence.


def test_schedule_all_survives_a_divergence_and_its_root_resumes(tmp_path, monkeypatch, capsys):
    from bsi_keras.cli import run as cli_run

    train_one = cli_run._train_one

    def decay_lr_diverges(spec, *args, **kwargs):
        if spec.schedule.name == "decay_lr":
            return {"status": "diverged"}  # and leaves no folder: as if killed at its start
        return train_one(spec, *args, **kwargs)

    monkeypatch.setattr(cli_run, "_train_one", decay_lr_diverges)
    root = tmp_path / "compare"
    argv = [*TINY, *TEN, "--schedule", "all", "--epochs", "2", "--filename", str(root)]
    code, _ = outcome(argv, capsys)
    assert code == 1  # one did not finish ...
    assert all((root / name / "summary.json").exists() for name in ("hybrid", "increase_bs"))
    monkeypatch.setattr(cli_run, "_train_one", train_one)
    code, text = outcome(["--resume", str(root)], capsys)  # ... and the root resumes
    assert code == 0 and "finished before, skipped" in text
    assert len(read_log(root / "decay_lr" / "log.csv")) == 2
    assert (root / "comparison.png").exists()


# 9. Misuse from Python.


def test_python_api_misuse_is_refused_clearly():
    import tensorflow as tf

    from bsi_keras import fit, models, schedules
    from bsi_keras.schedules import ScheduleError

    model = models.get_model("mnist_cnn")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = np.zeros((200, 28, 28, 1), "float32"), np.zeros(200, "int32")
    constant = schedules.constant(1, 64, 0.01)
    batched = tf.data.Dataset.from_tensor_slices((x, y)).batch(32, drop_remainder=True)
    history = fit(model, batched, schedule=constant, verbose=0, seed=0)
    assert history.history["updates"] == [3.0]  # 192 examples in batches of 64
    with pytest.raises(ValueError, match="not beside it"):
        fit(model, batched, y, schedule=constant, verbose=0)
    with pytest.raises(ValueError, match=r"\(x_val, y_val\)"):
        fit(model, x, y, schedule=constant, validation_data=(x,), verbose=0)
    for bad in (None, 1.5, "64", (True, 0.1), (64.0, 0.1), (64, "0.1")):
        with pytest.raises(ScheduleError, match="must return"):
            fit(model, x, y, schedule=lambda epoch, bad=bad: bad, epochs=1, verbose=0)


# 10. Files.


def test_a_diverged_summary_is_strict_json(tmp_path, capsys):
    folder = tmp_path / "nan"
    argv = [*TINY, "--epochs", "2", "--batch_size", "2", "--mini_batch_size", "2", "--lr", "1e20"]
    assert outcome([*argv, "--filename", str(folder)], capsys)[0] == 1

    def no_constants(name):
        raise AssertionError(f"{name} in summary.json")

    summary = json.loads((folder / "summary.json").read_text(), parse_constant=no_constants)
    assert summary["status"] == "diverged" and summary["final_loss"] is None


# 3. Sweeps.


def tiny_recipe(bad: bool = False):
    common = {
        "dataset": "mnist_sample",
        "num_train": 200,
        "num_test": 50,
        "verbose": 0,
        "epochs": 2,
        "batch_size": 20,
        "mini_batch_size": 10,
    }
    runs = [("good", {**common, "schedule": "constant"})]
    if bad:
        runs.insert(0, ("refused", {**common, "schedule": "decay_lr", "factor": 0.5}))
        runs.append(("too_big", {**common, "phases": "2x5000@0.1"}))
    return lambda: runs


def test_a_refused_run_is_skipped_and_the_sweep_goes_on(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sweep.RECIPES, "tiny", tiny_recipe(bad=True))
    argv = ["tiny", "--root", str(tmp_path)]
    assert sweep.main(argv) == 1
    out = capsys.readouterr().out + capsys.readouterr().err
    assert "refused: argument --factor" in out and "too_big: refused: argument --phases" in out
    assert (tmp_path / "tiny" / "good" / "summary.json").exists()
    # A truncated summary.json does not crash the next sweep: the run is resumed, and ends.
    summary = tmp_path / "tiny" / "good" / "summary.json"
    summary.write_text(summary.read_text()[:20])
    assert sweep.main(argv) == 1
    assert json.loads(summary.read_text())["status"] == "finished"


def test_a_signal_stops_the_sweep_and_names_the_runs_left(tmp_path):
    root = tmp_path / "sweeps"
    command = [
        sys.executable,
        "-m",
        "bsi_keras.sweep",
        "smith",
        "--root",
        str(root),
        "--epochs",
        "4",
        "--dataset",
        "mnist_sample",
        "--",
        "--num_train",
        "2000",
        "--num_test",
        "50",
        "--batch_size",
        "10",
        "--lr",
        "0.01",
        "--model",
        "mnist_cnn",
    ]
    process = subprocess.Popen(
        command,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log = root / "smith" / "decay_lr" / "log.csv"
    deadline = time.monotonic() + 240
    while not (log.exists() and read_log(log)) and time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "runs not finished: decay_lr, hybrid, increase_bs" in output
    assert "Traceback" not in output
    assert not (root / "smith" / "hybrid").exists()  # no new run started
    assert not (root / "smith" / "summary.md").exists()


# 11. Messages a newcomer stumbles on.


def test_errors_name_the_flag_as_typed(capsys):
    refused(["--dataset", "synthetic", "--data-dir", "x", "--dry-run"], capsys, "--data-dir")
    refused(["--dataset", "synthetic", "--data_dir", "x", "--dry_run"], capsys, "--data_dir")
    refused(["--rand_seed", "-1", "--dry-run"], capsys, "--rand_seed")
    refused(["--seed", "-1", "--dry-run"], capsys, "--seed")


def test_mixed_bsi_runs_on_its_defaults_or_names_what_to_pass(capsys):
    code, text = outcome(["--schedule", "mixed_bsi", "--dry-run"], capsys)
    assert code == 0 and "mixed_bsi" in text
    text = refused(["--schedule", "mixed_bsi", "--epochs", "3", "--dry-run"], capsys, "--epochs")
    assert "--milestones" in text


def test_a_folder_half_created_by_a_kill_says_what_to_do(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json.tmp").write_text('{"half')
    (folder / LOCK_NAME).write_text("")  # killed before the lock's owner was written
    os.utime(folder / LOCK_NAME, (0, 0))
    text = refused(["--resume", str(folder)], capsys, "--resume")
    assert f"start it again with --filename {folder}" in text
    argv = [*TINY, *TEN, "--epochs", "1", "--filename", str(folder)]
    assert outcome(argv, capsys)[0] == 0
