"""Optimizers by name, and the learning-rate changes the schedule driver makes.

Example:

>>> opt = get_optimizer("momentum", lr=0.1, momentum=0.9)
>>> type(opt).__name__, round(float(opt.learning_rate), 3)
('SGD', 0.1)
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "nadam", "adagrad", "adadelta", "rmsprop")


def get_optimizer(
    name: str,
    lr: float,
    momentum: float | None = None,
    clip_norm: float | None = None,
    **options: Any,
) -> keras.optimizers.Optimizer:
    """Build an optimizer by name.

    Args:
        name: one of `OPTIMIZERS`: ``sgd`` (with ``momentum``, default 0: plain SGD, as
            PyTorch's ``SGD``), ``momentum`` (heavy ball, default momentum 0.9),
            ``nesterov`` (default 0.9), ``adam``, ``nadam``, ``adagrad``, ``adadelta``,
            ``rmsprop``.
        lr: the initial learning rate (the schedule driver sets it per phase).
        momentum: momentum of the SGD family (None: the name's default); the others
            refuse a momentum.
        clip_norm: clip the global gradient norm to this value (the reference clips at 5).
        **options: passed to the Keras optimizer (e.g. ``epsilon``).

    Returns:
        A new Keras optimizer.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    common = {"learning_rate": lr, "global_clipnorm": clip_norm, **options}
    if name in ("sgd", "momentum", "nesterov"):
        default = 0.0 if name == "sgd" else 0.9
        return keras.optimizers.SGD(
            momentum=default if momentum is None else momentum,
            nesterov=name == "nesterov",
            **common,
        )
    if momentum:
        raise ValueError(f"optimizer {name!r} takes no momentum (got {momentum})")
    classes = {
        "adam": keras.optimizers.Adam,
        "nadam": keras.optimizers.Nadam,
        "adagrad": keras.optimizers.Adagrad,
        "adadelta": keras.optimizers.Adadelta,
        "rmsprop": keras.optimizers.RMSprop,
    }
    return classes[name](**common)


def momentum_of(optimizer: keras.optimizers.Optimizer) -> float:
    """The momentum coefficient that enters Smith et al.'s noise scale (0 if none)."""
    if isinstance(optimizer, keras.optimizers.SGD):
        return float(optimizer.momentum)
    return 0.0


def set_learning_rate(
    optimizer: keras.optimizers.Optimizer, lr: float, momentum_correction: bool = True
) -> None:
    """Set the optimizer's learning rate, with Goyal et al.'s momentum correction.

    Keras's SGD keeps the learning rate inside its velocity (``v = m v - lr g``), so after a
    change from ``lr_old`` to ``lr_new`` the old velocity still moves the weights at the old
    rate. Goyal et al. 2017 scale the velocity by ``lr_new / lr_old``; with it, Keras's SGD
    takes exactly the steps of PyTorch's SGD (whose buffer holds no LR), which the reference
    studies use. Adaptive optimizers (Adam, ...) keep no LR in their state.

    Args:
        optimizer: a built or unbuilt Keras optimizer with a plain (non-schedule) LR.
        lr: the new learning rate.
        momentum_correction: rescale SGD's velocity when the LR changes.
    """
    if not isinstance(optimizer.learning_rate, keras.Variable):
        raise TypeError(
            "the schedule driver sets the learning rate itself; compile the model with a "
            "plain float learning rate, not a LearningRateSchedule"
        )
    old = float(ops.convert_to_numpy(optimizer.learning_rate))
    optimizer.learning_rate.assign(lr)
    if momentum_correction and old > 0 and old != lr:
        for velocity in _sgd_velocities(optimizer):
            velocity.assign(velocity * (lr / old))


def _sgd_velocities(optimizer: keras.optimizers.Optimizer) -> list[keras.Variable]:
    if not isinstance(optimizer, keras.optimizers.SGD) or not optimizer.built:
        return []
    return [v for v in getattr(optimizer, "momentums", []) if v is not None]
