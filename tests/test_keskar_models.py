"""Keskar et al.'s C1, C2 and F1: layer structure and parameter counts, counted by hand."""

import keras
import numpy as np
import pytest

from bsi_keras.layers import GhostBatchNormalization
from bsi_keras.models import get_model


def layer_types(model: keras.Model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def counts(model: keras.Model) -> tuple[int, int]:
    """(trainable, BN moving statistics) parameter counts."""
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    return trainable, model.count_params() - trainable


def test_c1_structure_and_parameters():
    model = get_model("c1")  # CIFAR-10: 32x32x3, 10 classes
    block = ["Conv2D", "GhostBatchNormalization", "ReLU", "MaxPooling2D"]
    dense = ["Dense", "GhostBatchNormalization", "ReLU", "Dropout"]
    assert layer_types(model) == [*block, *block, "Flatten", *dense, *dense, "Dense"]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size, c.padding) for c in convs] == [(64, (5, 5), "same")] * 2
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert [(p.pool_size, p.strides, p.padding) for p in pools] == [((3, 3), (2, 2), "same")] * 2
    assert [d.rate for d in model.layers if isinstance(d, keras.layers.Dropout)] == [0.5, 0.5]
    # conv1 5*5*3*64+64 = 4,864; conv2 5*5*64*64+64 = 102,464; two pools 32 -> 16 -> 8, so
    # the flatten has 8*8*64 = 4,096; dense 4,096*384+384 = 1,573,248; 384*192+192 =
    # 73,920; classifier 192*10+10 = 1,930; BN gamma+beta 2*(64+64+384+192) = 1,408.
    # Trainable 1,757,834; moving mean+variance another 1,408.
    assert counts(model) == (1_757_834, 1_408)


def test_c2_structure_and_parameters():
    model = get_model("c2", virtual_batch_size=16, batch_stats_in_inference=True)
    norms = [x for x in model.layers if isinstance(x, GhostBatchNormalization)]
    assert len(norms) == 14 and all(n.virtual_batch_size == 16 for n in norms)
    assert all(n.batch_stats_in_inference for n in norms)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64, 64, 128, 128, 256, 256, 256, *[512] * 6]
    assert {(c.kernel_size, c.padding) for c in convs} == {((3, 3), "same")}
    assert len([x for x in model.layers if isinstance(x, keras.layers.MaxPooling2D)]) == 5
    rates = [d.rate for d in model.layers if isinstance(d, keras.layers.Dropout)]
    assert rates == [0.3, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.5, 0.5]
    # The first block as the reference: conv, BN, ReLU, dropout 0.3, conv, BN, ReLU, pool.
    assert layer_types(model)[:8] == [
        "Conv2D", "GhostBatchNormalization", "ReLU", "Dropout",
        "Conv2D", "GhostBatchNormalization", "ReLU", "MaxPooling2D",
    ]  # fmt: skip
    assert layer_types(model)[-7:] == [
        "Flatten", "Dropout", "Dense", "GhostBatchNormalization", "ReLU", "Dropout", "Dense",
    ]  # fmt: skip
    # Convs (3*3*in*out + out): 1,792 + 36,928 + 73,856 + 147,584 + 295,168 + 2*590,080
    # + 1,180,160 + 5*2,359,808 = 14,714,688. Five pools take 32x32 to 1x1, so dense
    # 512*512+512 = 262,656 and classifier 512*10+10 = 5,130. BN gamma+beta over
    # 64+64+128+128+3*256+6*512+512 = 4,736 channels: 9,472.
    # Trainable 14,714,688 + 262,656 + 5,130 + 9,472 = 14,991,946; moving stats 9,472.
    assert counts(model) == (14_991_946, 9_472)


def test_f1_structure_and_parameters():
    model = get_model("f1")  # MNIST: 28x28x1
    hidden = ["Dense", "GhostBatchNormalization", "ReLU"]
    assert layer_types(model) == ["Flatten", *hidden * 5, "Dense"]
    assert [d.units for d in model.layers if isinstance(d, keras.layers.Dense)] == [
        *[512] * 5,
        10,
    ]
    # 784*512+512 = 401,920; four 512*512+512 = 1,050,624; 512*10+10 = 5,130;
    # BN gamma+beta 5*1,024 = 5,120. Trainable 1,462,794; moving stats 5,120.
    assert counts(model) == (1_462_794, 5_120)


@pytest.mark.parametrize("name", ["c1", "f1"])  # C2: in its structure test
def test_bn_options_reach_every_normalization(name):
    model = get_model(
        name,
        input_shape=(28, 28, 1),
        num_classes=7,
        virtual_batch_size=16,
        batch_stats_in_inference=True,
    )
    norms = [x for x in model.layers if isinstance(x, GhostBatchNormalization)]
    assert norms and all(n.virtual_batch_size == 16 for n in norms)
    assert all(n.batch_stats_in_inference for n in norms)
    assert model.output_shape == (None, 7)
    assert model.name == name


def test_f1_batch_stats_in_inference_is_keras1_mode_2():
    """With mode=2, inference normalizes with the batch's statistics, as training does."""
    x = np.random.default_rng(0).normal(3.0, 2.0, (64, 28, 28, 1)).astype("float32")
    mode2 = get_model("f1", batch_stats_in_inference=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(mode2(x, training=False)),
        keras.ops.convert_to_numpy(mode2(x, training=True)),
        rtol=1e-5,
        atol=1e-6,
    )
    moving = get_model("f1")
    out_moving = keras.ops.convert_to_numpy(moving(x, training=False))
    out_batch = keras.ops.convert_to_numpy(moving(x, training=True))
    assert not np.allclose(out_moving, out_batch, atol=1e-3)
