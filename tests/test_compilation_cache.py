"""JAX's persistent compilation cache: on where JAX runs, off by flag, a no-op elsewhere."""

import os
import subprocess
import sys

import keras
import pytest

from bsi_keras.runtime import compilation_cache


def test_the_default_folder_is_under_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compilation_cache.default_folder() == tmp_path / "bsi_keras" / "jax"


def test_off_enables_nothing(tmp_path):
    assert compilation_cache.enable(compilation_cache.OFF) is None


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="the no-op of other backends")
def test_other_backends_keep_no_cache(tmp_path):
    assert compilation_cache.enable(tmp_path / "cache") is None
    assert not (tmp_path / "cache").exists()


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX's cache")
def test_jax_writes_compiled_programs_to_the_folder(tmp_path):
    # A fresh process: JAX sets its cache up at a process's first compilation, once.
    script = (
        "import sys, jax, numpy as np\n"
        "from bsi_keras.runtime import compilation_cache\n"
        "assert compilation_cache.enable(sys.argv[1]) is not None\n"
        "jax.jit(lambda a: a * 3.0 + 1.0)(np.arange(7.0)).block_until_ready()\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, check=True)
    assert any(tmp_path.iterdir()), "the compiled program was cached"
