"""The keras_reproduction recipe is seed 002's nine experiments as they ran in tf.keras 1.15."""

import json

import numpy as np

from bsi_keras import get_model
from bsi_keras.cli import sweep
from bsi_keras.optimizers import SGD
from bsi_keras.optimizers.nadam import Nadam

# JCDetwiler/batch-size-mnist's experiments.ipynb, read by hand: (batch, LR) of each 2-epoch
# step. Exp 3, 6, 9: the second fit(epochs=4) restarts the scheduler's epoch count, so the LR
# steps once, at epoch 5. Exp 4 runs Nadam on the SGD schedule step_lr_decay; exp 5 and the
# first step of exp 6 run at Nadam()'s tf.keras 1.15 default, 0.001.
ORIGINAL = {
    "sgd/decay_lr": [(100, 0.15), (100, 0.03), (100, 0.006)],
    "sgd/increase_bs": [(100, 0.07), (500, 0.07), (2500, 0.07)],
    "sgd/hybrid": [(100, 0.05), (500, 0.05), (500, 0.01)],
    "nadam/decay_lr": [(100, 0.15), (100, 0.03), (100, 0.006)],
    "nadam/increase_bs": [(100, 0.001), (500, 0.001), (2500, 0.001)],
    "nadam/hybrid": [(100, 0.001), (500, 0.001), (500, 0.0002)],
    "momentum/decay_lr": [(100, 0.15), (100, 0.03), (100, 0.006)],
    "momentum/increase_bs": [(100, 0.07), (500, 0.07), (2500, 0.07)],
    "momentum/hybrid": [(100, 0.05), (500, 0.05), (500, 0.01)],
}
# (class, momentum, nesterov) of each optimizer family; exp 7 alone is Nesterov.
OPTIMIZERS = {
    "sgd/": (SGD, 0.0, False),
    "nadam/": (Nadam, None, None),
    "momentum/decay_lr": (SGD, 0.1, True),
    "momentum/increase_bs": (SGD, 0.1, False),
    "momentum/hybrid": (SGD, 0.1, False),
}


def test_the_nine_runs_have_the_original_schedules_and_optimizers():
    runs = {name: sweep.run_spec(values) for name, values in sweep.RECIPES["keras_reproduction"]()}
    assert list(runs) == list(ORIGINAL)
    for name, spec in runs.items():
        schedule = spec.build_schedule(60_000)
        epochs = [(schedule.at(e).batch_size, round(schedule.at(e).lr, 10)) for e in range(6)]
        assert schedule.epochs == 6
        assert epochs == [step for step in ORIGINAL[name] for _ in range(2)], name
        assert (spec.model.dataset, spec.model.name, spec.model.mini_batch_size) == (
            "mnist",
            "mnist_cnn_keras2",
            10,
        )
        cls, momentum, nesterov = next(v for k, v in OPTIMIZERS.items() if name.startswith(k))
        optimizer = spec.optimizer.build(0.1)
        assert type(optimizer) is cls, name
        if cls is SGD:
            assert (optimizer.momentum, optimizer.nesterov) == (momentum, nesterov), name
        else:
            assert optimizer.schedule_decay == 0.004  # tf.keras 1.15's momentum schedule


def test_the_model_has_tf_keras_1_15_batch_norm_momentum():
    model = get_model("mnist_cnn_keras2", virtual_batch_size=10)
    assert model.get_layer("ghost_bn").momentum == 0.99
    assert model.get_layer("ghost_bn").virtual_batch_size == 10
    assert model.count_params() == get_model("mnist_cnn").count_params()


def test_the_recipe_runs_on_local_mnist_files(tmp_path):
    """--dataset mnist (the recipe's) with --data-dir: a folder holding mnist.npz."""
    data = tmp_path / "mnist"
    data.mkdir()
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (150, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 150, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 30, dtype=np.uint8),
    }
    np.savez(data / "mnist.npz", **arrays)
    root = tmp_path / "sweeps"
    argv = ["keras_reproduction", "--runs", "nadam/hybrid", "--root", str(root)]
    code = sweep.main([*argv, "--", "--data-dir", str(data), "--verbose", "0"])
    assert code == 0
    run = root / "keras_reproduction" / "nadam" / "hybrid"
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_finished"] == 6
    assert config["spec"]["model"]["dataset"] == "mnist"
    # 150 images: 2 epochs of 2 batches (100 + 50), then batch 500 clamped to 150, 1 each.
    assert summary["total_updates"] == 2 * 2 + 4 * 1
