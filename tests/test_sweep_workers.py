"""Several workers drain one sweep: each run trained once, none lost to a killed worker."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from bsi_keras.cli import claims, sweep
from bsi_keras.locks import LOCK_NAME, FolderLock
from bsi_keras.run_folder import CLAIM_NAME, RunFolder

EPOCHS = 4
RUNS = ("decay_lr", "hybrid", "increase_bs")
COMMAND = [
    sys.executable,
    "-m",
    "bsi_keras.sweep",
    "smith",
    "--epochs",
    str(EPOCHS),
    "--dataset",
    "mnist_sample",
    "--",
    "--model",
    "mnist_f1",
    "--num_train",
    "400",
    "--num_test",
    "50",
    "--batch_size",
    "10",
    "--mini_batch_size",
    "10",
    "--lr",
    "0.01",
    "--verbose",
    "0",
]


def start_worker(root):
    return subprocess.Popen(
        [*COMMAND[:4], "--root", str(root), *COMMAND[4:]],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def mid_run_of(process, folder) -> str | None:
    """The run ``process`` holds the claim of and has not ended, with an epoch logged."""
    for name in RUNS:
        run = RunFolder(folder / name)
        try:
            owner = json.loads((run.path / CLAIM_NAME).read_text())
        except (OSError, ValueError):
            continue
        if owner.get("pid") == process.pid and run.read_log() and run.status() == "started":
            return name
    return None


def test_two_workers_run_every_run_once_and_take_over_a_killed_ones(tmp_path):
    """Worker A is frozen (SIGSTOP) and looked at, then killed only if it is mid-run: the
    kill happens at a known state, not at a moment raced against the training."""
    folder = tmp_path / "smith"
    first, second = start_worker(tmp_path), start_worker(tmp_path)
    killed = None
    deadline = time.monotonic() + 400
    try:
        while killed is None:
            assert time.monotonic() < deadline and first.poll() is None, "A ended unkilled"
            if mid_run_of(first, folder):
                first.send_signal(signal.SIGSTOP)
                killed = mid_run_of(first, folder)
                first.send_signal(signal.SIGKILL if killed else signal.SIGCONT)
            time.sleep(0.02)
        output_a = first.communicate(timeout=60)[0]
        output_b = second.communicate(timeout=400)[0]
    finally:
        for process in (first, second):
            process.kill()
    assert second.returncode == 0, output_b
    for name in RUNS:
        run = RunFolder(folder / name)
        assert [int(row["epoch"]) for row in run.read_log()] == list(range(1, EPOCHS + 1))
        assert run.read_summary()["status"] == "finished"
        assert (output_a + output_b).count(f"{name}: starting") == 1  # started by one worker
        resumptions = run.read_config().get("resumptions", [])
        assert len(resumptions) == (name == killed)  # only the killed worker's run resumed
        assert not (run.path / CLAIM_NAME).exists() and not (run.path / LOCK_NAME).exists()
    assert f"{folder / killed}: taking over the claim of process {first.pid}" in output_b
    assert output_b.count("summary and figure in") == 1
    assert set(RUNS) <= set((folder / "summary.md").read_text().split())


def test_a_claim_of_another_host_is_taken_over_when_its_heartbeat_stops(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    elsewhere = {"pid": 4242, "host": "elsewhere", "started": "then"}
    for name in (CLAIM_NAME, LOCK_NAME):  # the worker's claim and its run's lock
        (run / name).write_text(json.dumps(elsewhere))
    assert claims.claim(run) is None  # beating: its worker may be alive
    old = time.time() - claims.STALE_AFTER_S - 1
    os.utime(run / CLAIM_NAME, (old, old))
    lock = claims.claim(run)
    assert lock is not None and lock.taken_over == elsewhere
    assert json.loads((run / CLAIM_NAME).read_text())["host"] == socket.gethostname()
    assert not (run / LOCK_NAME).exists()  # the dead worker's run lock went with its claim
    lock.release()


def test_a_held_lock_keeps_beating(tmp_path):
    with FolderLock(tmp_path, CLAIM_NAME, heartbeat_s=0.05) as lock:
        os.utime(lock.path, (0, 0))
        deadline = time.monotonic() + 10
        while lock.path.stat().st_mtime == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lock.path.stat().st_mtime > time.time() - 10


@pytest.mark.parametrize(
    "text, message",
    [
        ("2/2", "argument --shard: 2/2: K must be 0 to N - 1 (0-based, as SLURM_ARRAY_TASK_ID"),
        ("1/0", "argument --shard: 1/0: N must be at least 1"),
        ("a/b", "argument --shard: 'a/b' is not K/N"),
    ],
)
def test_a_bad_shard_is_refused_naming_the_flag(text, message, capsys):
    with pytest.raises(SystemExit) as exited:
        sweep.main(["smith", "--shard", text, "--list"])
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_a_shard_lists_and_drains_every_nth_run(capsys):
    assert sweep.main(["smith", "--shard", "1/2", "--list"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["hybrid"]
    shards = [[i for i in range(7) if claims.in_shard(i, (k, 3))] for k in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]


def ended_run(folder, name):
    from bsi_keras.run_folder import LEADING_COLUMNS

    run = folder / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"schedule": {"name": name}}))
    summary = {"status": "finished", "epochs_finished": 1, "final_val_accuracy": 0.5,
               "total_updates": 4, "train_seconds": 1.0, "compile_seconds": 0.1}  # fmt: skip
    (run / "summary.json").write_text(json.dumps(summary))
    row = {c: "1" for c in LEADING_COLUMNS} | {"batch_size": "10", "val_accuracy": "0.5"}
    (run / "log.csv").write_text(",".join(row) + "\n" + ",".join(row.values()) + "\n")


def test_the_summary_is_written_once_by_whoever_finds_every_run_ended(tmp_path, capsys):
    folder = tmp_path / "sweep"
    ended_run(folder, "a")
    sweep._summarize_if_all_ended(folder, ["a", "b"], settled=set())
    assert "left to the worker that ends the last run" in capsys.readouterr().out
    assert not (folder / "summary.csv").exists()
    ended_run(folder, "b")
    with FolderLock(folder):  # another worker is writing it
        sweep._summarize_if_all_ended(folder, ["a", "b"], settled=set())
    assert "another worker writes the summary" in capsys.readouterr().out
    sweep._summarize_if_all_ended(folder, ["a", "b"], settled=set())
    assert "summary and figure in" in capsys.readouterr().out
    written = (folder / "summary.csv").stat().st_mtime_ns
    sweep._summarize_if_all_ended(folder, ["a", "b", "refused"], settled={"refused"})
    assert "is up to date" in capsys.readouterr().out
    assert (folder / "summary.csv").stat().st_mtime_ns == written
