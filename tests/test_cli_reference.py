"""The reference study's flags and schedules, dry runs and short CIFAR-shaped runs."""

import json

import pytest

from bsi_keras import cli, run
from bsi_keras.run_folder import read_log


def dry(argv, capsys) -> str:
    assert run.main(["--dry-run", *argv]) == 0
    return capsys.readouterr().out


def batch_sizes(out: str) -> list[int]:
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    return [int(float(r[3])) for r in rows]


def test_cifar_defaults_give_the_reference_totals(capsys):
    out = dry(["--dataset", "cifar10", "--schedule", "all"], capsys)
    for total in ("78200", "34520", "29000"):
        assert f"total updates: {total}" in out
    args = cli.parse(["--dataset", "cifar10"])
    assert (args.model, args.mini_batch_size, args.epochs, args.milestones) == (
        "wrn_16_4",
        128,
        200,
        [60, 120, 160],
    )
    assert (args.weight_decay, args.clip_norm, args.lr) == (5e-4, 5.0, 0.1)


@pytest.mark.parametrize(
    ("argv", "schedule"),
    [
        (["--LRD"], "decay_lr"),
        (["--LRD", "true"], "decay_lr"),
        (["--LRD", "False"], "increase_bs"),
        (["--steady"], "constant"),
        (["--mixedBSI"], "mixed_bsi"),
        (["--fastBSI", "1"], "fast_bsi"),
        (["--instant"], "instant_bsi"),
    ],
)
def test_reference_switches_are_real_booleans(argv, schedule):
    args = cli.parse(["--dataset", "cifar10", *argv])
    assert args.schedule == schedule


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--LRD", "--steady"], "--steady"),
        (["--LRD", "--schedule", "increase_bs"], "--LRD"),
        (["--doubleEndFactor", "--schedule", "decay_lr"], "--doubleEndFactor"),
        (["--LRD", "maybe"], "--LRD"),
        (["--phases", "1x10@0.1", "--steady"], "--phases"),
    ],
)
def test_contradicting_switches_are_refused(argv, flag, capsys):
    with pytest.raises(SystemExit) as info:
        run.main(["--dataset", "cifar10", "--dry-run", *argv])
    assert info.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


def test_double_end_factor(capsys):
    out = dry(
        [
            "--dataset",
            "cifar10",
            "--batch_size",
            "2048",
            "--factor",
            "2",
            "--doubleEndFactor",
            "--mini_batch_size",
            "128",
        ],
        capsys,
    )
    assert batch_sizes(out) == [2048, 4096, 8192, 32768]


def test_mixed_bsi_final_run(capsys):
    out = dry(["--dataset", "cifar10", "--mixedBSI"], capsys)
    assert batch_sizes(out) == [128, 128, 512, 25600]
    assert "0.025" in out


def test_fast_and_instant_bsi(capsys):
    argv = ["--dataset", "cifar10", "--lr", "0.05", "--max", "8192"]
    fast = dry([*argv, "--fastBSI"], capsys)
    assert batch_sizes(fast)[:8] == [128, 256, 512, 1024, 2048, 4096, 8192, 8192]
    instant = dry([*argv, "--instant"], capsys)
    assert batch_sizes(instant)[:2] == [128, 8192]
    assert "0.241" in instant  # 0.05 * 1.3 ** 6, the reference's hard-coded end point


def test_regime_adaptation_and_linear_scaling(capsys):
    out = dry(
        [
            "--dataset",
            "cifar10",
            "--steady",
            "--batch_size",
            "1024",
            "--epochs",
            "10",
            "--regime_adaptation",
            "--scale_lr",
            "linear",
            "--reference_batch",
            "256",
        ],
        capsys,
    )
    assert "40" in out.split("\n")[2].split()[1]  # 10 epochs x 1024/256
    assert " 0.4 " in f" {out.split(chr(10))[2]} "  # 0.1 x 1024 / 256


def test_warmup_curve_is_printed(capsys):
    out = dry(
        ["--dataset", "cifar10", "--steady", "--warmup_epochs", "5", "--lr_curve", "cosine"], capsys
    )
    assert "per-update LR curve" in out and "cosine" in out


def test_wrn_16_4_two_epochs_on_cifar_shaped_data(tmp_path):
    folder = tmp_path / "wrn"
    argv = [
        "--dataset",
        "synthetic_cifar",
        "--num_train",
        "128",
        "--num_test",
        "64",
        "--epochs",
        "2",
        "--batch_size",
        "64",
        "--milestones",
        "1",
        "--factor",
        "2",
        "--mini_batch_size",
        "32",
        "--max_physical_batch",
        "64",
        "--verbose",
        "0",
        "--filename",
        str(folder),
    ]
    assert run.main(argv) == 0
    rows = read_log(folder / "log.csv")
    assert [int(r["batch_size"]) for r in rows] == [64, 128]
    assert [int(r["epoch_updates"]) for r in rows] == [2, 1]  # one update per logical batch
    config = json.loads((folder / "config.json").read_text())
    assert config["spec"]["model"]["name"] == "wrn_16_4"
    assert config["model"]["parameters"] > 2_700_000


def test_loss_dropout_run_counts_updates(tmp_path):
    folder = tmp_path / "dropout"
    argv = [
        "--dataset",
        "mnist_sample",
        "--num_train",
        "200",
        "--num_test",
        "50",
        "--epochs",
        "3",
        "--batch_size",
        "10",
        "--lr",
        "0.01",
        "--steady",
        "--loss_dropout",
        "--loss_dropout_window",
        "2",
        "3",
        "--verbose",
        "0",
        "--filename",
        str(folder),
    ]
    assert run.main(argv) == 0
    taken = [int(r["epoch_updates"]) for r in read_log(folder / "log.csv")]
    assert taken[0] == 20 and all(0 < t < 20 for t in taken[1:])
