"""--bn_statistics and --weights: from the flags to the built model, and clear refusals."""

from types import SimpleNamespace

import keras
import numpy as np
import pytest

from bsi_keras import run
from bsi_keras.cli.build import build_model as _build_model
from bsi_keras.cli.checks import SpecError
from bsi_keras.cli.spec import RunSpec
from bsi_keras.layers import GhostBatchNormalization
from bsi_keras.models import get_model

TINY = ["--dataset", "mnist_sample", "--num_train", "400", "--num_test", "100", "--verbose", "0"]
MNIST = SimpleNamespace(name="mnist_sample", input_shape=(28, 28, 1), num_classes=10)
CIFAR = SimpleNamespace(name="cifar10", input_shape=(32, 32, 3), num_classes=10)


def ghost_conventions(model: keras.Model) -> set[str]:
    return {
        layer.moving_statistics
        for layer in model._flatten_layers()
        if isinstance(layer, GhostBatchNormalization)
    }


def refuse(argv, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        run.main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    "name", ["mnist_cnn", "c1", "f1", "mnist_f1", "wrn_10_1", "resnet44", "mobilenet_v2"]
)
def test_every_model_passes_bn_statistics_to_its_ghost_batch_norms(name):
    shape = (28, 28, 1) if name in ("mnist_cnn", "f1", "mnist_f1") else (32, 32, 3)
    assert ghost_conventions(get_model(name, input_shape=shape)) == {"keras"}
    model = get_model(name, input_shape=shape, bn_statistics="per_ghost_batch")
    assert ghost_conventions(model) == {"per_ghost_batch"}


def test_cifar_family_defaults_to_the_reference_convention_and_the_flag_reaches_the_model():
    cifar = RunSpec.from_argv(["--dataset", "synthetic_cifar", "--model", "mnist_f1"])
    assert cifar.model.bn_statistics == "per_ghost_batch"
    assert ghost_conventions(_build_model(cifar, CIFAR)) == {"per_ghost_batch"}
    mnist = RunSpec.from_argv([])
    assert mnist.model.bn_statistics == "keras"
    assert ghost_conventions(_build_model(mnist, MNIST)) == {"keras"}
    chosen = RunSpec.from_argv(["--bn_statistics", "per_ghost_batch"])
    assert ghost_conventions(_build_model(chosen, MNIST)) == {"per_ghost_batch"}
    assert RunSpec.from_argv(chosen.to_argv()) == chosen
    # A spec written before the option (no bn_statistics) keeps the convention it trained with.
    config = mnist.to_config()
    del config["model"]["bn_statistics"]
    assert RunSpec.from_config(config).model.bn_statistics == "keras"


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_a_local_weights_file_loads_into_the_built_model(tmp_path, suffix):
    source = get_model("mnist_cnn")
    source.set_weights([np.full(w.shape, 0.5, "float32") for w in source.get_weights()])
    path = str(tmp_path / f"trained{suffix}")
    if suffix == ".keras":
        source.save(path)
    else:
        source.save_weights(path)
    model = _build_model(RunSpec.from_argv(["--weights", path]), MNIST)
    for loaded, saved in zip(model.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(loaded, saved)


def test_weights_that_cannot_be_had_are_refused_naming_the_flag(tmp_path, capsys):
    err = refuse([*TINY, "--weights", str(tmp_path / "none.weights.h5")], capsys)
    assert "argument --weights: no such file" in err
    err = refuse([*TINY, "--weights", "model.ckpt"], capsys)
    assert "argument --weights: expected imagenet, a .weights.h5 or a .keras file" in err
    err = refuse([*TINY, "--weights", "imagenet"], capsys)
    assert "argument --weights: imagenet weights exist for mobilenet_v2 only" in err
    other = tmp_path / "f1.weights.h5"
    get_model("f1").save_weights(str(other))
    err = refuse([*TINY, "--epochs", "1", "--weights", str(other)], capsys)
    assert f"argument --weights: {other} does not fit mnist_cnn" in err


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined or non-square")
def test_imagenet_weights_without_network_are_refused_naming_the_flag(monkeypatch):
    from keras.src.utils import file_utils

    def offline(fname, origin, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- no network")

    monkeypatch.setattr(file_utils, "get_file", offline)
    spec = RunSpec.from_argv(
        ["--dataset", "cifar10", "--model", "mobilenet_v2", "--weights", "imagenet"]
    )
    with pytest.raises(SpecError, match="argument --weights: Keras could not download") as info:
        _build_model(spec, CIFAR)
    assert "local .weights.h5 or .keras file" in str(info.value)
