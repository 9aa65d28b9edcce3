"""Runs that survive: kill and resume, determinism, refusal of contradicting flags."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from bsi_keras import checkpoint, run
from bsi_keras.run_folder import TIMING_COLUMNS, RunFolderError, read_log

FLAGS = [
    "--dataset",
    "mnist_sample",
    "--num_train",
    "2000",
    "--num_test",
    "200",
    "--lr",
    "0.01",
    "--epochs",
    "6",
    "--batch_size",
    "10",
    "--factor",
    "2",
    "--verbose",
    "0",
    "--seed",
    "7",
]


def rows_without_timing(folder) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k not in TIMING_COLUMNS}
        for r in read_log(folder / "log.csv")
    ]


def start(folder, *extra) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "bsi_keras.run", *FLAGS, *extra, "--filename", str(folder)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_rows(folder, count: int, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = folder / "log.csv"
        if log.exists() and len(read_log(log)) >= count:
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended before epoch {count}:\n{process.stdout.read()}")
        time.sleep(0.02)
    pytest.fail("the run did not reach the epoch in time")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted") / "run"
    process = start(folder)
    assert process.wait(timeout=300) == 0, process.stdout.read()
    return folder


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_the_same_log(uninterrupted, tmp_path, signum):
    folder = tmp_path / "run"
    process = start(folder)
    wait_for_rows(folder, 2, process)
    process.send_signal(signum)
    code = process.wait(timeout=120)
    output = process.stdout.read()
    if signum == signal.SIGTERM:
        assert code == 128 + signal.SIGTERM, output
        assert "Resume with" in output
        assert json.loads((folder / "summary.json").read_text())["status"] == "interrupted"
    assert 2 <= len(read_log(folder / "log.csv")) < 6
    resumed = subprocess.run(
        [sys.executable, "-m", "bsi_keras.run", "--resume", str(folder), "--verbose", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert rows_without_timing(folder) == rows_without_timing(uninterrupted)
    config = json.loads((folder / "config.json").read_text())
    # A kill between an epoch's log row and its checkpoint resumes one epoch earlier.
    assert len(config["resumptions"]) == 1 and config["resumptions"][0]["from_epoch"] >= 2
    assert json.loads((folder / "summary.json").read_text())["status"] == "finished"


def test_same_seed_same_log(uninterrupted, tmp_path):
    """Two runs with the same seed on this machine give identical rows (timings excepted)."""
    assert run.main([*FLAGS, "--filename", str(tmp_path / "again")]) == 0
    assert rows_without_timing(tmp_path / "again") == rows_without_timing(uninterrupted)


def test_resume_refuses_contradicting_flags(uninterrupted, capsys):
    with pytest.raises(SystemExit) as info:
        run.main(["--resume", str(uninterrupted), "--lr", "0.3"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --lr: 0.3 contradicts the run's config.json (0.01)" in err


def test_resume_of_a_finished_run_changes_nothing(uninterrupted, tmp_path):
    before = rows_without_timing(uninterrupted)
    assert run.main(["--resume", str(uninterrupted), "--verbose", "0"]) == 0
    assert rows_without_timing(uninterrupted) == before


def test_corrupt_checkpoint_is_reported(tmp_path, capsys):
    folder = tmp_path / "run"
    assert (
        run.main([*FLAGS[:-4], "--epochs", "2", "--verbose", "0", "--filename", str(folder)]) == 0
    )
    path = checkpoint.checkpoint_path(folder)
    path.write_bytes(path.read_bytes()[:1000])  # truncated, as by a full disk
    assert run.main(["--resume", str(folder)]) == 1
    assert "truncated or corrupt" in capsys.readouterr().err


def test_corrupt_log_is_reported(tmp_path):
    (tmp_path / "log.csv").write_text("epoch,loss\n1,0.5,extra,fields\n")
    with pytest.raises(RunFolderError, match="corrupt"):
        read_log(tmp_path / "log.csv")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder_fails_before_training(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    assert run.main([*FLAGS, "--filename", str(locked / "run")]) == 1
    assert "cannot create run folder" in capsys.readouterr().err


def test_full_disk_fails_before_training(tmp_path, monkeypatch, capsys):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    assert run.main([*FLAGS, "--filename", str(tmp_path / "run")]) == 1
    assert "MiB free" in capsys.readouterr().err
    assert not (tmp_path / "run" / "log.csv").exists()


def test_checkpoint_holds_optimizer_and_rng_state(uninterrupted):
    with np.load(checkpoint.checkpoint_path(uninterrupted)) as f:
        state = json.loads(str(f["state_json"]))
        optimizer_arrays = [k for k in f.files if k.startswith("optimizer_")]
    assert state["next_epoch"] == 6 and state["seed"] == 7
    assert len(state["rows"]) == 6
    assert len(optimizer_arrays) >= 2  # iterations, learning rate, momentum buffers


def test_checkpoint_written_as_a_dict_loads_as_run_state(tmp_path):
    """Checkpoints written before `RunState` (its dict, arrays as `save` made them) load."""
    import keras

    from bsi_keras.driver import RunState

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="mse")
    model.optimizer.build(model.trainable_variables)
    weights = [np.full(v.shape, 0.5, "float32") for v in model.variables]
    arrays = {f"model_{i:05d}": w for i, w in enumerate(weights)}
    for i, v in enumerate(model.optimizer.variables):
        arrays[f"optimizer_{i:05d}"] = np.asarray(keras.ops.convert_to_numpy(v))
    old_state = {
        "next_epoch": 2,
        "rows": [{"loss": 0.5, "updates": 4, "schedule_reason": "why"}] * 2,
        "seed": 3,
        "lr_multiplier": 0.5,
        "last_lr": 0.005,
    }
    arrays["state_json"] = np.array(json.dumps(old_state))
    np.savez(checkpoint.checkpoint_path(tmp_path), **arrays)
    expected = RunState(seed=3, next_epoch=2, rows=old_state["rows"], last_lr=0.005)
    expected.lr_multiplier = 0.5
    assert checkpoint.read_state(tmp_path) == expected
    assert checkpoint.load(tmp_path, model) == expected
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.variables[0]), weights[0])
    checkpoint.save(tmp_path, model, expected)  # and it is written back in the same format
    with np.load(checkpoint.checkpoint_path(tmp_path)) as f:
        assert json.loads(str(f["state_json"])) == old_state


TINY_ALL = ["--dataset", "mnist_sample", "--num_train", "200", "--num_test", "50"]
TINY_ALL += ["--schedule", "all", "--epochs", "3", "--batch_size", "20", "--verbose", "0"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compared") / "all"
    assert run.main([*TINY_ALL, "--filename", str(folder)]) == 0
    return folder


def test_a_schedule_all_run_resumes_its_own_schedule_under_any_folder_name(compared, tmp_path):
    import shutil

    from bsi_keras.cli.resume import resumed_spec

    copy = tmp_path / "fast_bsi"  # a folder name that names another schedule
    shutil.copytree(compared / "hybrid", copy)
    before = rows_without_timing(copy)
    spec, stored = resumed_spec(str(copy), {})
    assert spec.schedule.name == "hybrid" and stored["name"] == "hybrid"
    assert run.main(["--resume", str(copy), "--verbose", "0"]) == 0
    assert rows_without_timing(copy) == before


def test_resume_refuses_a_spec_that_no_longer_gives_the_stored_schedule(compared, tmp_path, capsys):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(compared / "increase_bs", copy)
    config = json.loads((copy / "config.json").read_text())
    config["spec"]["schedule"]["factor"] = 2.0  # as if edited by hand
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit) as info:
        run.main(["--resume", str(copy)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --resume:" in err and "refusing to resume" in err


def test_a_folder_written_before_the_spec_still_resumes(uninterrupted, tmp_path):
    """An older config.json holds argparse's names (``args``), some spelled otherwise."""
    import shutil

    from bsi_keras.cli import RunSpec

    copy = tmp_path / "old"
    shutil.copytree(uninterrupted, copy)
    config = json.loads((copy / "config.json").read_text())
    args = RunSpec.from_config(config.pop("spec")).flags()
    args["saveState"] = args.pop("save_state")
    args["doubleEndFactor"] = args.pop("double_end_factor")
    (copy / "config.json").write_text(json.dumps({**config, "args": {**args, "dry_run": False}}))
    before = rows_without_timing(copy)
    assert run.main(["--resume", str(copy), "--verbose", "0"]) == 0
    assert rows_without_timing(copy) == before
    with pytest.raises(SystemExit) as info:
        run.main(["--resume", str(copy), "--lr", "0.3"])
    assert info.value.code == 2
