"""Data-parallel training on two simulated CPU devices follows the single-device run."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from bsi_keras.run_folder import read_log
from bsi_keras.runtime import distribution

# Split the CPU into N devices before the backend starts, then run the command line.
SCRIPT = """
import os, sys
n = int(sys.argv[1])
if os.environ.get("KERAS_BACKEND") == "jax":
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
else:
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
from bsi_keras import run
sys.exit(run.main(sys.argv[2:]))
"""
FLAGS = [
    "--dataset",
    "mnist_sample",
    "--num_train",
    "400",
    "--num_test",
    "100",
    "--epochs",
    "3",
    "--batch_size",
    "20",
    "--lr",
    "0.01",
    "--verbose",
    "0",
]


def train(devices: int, folder) -> list[dict]:
    extra = ["--distribute"] if devices > 1 else []
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(devices), *FLAGS, *extra, "--filename", str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    if devices > 1:
        assert f"data-parallel over {devices} devices" in result.stdout
    return read_log(folder / "log.csv")


@pytest.mark.skipif(
    keras.backend.backend() not in distribution.SUPPORTED_BACKENDS, reason="JAX and TensorFlow only"
)
def test_two_devices_follow_one(tmp_path):
    """Same global batches, ghost batches whole on each device: the same trajectory.

    The two runs compute the same arithmetic, only in another order (gradients summed over
    replicas, or one program partitioned), so float32 rounding is the only difference:
    1e-3 relative over 25 updates leaves it room while any real difference (a ghost batch
    split across devices, per-replica batch sizes, a missing gradient reduction) moves the
    loss by far more. (With ``--max_physical_batch`` the two differ by design: one device
    updates the moving statistics micro-batch after micro-batch, replicas side by side.)
    """
    single, double = train(1, tmp_path / "one"), train(2, tmp_path / "two")
    for column in ("loss", "val_loss", "accuracy"):
        np.testing.assert_allclose(
            [float(r[column]) for r in double], [float(r[column]) for r in single], rtol=1e-3
        )
    assert [r["updates"] for r in double] == [r["updates"] for r in single]


def test_distribute_on_pytorch_is_refused_by_name(tmp_path):
    pytest.importorskip("torch")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bsi_keras.run",
            *FLAGS,
            "--distribute",
            "--filename",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": "torch"},
    )
    assert result.returncode == 2
    assert "argument --distribute: needs the jax or tensorflow backend, not torch" in result.stderr


# Ghost batch norm's per-ghost-batch moving statistics on two JAX devices: the layer sees
# the global batch, so the update is the one-device (the reference's sequential) update.
PER_GHOST_BATCH_SCRIPT = """
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import jax, keras, numpy as np
from bsi_keras.layers import GhostBatchNormalization
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
layer = GhostBatchNormalization(4, momentum=0.9, moving_statistics="per_ghost_batch")
model = keras.Sequential([keras.Input((3,)), layer])
model.compile(optimizer="sgd", loss="mse")
x = np.random.default_rng(0).normal(1, 2, (16, 3)).astype("float32")
model.train_on_batch(x, x)
mean, var = np.zeros(3), np.ones(3)
for start in range(0, 16, 4):
    chunk = x[start : start + 4]
    mean, var = 0.9 * mean + 0.1 * chunk.mean(0), 0.9 * var + 0.1 * chunk.var(0, ddof=1)
assert len(jax.devices()) == 2
np.testing.assert_allclose(np.asarray(layer.moving_mean), mean, rtol=1e-5, atol=1e-6)
np.testing.assert_allclose(np.asarray(layer.moving_variance), var, rtol=1e-5, atol=1e-6)
"""


def test_per_ghost_batch_statistics_on_two_jax_devices_are_the_one_device_update():
    pytest.importorskip("jax")
    result = subprocess.run(
        [sys.executable, "-c", PER_GHOST_BATCH_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": "jax"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
