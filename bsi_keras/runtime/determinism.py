"""Deterministic kernels on each backend (the run-to-run reproducibility switch).

On CPU, TensorFlow and JAX already give identical results for the same seed with this
package's driver (the data order, augmentation and dropout are all seeded); on GPUs some
kernels (cuDNN convolutions' backward passes, scatter-adds, reductions with atomics) are
not deterministic unless asked.
"""

from __future__ import annotations

import os

import keras


def enable_determinism() -> str:
    """Ask the backend for deterministic kernels; return what was done, for the run config.

    Call it before building the model. On JAX it must come before JAX first touches a
    GPU, since XLA reads its flags once.

    Example:

    >>> enable_determinism() != ""
    True
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        return "tf.config.experimental.enable_op_determinism()"
    if backend == "jax":
        flag = "--xla_gpu_deterministic_ops=true"
        if flag not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
        return f"XLA_FLAGS={os.environ['XLA_FLAGS']}"
    if backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True)
        return "torch.use_deterministic_algorithms(True)"
    return f"nothing known for the {backend} backend"
