"""The command line: refusals before training, dry runs, and short end-to-end runs."""

import dataclasses
import json

import pytest

from bsi_keras import cli, run
from bsi_keras.cli import report
from bsi_keras.run_folder import read_log

TINY = ["--dataset", "mnist_sample", "--num_train", "400", "--num_test", "100", "--verbose", "0"]


def refuse(argv, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        run.main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "flag", "words"),
    [
        (["--lr", "-0.1"], "--lr", "positive"),
        (["--lr", "nan"], "--lr", "positive"),
        (["--batch_size", "0"], "--batch_size", "positive"),
        (["--batch_size", "5000"], "--batch_size", "larger than the training set"),
        (["--epochs", "6", "--milestones", "2", "6"], "--milestones", "between 1 and 5"),
        (["--milestones", "4", "2"], "--milestones", "strictly increasing"),
        (["--mini_batch_size", "200"], "--mini_batch_size", "larger than the batch"),
        (["--momentum", "1.5"], "--momentum", "[0, 1)"),
        (["--optimizer", "adam", "--momentum", "0.9"], "--momentum", "no momentum"),
        (["--max", "10"], "--max", "smaller than the initial batch size"),
        (["--max", "9000"], "--max", "larger than the training set"),
        (["--factor", "0"], "--factor", "positive"),
        (["--phases", "2x100"], "--phases", "EPOCHSxBATCH@LR"),
        (["--weight_decay", "-1"], "--weight_decay", ">= 0"),
        (["--schedule", "linear"], "--schedule", "invalid choice"),
        (["--model", "resnet9000"], "--model", "invalid choice"),
        (["--dataset", "imagenet"], "--dataset", "invalid choice"),
        (["--optimizer", "lion"], "--optimizer", "invalid choice"),
        (["--batch_size", "ten"], "--batch_size", "invalid int value"),
        (["--num_train", "5000"], "--num_train", "has only 4000"),
        (["--phases", "2x10@0.1", "--lr", "0.1"], "--lr", "--phases already sets"),
        (["--phases", "0x10@0.1"], "--phases", "positive integer"),
        (["--schedule", "decay_lr", "--factor", "1e300"], "--factor", "underflow"),
        (["--resume", "/nonexistent/run"], "--resume", "not a run folder"),
    ],
)
def test_bad_values_are_refused_naming_the_flag(argv, flag, words, capsys):
    err = refuse(["--dataset", "mnist_sample", *argv], capsys)
    assert f"argument {flag}" in err
    assert words in err


def test_a_model_that_cannot_take_the_data_is_refused(monkeypatch, capsys):
    from bsi_keras import models

    def needs_color_images(input_shape, **options):
        raise ValueError(f"needs 3 channels, got {input_shape}")

    monkeypatch.setitem(models._REGISTRY, "color_only", needs_color_images)
    err = refuse([*TINY, "--model", "color_only"], capsys)
    assert "argument --model: color_only cannot be built" in err and "3 channels" in err


def test_dry_run_prints_the_cifar_totals(capsys):
    argv = [
        "--dry-run",
        "--schedule",
        "all",
        "--epochs",
        "200",
        "--batch_size",
        "128",
        "--lr",
        "0.1",
        "--milestones",
        "60",
        "120",
        "160",
        "--mini_batch_size",
        "128",
    ]
    assert run.main(["--dataset", "cifar10", *argv]) == 0
    out = capsys.readouterr().out
    for total in ("78200", "34520", "29000"):
        assert f"total updates: {total}" in out


