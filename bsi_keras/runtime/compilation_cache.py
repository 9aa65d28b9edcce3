"""Compile once per machine, not once per run: JAX's persistent compilation cache.

XLA compiles a train step for every new model, batch shape and backend version; a sweep
recompiles the same programs run after run. JAX can keep the compiled programs on disk
and load them in the next process instead (keyed by the program, the JAX/XLA versions and
the device), so a sweep's second run of the same model and shapes compiles nothing. On
this repository's 2-core CPU the first epoch of the MNIST CNN compiled for 5.4 s in a new
cache and 0.7 s from it. TensorFlow and PyTorch keep no such cache; there this does
nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

# ``--compile_cache`` takes a folder, or this word to turn the cache off.
OFF = "off"


def default_folder() -> Path:
    """``$XDG_CACHE_HOME/bsi_keras/jax`` (``~/.cache/bsi_keras/jax`` without it).

    Example:

    >>> default_folder().parts[-2:]
    ('bsi_keras', 'jax')
    """
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bsi_keras" / "jax"


def enable(folder: str | os.PathLike | None = None) -> Path | None:
    """Keep JAX's compiled programs in ``folder`` (default: `default_folder`).

    JAX sets its cache up at the process's first compilation, once: call this before
    anything is compiled (the command line does, before it builds a model).

    Args:
        folder: the cache folder, `OFF` to leave the cache off, or None for the default.

    Returns:
        The folder in use, or None where nothing was enabled (another backend, or `OFF`).
    """
    if keras.backend.backend() != "jax" or str(folder) == OFF:
        return None
    import jax

    path = Path(folder) if folder is not None else default_folder()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    # Small programs too: a train step of a small model compiles in well under JAX's default
    # threshold of one second on a GPU, and a run compiles dozens of such programs.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
