"""``--validation_examples``: the last N training examples held out and evaluated in the test
set's place, the test set never used."""

import json

import numpy as np
import pytest

from bsi_keras import run
from bsi_keras.analysis import load_solution
from bsi_keras.data import SubsetTooLarge, hold_out_validation, load_dataset


def test_the_last_examples_are_held_out_and_the_test_set_is_dropped():
    full = load_dataset("mnist_sample", num_train=1000)
    split = hold_out_validation(full, 300)
    np.testing.assert_array_equal(split.x_train, full.x_train[:700])
    np.testing.assert_array_equal(split.y_train, full.y_train[:700])
    np.testing.assert_array_equal(split.x_test, full.x_train[700:])
    np.testing.assert_array_equal(split.y_test, full.y_train[700:])
    assert split.info()["evaluation"].endswith("test set not used")


@pytest.mark.parametrize("examples", [0, 1000, 2000])
def test_a_split_that_leaves_no_training_or_no_validation_is_refused(examples):
    with pytest.raises(SubsetTooLarge, match="between 1 and 999"):
        hold_out_validation(load_dataset("mnist_sample", num_train=1000), examples)


@pytest.mark.parametrize(
    ("argv", "flag", "words"),
    [
        (["--validation_examples", "0"], "--validation_examples", "positive"),
        (["--validation_examples", "4000"], "--validation_examples", "leaves no training"),
        (
            ["--num_train", "400", "--validation_examples", "400"],
            "--validation_examples",
            "leaves no training examples of 400",
        ),
        (
            ["--validation_examples", "100", "--num_test", "50"],
            "--num_test",
            "not used with --validation_examples",
        ),
        (
            ["--validation_examples", "100", "--eval_batch_size", "200"],
            "--eval_batch_size",
            "larger than",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_flag(argv, flag, words, capsys):
    with pytest.raises(SystemExit) as info:
        run.main(["--dataset", "mnist_sample", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and words in err


def test_a_run_trains_on_the_rest_and_logs_the_held_out_accuracy(tmp_path, capsys):
    folder = tmp_path / "run"
    argv = ["--dataset", "mnist_sample", "--num_train", "400", "--validation_examples", "100"]
    argv += ["--schedule", "constant", "--epochs", "2", "--batch_size", "50", "--lr", "0.05"]
    code = run.main([*argv, "--saveState", "--verbose", "0", "--filename", str(folder)])
    assert code == 0 and "finished, validation accuracy" in capsys.readouterr().out
    config = json.loads((folder / "config.json").read_text())
    summary = json.loads((folder / "summary.json").read_text())
    assert (config["dataset"]["train_examples"], config["dataset"]["test_examples"]) == (300, 100)
    assert summary["total_updates"] == 2 * 300 // 50
    # The logged accuracy is the final model's on training examples 300..399.
    held_out = load_dataset("mnist_sample", num_train=400)
    model = load_solution(folder, 2)
    _, accuracy = model.evaluate(held_out.x_train[300:], held_out.y_train[300:], verbose=0)
    assert summary["final_val_accuracy"] == pytest.approx(accuracy, abs=1e-6)


def test_the_sam_study_tunes_on_validation_and_tests_on_the_same_training_images():
    from bsi_keras.cli import recipes, sweep

    runs = dict(recipes.sam_study_runs())
    for flags in runs.values():
        tuning, final = sweep.run_spec(flags), sweep.run_spec(recipes.sam_study_final(flags))
        assert (tuning.model.validation_examples, final.model.validation_examples) == (5000, None)
        assert tuning.model.train_size() == final.model.train_size() == 15_000
        assert (tuning.schedule, tuning.optimizer) == (final.schedule, final.optimizer)
        large = tuning.schedule.batch_size == 2048
        assert tuning.schedule.warmup_epochs == (2.0 if large else 0.0)
    # Plain SGD twice as long: as many gradient evaluations as SAM's two per update.
    sgd_2x, sam = (
        sweep.run_spec(runs[n]) for n in ("sgd_2x_b2048_lr0.1", "sam_rho0.05_b2048_lr0.1")
    )
    assert (
        sgd_2x.schedule.epochs == 2 * sam.schedule.epochs and sam.optimizer.name == "sam_momentum"
    )
