"""bsi_keras asks TensorFlow for its oneDNN kernels unless the user's setting says otherwise."""

import os
import subprocess
import sys

from bsi_keras.runtime.cpu import prefer_onednn


def test_prefer_onednn_sets_the_variable_only_where_nobody_did(monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    assert prefer_onednn() and os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert not prefer_onednn() and os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"


def test_importing_bsi_keras_first_turns_onednn_on_in_tensorflow():
    environment = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    code = (
        "import bsi_keras\n"
        "from tensorflow.python.util import _pywrap_util_port\n"
        "print(_pywrap_util_port.IsMklEnabled())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**environment, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout.strip().splitlines()[-1] == "True", done.stderr
