"""The time to a target accuracy, against a hand computation on tiny synthetic logs."""

import json

import pytest

from bsi_keras.cli import report
from bsi_keras.cli.target_accuracy import TimeToTarget, time_to_target

TRAIN_EXAMPLES = 1000


def fake_run(folder, seed, batch_sizes, accuracies, epoch_seconds):
    """A finished run folder whose epochs had these batch sizes and test accuracies."""
    folder.mkdir(parents=True)
    config = {"seed": seed, "dataset": {"train_examples": TRAIN_EXAMPLES}}
    (folder / "config.json").write_text(json.dumps(config))
    summary = {
        "status": "finished",
        "final_val_accuracy": accuracies[-1],
        "total_updates": 0,
        "train_seconds": 0.0,
        "compile_seconds": 0.0,
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    rows, updates = [], 0
    for epoch, (batch, accuracy) in enumerate(zip(batch_sizes, accuracies), start=1):
        epoch_updates = -(-TRAIN_EXAMPLES // batch)  # the last batch may be short
        updates += epoch_updates
        rows.append(f"{epoch},{batch},{updates},{epoch_updates},{accuracy},{epoch_seconds}")
    header = "epoch,batch_size,updates,epoch_updates,val_accuracy,epoch_seconds\n"
    (folder / "log.csv").write_text(header + "\n".join(rows) + "\n")


@pytest.fixture
def study(tmp_path):
    """decay_lr (batch 100) and doubling (100, 200, 400) on seeds 0 to 2; target 86.5 %."""
    decay = {0: [0.80, 0.87, 0.90], 1: [0.80, 0.87, 0.90], 2: [0.80, 0.86, 0.90]}
    doubling = {0: [0.87, 0.88, 0.89], 1: [0.80, 0.85, 0.866], 2: [0.80, 0.85, 0.86]}
    for seed in range(3):
        root = tmp_path / "top"
        fake_run(root / "decay_lr" / f"seed_{seed}", seed, [100] * 3, decay[seed], 1.0 + seed)
        fake_run(root / "doubling" / f"seed_{seed}", seed, [100, 200, 400], doubling[seed], 0.5)
    return tmp_path / "top"


def test_time_to_target_counts_to_the_end_of_the_first_epoch_that_reached_it(study):
    # Epochs of 10, 5 and 3 updates; the third's 3 x 400 examples are capped at 1,000.
    assert time_to_target(study / "doubling" / "seed_1", 86.5) == TimeToTarget(3, 18, 3000, 1.5)
    assert time_to_target(study / "doubling" / "seed_0", 86.5) == TimeToTarget(1, 10, 1000, 0.5)
    assert time_to_target(study / "decay_lr" / "seed_2", 86.5) == TimeToTarget(3, 30, 3000, 9.0)
    assert time_to_target(study / "doubling" / "seed_2", 86.5) is None  # 86.0 % at best


def test_report_at_a_target_by_hand(study, capsys):
    assert report.main([str(study), "--target_accuracy", "86.5"]) == 0
    out = capsys.readouterr().out
    # decay_lr: epochs 2, 2, 3: updates 20, 20, 30 (23.33 +- 5.77), examples 2000, 2000, 3000,
    # seconds 2, 4, 9 (5.0 +- sqrt(13) = 3.6).
    assert "| top/decay_lr | 0 1 2 | 3/3 | 2 2 3 | 23 +- 6 | 2333 +- 577 | 5.0 +- 3.6 |" in out
    # doubling: seed 2 never reaches it and is counted; seeds 0, 1: 10 and 18 updates,
    # 1000 and 3000 examples, 0.5 and 1.5 s.
    assert "| top/doubling | 0 1 2 | 2/3 | 1 3 never | 14 +- 6 | 2000 +- 1414 | 1.0 +- 0.7 |" in out
    # Paired over seeds 0 and 1: updates d = -10, -2: mean -6, sd 4 sqrt(2), t_{0.975, 1}
    # 12.7062 x 4 = 50.8; examples d = -1000, +1000; seconds d = -1.5, -2.5: half 6.35.
    assert (
        "| top/doubling - decay_lr | 2 | -6 (-57 to +45), unresolved "
        "| +0 (-12706 to +12706), unresolved | -2.0 (-8.4 to +4.4), unresolved |"
    ) in out


def test_a_configuration_that_never_reaches_the_target_says_so(study, capsys):
    assert report.main([str(study / "doubling"), "--target_accuracy", "95"]) == 0
    out = capsys.readouterr().out
    assert "| doubling | 0 1 2 | 0/3 | never never never | never reached |" in out
    assert report.main([str(study), "--target_accuracy", "86.5", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "run,seeds,reached,metric,mean,std,diff,diff_low,diff_high,resolved"
    assert "top/doubling,0 1 2,0 1,updates,14.0," in "\n".join(lines)


@pytest.mark.parametrize("value", ["0", "101"])
def test_target_accuracy_out_of_range_is_refused(study, value, capsys):
    with pytest.raises(SystemExit):
        report.main([str(study), "--target_accuracy", value])
    assert "argument --target_accuracy: must be in (0, 100]" in capsys.readouterr().err
