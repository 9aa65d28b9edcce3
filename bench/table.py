"""The README's performance table, built from the benchmarks' JSON files.

Reads ``bench/results/*.json`` (or ``--results``) and prints a Markdown table: one row per
measured figure, its goal, and where it was measured (the CPU model: a benchmark that writes
one file per machine kind, ``<name>@<kind>.json``, has one row per kind). A benchmark
without a result file is left out; paste the output into the README rather than typing
numbers.

    python bench/table.py [--results bench/results]
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

HEADER = (
    "| benchmark | setting | result: median (min to max) over rounds | goal | measured on |\n"
    "| --- | --- | --- | --- | --- |"
)
Row = tuple[str, str, str, str]  # benchmark, setting, result, goal
# gpu_wrn_bfloat16.json is a gpu_wrn result, payoff_drop_remainder.json and
# payoff_mnist_sample.json (the CPU mode) payoff ones, driver_overhead_physical_batch.json
# a driver_overhead one, background_compile_jax.json a background_compile one
VARIANT_SUFFIX = re.compile(
    r"(_mnist_sample)?(_b?float16)?(_drop_remainder)?(_physical_batch)?(_jax|_tensorflow)?$"
)


def spread(summary: dict[str, float], digits: int = 2, scale: float = 1.0, unit: str = "") -> str:
    """``median (min to max)`` with ``unit``."""
    median, low, high = (scale * summary[k] for k in ("median", "min", "max"))
    return f"{median:.{digits}f}{unit} ({low:.{digits}f} to {high:.{digits}f})"


def driver_overhead(result: dict[str, Any]) -> Iterator[Row]:
    """The driver against plain ``model.fit``."""
    phases = " -> ".join(str(p["batch_size"]) for p in result["schedule"]["phases"])
    setting = f"{sum(p['epochs'] for p in result['schedule']['phases'])} epochs, batch {phases}"
    compiled = result["compile_seconds"]
    physical = result.get("max_physical_batch")
    accumulated = f", driver: micro-batches of {physical} accumulated" if physical else ""
    yield (
        "schedule driver overhead over plain `model.fit`",
        f"{setting}, {result['train_examples']:,} {result['dataset']} images, {result['model']}"
        + accumulated,
        f"{spread(result['overhead_cold'], 1, 100, ' %')} of wall time incl. compile; "
        f"{spread(result['overhead_warm'], 1, 100, ' %')} warm (all traced); the driver "
        f"logged {spread(compiled['driver_logged'], 1, unit=' s')} of compile",
        "<= 3 %",
    )


def torch_throughput(result: dict[str, Any]) -> Iterator[Row]:
    """bsi_keras and plain ``model.fit`` against PyTorch eager on the MNIST CNN."""
    for row in result["rows"]:
        setting = f"{result['model']}, batch {row['batch_size']}, one epoch of {row['images']:,}"
        yield (
            "images/s, `bsi_keras.fit` / PyTorch eager",
            setting,
            f"{spread(row['bsi_keras_over_torch'], unit='x')} "
            f"(plain `model.fit`: {spread(row['keras_fit_over_torch'], unit='x')})",
            ">= 1.0x",
        )


def epoch_time_vs_batch(result: dict[str, Any]) -> Iterator[Row]:
    """Epoch seconds per batch size."""
    times = ", ".join(
        f"{r['batch_size']}: {r['epoch_seconds']['median']:.2f} s" for r in result["rows"]
    )
    yield (
        "epoch time vs batch size",
        f"{result['model']}, {result['train_examples']:,} {result['dataset']} images",
        f"{times}; within {result['tolerance']:.0%} of the fastest from batch "
        f"{result['saturates_at']}",
        "where larger batches stop paying off",
    )


def gpu_wrn(result: dict[str, Any]) -> Iterator[Row]:
    """WRN-16-4, bsi_keras on JAX against PyTorch eager on one device."""
    for row in result["rows"]:
        fraction = row["fraction_of_peak"]
        yield (
            "images/s, `bsi_keras.fit` (JAX) / PyTorch eager",
            f"{result['model']}, batch {row['batch_size']}, {result['precision']}",
            f"{spread(row['bsi_keras_over_torch'], unit='x')}; fraction of "
            f"{result['peak_tflops']:g} TFLOP/s: {fraction['bsi_keras']['median']:.3f} vs "
            f"{fraction['torch']['median']:.3f}",
            ">= 1.0x",
        )


def payoff(result: dict[str, Any]) -> Iterator[Row]:
    """Wall-clock of the batch-size schedules over decay_lr."""
    milestones = "/".join(str(m) for m in result["milestones"])
    physical = result.get("max_physical_batch")
    cpu_mode = result["dataset"] == "mnist_sample"
    traces = (
        f", train-step traces {result['schedules']['increase_bs']['train_traces']} vs "
        f"{result['schedules']['decay_lr']['train_traces']}"
        if "train_traces" in result["schedules"]["decay_lr"]
        else ""
    )
    yield (
        "wall-clock, increase_bs / decay_lr (hybrid / decay_lr)",
        f"{result['model']}, {result['epochs']} epochs, milestones {milestones}, "
        f"{result['train_examples']:,} {result['dataset']} images, {result['precision']}"
        + (", last partial batch dropped" if result.get("drop_remainder") else "")
        + (f", micro-batches of {physical}" if physical else ""),
        f"{spread(result['increase_bs_over_decay_lr'], unit='x')} "
        f"({spread(result['hybrid_over_decay_lr'], unit='x')}); training alone "
        f"{_median_ratio(result, 'increase_bs', 'train_seconds'):.2f}x "
        f"({_median_ratio(result, 'hybrid', 'train_seconds'):.2f}x), compile "
        f"{_median(result, 'increase_bs', 'compile_seconds'):.{1 if cpu_mode else 0}f} s vs "
        f"{_median(result, 'decay_lr', 'compile_seconds'):.{1 if cpu_mode else 0}f} s{traces}",
        "compile <= 1.2x decay_lr's (CPU)" if cpu_mode else "<= 0.5x (GPU)",
    )


def background_compile(result: dict[str, Any]) -> Iterator[Row]:
    """The phase changes' compile seconds with the next shape compiled in the background."""
    phases = " -> ".join(str(batch) for _, batch in result["schedule"])
    epochs = result["schedule"][0][0]
    variants = result["variants"]
    background, first_batch = variants["background"], variants["at_first_batch"]
    yield (
        "compile seconds at the phase changes, next shape compiled in the background / at "
        "its first batch",
        f"{result['model']}, batch {phases} ({epochs} epoch{'s' * (epochs != 1)} each), "
        f"micro-batches of at most {result['max_physical_batch']}, "
        f"{result['train_examples']:,} {result['dataset']} images",
        f"{spread(result['phase_change_compile_background_over_at_first_batch'], unit='x')}: "
        f"{background['phase_change_compile_seconds']['median']:.1f} s vs "
        f"{first_batch['phase_change_compile_seconds']['median']:.1f} s, the background "
        f"thread {background['background_seconds']['median']:.1f} s; whole run "
        f"{spread(result['wall_background_over_at_first_batch'], unit='x')}",
        "the phase change waits for no compilation",
    )


