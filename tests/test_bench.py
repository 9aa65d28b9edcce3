"""The benchmark scripts: the table they feed, the PyTorch twins, smoke runs (slow)."""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCH = Path(__file__).parent.parent / "bench"


def load(name: str) -> ModuleType:
    """A module of bench/ (not a package), loaded under the name ``bench_<name>``."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


table = load("table")
common = load("common")

# What every benchmark JSON says about its machine (`common.machine`).
MACHINE_FIELDS = (
    "cpu_model",
    "cpu_flags",
    "kind",
    "cpu_count",
    "environment",
    "threads",
    "load_average_before",
    "load_average_after",
    "time",
)


def assert_machine_recorded(result: dict) -> None:
    """``result`` names its CPU, instruction sets, cores, oneDNN, threads and load."""
    machine = result["machine"]
    assert set(MACHINE_FIELDS) <= set(machine), sorted(set(MACHINE_FIELDS) - set(machine))
    assert {"avx2", "avx512f", "amx_tile"} <= set(machine["cpu_flags"])
    assert "TF_ENABLE_ONEDNN_OPTS" in machine["environment"]
    assert len(machine["load_average_before"]) == len(machine["load_average_after"]) == 3
    if machine.get("tensorflow_version"):
        assert isinstance(machine["onednn"], bool)
        assert {"tf_intra_op", "tf_inter_op"} <= set(machine["threads"])


def spread(median: float) -> dict:
    return {"median": median, "min": 0.9 * median, "max": 1.1 * median, "rounds": [median]}


MACHINE = {
    "machine": {"cpu_count": 2, "time": "2026-01-01 00:00:00", "label": "machine unknown"},
    "backend": "tensorflow",
}
RESULTS = {
    "driver_overhead": {
        "schedule": {
            "phases": [{"epochs": 2, "batch_size": 100}, {"epochs": 4, "batch_size": 500}]
        },
        "train_examples": 60000,
        "dataset": "fashion_mnist",
        "model": "mnist_cnn",
        "overhead_cold": spread(0.01),
        "overhead_warm": spread(0.02),
        "compile_seconds": {"driver_logged": spread(1.0)},
    },
    "torch_throughput": {
        "model": "mnist_cnn",
        "rows": [
            {
                "batch_size": 100,
                "images": 60000,
                "bsi_keras_over_torch": spread(1.3),
                "keras_fit_over_torch": spread(0.8),
            }
        ],
    },
    "epoch_time_vs_batch": {
        "model": "mnist_cnn",
        "train_examples": 60000,
        "dataset": "fashion_mnist",
        "tolerance": 0.1,
        "saturates_at": 2500,
        "rows": [{"batch_size": 100, "epoch_seconds": spread(2.0)}],
    },
    "gpu_wrn_bfloat16": {
        "device": "NVIDIA H100",
        "model": "wrn_16_4",
        "precision": "bfloat16",
        "peak_tflops": 989.0,
        "rows": [
            {
                "batch_size": 128,
                "bsi_keras_over_torch": spread(1.1),
                "fraction_of_peak": {"bsi_keras": spread(0.2), "torch": spread(0.18)},
            }
        ],
    },
    "payoff": {
        "model": "wrn_16_4",
        "epochs": 20,
        "milestones": [6, 12, 16],
        "train_examples": 50000,
        "dataset": "synthetic_cifar",
        "precision": "float32",
        "increase_bs_over_decay_lr": spread(0.45),
        "hybrid_over_decay_lr": spread(0.7),
        "schedules": {
            name: {"train_seconds": spread(train), "compile_seconds": spread(compile_)}
            for name, train, compile_ in (
                ("decay_lr", 100.0, 10.0),
                ("hybrid", 60.0, 20.0),
                ("increase_bs", 40.0, 30.0),
            )
        },
    },
    "background_compile_jax": {
        "model": "mnist_cnn",
        "schedule": [[3, 32], [3, 64], [3, 128]],
        "max_physical_batch": 128,
        "train_examples": 4000,
        "dataset": "mnist_sample",
        "variants": {
            "background": {
                "phase_change_compile_seconds": spread(0.5),
                "background_seconds": spread(9.0),
            },
            "at_first_batch": {
                "phase_change_compile_seconds": spread(10.0),
                "background_seconds": spread(0.0),
            },
        },
        "phase_change_compile_background_over_at_first_batch": spread(0.5),
        "wall_background_over_at_first_batch": spread(0.9),
    },
}


def test_table_has_a_row_per_figure_in_benchmark_order(tmp_path):
    for name, result in RESULTS.items():
        record = {"benchmark": name, **result, **MACHINE}
        (tmp_path / f"{name}.json").write_text(json.dumps(record))
    (tmp_path / "unrelated.json").write_text(json.dumps({"benchmark": "other"}))
    lines = table.table(tmp_path).splitlines()
    assert lines[:2] == table.HEADER.splitlines()
    assert len(lines) == 2 + len(RESULTS)
    assert "1.0 % (0.9 to 1.1)" in lines[2] and "<= 3 %" in lines[2] and "1.0 s" in lines[2]
    assert "1.30x (1.17 to 1.43)" in lines[3] and "0.80x" in lines[3]
    assert "from batch 2500" in lines[4]
    assert "NVIDIA H100" in lines[5] and "0.200 vs 0.180" in lines[5]
    assert "0.45x" in lines[6] and "0.70x" in lines[6]
    assert "training alone 0.40x (0.60x), compile 30 s vs 10 s" in lines[6]
    assert "batch 32 -> 64 -> 128 (3 epochs each)" in lines[7]
    assert "0.50x (0.45 to 0.55): 0.5 s vs 10.0 s, the background thread 9.0 s" in lines[7]


def test_measured_on_names_the_cpu_and_keeps_a_row_per_machine_kind(tmp_path):
    base = RESULTS["torch_throughput"]
    for kind, onednn in (("AMD EPYC 7763 64-Core Processor, AVX2", False), ("Xeon, AMX", True)):
        machine = {"kind": kind, "cpu_count": 2, "onednn": onednn, "time": "2026-01-01"}
        machine |= {"load_average_before": [1.5, 1, 1], "load_average_after": [2.25, 1, 1]}
        record = {"benchmark": "torch_throughput", "backend": "tensorflow", **base}
        path = tmp_path / f"torch_throughput@{common.slug(kind)}.json"
        path.write_text(json.dumps({**record, "machine": machine}))
    lines = table.table(tmp_path).splitlines()[2:]
    assert len(lines) == 2
    assert "AMD EPYC 7763 64-Core Processor, AVX2, 2 cores, oneDNN off" in lines[0]
    assert "Xeon, AMX, 2 cores, oneDNN on, load 1.5 then 2.2" in lines[1]


def test_write_result_records_the_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    path = common.write_result("example", {"backend": "tensorflow"}, per_machine=True)
    assert path.name == f"example@{common.slug(common.machine()['kind'])}.json"
    result = json.loads(path.read_text())
    assert result["benchmark"] == "example"
    assert_machine_recorded(result)


def test_cpu_info_reads_model_and_instruction_sets(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC 7763 64-Core Processor\n"
        "flags\t\t: fpu sse2 avx avx2 fma\n"
    )
    cpu = common.cpu_info(str(cpuinfo))
    assert cpu["model"] == "AMD EPYC 7763 64-Core Processor"
    assert cpu["flags"]["avx2"] and not cpu["flags"]["avx512f"] and not cpu["flags"]["amx_tile"]
    assert common.machine_kind(cpu["model"], cpu["flags"]).endswith(", AVX2")


def test_committed_results_name_their_machine_or_say_it_is_unknown():
    for path in sorted((BENCH / "results").glob("*.json")):
        result = json.loads(path.read_text())
        if result["machine"].get("label") == "machine unknown":
            if benchmark_kind(result) in table.BENCHMARKS:
                assert "machine unknown" in table.measured_on(result), path.name
        else:
            assert_machine_recorded(result)


def benchmark_kind(result: dict) -> str:
    """The table's benchmark of a result (variants such as ``_bfloat16`` removed)."""
    return table.VARIANT_SUFFIX.sub("", result.get("benchmark", ""))


