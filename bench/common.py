"""What the benchmarks share: interleaved timing, spread, and the JSON they write.

This machine is shared and noisy, so a benchmark never compares absolute times taken at
different moments: it runs its contenders in turn within one process, several rounds (the
order reversed every other round), and reports the median and the spread of the per-round
ratios.

Import it after setting ``KERAS_BACKEND``: it imports Keras.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bsi_keras.runtime.cpu import prefer_onednn

prefer_onednn()  # what `import bsi_keras` does, before Keras imports TensorFlow

import keras  # noqa: E402
import numpy as np  # noqa: E402

# Where results go: bench/results, or $BENCH_RESULTS (the tests write elsewhere).
RESULTS = Path(os.environ.get("BENCH_RESULTS", Path(__file__).parent / "results"))


def timed_round(
    contenders: Mapping[str, Callable[[], Any]], reverse: bool = False
) -> dict[str, float]:
    """Run every contender once, in turn (``reverse``: last first); wall seconds of each."""
    seconds = {}
    for name in list(contenders)[:: -1 if reverse else 1]:
        start = time.perf_counter()
        contenders[name]()
        seconds[name] = time.perf_counter() - start
    return seconds


def interleave(contenders: Mapping[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Wall seconds of every contender in every round (`timed_round`, odd rounds reversed).

    Args:
        contenders: name -> a function doing one unit of work (e.g. one epoch).
        rounds: how many rounds.

    Returns:
        name -> one time per round.
    """
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for index in range(rounds):
        for name, seconds in timed_round(contenders, reverse=index % 2 == 1).items():
            times[name].append(seconds)
    return times


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, minimum and maximum of ``values``."""
    return {
        "median": float(np.median(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
    }


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> dict:
    """Spread of the per-round ratios (rounds pair the two lists), with the ratios."""
    ratios = [a / b for a, b in zip(numerators, denominators, strict=True)]
    return {**spread(ratios), "rounds": [round(r, 4) for r in ratios]}


def fmt(summary: Mapping[str, float], digits: int = 2, scale: float = 1.0) -> str:
    """``median (min to max)`` of a `spread`, each times ``scale``."""
    median, low, high = (scale * summary[key] for key in ("median", "min", "max"))
    return f"{median:.{digits}f} ({low:.{digits}f} to {high:.{digits}f})"


# Read at import, before any benchmark work: `machine` reports it as the load before.
LOAD_BEFORE = os.getloadavg() if hasattr(os, "getloadavg") else None
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")
# The settings that change which kernels run and on how many threads.
ENVIRONMENT = (
    "KERAS_BACKEND",
    "TF_ENABLE_ONEDNN_OPTS",
    "ONEDNN_MAX_CPU_ISA",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "XLA_FLAGS",
)


def machine() -> dict[str, Any]:
    """Where a result was measured: CPU model and instruction sets, cores, threads, load.

    TensorFlow's speed on a CPU depends on the CPU kind more than PyTorch's: its oneDNN
    kernels are on by default only on CPUs with AVX-512 VNNI or newer (port.cc), Eigen's
    otherwise. So every result names the CPU, its AVX2 / AVX-512 / AMX flags, oneDNN's
    setting and the thread settings, and the 1/5/15-minute load averages before (at import)
    and after (now) the measurement.
    """
    cpu = cpu_info()
    info: dict[str, Any] = {
        "cpu_model": cpu["model"],
        "cpu_flags": cpu["flags"],
        "kind": machine_kind(cpu["model"], cpu["flags"], os.environ.get("ONEDNN_MAX_CPU_ISA")),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "environment": {name: os.environ.get(name) for name in ENVIRONMENT},
        "threads": threads(),
        "load_average_before": _rounded(LOAD_BEFORE),
        "load_average_after": _rounded(os.getloadavg() if LOAD_BEFORE else None),
    }
    if "tensorflow" in sys.modules:
        info["onednn"] = onednn_enabled()
    for module in ("keras", "tensorflow", "jax", "torch"):
        info[f"{module}_version"] = _version(module)
    return info


def cpu_info(path: str = "/proc/cpuinfo") -> dict[str, Any]:
    """The CPU's model name and which of `ISA_FLAGS` it has (from /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    if os.path.exists(path):
        text = Path(path).read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        model = found.group(1).strip() if found else model
        found = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
        flags = set(found.group(1).split()) if found else set()
    return {"model": model, "flags": {flag: flag in flags for flag in ISA_FLAGS}}


