"""Every schedule for two epochs on its defaults, exactly as a user types it (a fresh process,
the default verbosity)."""

import json
import os
import subprocess
import sys

import pytest

from bsi_keras.cli import SCHEDULES

# mixed_bsi steps at 3 milestones: 4 epochs is its shortest run (2 epochs is refused, naming
# --epochs, in tests/test_reliability.py).
EPOCHS = {"mixed_bsi": 4}
# cbs_warmup has no default trajectory: it needs the file the critical-batch probe writes
# (without it the run is refused naming --cbs, tests/test_seesaw_cli.py).
TRAJECTORY = "epoch,critical_batch\n0,100\n1,200\n"


def typed(*argv: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bsi_keras.run", *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("schedule", [*SCHEDULES, "all"])
def test_every_schedule_runs_on_its_defaults(schedule, tmp_path):
    epochs = str(EPOCHS.get(schedule, 2))
    extra = []
    if schedule == "cbs_warmup":
        (tmp_path / "cbs.csv").write_text(TRAJECTORY)
        extra = ["--cbs", "cbs.csv"]
    done = typed("--schedule", schedule, "--epochs", epochs, *extra, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    summaries = list((tmp_path / "runs").rglob("summary.json"))
    assert len(summaries) == (3 if schedule == "all" else 1)
    for path in summaries:
        summary = json.loads(path.read_text())
        assert summary["status"] == "finished" and summary["epochs_finished"] == int(epochs)


def test_the_progress_bar_prints_the_adaptive_run(tmp_path):
    done = typed("--schedule", "adaptive", "--epochs", "2", "--verbose", "1", cwd=tmp_path)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
