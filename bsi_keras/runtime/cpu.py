"""TensorFlow's oneDNN CPU kernels, on every x86 CPU rather than only on the newest.

TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512 VNNI or newer
(Intel Cascade Lake on) and runs Eigen's kernels elsewhere, e.g. on AVX2 CPUs such as AMD
EPYC. On the ghost-BN MNIST CNN Eigen's convolution gradients are the difference between
half PyTorch eager's speed and one and a half times it (``bench/step_profile.py`` with
``TF_ENABLE_ONEDNN_OPTS=0`` against ``=1 ONEDNN_MAX_CPU_ISA=AVX2``; README "Performance").
"""

from __future__ import annotations

import os
import sys


def prefer_onednn() -> bool:
    """Ask TensorFlow for its oneDNN kernels unless ``TF_ENABLE_ONEDNN_OPTS`` says otherwise.

    TensorFlow reads the variable once, when it is imported: this must run first, so
    ``bsi_keras`` calls it before importing Keras. Returns whether the variable was set
    here (False: the user's setting stands, or TensorFlow was already imported).
    """
    if "TF_ENABLE_ONEDNN_OPTS" in os.environ or "tensorflow" in sys.modules:
        return False
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
    return True
