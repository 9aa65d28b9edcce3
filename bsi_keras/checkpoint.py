"""Resumable checkpoints: every piece of state the rest of a run depends on, in one file.

A checkpoint holds the values of all model variables (weights, batch-norm statistics and
the state of every random generator, e.g. dropout's), all optimizer variables (step count,
learning rate, momentum buffers), and the driver's `RunState` as JSON (epoch, per-epoch logs,
learning-rate multiplier, data-order seed). It is written atomically: a kill during the
write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import keras
import numpy as np

from bsi_keras.driver.state import RunState

FILENAME = "checkpoint.npz"


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
