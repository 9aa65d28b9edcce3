"""Optimizers by name, and the learning-rate changes the schedule driver makes.

SAM and ASAM are not optimizers here but an option of the train step
(`bsi_keras.train_step.sam`): the names ``sam_<base>`` and ``asam_<base>`` give the base
optimizer, `split_name` tells them apart, `bsi_keras.train_step.sam.from_name` gives the option.

Example:

>>> opt = get_optimizer("momentum", lr=0.1, momentum=0.9)
>>> type(opt).__name__, round(float(opt.learning_rate), 3)
('SGD', 0.1)
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from bsi_keras.optimizers.nadam import Nadam

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "nadam", "adagrad", "adadelta", "rmsprop")
# Name prefixes that hand the step to SAM / ASAM (`bsi_keras.train_step.sam`).
SAM_VARIANTS = ("sam", "asam")
SGD_FAMILY = ("sgd", "momentum", "nesterov")  # the optimizers that take a momentum


def get_optimizer(
    name: str,
    lr: float,
    momentum: float | None = None,
    clip_norm: float | None = None,
    **options: Any,
) -> keras.optimizers.Optimizer:
    """Build an optimizer by name.

    Args:
        name: one of `OPTIMIZERS`: ``sgd`` (with ``momentum``, default 0: plain SGD),
            ``momentum`` (heavy ball, default momentum 0.9), ``nesterov`` (default 0.9) --
            these three are `SGD` below, in PyTorch's convention as the reference studies
            use it -- ``nadam`` (`bsi_keras.optimizers.nadam.Nadam`: Keras 2's momentum
            schedule) and Keras's ``adam``, ``adagrad``, ``adadelta``, ``rmsprop``. A
            ``sam_`` or ``asam_`` prefix (``sam_sgd``, ``asam_adam``) names the same base
            optimizer: SAM / ASAM is an option of the train step
            (`bsi_keras.train_step.sam.from_name` gives it), and the base optimizer takes
            the step.
        lr: the initial learning rate (the schedule driver sets it per phase).
        momentum: momentum of the SGD family (None: the name's default); the others
            refuse a momentum.
        clip_norm: clip the global gradient norm to this value (the reference clips at 5).
        **options: passed to the Keras optimizer (e.g. ``epsilon``).

    Returns:
        A new Keras optimizer.
    """
    if not is_optimizer_name(name):
        raise ValueError(
            f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}, "
            "optionally prefixed sam_ or asam_"
        )
    name = split_name(name)[0]
    common = {"learning_rate": lr, "global_clipnorm": clip_norm, **options}
    if name in SGD_FAMILY:
        return SGD(
            momentum=default_momentum(name) if momentum is None else momentum,
            nesterov=name == "nesterov",
            **common,
        )
    if momentum:
        raise ValueError(f"optimizer {name!r} takes no momentum (got {momentum})")
    classes = {
        "adam": keras.optimizers.Adam,
        "nadam": Nadam,  # Keras 2's momentum schedule, not Keras 3's (see its module)
        "adagrad": keras.optimizers.Adagrad,
        "adadelta": keras.optimizers.Adadelta,
        "rmsprop": keras.optimizers.RMSprop,
    }
    return classes[name](**common)


def default_momentum(name: str) -> float:
    """The momentum an optimizer name uses when none is given (0: none).

    Example:

    >>> default_momentum("nesterov"), default_momentum("sam_sgd"), default_momentum("adam")
    (0.9, 0.0, 0.0)
    """
    return 0.9 if split_name(name)[0] in ("momentum", "nesterov") else 0.0


def is_optimizer_name(name: str) -> bool:
    """Whether ``name`` is one of `OPTIMIZERS`, possibly prefixed ``sam_`` or ``asam_``.

    Example:

    >>> is_optimizer_name("asam_nesterov"), is_optimizer_name("sam_lion")
    (True, False)
    """
    return split_name(name)[0] in OPTIMIZERS


def split_name(name: str) -> tuple[str, str | None]:
    """An optimizer name's base optimizer and SAM variant (``sam``, ``asam`` or None).

    Example:

    >>> split_name("asam_adam"), split_name("sam_sgd"), split_name("momentum")
    (('adam', 'asam'), ('sgd', 'sam'), ('momentum', None))
    """
    variant, _, base = name.partition("_")
    return (base, variant) if variant in SAM_VARIANTS and base else (name, None)


@keras.saving.register_keras_serializable(package="bsi_keras")
class SGD(keras.optimizers.Optimizer):
    """SGD with momentum in PyTorch's convention: the learning rate stays out of the buffer.

    ``buf = momentum * buf + g``; ``w -= lr * buf`` (Nesterov: ``w -= lr * (g + momentum *
    buf)``). Keras's own SGD keeps the LR inside its velocity, so after an LR change its old
    velocity still moves at the old rate; Goyal et al. correct that by rescaling the velocity
    by ``lr_new / lr_old``. In this convention the correction is built in, for LR changes
    between phases and between steps alike, and the steps are those of the reference
    PyTorch studies.

    Args:
        learning_rate: a float or a `keras.optimizers.schedules.LearningRateSchedule`.
        momentum: the momentum coefficient (0: plain SGD).
        nesterov: Nesterov's momentum.
        **kwargs: base optimizer arguments (``global_clipnorm``, ``name``, ...).

    Example:

    >>> import numpy as np
    >>> w = keras.Variable(np.array([1.0], "float32"))
    >>> opt = SGD(0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     opt.apply([keras.ops.ones((1,))], [w])
    >>> round(float(w.numpy()[0]), 4)  # 1 - 0.1 * 1 - 0.1 * (0.9 + 1)
    0.71
    """

    def __init__(
        self,
        learning_rate: Any = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        name: str = "sgd",
        **kwargs: Any,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.nesterov = nesterov

    def build(self, variables: list[keras.Variable]) -> None:
        if self.built:
            return
        super().build(variables)
        self.buffers = (
            self.add_optimizer_variables(variables, "momentum_buffer") if self.momentum else []
        )

    def update_step(self, gradient: Any, variable: keras.Variable, learning_rate: Any) -> None:
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        step = gradient
        if self.momentum:
            buffer = self.buffers[self._get_variable_index(variable)]
            momentum = ops.cast(self.momentum, variable.dtype)
            self.assign(buffer, ops.add(ops.multiply(buffer, momentum), gradient))
            step = ops.add(gradient, ops.multiply(buffer, momentum)) if self.nesterov else buffer
        self.assign_sub(variable, ops.multiply(step, learning_rate))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


def momentum_of(optimizer: keras.optimizers.Optimizer) -> float:
    """The momentum coefficient that enters Smith et al.'s noise scale (0 if none)."""
    if isinstance(optimizer, (keras.optimizers.SGD, SGD)):
        return float(optimizer.momentum)
    return 0.0


def reset_state(optimizer: keras.optimizers.Optimizer, variables: list[keras.Variable]) -> None:
    """Give ``optimizer`` the state of a fresh copy (momentum buffers, accumulators).

    The update count and the learning rate are kept. This is the reference study's
    ``mainResetGrad.py``, which re-creates the optimizer at every schedule step.

    Args:
        optimizer: a built optimizer.
        variables: the model's trainable variables it was built for.
    """
    fresh = optimizer.__class__.from_config(optimizer.get_config())
    fresh.build(variables)
    keep = {id(optimizer.iterations)}
    if isinstance(optimizer.learning_rate, keras.Variable):
        keep.add(id(optimizer.learning_rate))
    for ours, new in zip(optimizer.variables, fresh.variables):
        if id(ours) not in keep:
            ours.assign(new)


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