def machine_kind(model: str, flags: Mapping[str, bool], onednn_isa: str | None = None) -> str:
    """A short name of a CPU kind: its model and widest vector instructions.

    ``onednn_isa``: ``ONEDNN_MAX_CPU_ISA``, which makes oneDNN act as on an older CPU (an
    emulation, named as such).

    Example:

    >>> machine_kind("AMD EPYC 7763 64-Core Processor", {"avx2": True, "avx512f": False})
    'AMD EPYC 7763 64-Core Processor, AVX2'
    """
    widest = next((name for flag, name in _ISA_NAMES if flags.get(flag)), "no AVX2")
    capped = f" (oneDNN capped at {onednn_isa})" if onednn_isa else ""
    return f"{model}, {widest}{capped}"


_ISA_NAMES = (("amx_tile", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))


def threads() -> dict[str, int | None]:
    """Thread settings of the imported libraries (0 is TensorFlow's "as many as cores")."""
    settings: dict[str, int | None] = {}
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        settings["tf_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        settings["tf_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    if "torch" in sys.modules:
        settings["torch"] = sys.modules["torch"].get_num_threads()
    return settings


def onednn_enabled() -> bool:
    """Whether TensorFlow's oneDNN kernels are on (its default depends on the CPU)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def _rounded(load: Sequence[float] | None) -> list[float] | None:
    return None if load is None else [round(value, 2) for value in load]


def accelerator() -> str | None:
    """The name of the first GPU that JAX or PyTorch (whichever is imported) sees, or None."""
    if "jax" in sys.modules:
        gpus = [d for d in sys.modules["jax"].devices() if d.platform != "cpu"]
        return gpus[0].device_kind if gpus else None
    torch = sys.modules.get("torch")
    return torch.cuda.get_device_name() if torch and torch.cuda.is_available() else None


def write_result(name: str, payload: Mapping[str, Any], per_machine: bool = False) -> Path:
    """Write ``bench/results/<name>.json`` (with `machine` added); return its path.

    ``per_machine``: the file is ``<name>@<machine kind>.json``, so that results of each kind
    of machine stay side by side (the table keeps a row per kind) and a run on one kind
    never overwrites another's.
    """
    RESULTS.mkdir(exist_ok=True)
    where = machine()
    stem = f"{name}@{slug(where['kind'])}" if per_machine else name
    path = RESULTS / f"{stem}.json"
    record = {"benchmark": name, "device": accelerator(), **payload, "machine": where}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def slug(text: str) -> str:
    """``text`` as a file name part: lower-case words joined by dashes.

    Example:

    >>> slug("Intel(R) Xeon(R) Processor, AMX")
    'intel-r-xeon-r-processor-amx'
    """
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))


def _version(module: str) -> str | None:
    """The version of an imported ``module``, None where it was not imported."""
    loaded = sys.modules.get(module)
    return getattr(loaded, "__version__", None) if loaded else None


class EpochClock(keras.callbacks.Callback):
    """Times every epoch of a (`bsi_keras.fit`) run, and runs other contenders in between.

    An epoch's time runs from the end of the work done after the previous epoch to this
    epoch's end, so it holds everything the schedule driver does per epoch. After each
    epoch, every function of ``others`` runs once (`timed_round`, reversed after odd
    epochs). ``times`` maps ``"epoch"`` and each name of ``others`` to its times.

    Args:
        others: name -> a function doing the same work as one epoch.
    """

    def __init__(self, others: Mapping[str, Callable[[], Any]] | None = None):
        super().__init__()
        self.others = dict(others or {})
        self.times: dict[str, list[float]] = {"epoch": [], **{name: [] for name in self.others}}
        self.mark = time.perf_counter()

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.mark = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.times["epoch"].append(time.perf_counter() - self.mark)
        for name, seconds in timed_round(self.others, reverse=epoch % 2 == 1).items():
            self.times[name].append(seconds)
        self.mark = time.perf_counter()
