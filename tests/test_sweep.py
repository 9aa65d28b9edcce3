"""Sweeps: a short two-run sweep, interrupted and resumed, then summarized."""

import json
import os
import signal
import subprocess
import sys
import time

from bsi_keras import sweep
from bsi_keras.run_folder import read_log

ARGS = [
    "smith",
    "--runs",
    "decay_lr",
    "increase_bs",
    "--epochs",
    "6",
    "--dataset",
    "synthetic_cifar",
    "--",
    "--model",
    "mnist_f1",
    "--num_train",
    "512",
    "--num_test",
    "64",
    "--batch_size",
    "16",
    "--mini_batch_size",
    "16",
    "--lr",
    "0.01",
    "--verbose",
    "0",
]


def test_interrupted_sweep_resumes_and_summarizes(tmp_path):
    root = tmp_path / "sweeps"
    command = [sys.executable, "-m", "bsi_keras.sweep", *ARGS[:1], "--root", str(root), *ARGS[1:]]
    process = subprocess.Popen(
        command,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    second = root / "smith" / "increase_bs" / "log.csv"
    deadline = time.monotonic() + 300
    while not (second.exists() and read_log(second)) and time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(read_log(second)) < 6  # killed mid-run
    assert sweep.main([*ARGS[:1], "--root", str(root), *ARGS[1:]]) == 0
    first = json.loads((root / "smith" / "decay_lr" / "config.json").read_text())
    resumed = json.loads((root / "smith" / "increase_bs" / "config.json").read_text())
    assert "resumptions" not in first  # finished before the kill: skipped
    assert len(resumed["resumptions"]) == 1
    assert len(read_log(second)) == 6
    summary = (root / "smith" / "summary.md").read_text()
    assert "decay_lr" in summary and "increase_bs" in summary
    assert (root / "smith" / "sweep.png").stat().st_size > 10_000


def test_shortened_phases_and_milestones():
    argv = ["--dataset", "cifar10", "--phases", "60x128@0.05,60x128@0.025,40x16384@0.035"]
    assert sweep.shortened(argv, 16, None)[-1] == "6x128@0.05,6x128@0.025,4x16384@0.035"
    assert sweep.shortened(["--dataset", "cifar10"], 2, None)[-2:] == ["--milestones", "1"]
