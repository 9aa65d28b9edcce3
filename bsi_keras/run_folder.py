"""The run folder: one folder per run, written as it goes, never silently overwritten.

Layout:

- ``config.json``: every setting, library versions, backend, device, seed, data used, and
  the record of every resumption;
- ``log.csv``: one row per finished epoch (rewritten atomically after each epoch);
- ``summary.json``: how the run ended, final and best test accuracy, updates, seconds;
- ``checkpoint.npz``: the resumable checkpoint (see `bsi_keras.checkpoint`);
- ``weights/epoch_NNN.keras``: per-epoch `.keras` snapshots of the model where asked
  (``save_every_epoch``); run folders written before them hold ``epoch_NNN.weights.h5``;
- ``tensorboard/``: TensorBoard logs where asked;
- ``.lock``: while a process writes the folder (`bsi_keras.locks.FolderLock`);
- ``.claim``: while a sweep worker owns the run (`bsi_keras.cli.claims`).

`RunFolder` is the one place that spells these names: readers (plots, reports, analysis,
studies, benchmarks) ask it for paths instead of joining strings.

This module is longer than 400 lines because it is that one place: every file of a run
folder, its format and its atomic writing (the log, reconciled with the checkpoint on
resume, the summary, the snapshots) share the folder's helpers and errors.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
import platform
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from bsi_keras import checkpoint

LEADING_COLUMNS = (
    "epoch",
    "phase",
    "batch_size",
    "learning_rate",
    "updates",
    "epoch_updates",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "epoch_seconds",
    "compile_seconds",
    "train_traces",
    "noise_scale",
)
# Statuses a resume would not change (a diverged run diverges again from its checkpoint).
ENDED = ("finished", "stopped", "diverged")
# The sweep worker's claim of a run (`bsi_keras.cli.claims`).
CLAIM_NAME = ".claim"
# Files a run leaves behind before its config.json exists (a kill during its creation): a
# folder holding only these may be started again.
LEFTOVERS = (".lock", CLAIM_NAME, ".write_test", "config.json.tmp")
# Columns of the machine and the process rather than of the training: a resumed run compiles
# its steps again, and seconds are never the same twice.
TIMING_COLUMNS = (
    "epoch_seconds",
    "compile_seconds",
    "train_traces",
    "ahead_traces",
    "ahead_compile_seconds",
)


class RunFolderError(RuntimeError):
    """The run folder cannot be used as asked (exists, unwritable, full, or corrupt)."""


class RunFolder:
    """A run's folder on disk.

    Args:
        path: the folder.

    Example:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     folder = RunFolder.create(Path(d) / "run", {"lr": 0.1})
    ...     sorted(p.name for p in folder.path.iterdir())
    ['config.json']
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def log_path(self) -> Path:
        return self.path / "log.csv"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def checkpoint_path(self) -> Path:
        """The resumable checkpoint (named by `bsi_keras.checkpoint`, which writes it)."""
        return self.path / checkpoint.FILENAME

    @property
    def weights_dir(self) -> Path:
        """The folder of per-epoch weights; it exists only for runs that keep them."""
        return self.path / "weights"

    @property
    def tensorboard_dir(self) -> Path:
        """The TensorBoard log directory (written where asked)."""
        return self.path / "tensorboard"

    @classmethod
    def create(
        cls, path: str | os.PathLike, config: Mapping[str, Any], min_free_bytes: int = 0
    ) -> RunFolder:
        """Create a new run folder and write ``config.json``.

        Raises:
            RunFolderError: the folder exists and is not empty (it is never overwritten),
                cannot be written, or its disk has less than ``min_free_bytes`` free.
        """
        folder = cls(path)
        if folder.path.exists() and not folder.path.is_dir():
            raise RunFolderError(f"{folder.path} exists and is not a folder; choose another name")
        if folder.path.exists() and any(p.name not in LEFTOVERS for p in folder.path.iterdir()):
            raise RunFolderError(
                f"run folder {folder.path} already exists and is not empty; choose another "
                "--filename, or continue it with --resume"
            )
        try:
            folder.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunFolderError(f"cannot create run folder {folder.path}: {error}") from error
        folder.check_writable(min_free_bytes)
        folder.write_config({**config, "created": _now(), "environment": environment()})
        return folder

    @classmethod
    def open_existing(cls, path: str | os.PathLike) -> RunFolder:
        """Open a run folder to resume it.

        Raises:
            RunFolderError: there is no readable ``config.json``.
        """
        folder = cls(path)
        folder.read_config()
        return folder

    def check_writable(self, min_free_bytes: int = 0) -> None:
        """Fail now, not after hours of training, if the folder cannot take the run."""
        probe = self.path / ".write_test"
        try:
            probe.write_bytes(b"0" * 1024)
            probe.unlink()
        except OSError as error:
            raise RunFolderError(f"run folder {self.path} is not writable: {error}") from error
        free = shutil.disk_usage(self.path).free
        if free < min_free_bytes:
            raise RunFolderError(
                f"only {free / 2**20:.0f} MiB free under {self.path}, the run needs about "
                f"{min_free_bytes / 2**20:.0f} MiB for its checkpoints and logs"
            )

    def read_config(self) -> dict[str, Any]:
        """The run's ``config.json``.

        Raises:
            RunFolderError: there is none (saying what to do with a half-created folder),
                or it is unreadable or not a JSON object.
        """
        if not self.path.is_dir():
            raise RunFolderError(f"{self.path} is not a run folder (not a folder)")
        try:
            config = json.loads(self.config_path.read_text())
        except FileNotFoundError:
            raise RunFolderError(self._no_config()) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RunFolderError(f"{self.config_path} is corrupt: {error}") from error
        if not isinstance(config, dict):
            raise RunFolderError(f"{self.config_path} is corrupt: not a JSON object")
        return config

    def _no_config(self) -> str:
        if all(p.name in LEFTOVERS for p in self.path.iterdir()):
            return (
                f"{self.path} has no config.json: its run was stopped before it started; "
                f"start it again with --filename {self.path}"
            )
        return f"{self.path} is not a run folder (no config.json)"

    def write_config(self, config: Mapping[str, Any]) -> None:
        _write_atomic(self.config_path, json.dumps(config, indent=2, default=str) + "\n")

    def record_resumption(self, from_epoch: int) -> None:
        """Append when and from which epoch the run was resumed to ``config.json``."""
        config = self.read_config()
        config.setdefault("resumptions", []).append(
            {"at": _now(), "from_epoch": from_epoch, "environment": environment()}
        )
        self.write_config(config)

    def snapshot_path(self, epoch: int) -> Path:
        """The `.keras` snapshot of the model after 1-based ``epoch`` (0: the initial model)."""
        return self.path / "weights" / f"epoch_{epoch:03d}.keras"

    def weights_path(self, epoch: int) -> Path:
        """The weights of ``epoch`` in a run folder written before `.keras` snapshots."""
        return self.path / "weights" / f"epoch_{epoch:03d}.weights.h5"

    def save_snapshot(self, model: keras.Model, epoch: int) -> Path:
        """Write ``model`` to `snapshot_path` of ``epoch``, atomically; return the path."""
        path = self.snapshot_path(epoch)
        path.parent.mkdir(exist_ok=True)
        # Written aside and then renamed, so that an interrupted save leaves no truncated
        # snapshot (Keras insists on the .keras suffix).
        temporary = path.with_name(f"{path.stem}.tmp.keras")
        model.save(temporary)
        os.replace(temporary, path)
        return path

    def snapshot_callback(self) -> keras.callbacks.Callback:
        """The callback that saves a `.keras` snapshot after every epoch."""
        return Snapshots(self)

    def log_callback(self) -> RunLog:
        """The callback that keeps ``log.csv`` up to date (reconciled with the checkpoint)."""
        return RunLog(self.log_path, checkpoint_dir=self.path)

    def read_log(self) -> list[dict[str, str]]:
        """The rows of ``log.csv`` (strings), or [] if there is none yet."""
        return read_log(self.log_path)

    def read_summary(self) -> dict[str, Any]:
        """The run's ``summary.json``.

        Raises:
            RunFolderError: the run has no summary yet (it never ended) or it is corrupt.
        """
        try:
            summary = json.loads(self.summary_path.read_text())
        except FileNotFoundError:
            raise RunFolderError(f"{self.path} has no summary.json (not ended yet)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RunFolderError(f"{self.summary_path} is corrupt: {error}") from error
        if not isinstance(summary, dict) or "status" not in summary:
            raise RunFolderError(f"{self.summary_path} is corrupt: no status")
        return summary

    def status(self) -> str | None:
        """None if the run never started (no ``config.json``), ``"started"`` if it has no
        readable summary yet, else its summary's status (``finished``, ``interrupted``, ...)."""
        if not self.config_path.is_file():
            return None
        try:
            return str(self.read_summary()["status"])
        except RunFolderError:
            return "started"

    def write_summary(self, history: keras.callbacks.History, **extra: Any) -> dict[str, Any]:
        """Write ``summary.json`` from the run's history; return it.

        Non-finite numbers (a diverged run's loss) are written as ``null``: the file is
        strict JSON.
        """
        summary = _finite({**summarize(history), **extra, "written": _now()})
        text = json.dumps(summary, indent=2, default=str, allow_nan=False)
        _write_atomic(self.summary_path, text + "\n")
        return summary


class RunLog(keras.callbacks.Callback):
    """Keeps ``log.csv``: one row per finished epoch, rewritten atomically every epoch.

    Rows already in the file are kept, except those of epochs that run again (after a
    resume from an earlier checkpoint), so the log never holds an epoch twice. The epoch
    column counts from 1. Text columns (``schedule_reason``) come from the driver's
    ``on_epoch_text`` call before each ``on_epoch_end``: Keras's logs carry numbers only.

    Args:
        path: the ``log.csv``.
        checkpoint_dir: the folder of the run's checkpoint: on a resume, the log is
            reconciled with the rows the checkpoint holds (`reconcile`).
    """

    def __init__(self, path: str | os.PathLike, checkpoint_dir: str | os.PathLike | None = None):
        super().__init__()
        self.path = Path(path)
        self.checkpoint_dir = checkpoint_dir
        self.rows: list[dict[str, Any]] = []
        self.text: dict[str, str] = {}

    def on_train_begin(self, logs: dict | None = None) -> None:
        state = checkpoint.read_state(self.checkpoint_dir) if self.checkpoint_dir else None
        saved = state.rows if state else []
        try:
            rows = read_log(self.path)
        except RunFolderError as error:
            if not saved:
                raise
            print(f"note: {error}", file=sys.stderr)
            rows = []
        self.rows = reconcile(rows, saved)
        if self.rows != rows:
            print(
                f"note: {self.path} did not hold the {len(saved)} epochs of the checkpoint; "
                "rewritten from the checkpoint's rows",
                file=sys.stderr,
            )
            _write_atomic(self.path, format_log(self.rows))

    def on_epoch_text(self, epoch: int, text: dict[str, str]) -> None:
        self.text = dict(text)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.rows = [r for r in self.rows if int(r["epoch"]) <= epoch]
        self.rows.append({"epoch": epoch + 1, **(logs or {}), **self.text})
        self.text = {}
        _write_atomic(self.path, format_log(self.rows))


class Snapshots(keras.callbacks.Callback):
    """Saves the model to `RunFolder.snapshot_path` after every epoch (counted from 1).

    Args:
        folder: the run folder.
    """

    def __init__(self, folder: RunFolder):
        super().__init__()
        self.folder = folder

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.folder.save_snapshot(self.model, epoch + 1)


def format_log(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as CSV text: the known columns first, then any others alphabetically."""
    keys = {k for row in rows for k in row}
    columns = [c for c in LEADING_COLUMNS if c in keys] + sorted(keys - set(LEADING_COLUMNS))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _format_value(row.get(k, "")) for k in columns})
    return buffer.getvalue()


def reconcile(
    log_rows: Sequence[Mapping[str, str]], saved: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The log of a resumed run: ``log_rows`` if they agree with the checkpoint's rows
    ``saved`` (epochs 1 to ``len(saved)``), else the checkpoint's rows followed by the log's
    later rows (the checkpoint wins).

    Example:

    >>> reconcile([], [{"loss": 0.5}])
    [{'epoch': '1', 'loss': '0.5'}]
    """
    expected = (
        list(
            csv.DictReader(
                io.StringIO(format_log([{"epoch": i + 1, **row} for i, row in enumerate(saved)]))
            )
        )
        if saved
        else []
    )
    agree = len(log_rows) >= len(expected) and all(
        all(log_row.get(k, "") == v for k, v in row.items())
        for log_row, row in zip(log_rows, expected)
    )
    if agree:
        return [dict(row) for row in log_rows]
    return expected + [dict(row) for row in log_rows[len(expected) :]]


def read_log(path: str | os.PathLike) -> list[dict[str, str]]:
    """Read a ``log.csv``; [] if it does not exist.

    Raises:
        RunFolderError: the file is not a log this package wrote (e.g. truncated).
    """
    path = Path(path)
    if not path.is_file():
        return []
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as error:
        raise RunFolderError(f"{path} is corrupt: {error}") from None
    if rows and ("epoch" not in rows[0] or any(None in r or None in r.values() for r in rows)):
        raise RunFolderError(f"{path} is corrupt: rows do not match its header")
    return rows


def summarize(history: keras.callbacks.History) -> dict[str, Any]:
    """Final and best test accuracy, updates and seconds of a run's history."""
    h = history.history
    accuracy = h.get("val_accuracy", [])
    finite = [a for a in accuracy if math.isfinite(a)]
    return {
        "status": getattr(history, "status", "finished"),
        "epochs_finished": len(history.epoch),
        "final_val_accuracy": accuracy[-1] if accuracy else None,
        "best_val_accuracy": max(finite) if finite else None,
        "best_epoch": (accuracy.index(max(finite)) + 1) if finite else None,
        "final_val_loss": h.get("val_loss", [None])[-1],
        "final_loss": h.get("loss", [None])[-1],
        "total_updates": int(h["updates"][-1]) if h.get("updates") else 0,
        "train_seconds": float(np.sum(h.get("epoch_seconds", []))),
        "compile_seconds": float(np.sum(h.get("compile_seconds", []))),
        "train_traces": int(np.sum(h.get("train_traces", []))),
    }


def environment() -> dict[str, Any]:
    """Library versions, backend and devices, for the record."""
    import scipy

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "cpu_count": os.cpu_count(),
        "devices": _devices(),
    }
    backend_module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
    name = backend_module.get(keras.backend.backend())
    if name:
        info[name] = __import__(name).__version__
    return info


def _devices() -> list[str]:
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_logical_devices()]
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices()]
    if backend == "torch":
        import torch

        return ["cuda"] if torch.cuda.is_available() else ["cpu"]
    return []


def _format_value(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}" if not value.is_integer() or abs(value) >= 1e15 else int(value)
    return value


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float (in dicts and lists) as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
