"""Seeds as a dimension: the statistics by hand, the flags, runs over seeds and their report."""

import csv
import io
import json
import math
from pathlib import Path

import pytest

from bsi_keras import plots, run, stats
from bsi_keras.cli import report, sweep
from bsi_keras.run_folder import read_log

TINY = ["--dataset", "mnist_sample", "--num_train", "200", "--num_test", "100", "--verbose", "0"]


def test_mean_and_sample_std_by_hand():
    # mean (88 + 89 + 91) / 3 = 89.333..; squares 1.7778 + 0.1111 + 2.7778 = 4.6667; / 2 -> 2.3333
    mean, std = stats.mean_std([88.0, 89.0, 91.0])
    assert mean == pytest.approx(89.333333, abs=1e-6)
    assert std == pytest.approx(math.sqrt(7 / 3), abs=1e-12)
    assert math.isnan(stats.mean_std([1.0])[1])


def test_paired_interval_by_hand():
    # d = (0.5, 0.3, 0.1, 0.4, 0.2): mean 0.3, sd sqrt(0.1 / 4) = 0.158114, se 0.070711,
    # t_{0.975, 4} = 2.776445 -> half width 0.196324
    difference = stats.paired_difference([90.5, 90.3, 90.1, 90.4, 90.2], [90.0] * 5)
    assert difference.mean == pytest.approx(0.3)
    assert difference.low == pytest.approx(0.3 - 0.196324, abs=1e-6)
    assert difference.high == pytest.approx(0.3 + 0.196324, abs=1e-6)
    assert difference.resolved and difference.format() == "+0.30 (+0.10 to +0.50)"
    # d = (1, -1, 0.5): the interval contains zero
    unresolved = stats.paired_difference([1.0, -1.0, 0.5], [0.0, 0.0, 0.0])
    assert not unresolved.resolved and unresolved.format().endswith(", unresolved")
    assert stats.paired_difference([1.0], [0.0]).format() == "+1.00 (one seed), unresolved"


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--seeds", "0", "1", "--seed", "3"], "--seeds"),
        (["--num_seeds", "2", "--seed", "3"], "--num_seeds"),
        (["--seeds", "0", "--num_seeds", "2"], "--num_seeds"),
        (["--seeds", "1", "1"], "--seeds"),
        (["--num_seeds", "0"], "--num_seeds"),
    ],
)
def test_seed_flags_refuse_contradictions(argv, flag, capsys):
    with pytest.raises(SystemExit) as info:
        run.main(argv)
    assert info.value.code == 2
    assert f"argument {flag}:" in capsys.readouterr().err


def test_sweep_refuses_seeds_with_a_seed_for_its_runs(capsys):
    with pytest.raises(SystemExit):
        sweep.main(["smith", "--seeds", "0", "1", "--", "--seed", "2"])
    assert "argument --seeds: contradicts --seed" in capsys.readouterr().err


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """``--schedule all --seeds 0 1`` on 200 images, 3 epochs: six tiny runs."""
    root = tmp_path_factory.mktemp("seeds") / "compare"
    argv = [*TINY, "--schedule", "all", "--epochs", "3", "--batch_size", "20"]
    assert run.main([*argv, "--seeds", "0", "1", "--filename", str(root)]) == 0
    return root, argv


def test_seeds_write_one_folder_per_seed_and_schedule_paired(seeded, capsys):
    root, argv = seeded
    for seed in (0, 1):
        firsts = set()
        for name in ("decay_lr", "hybrid", "increase_bs"):
            folder = root / f"seed_{seed}" / name
            assert json.loads((folder / "config.json").read_text())["spec"]["run"]["seed"] == seed
            firsts.add(read_log(folder / "log.csv")[0]["val_loss"])
        assert len(firsts) == 1  # the first epoch is the same for the three: same weights, order
    assert (root / "comparison.png").stat().st_size > 10_000
    assert (root / "wallclock.png").stat().st_size > 10_000
    assert run.main([*argv, "--num_seeds", "2", "--filename", str(root)]) == 0  # all done
    assert capsys.readouterr().out.count("finished before, skipped") == 6
    with pytest.raises(SystemExit):  # the same folders, another LR
        run.main([*argv, "--lr", "0.01", "--seeds", "0", "1", "--filename", str(root)])
    err = capsys.readouterr().err
    assert "argument --filename: " in err and "another spec" in err


