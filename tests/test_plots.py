"""matplotlib stays out of the process until a figure is drawn, on the user's backend if any."""

import os
import subprocess
import sys

import pytest


def python(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter with no display; return its stdout."""
    environment = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=environment
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_importing_the_package_needs_no_matplotlib():
    # Keras itself imports matplotlib.pyplot when it is installed (keras.src.visualization,
    # guarded by try/except ImportError), so `'matplotlib' in sys.modules` is True after
    # `import keras` whatever this package does. Making matplotlib unimportable shows that
    # no module of the package imports it at import time.
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import bsi_keras, bsi_keras.plots, bsi_keras.analysis\n"
        "print('imported')"
    )
    assert python(code) == "imported"


def test_importing_the_package_leaves_the_backend_unchosen():
    code = (
        "import matplotlib, bsi_keras, bsi_keras.plots, bsi_keras.analysis\n"
        "print(matplotlib.get_backend(auto_select=False))"
    )
    assert python(code) == "None"


@pytest.mark.parametrize(("env", "backend"), [({}, "agg"), ({"MPLBACKEND": "svg"}, "svg")])
def test_drawing_picks_agg_only_when_no_backend_was_chosen(env, backend):
    code = "from bsi_keras import plots; print(plots._pyplot().get_backend().lower())"
    assert python(code, **env) == backend
