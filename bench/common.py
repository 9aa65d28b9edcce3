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
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

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


def machine() -> dict[str, Any]:
    """Where a result was measured: host, cores, load, library versions."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    for module in ("keras", "tensorflow", "jax", "torch"):
        info[f"{module}_version"] = _version(module)
    return info


def accelerator() -> str | None:
    """The name of the first GPU that JAX or PyTorch (whichever is imported) sees, or None."""
    if "jax" in sys.modules:
        gpus = [d for d in sys.modules["jax"].devices() if d.platform != "cpu"]
        return gpus[0].device_kind if gpus else None
    torch = sys.modules.get("torch")
    return torch.cuda.get_device_name() if torch and torch.cuda.is_available() else None


def write_result(name: str, payload: Mapping[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` (with `machine` added); return its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {"benchmark": name, "device": accelerator(), **payload, "machine": machine()}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


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