def test_readme_performance_table_is_generated_from_the_results():
    readme = (BENCH.parent / "README.md").read_text()
    assert table.table(BENCH / "results") in readme, "paste the output of bench/table.py"


def test_torch_ghost_batch_norm_is_the_keras_layer():
    torch = pytest.importorskip("torch")
    import keras

    from bsi_keras.layers import GhostBatchNormalization

    torch_models = load("torch_models")

    x = np.random.default_rng(0).normal(1.0, 3.0, (25, 5, 5, 3)).astype("float32")
    keras_layer = GhostBatchNormalization(10, momentum=0.9)  # 25 = 2 x 10 + a rest of 5
    torch_layer = torch_models.GhostBatchNorm2d(3, 10, momentum=0.1, eps=1e-3)
    expected = keras.ops.convert_to_numpy(keras_layer(x, training=True))
    got = torch_layer(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    np.testing.assert_allclose(got.detach().numpy(), expected, atol=1e-5)
    for keras_stat, torch_stat in (
        (keras_layer.moving_mean, torch_layer.running_mean),
        (keras_layer.moving_variance, torch_layer.running_var),
    ):
        np.testing.assert_allclose(
            torch_stat.numpy(), keras.ops.convert_to_numpy(keras_stat), atol=1e-6
        )


def test_torch_wide_resnet_has_the_keras_parameter_count():
    pytest.importorskip("torch")
    from bsi_keras import get_model

    torch_models = load("torch_models")

    keras_model = get_model("wrn_16_4")
    trainable = sum(int(np.prod(v.shape)) for v in keras_model.trainable_variables)
    assert sum(p.numel() for p in torch_models.wide_resnet().parameters()) == trainable


SLEEP = 0.004  # seconds per train step of `SlowStep`


def slow_step_layer():
    """A layer that sleeps `SLEEP` seconds in every training call, inside the compiled step.

    The sleep is a host callback whose result the output depends on, so the step cannot
    finish (nor be pruned) before it: an epoch of ``n`` steps takes at least ``n * SLEEP``.
    """
    import keras

    def nap() -> np.ndarray:
        time.sleep(SLEEP)
        return np.zeros((), "float32")

    class SlowStep(keras.layers.Layer):
        def call(self, x, training=False):
            if not training:
                return x
            backend = keras.backend.backend()
            if backend == "tensorflow":
                import tensorflow as tf

                done = tf.ensure_shape(tf.py_function(nap, [], tf.float32), [])
            elif backend == "jax":
                import jax

                done = jax.pure_callback(nap, jax.ShapeDtypeStruct((), "float32"))
            else:
                done = nap()
            return x + keras.ops.cast(done, x.dtype)

    return SlowStep()


def test_epoch_seconds_hold_the_whole_computation_of_a_slow_step():
    """The driver's ``epoch_seconds`` and the benchmarks' `common.EpochClock` both end after
    the epoch's last step has finished, in epochs of several steps per execution too."""
    import keras

    import bsi_keras
    from bsi_keras import schedules

    steps = 256  # 8 executions of 32 steps on TensorFlow (`driver.execution`)
    model = keras.Sequential([keras.Input((3,)), slow_step_layer(), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", jit_compile=False)
    x, y = np.ones((steps, 3), "float32"), np.ones((steps, 1), "float32")
    clock = common.EpochClock()
    start = time.perf_counter()
    history = bsi_keras.fit(
        model, x, y, schedule=schedules.constant(2, 1, 0.01), callbacks=[clock], verbose=0
    )
    wall = time.perf_counter() - start
    least = steps * SLEEP
    assert history.history["epoch_updates"] == [steps, steps]
    first, second = history.history["epoch_seconds"]
    assert first + history.history["compile_seconds"][0] >= least
    assert second >= least  # nothing traced: no compile estimate taken off
    assert min(clock.times["epoch"]) >= least
    assert wall >= sum(clock.times["epoch"]) >= 2 * least


def run_bench(script: str, *args: str, tmp_path: Path, **env: str) -> str:
    environment = {**os.environ, "BENCH_RESULTS": str(tmp_path), **env}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for path in tmp_path.glob("*.json"):  # every result of a test run names its machine
        assert_machine_recorded(json.loads(path.read_text()))
    return done.stdout


@pytest.mark.slow
def test_gpu_wrn_runs_tiny_on_the_cpu(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    output = run_bench(
        "gpu_wrn.py",
        "--steps",
        "1",
        "--batch_sizes",
        "4",
        "--rounds",
        "1",
        tmp_path=tmp_path,
        KERAS_BACKEND="jax",
    )
    assert "bsi_keras / torch" in output
    result = json.loads((tmp_path / "gpu_wrn.json").read_text())
    assert result["rows"][0]["train_flops_per_step"] > 0
    assert "wrn_16_4, batch 4" in table.table(tmp_path)


@pytest.mark.slow
def test_background_compile_runs_tiny(tmp_path):
    output = run_bench(
        "background_compile.py",
        "--batch_sizes",
        "8",
        "16",
        "--phase_epochs",
        "1",
        "--max_physical_batch",
        "16",
        "--num_train",
        "64",
        "--rounds",
        "1",
        tmp_path=tmp_path,
    )
    assert "phase-change compile seconds" in output
    result = json.loads(next(tmp_path.glob("background_compile_*.json")).read_text())
    assert result["same_final_loss"]
    assert result["variants"]["background"]["ahead_traces"] == 1
    assert "batch 8 -> 16 (1 epoch each)" in table.table(tmp_path)


@pytest.mark.slow
def test_payoff_runs_tiny(tmp_path):
    output = run_bench(
        "payoff.py",
        "--num_train",
        "128",
        "--num_test",
        "16",
        "--epochs",
        "4",
        "--milestones",
        "1",
        "2",
        "3",
        "--model",
        "wrn_10_1",
        "--batch_size",
        "16",
        tmp_path=tmp_path,
    )
    assert "increase_bs" in output
    result = json.loads((tmp_path / "payoff.json").read_text())
    assert (
        result["schedules"]["increase_bs"]["total_updates"]
        < result["schedules"]["decay_lr"]["total_updates"]
    )


@pytest.mark.slow
def test_torch_throughput_runs_tiny_and_checks_its_clock(tmp_path):
    pytest.importorskip("torch")
    output = run_bench(
        "torch_throughput.py",
        *("--num_train", "400", "--batch_sizes", "100", "--rounds", "1"),
        *("--torch_threads", "1"),
        tmp_path=tmp_path,
    )
    assert "timing check" in output
    (path,) = tmp_path.glob("torch_throughput@*.json")
    check = json.loads(path.read_text())["rows"][0]["timing_check"]
    assert check["fit_wall_seconds"] >= check["clocked_seconds"] > 0
    assert "mnist_cnn, batch 100" in table.table(tmp_path)
