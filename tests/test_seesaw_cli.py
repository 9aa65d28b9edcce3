"""``--schedule seesaw`` and ``--schedule cbs_warmup --cbs FILE`` on the command line."""

import json

import pytest

from bsi_keras import run, schedules
from bsi_keras.cli.spec import RunSpec
from bsi_keras.run_folder import read_log

SEESAW = ["--schedule", "seesaw", "--batch_size", "20", "--lr", "0.01", "--factor", "2"]


def refuse(argv, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        run.main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def test_seesaw_trains_its_phases_end_to_end(tmp_path):
    folder = tmp_path / "seesaw"
    tiny = ["--num_train", "200", "--num_test", "50", "--verbose", "0", "--optimizer", "adam"]
    argv = [*SEESAW, *tiny, "--epochs", "2", "--milestones", "1", "--filename", str(folder)]
    assert run.main(argv) == 0
    expected = schedules.seesaw(2, 20, 0.01, [1], factor=2, max_batch_size=200)
    assert [(p.batch_size, p.lr) for p in expected.phases] == [(20, 0.01), (40, 0.01 / 2**0.5)]
    assert RunSpec.from_argv(argv).build_schedule(200).phases == expected.phases
    rows = read_log(folder / "log.csv")
    assert [int(r["batch_size"]) for r in rows] == [20, 40]
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([0.01, 0.01 / 2**0.5])


def test_seesaw_of_a_cosine_is_the_ramp_of_that_cosine():
    argv = [*SEESAW, "--epochs", "8", "--lr_curve", "cosine", "--ramp_rule", "sgd"]
    base = schedules.with_curve(schedules.constant(8, 20, 0.01), schedules.StepCurve("cosine"))
    expected = schedules.from_lr_schedule(
        base, rule="sgd", step_factor=2, max_batch_size=4000, num_examples=4000
    )
    built = RunSpec.from_argv(argv).build_schedule(4000)
    assert built.phases == expected.phases
    assert built.curve is None and len(built.phases) > 2  # the cosine became batch growth


def test_seesaw_dry_run_prints_the_ramp_next_to_its_base(capsys):
    argv = [*SEESAW, "--epochs", "6", "--milestones", "2", "4", "--momentum", "0.0"]
    assert run.main([*argv, "--optimizer", "sgd", "--dry-run"]) == 0
    out = capsys.readouterr().out
    ramp, base = out.split("the base LR schedule of the adam ramp")
    assert ramp.startswith("seesaw on N = 4000") and "decay_lr on N = 4000" in base
    # Smith's lr N / B: the base halves it per step; Seesaw (lr / sqrt(2), 2B) by 2 sqrt(2).
    assert [row.split()[-1] for row in ramp.splitlines()[2:5]] == ["2", "0.707107", "0.25"]
    assert [row.split()[-1] for row in base.splitlines()[3:6]] == ["2", "1", "0.5"]


def test_cbs_warmup_builds_the_trajectory_of_a_csv_file(tmp_path):
    path = tmp_path / "cbs.csv"
    path.write_text("epoch,critical_batch\n0,15\n2,70\n9,400\n")  # epoch 9: after the run
    argv = ["--schedule", "cbs_warmup", "--cbs", str(path), "--epochs", "4", "--lr", "0.1"]
    argv += ["--batch_size", "20", "--mini_batch_size", "10", "--scale_lr", "sqrt"]
    built = RunSpec.from_argv([*argv, "--reference_batch", "20"]).build_schedule(4000)
    expected = schedules.cbs_warmup(
        4, [(0, 15.0), (2, 70.0)], 0.1, batch_size=20, multiple_of=10, scale_lr="sqrt"
    )
    assert built.phases == expected.phases
    assert [(p.epochs, p.batch_size) for p in built.phases] == [(2, 20), (2, 70)]


@pytest.mark.parametrize(
    ("content", "extra", "words"),
    [
        (None, [], "No such file"),
        ("{not json", [], "not a critical-batch trajectory"),
        (json.dumps({"rows": []}), [], "not a critical-batch trajectory"),
        (json.dumps({"trajectory": [[0, "many"]]}), [], "not a critical-batch trajectory"),
        (json.dumps({"trajectory": []}), [], "no (epoch, critical_batch) pair"),
        (json.dumps({"trajectory": [[1, 64], [0, 32]]}), [], "strictly increasing"),
        (json.dumps({"trajectory": [[7, 64]]}), [], "no measurement before epoch 6"),
        (json.dumps({"trajectory": [[0, 64]]}), ["--schedule", "decay_lr"], "cbs_warmup only"),
    ],
)
def test_bad_cbs_files_are_refused_naming_the_flag(tmp_path, content, extra, words, capsys):
    path = tmp_path / "critical_batch.json"
    if content is not None:
        path.write_text(content)
    err = refuse(["--schedule", "cbs_warmup", "--cbs", str(path), *extra, "--dry-run"], capsys)
    assert "argument --cbs" in err and words in err


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--schedule", "cbs_warmup"], "--cbs"),
        (["--ramp_rule", "sgd"], "--ramp_rule"),
        (["--schedule", "seesaw", "--scale_lr", "sqrt"], "--scale_lr"),
        (["--schedule", "seesaw", "--warmup_epochs", "1"], "--warmup_epochs"),
        (["--schedule", "seesaw", "--factor", "1"], "--factor"),
    ],
)
def test_bad_ramp_flags_are_refused_naming_the_flag(argv, flag, capsys):
    assert f"argument {flag}" in refuse([*argv, "--dry-run"], capsys)
