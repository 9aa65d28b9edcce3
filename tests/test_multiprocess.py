"""Two JAX processes train one run together as one process does, resume, and fail cleanly.

The processes run on JAX (``KERAS_BACKEND=jax`` set in their environment), on the loopback
interface with a port chosen at run time. They take a few minutes of a 2-core machine, so
the JAX pass of CI runs them (`ON_JAX`), not the TensorFlow pass too, which would repeat
the very same JAX processes; the checks without processes run in both.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from bsi_keras.cli import launch
from bsi_keras.run_folder import TIMING_COLUMNS, read_log
from bsi_keras.runtime import distribution
from bsi_keras.runtime.distribution import Cluster, join_cluster, share_rows

pytest.importorskip("jax")

EPOCHS = 4
FLAGS = [
    "--dataset",
    "mnist_sample",
    "--model",
    "mnist_f1",
    "--num_train",
    "160",
    "--num_test",
    "100",
    "--schedule",
    "constant",
    "--epochs",
    str(EPOCHS),
    "--batch_size",
    "40",
    "--mini_batch_size",
    "20",
    "--lr",
    "0.05",
    "--verbose",
    "0",
]
JAX = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONUNBUFFERED": "1"}
ON_JAX = pytest.mark.skipif(keras.backend.backend() != "jax", reason="run by the JAX pass")


def run(command, env=JAX, timeout=400):
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def launched(folder, *extra, nproc=2):
    return [sys.executable, "-m", "bsi_keras.launch", "--nproc", str(nproc), "--", *FLAGS,
            "--filename", str(folder), *extra]  # fmt: skip


def rows(folder):
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in read_log(folder)]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """A run of 2 processes x 1 device, uninterrupted."""
    folder = tmp_path_factory.mktemp("two_processes") / "run"
    result = run(launched(folder))
    assert result.stdout.count("data-parallel over 2 devices") == 2  # both processes
    return folder


@ON_JAX
def test_two_processes_follow_two_devices_and_one(two_processes, tmp_path):
    """The same global batches and ghost batches: the same trajectory up to rounding.

    The three runs do the same float32 arithmetic but sum the gradient's partial sums in
    another order (one device: one reduction over the batch; two devices of one process:
    an all-reduce of two halves; two processes: the same through gloo). Rounding of a few
    ulps per update, 16 updates long, stays far below 1e-4 relative, while a real
    difference (a batch fed twice, a ghost batch split, a per-process batch size) moves
    the loss by percents. The log keeps 6 significant digits.
    """
    run([sys.executable, "-m", "bsi_keras.run", *FLAGS, "--filename", str(tmp_path / "one")])
    devices = {**JAX, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    two_devices = [*FLAGS, "--distribute", "--filename", str(tmp_path / "devices")]
    assert (
        "over 2 devices"
        in run([sys.executable, "-m", "bsi_keras.run", *two_devices], devices).stdout
    )
    logs = {
        name: read_log(folder / "log.csv")
        for name, folder in [("one", tmp_path / "one"), ("devices", tmp_path / "devices"),
                             ("processes", two_processes)]
    }  # fmt: skip
    for name in ("devices", "processes"):
        assert [r["updates"] for r in logs[name]] == [r["updates"] for r in logs["one"]]
        for column in ("loss", "accuracy", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(
                [float(r[column]) for r in logs[name]],
                [float(r[column]) for r in logs["one"]],
                rtol=1e-4,
                err_msg=f"{name}: {column}",
            )
    # The folder is process 0's alone: one config, one log row per epoch, no process's copy.
    assert len(logs["processes"]) == EPOCHS
    assert sorted(p.name for p in two_processes.iterdir()) == [
        "checkpoint.npz", "config.json", "log.csv", "summary.json"
    ]  # fmt: skip


def wait_for_rows(folder, count, process, timeout=300):
    deadline = time.monotonic() + timeout
    while len(read_log(folder / "log.csv")) < count:
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.05)


@ON_JAX
def test_a_process_killed_after_epoch_2_stops_the_other_and_the_run_resumes(
    two_processes, tmp_path
):
    """Process 1 is killed with SIGKILL once epoch 2 is logged: the launcher names it and
    stops process 0 (which would wait inside a collective) within a bounded time, and
    ``--resume`` with two processes again ends with the log of the uninterrupted run.

    The launcher and its processes are frozen (SIGSTOP) while the log is read and the
    kill is sent, so the state at the kill is known (2 epochs or more, not all), not
    raced against the training.
    """
    folder = tmp_path / "run"
    process = subprocess.Popen(
        launched(folder), env=JAX, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_rows(folder, 2, process)
        os.killpg(process.pid, signal.SIGSTOP)
        logged = len(read_log(folder / "log.csv"))
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        victim = int(children[1])  # process 1
        os.kill(victim, signal.SIGKILL)
        os.killpg(process.pid, signal.SIGCONT)
        killed_at = time.monotonic()
        output = process.communicate(timeout=launch.GRACE_S + 120)[0]
        took = time.monotonic() - killed_at
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert 2 <= logged < EPOCHS
    assert process.returncode == 128 + signal.SIGKILL
    assert f"launch: process 1 (pid {victim}) was killed by SIGKILL; stopping" in output
    assert took < launch.GRACE_S + 30, output
    run([sys.executable, "-m", "bsi_keras.launch", "--nproc", "2", "--", "--resume", str(folder)])
    assert rows(folder / "log.csv") == rows(two_processes / "log.csv")


def test_the_cluster_comes_from_keras_torchrun_or_slurm_variables():
    keras_names = {
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234,10.0.0.2:1234",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
        "KERAS_DISTRIBUTION_PROCESS_ID": "1",
    }
    assert Cluster.from_environment(keras_names) == Cluster("10.0.0.1:1234", 2, 1)
    slurm = {"SLURM_NTASKS": "4", "SLURM_PROCID": "3"}
    assert Cluster.from_environment(slurm) == Cluster()  # independent tasks (a sweep's)
    master = {"MASTER_ADDR": "node7", "MASTER_PORT": "29500"}
    assert Cluster.from_environment({**slurm, **master}) == Cluster("node7:29500", 4, 3)
    with pytest.raises(ValueError, match="RANK=2 must be 0 to WORLD_SIZE - 1"):
        Cluster.from_environment({**master, "WORLD_SIZE": "2", "RANK": "2"})
    with pytest.raises(ValueError, match="need the coordinator"):
        Cluster.from_environment({"WORLD_SIZE": "2", "RANK": "0"})
    with pytest.raises(ValueError, match="WORLD_SIZE='two' is not an integer"):
        Cluster.from_environment({**master, "WORLD_SIZE": "two", "RANK": "0"})


def test_each_process_feeds_its_share_of_every_batch():
    shares = [share_rows(12, 4, index, 2) for index in range(2)]
    assert [s.tolist() for s in shares] == [[0, 1, 4, 5, 8, 9], [2, 3, 6, 7, 10, 11]]
    with pytest.raises(ValueError, match="a batch of 3 examples does not split over 2"):
        share_rows(11, 4, 0, 2)


def test_another_process_resumes_from_a_copy_without_process_0s_unfinished_writes(
    tmp_path, monkeypatch
):
    # Process 0 may be writing config.json.tmp (renamed away at once) while process 1 copies
    # the folder to resume from: the copy leaves such files out, so the rename cannot fail it.
    run_dir = tmp_path / "run"
    (run_dir / "weights").mkdir(parents=True)
    for name in ("config.json", "log.csv", "checkpoint.npz", "config.json.tmp", ".lock"):
        (run_dir / name).write_text(name)
    (run_dir / "model.tmp.keras").write_text("partial")
    monkeypatch.setattr(distribution, "processes", lambda: (1, 2))
    with distribution.process_folder(run_dir, resume=True) as copy:
        assert copy != run_dir
        copied = sorted(p.name for p in copy.iterdir())
        assert copied == ["checkpoint.npz", "config.json", "log.csv"]
    assert not copy.exists()  # removed at the end


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="would join the cluster")
def test_two_processes_on_another_backend_are_refused_by_name():
    with pytest.raises(ValueError, match="2 processes need the jax backend, not"):
        join_cluster(Cluster("127.0.0.1:1", 2, 0))


def test_the_launcher_refuses_bad_arguments_by_name(capsys):
    for argv, message in (
        (["--nproc", "0", "--", "--epochs", "2"], "argument --nproc: must be at least 1, got 0"),
        (["--nproc", "2"], "the run's flags go after --"),
    ):
        with pytest.raises(SystemExit) as exited:
            launch.main(argv)
        assert exited.value.code == 2 and message in capsys.readouterr().err
