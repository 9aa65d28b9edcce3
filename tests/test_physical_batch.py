"""The automatic physical batch: a probe of throwaway copies picks the shape to use."""

import json

import keras
import numpy as np
import pytest

from bsi_keras import models
from bsi_keras.cli import run
from bsi_keras.runtime import physical_batch


def _compiled():
    model = models.get_model("mnist_cnn", virtual_batch_size=10)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_the_probe_picks_a_measured_size_and_leaves_the_model_alone():
    model = _compiled()
    before = [keras.ops.convert_to_numpy(v).copy() for v in model.variables]
    chosen, throughput = physical_batch.probe(model, (28, 28, 1), 10, [10, 20, 40])
    assert chosen in throughput and set(throughput) == {10, 20, 40}
    assert throughput[chosen] >= (1 - physical_batch.TOLERANCE) * max(throughput.values())
    for old, new in zip(before, model.variables):
        np.testing.assert_array_equal(old, keras.ops.convert_to_numpy(new))


def test_out_of_memory_ends_the_probe_at_the_last_size_that_fitted(monkeypatch):
    def fake(model, shape, classes, size):
        if size > 20:
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate")
        return float(size)

    monkeypatch.setattr(physical_batch, "_examples_per_second", fake)
    chosen, throughput = physical_batch.probe(None, (1,), 2, [10, 20, 40, 80])
    assert (chosen, sorted(throughput)) == (20, [10, 20])


def test_other_errors_are_not_taken_for_a_full_memory(monkeypatch):
    def broken(model, shape, classes, size):
        raise ValueError("a bug")

    monkeypatch.setattr(physical_batch, "_examples_per_second", broken)
    with pytest.raises(ValueError, match="a bug"):
        physical_batch.probe(None, (1,), 2, [10, 20])


def test_the_command_line_records_the_chosen_size(tmp_path):
    folder = tmp_path / "auto"
    argv = ["--epochs", "1", "--num_train", "200", "--num_test", "50", "--batch_size", "40"]
    argv += ["--max_physical_batch", "auto", "--filename", str(folder), "--verbose", "0"]
    assert run.main(argv) == 0
    config = json.loads((folder / "config.json").read_text())
    assert config["spec"]["step"]["max_physical_batch"] == "auto"
    probed = config["max_physical_batch"]
    assert probed["chosen"] in [size for size, _ in probed["examples_per_second"]]
    assert probed["chosen"] <= 40  # no larger than the schedule's largest batch