def _median(result: dict[str, Any], schedule: str, key: str) -> float:
    return result["schedules"][schedule][key]["median"]


def _median_ratio(result: dict[str, Any], schedule: str, key: str) -> float:
    """Median ``key`` of ``schedule`` over decay_lr's."""
    return _median(result, schedule, key) / _median(result, "decay_lr", key)


BENCHMARKS: dict[str, Callable[[dict[str, Any]], Iterator[Row]]] = {
    "driver_overhead": driver_overhead,
    "torch_throughput": torch_throughput,
    "epoch_time_vs_batch": epoch_time_vs_batch,
    "gpu_wrn": gpu_wrn,
    "payoff": payoff,
    "background_compile": background_compile,
}


def measured_on(result: dict[str, Any]) -> str:
    """Device (the GPU, or the CPU model with its widest vector instructions), load, backend,
    date.

    Results from before the JSON named the CPU say "machine unknown".
    """
    machine = result["machine"]
    if "kind" in machine:
        host = f"{machine['kind']}, {machine['cpu_count']} cores"
        if "onednn" in machine:
            host += f", oneDNN {'on' if machine['onednn'] else 'off'}"
        if machine.get("load_average_before"):  # 1-minute load: how busy the cores were
            before, after = machine["load_average_before"][0], machine["load_average_after"][0]
            host += f", load {before:.1f} then {after:.1f}"
    else:
        host = f"machine unknown, {machine['cpu_count']} cores"
    device = f"{result['device']} ({host})" if result.get("device") else host
    return f"{device}, {result['backend']}, {machine['time'][:10]}"


def table(results: Path) -> str:
    """The Markdown table of every known result file in ``results``, in `BENCHMARKS` order."""
    found: dict[str, list[dict[str, Any]]] = {kind: [] for kind in BENCHMARKS}
    for path in sorted(results.glob("*.json")):
        result = json.loads(path.read_text())
        kind = VARIANT_SUFFIX.sub("", result.get("benchmark", ""))
        if kind in found:
            found[kind].append(result)
    lines = [HEADER]
    for kind, kind_results in found.items():
        for result in kind_results:
            for row in BENCHMARKS[kind](result):
                lines.append("| " + " | ".join([*row, measured_on(result)]) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    print(table(parser.parse_args(argv).results))


if __name__ == "__main__":
    main()
