"""The MNIST multilayer perceptron of Hoffer et al.'s bigBatch (``mnist_f1``)."""

from __future__ import annotations

import keras

from bsi_keras.layers import GhostBatchNormalization


def mnist_f1(
    input_shape: tuple[int, ...] = (28, 28, 1),
    num_classes: int = 10,
    virtual_batch_size: int | None = 128,
    hidden_layers: int = 5,
    units: int = 512,
    bn_momentum: float = 0.9,
    bn_epsilon: float = 1e-5,
) -> keras.Model:
    """Flatten, then ``hidden_layers`` x [Dense ``units``, ghost BN, ReLU], then Dense softmax.

    As eladhoffer/bigBatch's ``mnist_f1`` (784 -> 5 x [512, BN, ReLU] -> 10), the dense
    layers keep their bias although a normalization follows, so that the parameter count
    matches the reference's (1,462,794 trainable for MNIST). Batch norm uses PyTorch's
    defaults (momentum 0.9 in Keras's convention, epsilon 1e-5).

    Args:
        input_shape: input shape (flattened by the model).
        num_classes: number of output classes.
        virtual_batch_size: ghost batch size of every normalization (None: whole batch).
        hidden_layers: number of hidden blocks.
        units: width of each hidden layer.
        bn_momentum: momentum of the moving statistics.
        bn_epsilon: epsilon of the normalizations.

    Returns:
        An uncompiled model whose output is class probabilities.

    Example:

    >>> mnist_f1().count_params()  # 1,462,794 trainable + 5,120 BN moving statistics
    1467914
    """
    layers: list[keras.layers.Layer] = [keras.Input(input_shape), keras.layers.Flatten()]
    for i in range(1, hidden_layers + 1):
        layers += [
            keras.layers.Dense(units, name=f"dense{i}"),
            GhostBatchNormalization(
                virtual_batch_size, momentum=bn_momentum, epsilon=bn_epsilon, name=f"bn{i}"
            ),
            keras.layers.ReLU(name=f"relu{i}"),
        ]
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name="classifier"))
    return keras.Sequential(layers, name="mnist_f1")