def test_end_to_end_log_rows(tmp_path):
    folder = tmp_path / "run"
    argv = [*TINY, "--epochs", "3", "--batch_size", "20", "--lr", "0.05", "--filename", str(folder)]
    assert run.main(argv) == 0
    rows = read_log(folder / "log.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    # 20 -> 100 -> 500, clamped at the training set size (400); the LR never moves.
    assert [int(r["batch_size"]) for r in rows] == [20, 100, 400]
    assert [float(r["learning_rate"]) for r in rows] == [0.05] * 3
    assert [int(r["epoch_updates"]) for r in rows] == [20, 4, 1]
    assert [int(r["updates"]) for r in rows] == [20, 24, 25]
    assert all(0.0 <= float(r["val_accuracy"]) <= 1.0 for r in rows)
    assert float(rows[0]["compile_seconds"]) > 0.0
    config = json.loads((folder / "config.json").read_text())
    assert (
        config["dataset"]["name"] == "mnist_sample" and config["dataset"]["train_examples"] == 400
    )
    assert config["environment"]["backend"] in ("tensorflow", "jax", "torch")
    assert config["schedule"]["phases"][2]["batch_size"] == 400
    assert "args" not in config  # the spec, not argparse's names
    spec = cli.RunSpec.from_config(config["spec"])
    assert (spec.schedule.batch_size, spec.model.num_train, spec.run.filename) == (
        20,
        400,
        str(folder),
    )
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["total_updates"] == 25


def test_existing_run_folder_is_never_overwritten(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "log.csv").write_text("precious\n")
    assert run.main([*TINY, "--epochs", "1", "--filename", str(folder)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (folder / "log.csv").read_text() == "precious\n"


def test_divergence_stops_with_a_message_and_keeps_the_log(tmp_path, capsys):
    folder = tmp_path / "nan"
    argv = [
        *TINY,
        "--epochs",
        "3",
        "--batch_size",
        "2",
        "--mini_batch_size",
        "2",
        "--lr",
        "1e20",
        "--filename",
        str(folder),
    ]
    assert run.main(argv) == 1
    out = capsys.readouterr().out
    assert "diverged" in out
    rows = read_log(folder / "log.csv")
    assert len(rows) == 1 and rows[0]["loss"] in ("nan", "inf")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "diverged"


def test_schedule_all_writes_three_runs_and_the_comparison(tmp_path, capsys):
    folder = tmp_path / "compare"
    argv = [
        *TINY,
        "--schedule",
        "all",
        "--epochs",
        "3",
        "--batch_size",
        "20",
        "--filename",
        str(folder),
    ]
    assert run.main(argv) == 0
    for name in ("decay_lr", "hybrid", "increase_bs"):
        assert len(read_log(folder / name / "log.csv")) == 3
    assert (folder / "comparison.png").stat().st_size > 10_000
    assert report.main([str(folder)]) == 0  # the folder of runs stands for its three runs
    assert capsys.readouterr().out.count("| compare/") == 3
    with pytest.raises(SystemExit):
        report.main([str(folder / "comparison.png")])
    assert "is not a run folder" in capsys.readouterr().err


def test_flag_table_lists_every_flag():
    table = cli.flag_table()
    for action in cli.build_parser()._actions:
        for flag in action.option_strings:
            if flag not in ("-h", "--help"):
                assert f"`{flag}`" in table


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--dataset", "cifar10"],
        ["--dataset", "cifar10", "--LRD", "--no_augment", "--scale_lr", "linear"],
        ["--optimizer", "asam_momentum", "--rho", "1.0", "--eta", "0", "--sam_m", "16"],
        ["--schedule", "adaptive", "--theta", "0.5", "--mini_batch_size", "0"],
        ["--phases", "2x10@0.1,1x20@0.05", "--loss_dropout", "--saveState"],
    ],
)
def test_spec_round_trips_through_its_config_and_flags(argv):
    spec = cli.RunSpec.from_argv(argv)
    stored = json.loads(json.dumps(spec.to_config()))  # as config.json keeps it
    assert cli.RunSpec.from_config(stored) == spec
    assert cli.RunSpec.from_argv(spec.to_argv()) == spec


def test_a_bad_value_anywhere_raises_one_error_naming_the_flag(capsys):
    with pytest.raises(cli.SpecError) as info:
        cli.RunSpec.from_argv(["--lr", "-1"])
    assert info.value.flag == "--lr"
    assert str(info.value) == "argument --lr: must be a positive number, got -1.0"
    spec = cli.RunSpec.from_argv([])
    with pytest.raises(cli.SpecError, match="argument --momentum: must be in"):
        dataclasses.replace(spec.optimizer, momentum=1.5)
    config = spec.to_config()
    config["model"]["mini_batch_size"] = 500
    with pytest.raises(cli.SpecError, match="argument --mini_batch_size: the virtual batch"):
        cli.RunSpec.from_config(config)
    err = refuse(["--lr", "-1"], capsys)
    assert "error: argument --lr: must be a positive number, got -1.0" in err


def updates_per_epoch(out: str) -> list[int]:
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    return [int(float(r[5])) for r in rows]


def test_dry_run_with_drop_remainder_counts_floor_updates(capsys):
    argv = ["--dry-run", "--dataset", "mnist_sample", "--schedule", "constant"]
    argv += ["--epochs", "2", "--batch_size", "300"]
    assert run.main(argv) == 0
    kept = capsys.readouterr().out
    assert updates_per_epoch(kept) == [14] and "total updates: 28" in kept  # ceil(4000 / 300)
    assert run.main([*argv, "--drop_remainder"]) == 0
    dropped = capsys.readouterr().out
    assert updates_per_epoch(dropped) == [13] and "total updates: 26" in dropped  # floor
    assert "last partial batch dropped" in dropped


def test_the_size_table_matches_the_loaded_data():
    from bsi_keras.data import known_sizes, load_dataset

    for name in ("mnist_sample", "synthetic", "synthetic_cifar"):
        dataset = load_dataset(name)
        assert known_sizes(name) == (len(dataset.x_train), len(dataset.x_test))
