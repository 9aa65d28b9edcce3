"""Per-update learning-rate curves: small functions resolved once and composed.

The phases give every update a base LR; a curve reshapes it between updates. As in optax's
schedules, each curve is a factory that takes its parameters and returns a pure function
``curve(lr, t, xp) -> lr`` of the phases' LR ``lr`` at the float update indices ``t``, with
``xp`` the array module (numpy in a dry run, `keras.ops` inside a compiled train step).
`StepCurve` is the saved description; `StepCurve.resolve` turns it into one such function
once, so that the train step evaluates arithmetic only, never the options.

Example:

>>> import numpy as np
>>> curve = linear_warmup(cosine_decay(total=100, start=10), steps=10, start_lr=0.0)
>>> [round(float(v), 4) for v in curve(np.full(4, 0.1), np.array([0.0, 5.0, 10.0, 100.0]), np)]
[0.0, 0.05, 0.1, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bsi_keras.schedules.phases import ScheduleError, check_choice

Curve = Callable[[Any, Any, Any], Any]
"""``curve(lr, t, xp) -> lr``: the LR at float update indices ``t`` given the phases' ``lr``."""

CURVE_SHAPES = ("constant", "cosine", "cyclic")


def unchanged(lr: Any, t: Any, xp: Any) -> Any:
    """The curve of the ``"constant"`` shape: the phases' LR as it is."""
    return lr


def cosine_decay(total: float, min_lr: float = 0.0, start: float = 0.0) -> Curve:
    """Cosine annealing of the phases' LR to ``min_lr`` between updates ``start`` and ``total``.

    ``min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2`` with ``p`` the progress from
    ``start`` to ``total``, clipped to [0, 1] (so the LR is held before ``start``).

    Args:
        total: the update at which the LR reaches ``min_lr``.
        min_lr: the LR at the end.
        start: the update at which the decay begins (after a warmup).

    Example:

    >>> import numpy as np
    >>> curve = cosine_decay(total=100, min_lr=0.01)
    >>> [round(float(curve(0.1, t, np)), 4) for t in (0.0, 50.0, 100.0, 150.0)]
    [0.1, 0.055, 0.01, 0.01]
    """
    span = max(total - start, 1.0)  # a run shorter than its warmup still divides

    def curve(lr: Any, t: Any, xp: Any) -> Any:
        progress = xp.minimum(xp.maximum(t - start, 0.0) / span, 1.0)
        return min_lr + (lr - min_lr) * 0.5 * (1.0 + xp.cos(math.pi * progress))

    return curve


def triangular_cycle(half_period: float, min_lr: float = 0.0) -> Curve:
    """Smith's triangular cyclic LR: from ``min_lr`` up to the phases' LR and back.

    Args:
        half_period: updates from the bottom of a cycle to its top (> 0).
        min_lr: the LR at the bottom, at updates 0, ``2 * half_period``, ...

    Example:

    >>> import numpy as np
    >>> curve = triangular_cycle(half_period=10)
    >>> [round(float(curve(0.1, t, np)), 4) for t in (0.0, 5.0, 10.0, 15.0, 20.0)]
    [0.0, 0.05, 0.1, 0.05, 0.0]
    """
    if not half_period > 0:
        raise ScheduleError("cycle_epochs", f"the half period must be > 0, got {half_period}")

    def curve(lr: Any, t: Any, xp: Any) -> Any:
        position = xp.abs(t / half_period - 2.0 * xp.floor(t / (2.0 * half_period)) - 1.0)
        return min_lr + (lr - min_lr) * xp.maximum(0.0, 1.0 - position)

    return curve


def linear_warmup(curve: Curve, steps: float, start_lr: float = 0.0) -> Curve:
    """Goyal et al.'s gradual warmup in front of ``curve``.

    For the first ``steps`` updates the LR ramps linearly from ``start_lr`` to what
    ``curve`` gives at that update; afterwards it is ``curve``'s.

    Args:
        curve: the curve to warm up into.
        steps: warmup length in updates; 0 returns ``curve`` itself.
        start_lr: the LR of update 0.

    Example:

    >>> import numpy as np
    >>> warm = linear_warmup(unchanged, steps=4, start_lr=0.0)
    >>> [float(warm(0.1, t, np)) for t in (0.0, 2.0, 4.0)]
    [0.0, 0.05, 0.1]
    """
    if steps <= 0:
        return curve

    def warmed(lr: Any, t: Any, xp: Any) -> Any:
        target = curve(lr, t, xp)
        ramp = start_lr + (target - start_lr) * t / steps
        return xp.where(t < steps, ramp, target)

    return warmed


@dataclass(frozen=True)
class StepCurve:
    """How the learning rate moves from update to update inside the phases.

    The phases give each update a base LR; the curve reshapes it:

    - ``shape="cosine"``: cosine annealing of the base LR to ``min_lr`` over the run
      (after the warmup);
    - ``shape="cyclic"``: Smith's triangular cyclic LR between ``min_lr`` and the base LR,
      ``cycle_epochs`` epochs (of the first phase's length) per half cycle;
    - ``warmup_epochs``: Goyal et al.'s gradual warmup, a linear ramp per update from
      ``warmup_start_lr`` to the LR the rest of the curve gives.

    Args:
        shape: one of `CURVE_SHAPES`.
        warmup_epochs: epochs of warmup (counted in first-phase updates).
        warmup_start_lr: the LR of the first update.
        cycle_epochs: half-cycle length of the cyclic shape, in epochs.
        min_lr: the lowest LR of the cosine and cyclic shapes.

    Example:

    >>> import numpy as np
    >>> curve = StepCurve(shape="cosine", warmup_epochs=1).resolve(total=40, per_epoch=10)
    >>> [round(float(curve(0.1, t, np)), 4) for t in (0.0, 5.0, 10.0, 25.0, 40.0)]
    [0.0, 0.05, 0.1, 0.05, 0.0]
    """

    shape: str = "constant"
    warmup_epochs: float = 0.0
    warmup_start_lr: float = 0.0
    cycle_epochs: float = 0.0
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        check_choice("lr_curve", self.shape, CURVE_SHAPES)
        if self.warmup_epochs < 0 or self.warmup_start_lr < 0 or self.min_lr < 0:
            raise ScheduleError("warmup_epochs", "warmup and minimum LRs must be >= 0")
        if self.shape == "cyclic" and not self.cycle_epochs > 0:
            raise ScheduleError("cycle_epochs", "the cyclic LR needs cycle_epochs > 0")

    def resolve(self, total: int, per_epoch: int) -> Curve:
        """The curve as one function ``(lr, t, xp) -> lr``, for a run of ``total`` updates.

        Args:
            total: the run's updates (where the cosine ends).
            per_epoch: updates per epoch of the first phase (the unit of the epoch options).
        """
        warmup = self.warmup_epochs * per_epoch
        if self.shape == "cosine":
            curve = cosine_decay(total, self.min_lr, start=warmup)
        elif self.shape == "cyclic":
            curve = triangular_cycle(self.cycle_epochs * per_epoch, self.min_lr)
        else:
            curve = unchanged
        return linear_warmup(curve, warmup, self.warmup_start_lr)

    def apply(self, lr: Any, updates: Any, total: int, per_epoch: int, xp: Any) -> Any:
        """Reshape the phases' LR ``lr`` at ``updates`` (resolves the curve on each call;
        hot loops hold on to `resolve`'s function instead)."""
        return self.resolve(total, per_epoch)(lr, updates * 1.0, xp)
