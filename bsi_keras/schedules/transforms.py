"""Transforms: a fixed schedule in, the same schedule rebuilt with one thing changed out.

LR scaling with the batch size (Goyal's linear rule, Hoffer's sqrt rule), Hoffer et al.'s
regime adaptation, and the per-update curve. Each rebuilds with `dataclasses.replace`, so
the name, params and curve a transform does not touch pass through.
"""

from __future__ import annotations

import math
from dataclasses import replace

from bsi_keras.schedules.base import Schedule
from bsi_keras.schedules.curves import StepCurve
from bsi_keras.schedules.phases import check_choice, check_positive_int

# The exponent of B / reference_batch each LR scaling rule applies.
_SCALING_POWERS = {"none": 0.0, "linear": 1.0, "sqrt": 0.5}
SCALING_RULES = tuple(_SCALING_POWERS)


def scaled_lr(lr: float, batch_size: int, reference_batch: int, rule: str) -> float:
    """``lr`` scaled from ``reference_batch`` to ``batch_size`` by ``rule``.

    The one formula of the LR scaling rules: ``lr * (B / reference_batch) ** power`` with
    power 1 (``"linear"``), 1/2 (``"sqrt"``) or 0 (``"none"``).

    Args:
        lr: the learning rate at ``reference_batch``.
        batch_size: the batch size to scale to.
        reference_batch: the batch size ``lr`` was set for.
        rule: one of `SCALING_RULES`.

    Example:

    >>> scaled_lr(0.1, 1024, 256, "linear"), scaled_lr(0.1, 1024, 256, "sqrt")
    (0.4, 0.2)
    """
    check_choice("scale_lr", rule, SCALING_RULES)
    return lr * (batch_size / reference_batch) ** _SCALING_POWERS[rule]


def scale_lr(schedule: Schedule, rule: str, reference_batch: int = 256) -> Schedule:
    """Scale every phase's LR with its batch size: Goyal's linear or Hoffer's sqrt rule.

    ``linear``: ``lr * B / reference_batch``; ``sqrt``: ``lr * sqrt(B / reference_batch)``
    (see `scaled_lr`); ``none`` returns ``schedule`` itself.

    Args:
        schedule: the schedule whose phases' LRs were set for ``reference_batch``.
        rule: one of `SCALING_RULES`.
        reference_batch: the batch size the LRs were set for.

    >>> from bsi_keras.schedules import constant
    >>> [p.lr for p in scale_lr(constant(2, 1024, 0.1), "linear").phases]
    [0.4]
    """
    check_choice("scale_lr", rule, SCALING_RULES)
    check_positive_int("reference_batch", reference_batch)
    if rule == "none":
        return schedule
    phases = tuple(
        replace(p, lr=scaled_lr(p.lr, p.batch_size, reference_batch, rule)) for p in schedule.phases
    )
    params = {**schedule.params, "scale_lr": rule, "reference_batch": reference_batch}
    return replace(schedule, phases=phases, params=params)


def stretch_epochs(schedule: Schedule, reference_batch: int) -> Schedule:
    """Hoffer et al.'s regime adaptation: train longer so the update count matches.

    Each phase's epochs are multiplied by ``ceil(B / reference_batch)``, so a phase at a
    large batch takes as many updates as it would at the reference batch size.

    Args:
        schedule: the schedule to stretch.
        reference_batch: the batch size whose update count the phases match.

    >>> from bsi_keras.schedules import increase_bs
    >>> [p.epochs for p in stretch_epochs(increase_bs(4, 128, 0.1, [2], 2), 128).phases]
    [2, 4]
    """
    check_positive_int("reference_batch", reference_batch)
    phases = tuple(
        replace(p, epochs=p.epochs * math.ceil(p.batch_size / reference_batch))
        for p in schedule.phases
    )
    params = {**schedule.params, "regime_adaptation": reference_batch}
    return replace(schedule, phases=phases, params=params)


def with_curve(schedule: Schedule, curve: StepCurve | None) -> Schedule:
    """The same phases with a per-step LR curve (warmup, cosine, cyclic), or none.

    Args:
        schedule: the schedule.
        curve: the `StepCurve`, or None to remove one.

    >>> from bsi_keras.schedules import constant
    >>> s = with_curve(constant(10, 100, 0.1), StepCurve(shape="cosine"))
    >>> [round(float(s.lr_at_updates(t, 1000)), 4) for t in (0, 50, 100)]
    [0.1, 0.05, 0.0]
    """
    return replace(schedule, curve=curve)
