"""The critical-batch-size probe: its criterion, a problem whose answer is known, the CLI."""

import json

import keras
import numpy as np
import pytest

from bsi_keras import critical_batch as entry
from bsi_keras import run, schedules
from bsi_keras.analysis.critical_batch import (
    ProbeError,
    branch_losses,
    critical_batch,
    read_trajectory,
)
from bsi_keras.cli.spec import RunSpec


@pytest.mark.parametrize(
    ("losses", "tolerance", "expected"),
    [
        ({32: 1.0, 64: 1.009, 128: 1.011}, 0.01, 64),
        ({32: 1.0, 64: 1.0101}, 0.01, 32),  # 1.0101 > 1.01: fails by a hair
        ({32: 1.0, 64: 1.02, 128: 1.005}, 0.01, 128),  # the largest that passes
        ({32: 1.0, 64: float("nan"), 128: float("inf")}, 1.0, 32),  # diverged branches fail
        ({64: 2.0, 32: 2.0}, 0.0, 64),  # ties pass; the order of the table is irrelevant
    ],
)
def test_the_criterion_on_loss_tables(losses, tolerance, expected):
    assert critical_batch(losses, tolerance) == expected


def zero_softmax():
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(2, "softmax", kernel_initializer="zeros")]
    )


@pytest.mark.parametrize(
    ("rule", "tolerance", "expected"), [("none", 0.08, 8), ("linear", 0.01, 128)]
)
def test_identical_examples_give_the_critical_batch_known_by_construction(
    rule, tolerance, expected
):
    # Identical examples: every batch's gradient is the full gradient g (no noise). From
    # zero weights (loss L0 = log 2, |g|^2 = (|x|^2 + 1) / 2 = 2.5), k = 128 / B steps of
    # plain SGD lower the loss by k lr |g|^2 to first order. Unscaled ("none"), loss(B) /
    # loss(4) - 1 = lr |g|^2 128 (1/4 - 1/B) / L0: 0.058, 0.101, 0.112 for B = 8, 32, 128,
    # so a tolerance of 0.08 makes 8 critical. Scaled linearly, k steps of lr B / 4 move
    # the same distance: equal to first order, so every batch is within 0.01.
    x, y = np.ones((128, 4), "float32"), np.zeros(128, "int32")
    model = zero_softmax()
    losses = branch_losses(
        model, x, y, batch_sizes=[4, 8, 32, 128], examples=128, lr=1e-3,
        optimizer=keras.optimizers.SGD, rule=rule,
    )  # fmt: skip
    assert critical_batch(losses, tolerance) == expected
    assert all(not np.any(w) for w in model.get_weights())  # the model keeps its weights


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"batch_sizes": [8]}, "batch_sizes"),
        ({"examples": 12}, "examples"),
        ({"rule": "cubic"}, "rule"),
        ({"eval_examples": 0}, "eval_examples"),
    ],
)
def test_bad_probe_settings_are_refused_naming_them(options, param):
    settings = {"batch_sizes": [4, 8], "examples": 16, "rule": "sqrt", **options}
    with pytest.raises(ProbeError) as info:
        branch_losses(zero_softmax(), np.ones((8, 4)), np.zeros(8), lr=0.1,
                      optimizer=keras.optimizers.SGD, **settings)  # fmt: skip
    assert info.value.param == param


def test_probe_cli_on_a_saved_run_feeds_cbs_warmup(tmp_path, capsys):
    folder = tmp_path / "run"
    tiny = ["--num_train", "200", "--num_test", "50", "--verbose", "0"]
    argv = [*tiny, "--epochs", "2", "--batch_size", "20", "--saveState", "--filename", str(folder)]
    assert run.main([*argv, "--noise_scale_every", "1"]) == 0
    out = tmp_path / "probe"
    probe = ["--epochs", "1", "2", "--batch_sizes", "10", "20", "40", "--examples", "80"]
    assert entry.main([str(folder), *probe, "--out", str(out)]) == 0
    assert "| epoch | lr | loss B=10 |" in capsys.readouterr().out
    result = json.loads((out / "critical_batch.json").read_text())
    assert [epoch for epoch, _ in result["trajectory"]] == [1, 2]
    assert {batch for _, batch in result["trajectory"]} <= {10, 20, 40}
    assert all(row["gns_b_simple"] is not None for row in result["rows"])
    assert (out / "critical_batch.png").stat().st_size > 0
    assert (out / "critical_batch.md").read_text().count("\n") == 4
    # The trajectory is a batch-size warmup: epoch e from the state after e epochs.
    spec = RunSpec.from_argv(
        ["--schedule", "cbs_warmup", "--cbs", str(out / "critical_batch.json"), "--epochs", "4",
         "--batch_size", "10", "--mini_batch_size", "10", "--lr", "0.05"]
    )  # fmt: skip
    expected = schedules.cbs_warmup(
        4, read_trajectory(out / "critical_batch.json"), 0.05, batch_size=10,
        max_batch_size=4000, multiple_of=10,
    )  # fmt: skip
    assert spec.build_schedule(4000).phases == expected.phases


def test_probe_cli_refuses_an_epoch_without_snapshot(tmp_path, capsys):
    folder = tmp_path / "run"
    argv = ["--num_train", "100", "--epochs", "1", "--batch_size", "20", "--verbose", "0"]
    assert run.main([*argv, "--filename", str(folder)]) == 0  # no --saveState
    with pytest.raises(SystemExit):
        entry.main([str(folder), "--epochs", "1", "--batch_sizes", "10", "20", "--examples", "20"])
    assert "--saveState" in capsys.readouterr().err
