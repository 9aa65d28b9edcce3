"""The adaptive schedule: the batch size follows the measured gradient noise scale."""

import itertools
import math

import pytest

from bsi_keras import run, schedules
from bsi_keras.run_folder import read_log


def test_adaptive_run_follows_the_rule(tmp_path):
    folder = tmp_path / "adaptive"
    argv = [
        "--dataset",
        "mnist_sample",
        "--num_train",
        "2000",
        "--num_test",
        "200",
        "--schedule",
        "adaptive",
        "--epochs",
        "4",
        "--batch_size",
        "40",
        "--mini_batch_size",
        "10",
        "--factor",
        "2",
        "--noise_scale_every",
        "1",
        "--lr",
        "0.05",
        "--verbose",
        "0",
        "--filename",
        str(folder),
    ]
    assert run.main(argv) == 0
    rows = read_log(folder / "log.csv")
    assert all(math.isfinite(float(r["gns_b_simple"])) for r in rows)
    assert all(float(r["gns_b_simple_se"]) > 0 for r in rows)  # 50 measurements an epoch
    assert all(math.isfinite(float(r["gns_b_simple_raw"])) for r in rows)
    assert int(rows[0]["batch_size"]) == 40
    for before, after in itertools.pairwise(rows):
        current, measured = int(before["batch_size"]), float(before["gns_b_simple"])
        expected = max(current, min(int(measured // 10) * 10, 2 * current, 2000))
        assert int(after["batch_size"]) == expected
        error = float(before["gns_b_simple_se"])
        assert after["schedule_reason"].startswith(f"B_simple {measured:.4g} (se {error:.2g})")
    assert any(int(r["batch_size"]) > 40 for r in rows)  # it grew


def test_norm_test_is_the_rule_with_coefficient_one_over_theta_squared():
    by_theta = schedules.AdaptiveSchedule(3, 10, 0.1, theta=0.5, max_batch_size=1000, factor=10)
    history = [{"batch_size": 10, "gns_b_simple": 20.0}]
    assert by_theta.coefficient == 4.0
    assert by_theta.at(1, history).batch_size == 80


def test_the_reason_records_the_standard_error_and_the_rule_ignores_it():
    schedule = schedules.AdaptiveSchedule(3, 10, 0.1, factor=10)
    measured = {"batch_size": 10, "gns_b_simple": 40.0}
    plain = schedule.at(1, [measured])
    with_error = schedule.at(1, [{**measured, "gns_b_simple_se": 9.5}])
    assert plain.batch_size == with_error.batch_size == 40
    assert with_error.reason == "B_simple 40 (se 9.5) x 1 = 40 -> 40"
    assert plain.reason == "B_simple 40 x 1 = 40 -> 40"  # logs without an error
    unknown = schedule.at(1, [{**measured, "gns_b_simple_se": math.nan}])
    assert unknown.reason == plain.reason  # one measurement in the epoch


def test_unusable_measurement_holds_the_batch():
    schedule = schedules.AdaptiveSchedule(3, 10, 0.1)
    setting = schedule.at(1, [{"batch_size": 10, "gns_b_simple": -5.0}])
    assert setting.batch_size == 10 and "held" in setting.reason


def test_linear_lr_scaling_follows_the_batch():
    schedule = schedules.AdaptiveSchedule(3, 10, 0.1, scale_lr="linear", factor=4)
    assert schedule.at(1, [{"batch_size": 10, "gns_b_simple": 40.0}]).lr == pytest.approx(0.4)


def test_dry_run_says_what_it_cannot_know(capsys):
    assert run.main(["--schedule", "adaptive", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "depend on measurements" in out and "fastest growth" in out


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--noise_scale_every", "0"], "--noise_scale_every"),
        (["--noise_scale_batch", "100"], "--noise_scale_batch"),
        (["--theta", "-1"], "--theta"),
        (["--warmup_epochs", "1"], "--warmup_epochs"),
    ],
)
def test_adaptive_refusals(argv, flag, capsys):
    with pytest.raises(SystemExit):
        run.main(["--schedule", "adaptive", "--dry-run", *argv])
    assert f"argument {flag}" in capsys.readouterr().err
