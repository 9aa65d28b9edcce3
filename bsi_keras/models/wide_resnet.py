"""Wide residual networks for CIFAR (WRN-d-k), in two block styles, with ghost batch norm.

``style="postact"`` (the default) is the network the reference PyTorch study of Smith et al.
trains as "WRN-16-4" (eladhoffer/bigBatch's ``WResNet_cifar10``, copied into
MiriamDeml/BatchOptimizedTraining): a 3x3 stem of ``16k`` channels with BN and ReLU,
post-activation basic blocks (conv-BN-ReLU-conv-BN, add, ReLU) in stages of ``16k, 32k, 64k``
channels, a 1x1 convolution + BN shortcut where the shape changes, average pooling and a
dense classifier. It is the default so that our runs are comparable with that study's.

``style="preact"`` is the network of Zagoruyko & Komodakis (2016): a 16-channel stem,
pre-activation blocks (BN-ReLU-conv-BN-ReLU-conv, add) whose projection shortcut reads the
pre-activated input, and a final BN-ReLU before pooling; Smith et al.'s paper names it.

Batch norm uses PyTorch's defaults (momentum 0.1 in its convention, i.e. Keras's 0.9, and
epsilon 1e-5), as both references do. Stride-2 convolutions use Keras's "same" padding, which
pads bottom and right only where PyTorch's ``padding=1`` pads all sides: same shapes and
parameters, the sampling grid shifted by one pixel.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import keras

from bsi_keras.layers import GhostBatchNormalization
from bsi_keras.models.weight_decay import weight_decay_regularizer

STYLES = ("postact", "preact")
_NAME = re.compile(r"wrn_(\d+)_(\d+)(?:_(postact|preact))?")
# He et al.'s normal initialization in the fan-out form of the reference code:
# N(0, sqrt(2 / (k * k * out_channels))), not truncated.
_CONV_INIT = keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def wide_resnet(
    depth: int = 16,
    width: int = 4,
    input_shape: tuple[int, ...] = (32, 32, 3),
    num_classes: int = 10,
    virtual_batch_size: int | None = 128,
    style: str = "postact",
    dropout: float = 0.0,
    bn_momentum: float = 0.9,
    bn_epsilon: float = 1e-5,
    weight_decay: float = 0.0,
    bn_statistics: str = "keras",
    name: str | None = None,
) -> keras.Model:
    """WRN-``depth``-``width``: three stages of basic residual blocks, ghost batch norm.

    Each stage has ``(depth - 2) // 6`` blocks, which reads both depth conventions: He et
    al.'s ``6n + 2`` (ResNet-44: 7 blocks) and Zagoruyko & Komodakis's ``6n + 4`` (WRN-16-4:
    2 blocks, as the reference code's ``int((16 - 2) / 6)`` gives). Convolutions have no
    bias and He-normal weights.

    Args:
        depth: network depth, ``6n + 2`` or ``6n + 4`` with ``n >= 1``.
        width: widening factor ``k`` (stage widths ``16k, 32k, 64k``).
        input_shape: image shape, channels last.
        num_classes: number of output classes.
        virtual_batch_size: ghost batch size of every normalization (None: whole batch).
        style: ``"postact"`` (the reference study's network) or ``"preact"`` (Zagoruyko &
            Komodakis); see the module docstring.
        dropout: dropout rate between the two convolutions of each block (0: none).
        bn_momentum: momentum of the moving statistics (PyTorch's default).
        bn_epsilon: epsilon of the normalizations (PyTorch's default).
        weight_decay: PyTorch-style weight decay of every trainable weight (see
            `bsi_keras.models.weight_decay`).
        bn_statistics: how the moving statistics follow the ghost batches, ``"keras"`` or
            ``"per_ghost_batch"`` (the reference PyTorch studies'; see
            `bsi_keras.layers.GhostBatchNormalization`'s ``moving_statistics``).
        name: the model's name (default ``wrn_<depth>_<width>``, ``_preact`` appended for
            that style).

    Returns:
        An uncompiled model whose output is class probabilities.

    Example:

    >>> wide_resnet(16, 4).count_params()
    2782154

    That is the reference's 2,777,674 (PyTorch's ``parameters()``) plus 4,480 moving means
    and variances, which Keras counts as non-trainable weights and PyTorch keeps as buffers.
    The pre-activation WRN-16-4 has 2,748,890 trainable parameters, WRN-28-10 36,479,194
    (the WRN paper's 2.7 M and 36.5 M).
    """
    blocks = _blocks_per_stage(depth)
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    preact = style == "preact"
    decay = weight_decay_regularizer(weight_decay)
    norm = functools.partial(
        GhostBatchNormalization,
        virtual_batch_size,
        momentum=bn_momentum,
        epsilon=bn_epsilon,
        moving_statistics=bn_statistics,
        beta_regularizer=decay,
        gamma_regularizer=decay,
    )
    conv = functools.partial(_conv, decay=decay)
    inputs = keras.Input(input_shape)
    x = conv(inputs, 16 if preact else 16 * width, 3, 1, "stem_conv")
    if not preact:  # a pre-activation block normalizes its input itself
        x = _relu(norm(name="stem_bn")(x))
    for stage, filters in enumerate((16 * width, 32 * width, 64 * width), start=1):
        for block in range(1, blocks + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            prefix = f"stage{stage}_block{block}"
            x = _block(x, filters, stride, preact, dropout, norm, conv, prefix)
    if preact:
        x = _relu(norm(name="final_bn")(x))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=decay,
        bias_regularizer=decay,
        name="classifier",
    )(x)
    default_name = f"wrn_{depth}_{width}" + ("_preact" if preact else "")
    return keras.Model(inputs, outputs, name=name or default_name)


def wide_resnet_options(name: str) -> dict[str, Any] | None:
    """The `wide_resnet` options a model name stands for, or None if it names no WRN.

    Args:
        name: ``wrn_<depth>_<width>``, optionally ending in ``_postact`` or ``_preact``.

    Returns:
        ``depth``, ``width`` and, where the name says it, ``style``; None otherwise.

    Example:

    >>> wide_resnet_options("wrn_28_10_preact")
    {'depth': 28, 'width': 10, 'style': 'preact'}
    >>> wide_resnet_options("resnet44") is None
    True
    """
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    options: dict[str, Any] = {"depth": int(match[1]), "width": int(match[2])}
    if match[3]:
        options["style"] = match[3]
    return options


def _blocks_per_stage(depth: int) -> int:
    if depth < 8 or depth % 6 not in (2, 4):
        raise ValueError(f"depth must be 6n + 2 or 6n + 4 with n >= 1, got {depth}")
    return (depth - 2) // 6


def _block(
    x: Any,
    filters: int,
    stride: int,
    preact: bool,
    dropout: float,
    norm: Callable[..., keras.layers.Layer],
    conv: Callable[..., Any],
    prefix: str,
) -> Any:
    """One basic residual block, pre- or post-activation."""
    entry = _relu(norm(name=f"{prefix}_bn0")(x)) if preact else x
    out = conv(entry, filters, 3, stride, f"{prefix}_conv1")
    out = _relu(norm(name=f"{prefix}_bn1")(out))
    if dropout:
        out = keras.layers.Dropout(dropout, name=f"{prefix}_dropout")(out)
    out = conv(out, filters, 3, 1, f"{prefix}_conv2")
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = conv(entry, filters, 1, stride, f"{prefix}_shortcut_conv")
        if not preact:
            shortcut = norm(name=f"{prefix}_shortcut_bn")(shortcut)
    if preact:
        return keras.layers.Add(name=f"{prefix}_add")([shortcut, out])
    out = norm(name=f"{prefix}_bn2")(out)
    return _relu(keras.layers.Add(name=f"{prefix}_add")([shortcut, out]))


def _conv(
    x: Any,
    filters: int,
    kernel: int,
    stride: int,
    name: str,
    decay: keras.regularizers.Regularizer | None,
) -> Any:
    return keras.layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer=_CONV_INIT,
        kernel_regularizer=decay,
        name=name,
    )(x)


def _relu(x: Any) -> Any:
    return keras.layers.ReLU()(x)
