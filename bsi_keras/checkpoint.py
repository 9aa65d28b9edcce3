"""Resumable checkpoints: every piece of state the rest of a run depends on, in one file.

A checkpoint holds the values of all model variables (weights, batch-norm statistics and
the state of every random generator, e.g. dropout's), all optimizer variables (step count,
learning rate, momentum buffers), and the driver's `RunState` as JSON (epoch, per-epoch logs,
learning-rate multiplier, data-order seed). It is written atomically: a kill during the
write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

FILENAME = "checkpoint.npz"


@dataclasses.dataclass
class RunState:
    """The driver's state of one run: all that a resumed run needs besides the variables.

    Saved as JSON in the checkpoint; `bsi_keras.experiment` reads
    ``next_epoch`` from it to record where a resumed run starts.

    Args:
        seed: seed of the per-epoch data order (and augmentation).
        next_epoch: 0-based epoch to run next.
        rows: one dict per finished epoch: the logs the callbacks saw, plus text fields such
            as ``schedule_reason``. Adaptive schedules decide from them.
        last_lr: the learning rate the driver last set, to notice a callback's change.
        lr_multiplier: the product of the changes callbacks (ReduceLROnPlateau) made to the
            learning rate; it multiplies the schedule's.

    Example:

    >>> state = RunState(seed=7)
    >>> RunState.from_dict(state.to_dict()) == state
    True
    """

    seed: int
    next_epoch: int = 0
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    last_lr: float | None = None
    lr_multiplier: float = 1.0

    @classmethod
    def new(cls, seed: int | None) -> RunState:
        """The state of a run that has not started; a random seed if ``seed`` is None."""
        return cls(int(np.random.SeedSequence().entropy % 2**31) if seed is None else seed)

    @property
    def updates(self) -> int:
        """Parameter updates of the finished epochs."""
        return int(self.rows[-1]["updates"]) if self.rows else 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (the checkpoint's ``state_json``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> RunState:
        """The state of `to_dict`, as every checkpoint so far holds it."""
        names = {f.name for f in dataclasses.fields(cls)}
        if set(saved) != names:
            raise ValueError(f"a run state has the keys {sorted(names)}, got {sorted(saved)}")
        return cls(**saved)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupt, or does not fit the model."""


def checkpoint_path(folder: str | os.PathLike) -> Path:
    """The checkpoint file inside ``folder``."""
    return Path(folder) / FILENAME


def save(folder: str | os.PathLike, model: keras.Model, state: RunState) -> Path:
    """Write the model's and optimizer's variables and ``state`` atomically.

    Args:
        folder: the folder to write ``checkpoint.npz`` into (created if needed).
        model: a compiled model; its optimizer's variables are saved too.
        state: the driver's state.

    Returns:
        The checkpoint's path.
    """
    path = checkpoint_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"model_{i:05d}": _value(v) for i, v in enumerate(model.variables)}
    optimizer = model.optimizer
    if optimizer is not None and optimizer.built:
        arrays.update({f"optimizer_{i:05d}": _value(v) for i, v in enumerate(optimizer.variables)})
    arrays["state_json"] = np.array(json.dumps(state.to_dict()))
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    return path


def load(folder: str | os.PathLike, model: keras.Model) -> RunState:
    """Restore a checkpoint written by `save` into ``model`` (and its optimizer).

    Args:
        folder: the folder holding ``checkpoint.npz``.
        model: a compiled model of the same architecture.

    Returns:
        The driver's state saved with it.

    Raises:
        CheckpointError: the file is missing, unreadable, or does not match the model.
    """
    path = checkpoint_path(folder)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    arrays = _read_arrays(path)
    state = _state(arrays.pop("state_json"), path)
    _assign("model", model.variables, arrays, path)
    optimizer_keys = [k for k in arrays if k.startswith("optimizer_")]
    if optimizer_keys:
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        _assign("optimizer", model.optimizer.variables, arrays, path)
    return state


def read_state(folder: str | os.PathLike) -> RunState | None:
    """The driver state of the checkpoint in ``folder`` without loading any weights.

    Returns:
        The state, or None if there is no checkpoint.

    Raises:
        CheckpointError: the checkpoint is truncated or corrupt.
    """
    path = checkpoint_path(folder)
    if not path.is_file():
        return None
    return _state(_read_arrays(path, ("state_json",))["state_json"], path)


def _read_arrays(path: Path, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as f:
            return {key: f[key] for key in (keys or f.files)}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise CheckpointError(
            f"{path} is truncated or corrupt ({type(error).__name__}: {error}); "
            "delete it to start the run again from scratch"
        ) from error


def _state(saved: np.ndarray, path: Path) -> RunState:
    try:
        return RunState.from_dict(json.loads(str(saved)))
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path} holds an unreadable run state: {error}") from error


def _value(variable: keras.Variable) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(variable))


def _assign(
    prefix: str, variables: list[keras.Variable], arrays: dict[str, np.ndarray], path: Path
) -> None:
    keys = sorted(k for k in arrays if k.startswith(prefix + "_"))
    if len(keys) != len(variables):
        raise CheckpointError(
            f"{path} holds {len(keys)} {prefix} variables but the {prefix} has "
            f"{len(variables)}: it was written for a different {prefix}"
        )
    for key, variable in zip(keys, variables):
        value = arrays[key]
        if tuple(value.shape) != tuple(variable.shape):
            raise CheckpointError(
                f"{path}: {prefix} variable {variable.path} has shape {tuple(variable.shape)} "
                f"but the checkpoint holds {tuple(value.shape)}"
            )
        variable.assign(value)