def fake_run(folder, seed, accuracies, updates, seconds):
    """A finished run folder with the given per-epoch test accuracies (no training)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"seed": seed, "schedule": {"name": "x"}}))
    summary = {
        "status": "finished",
        "final_val_accuracy": accuracies[-1],
        "total_updates": updates,
        "train_seconds": seconds,
        "compile_seconds": 1.0,
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    rows = [f"{i + 1},{a}" for i, a in enumerate(accuracies)]
    (folder / "log.csv").write_text("epoch,val_accuracy\n" + "\n".join(rows) + "\n")


def test_report_over_seeds_by_hand(tmp_path, capsys):
    finals = {
        "decay_lr": (0.88, 0.89, 0.91),
        "hybrid": (0.885, 0.893, 0.913),  # d = +0.5, +0.3, +0.3 points
        "increase_bs": (0.881, 0.888, 0.911),  # d = +0.1, -0.2, +0.1 points
    }
    updates = {"decay_lr": 3600, "hybrid": 1680, "increase_bs": 1488}
    for name, accuracies in finals.items():
        for seed, final in enumerate(accuracies):
            run_dir = tmp_path / "top" / f"seed_{seed}" / name
            fake_run(run_dir, seed, [0.5, 0.86, final], updates[name], 10.0 + seed)
    assert report.main([str(tmp_path / "top"), "--last_k", "2"]) == 0
    out = capsys.readouterr().out
    # decay_lr: mean 89.333, sd sqrt(7/3) = 1.528; last-2 means 87.0, 87.5, 88.5: 87.67 +- 0.76
    assert "| top/decay_lr | 0 1 2 | 89.33 +- 1.53 | 87.67 +- 0.76 | 3600 +- 0 |" in out
    # hybrid: mean(d) 0.3667, sd(d) 0.11547, t_{0.975, 2} 4.302653: half 0.28684
    assert "| top/hybrid - decay_lr | 3 | +0.37 (+0.08 to +0.65) |" in out
    # increase_bs: mean(d) 0, the interval contains zero; updates: -2112 on every seed
    assert "| top/increase_bs - decay_lr | 3 | +0.00 (-0.43 to +0.43), unresolved |" in out
    assert "-2112 (every seed) |" in out
    assert report.main([str(tmp_path / "top"), "--csv", "--reference", "hybrid"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    row = next(r for r in rows if r["run"] == "top/decay_lr" and r["metric"] == "updates")
    assert float(row["diff"]) == 3600 - 1680 and row["resolved"] == "True"


def test_report_of_a_run_over_seeds(seeded, capsys):
    root, _ = seeded
    assert report.main([str(root), "--last_k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("| compare/") == 5 and "+- " in out and "t-interval" in out


def test_milestones_are_labelled_with_the_factor_and_schedules_keep_their_style():
    rows = [
        {"batch_size": b, "learning_rate": lr} for b, lr in ((100, 0.1), (500, 0.1), (500, 0.02))
    ]
    run_ = plots.Run(Path("r"), "hybrid", {}, rows)
    assert run_.milestones == [1, 2]
    assert [plots.milestone_label([run_], m) for m in (1, 2)] == ["x5 batch / LR / 5"] * 2
    assert plots.style("increase_bs") == plots.style("increase_bs", 7)
    assert plots.style("decay_lr")["color"] != plots.style("hybrid")["color"]


def test_sweep_over_seeds_runs_each_seed_into_its_folder(tmp_path, capsys):
    flags = ["--", *TINY, "--epochs", "2", "--batch_size", "20", "--lr", "0.02"]
    argv = ["smith", "--root", str(tmp_path), "--runs", "decay_lr", "--dataset", "mnist_sample"]
    assert sweep.main([*argv, "--seeds", "0", "1", *flags]) == 0
    for seed in (0, 1):
        config = json.loads((tmp_path / f"seed_{seed}/smith/decay_lr/config.json").read_text())
        assert config["spec"]["run"]["seed"] == seed
    capsys.readouterr()
    assert report.main([str(tmp_path)]) == 0
    assert f"| {tmp_path.name}/smith/decay_lr | 0 1 |" in capsys.readouterr().out


def test_report_adds_the_final_training_accuracy_on_request(tmp_path, capsys):
    train = {"sgd": (0.90, 0.92), "sam": (0.91, 0.95)}  # d = +1, +3 points: mean 2, sd 1.414
    for name, accuracies in train.items():
        for seed, final in enumerate(accuracies):
            run_dir = tmp_path / "top" / f"seed_{seed}" / name
            fake_run(run_dir, seed, [0.8, 0.85], 100, 10.0)
            log = "epoch,accuracy,val_accuracy\n1,0.5,0.8\n" + f"2,{final},0.85\n"
            (run_dir / "log.csv").write_text(log)
    assert report.main([str(tmp_path / "top"), "--reference", "sgd"]) == 0
    assert "train accuracy" not in capsys.readouterr().out
    assert report.main([str(tmp_path / "top"), "--reference", "sgd", "--train_accuracy"]) == 0
    out = capsys.readouterr().out
    assert "| run | seeds | test accuracy (%) | train accuracy (%) |" in out
    assert "| top/sgd | 0 1 | 85.00 +- 0.00 | 91.00 +- 1.41 |" in out
    # t_{0.975, 1} = 12.7062: half-width 12.7062 * 1.41421 / sqrt(2) = 12.71
    assert "| top/sam - sgd | 2 | +0.00 (every seed), none | +2.00 (-10.71 to +14.71), " in out
