"""Sweeps: a short two-run sweep, interrupted and resumed, then summarized."""

import json
import os
import signal
import subprocess
import sys
import time

from bsi_keras.cli import sweep
from bsi_keras.run_folder import read_log

ARGS = [
    "smith",
    "--runs",
    "decay_lr",
    "increase_bs",
    "--epochs",
    "6",
    "--dataset",
    "synthetic_cifar",
    "--",
    "--model",
    "mnist_f1",
    "--num_train",
    "512",
    "--num_test",
    "64",
    "--batch_size",
    "16",
    "--mini_batch_size",
    "16",
    "--lr",
    "0.01",
    "--verbose",
    "0",
]


def test_interrupted_sweep_resumes_and_summarizes(tmp_path):
    root = tmp_path / "sweeps"
    command = [sys.executable, "-m", "bsi_keras.sweep", *ARGS[:1], "--root", str(root), *ARGS[1:]]
    process = subprocess.Popen(
        command,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    second = root / "smith" / "increase_bs" / "log.csv"
    deadline = time.monotonic() + 300
    while not (second.exists() and read_log(second)) and time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(read_log(second)) < 6  # killed mid-run
    assert sweep.main([*ARGS[:1], "--root", str(root), *ARGS[1:]]) == 0
    first = json.loads((root / "smith" / "decay_lr" / "config.json").read_text())
    resumed = json.loads((root / "smith" / "increase_bs" / "config.json").read_text())
    assert "resumptions" not in first  # finished before the kill: skipped
    assert len(resumed["resumptions"]) == 1
    assert len(read_log(second)) == 6
    summary = (root / "smith" / "summary.md").read_text()
    assert "decay_lr" in summary and "increase_bs" in summary
    assert (root / "smith" / "sweep.png").stat().st_size > 10_000


def test_shortened_phases_and_milestones():
    spec = sweep.run_spec(
        {"dataset": "cifar10", "phases": "60x128@0.05,60x128@0.025,40x16384@0.035"}
    )
    assert sweep.shortened(spec, 16).schedule.phases == "6x128@0.05,6x128@0.025,4x16384@0.035"
    assert sweep.shortened(sweep.run_spec({"dataset": "cifar10"}), 2).schedule.milestones == (1,)


def test_recipes_are_specs_and_extra_flags_override_them():
    """A recipe run is its flag values as a spec; `--` flags and --dataset change it."""
    overrides = dict(sweep.RECIPES["fixed_tuned"]())["lrd_256"]
    spec = sweep.run_spec(overrides, 6, "synthetic_cifar", ["--model", "mnist_f1", "--lr", "0.2"])
    assert (spec.schedule.name, spec.schedule.batch_size, spec.schedule.factor) == (
        "decay_lr",
        256,
        2.0,
    )
    assert (spec.schedule.lr, spec.schedule.epochs, spec.schedule.milestones) == (0.2, 6, (2, 4, 5))
    assert (spec.model.name, spec.model.dataset, spec.model.mini_batch_size) == (
        "mnist_f1",
        "synthetic_cifar",
        128,
    )


def test_every_recipe_run_is_a_valid_spec_with_a_command_line():
    for recipe in sweep.RECIPES.values():
        for _, overrides in recipe():
            spec = sweep.run_spec(overrides)
            assert sweep.RunSpec.from_argv(spec.to_argv()) == spec


def specs(recipe: str) -> dict[str, sweep.RunSpec]:
    return {name: sweep.run_spec(overrides) for name, overrides in sweep.RECIPES[recipe]()}


def test_cifar_recipes_use_the_reference_moving_statistics():
    for recipe in ("smith", "fixed_tuned", "mobilenet_scratch", "scaling_grid", "bsi_224"):
        assert {s.model.bn_statistics for s in specs(recipe).values()} == {"per_ghost_batch"}
    assert sweep.run_spec({}).model.bn_statistics == "keras"  # the MNIST family: Keras 2's


def test_mobilenet_recipes_offer_both_readings_of_seed_001():
    scratch, finetune = specs("mobilenet_scratch"), specs("mobilenet_finetune")
    assert sweep.RECIPES["mobilenet"] is sweep.RECIPES["mobilenet_scratch"]
    for runs in (scratch, finetune):
        assert [s.schedule.batch_size for s in runs.values()] == [32, 64, 128, 256, 512, 1024]
        # Ghost batches of 128, the whole batch below (batches 32 and 64 were refused).
        assert [s.model.mini_batch_size for s in runs.values()] == [32, 64, 128, 128, 128, 128]
        for s in runs.values():
            assert (s.model.name, s.schedule.epochs, s.schedule.lr_curve) == (
                "mobilenet_v2",
                200,
                "cosine",
            )
            assert (s.model.weight_decay, s.schedule.scale_lr) == (1e-4, "linear")
            assert s.optimizer.build(0.1).momentum == 0.9
    s = scratch["mobilenet_512"]
    assert (s.model.weights, s.schedule.lr, s.schedule.reference_batch) == (None, 0.1, 256)
    assert s.schedule.warmup_epochs == 5.0
    assert s.build_schedule(50_000).at(100).lr == 0.1 * 512 / 256
    s = finetune["finetune_1024"]
    assert (s.model.weights, s.schedule.lr, s.schedule.reference_batch) == ("imagenet", 3e-4, 32)
    assert not s.schedule.warmup_epochs
    assert abs(s.build_schedule(50_000).at(100).lr - 9.6e-3) < 1e-12  # 3e-4 x 1024 / 32


def test_scaling_grid_is_batch_sizes_by_rules_by_warmup_with_ghost_batches_of_128():
    runs = specs("scaling_grid")
    assert len(runs) == 4 * 5
    settings = {
        (s.schedule.batch_size, s.schedule.scale_lr, bool(s.schedule.warmup_epochs))
        for s in runs.values()
    }
    for b in (128, 512, 2048, 8192):
        assert (b, "none", False) in settings
        for rule in ("linear", "sqrt"):
            assert {(b, rule, False), (b, rule, True)} <= settings
    assert {s.model.mini_batch_size for s in runs.values()} == {128}
    lrs = {name: runs[name].build_schedule(50_000).at(0).lr for name in runs}
    assert (lrs["b8192_none"], lrs["b8192_linear"], lrs["b8192_sqrt"]) == (0.1, 6.4, 0.8)


def test_bsi_224_doubles_the_last_factor():
    runs = specs("bsi_224")
    schedule = runs["bsi_224"].build_schedule(50_000)
    assert [schedule.at(e).batch_size for e in (0, 60, 120, 160)] == [2048, 4096, 8192, 32768]
    assert {schedule.at(e).lr for e in (0, 199)} == {0.25}
    twin = runs["lrd_2048"].build_schedule(50_000)
    assert {twin.at(e).batch_size for e in (0, 199)} == {2048}


def test_sweep_summary_shows_seconds_per_epoch(tmp_path):
    from bsi_keras.cli import report

    folder = tmp_path / "run"
    folder.mkdir()
    summary = {
        "status": "finished",
        "epochs_finished": 4,
        "final_val_accuracy": 0.5,
        "total_updates": 40,
        "train_seconds": 10.0,
        "compile_seconds": 1.0,
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "config.json").write_text(json.dumps({"schedule": {"name": "decay_lr"}}))
    assert report.summary_row(folder)["s/epoch"] == "2.5"
    assert "| s/epoch |" in report.summary_table([folder])


def test_sweep_runs_are_found_from_the_notebooks_folder(tmp_path):
    for run in ("decay_lr", "increase_bs"):
        (tmp_path / "runs/sweeps/smith" / run).mkdir(parents=True)
        (tmp_path / "runs/sweeps/smith" / run / "log.csv").write_text("epoch\n1\n")
    (tmp_path / "runs/sweeps/smith/no_log").mkdir()
    (tmp_path / "notebooks").mkdir()
    expected = [tmp_path / "runs/sweeps/smith" / run for run in ("decay_lr", "increase_bs")]
    assert sweep.sweep_runs("smith", start=tmp_path / "notebooks") == expected
    assert sweep.sweep_runs("smith", start=tmp_path) == expected
    assert sweep.sweep_runs("fixed_lr", start=tmp_path / "notebooks") == []
