"""Batch ramps: a learning-rate schedule turned into batch-size growth.

Smith et al. 2017 (SGD): dividing the LR by ``a`` is equivalent to multiplying the batch by
``a`` at the same LR, since both divide the noise scale ``lr / B`` by ``a``. Seesaw
(Meterez et al. 2025, arXiv 2510.14717; Adam, through normalized SGD): divide the LR by
``sqrt(a)`` and multiply the batch by ``a``, which divides ``lr / sqrt(B)`` by ``a``. Both
are one rule with a power ``p`` (1 for ``"sgd"``, 1/2 for ``"adam"``): a step of ratio
``a`` multiplies the batch by ``a`` and divides the LR by ``a ** (1 - p)``, so that
``lr / B ** p`` falls as the base schedule's LR does.

Discretization (`from_lr_schedule`): the base LR is read once per epoch, at the epoch's
start, ``lr_base(0), lr_base(1), ...``. The ramp keeps a reference LR, ``lr_base(0)`` at
first. At epoch ``e``:

- if ``lr_base(e) <= reference / step_factor`` (within float rounding) the ramp takes a
  step of ratio ``a = reference / lr_base(e)`` and the reference becomes ``lr_base(e)``.
  A step decay by ``f >= step_factor`` gives steps of exactly ``f``; decays smaller than
  ``step_factor`` accumulate until their product reaches it; a continuous decay gives
  steps of the accumulated factor, ``>= step_factor``, at the first epoch it is reached.
- if ``lr_base(e) > reference`` (a warmup, a restart) the rise is followed as it is: the
  LR is multiplied by ``lr_base(e) / reference``, the batch held (it never shrinks), and
  the reference becomes ``lr_base(e)``;
- otherwise the ramp holds its setting; so between steps its ``lr / B ** p`` is above the
  base's ``lr_base / B0 ** p`` by less than ``step_factor``, and equal at every step
  (before the batch is rounded to an integer).

A base LR at or below ``min_lr`` (default 0) takes no step: an LR of 0 has no finite batch
equivalent, so the ramp holds its last setting there. A cosine from ``lr`` to 0 over ``E``
epochs is at ``lr * (1 + cos(pi (E - 1) / E)) / 2 ~ lr (pi / 2E)^2`` at its last epoch
start. Its first step comes at epoch ``E / 2`` (LR halved); it takes at most
``log(lr_base(0) / lr_base(E - 1)) / log(step_factor)`` steps (13 for 200 epochs and
``step_factor=2``; 11 in fact, since near the end one epoch falls by more than 2x), and the
last one lands on the last epoch: a batch growth of ``(2E / pi)^2``, about 16,000. Give a
``max_batch_size`` (the training set size, say): the cap policies act as in `increase_bs`,
``"clamp"`` stops the batch and keeps the rule's LR, ``"decay_lr"`` divides the LR by the
refused growth to the power ``p``, so ``lr / B ** p`` keeps following the base.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from bsi_keras.schedules.base import BaseSchedule, FunctionSchedule, Schedule
from bsi_keras.schedules.builders import decay_lr, stepped, stepped_params
from bsi_keras.schedules.curves import cosine_decay
from bsi_keras.schedules.phases import (
    EpochPlan,
    ScheduleError,
    check_choice,
    check_positive_float,
    check_positive_int,
)
from bsi_keras.schedules.transforms import SCALING_RULES, scaled_lr

# The power p of the quantity lr / B**p each rule keeps following the base schedule.
_NOISE_POWERS = {"sgd": 1.0, "adam": 0.5}
RAMP_RULES = tuple(_NOISE_POWERS)

# A fall "by step_factor" computed through different float paths still counts.
_RTOL = 1e-9


def from_lr_schedule(
    lr_schedule: BaseSchedule | Callable[[int], Any],
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    rule: str = "sgd",
    step_factor: float = 2.0,
    max_batch_size: int | None = None,
    cap: str = "clamp",
    num_examples: EpochPlan | int | None = None,
    min_lr: float = 0.0,
    name: str = "from_lr_schedule",
) -> Schedule:
    """The batch ramp of an LR schedule: its LR decays turned into batch growth.

    See the module docstring for the rule and the discretization.

    Args:
        lr_schedule: the base schedule, one of
            - a schedule at a constant batch size (`decay_lr`, or `with_curve` of a
              `constant` for a cosine): ``epochs`` and ``batch_size`` come from it;
            - a callable ``epoch -> lr`` (such as `cosine_lr`), without ``num_examples``;
            - a callable ``update -> lr`` with ``num_examples``, such as a
              `keras.optimizers.schedules.LearningRateSchedule`; epoch ``e`` reads it at
              its first update at ``batch_size``, ``e * EpochPlan(num_examples).updates(
              batch_size)``. Anything whose result ``float()`` converts will do.
        epochs: the run's epochs (required with a callable; checked with a schedule).
        batch_size: the base batch size (required with a callable; checked likewise).
        rule: ``"sgd"`` (Smith et al.: batch x a, same LR) or ``"adam"`` (Seesaw: batch
            x a, LR / sqrt(a)); one of `RAMP_RULES`.
        step_factor: the fall of the base LR that makes one step (> 1; Seesaw uses 2).
        max_batch_size: the largest batch (None: no cap).
        cap: ``"clamp"`` or ``"decay_lr"``, as in `increase_bs` (see the module docstring).
        num_examples: the training set size (or an `EpochPlan`): the base LR is then read
            per update, for a callable and for a schedule's per-update curve.
        min_lr: a base LR at or below this takes no step (the ramp holds there).
        name: the schedule's label.

    Returns:
        A fixed `Schedule` (no per-update curve) whose params record the rule and the base
        LR of every epoch (``base_lrs``) it was made from.

    Example:

    >>> base = decay_lr(6, 128, 0.1, milestones=[2, 4], factor=4)
    >>> [(p.batch_size, p.lr) for p in from_lr_schedule(base, rule="sgd").phases]
    [(128, 0.1), (512, 0.1), (2048, 0.1)]
    >>> [(p.batch_size, p.lr) for p in from_lr_schedule(base, rule="adam").phases]
    [(128, 0.1), (512, 0.05), (2048, 0.025)]
    >>> s = from_lr_schedule(lambda e: 0.1 * 0.5 ** (e // 3), epochs=9, batch_size=64,
    ...                      rule="adam", max_batch_size=128, cap="decay_lr")
    >>> [(p.batch_size, round(p.lr, 6)) for p in s.phases]
    [(64, 0.1), (128, 0.070711), (128, 0.035355)]
    """
    check_choice("rule", rule, RAMP_RULES)
    _check_factor("step_factor", step_factor)
    if isinstance(min_lr, bool) or not isinstance(min_lr, (int, float)) or not min_lr >= 0:
        raise ScheduleError("min_lr", f"must be a number >= 0, got {min_lr!r}")
    epochs, batch_size, base_lrs = _base_lrs(lr_schedule, epochs, batch_size, num_examples)
    power = _NOISE_POWERS[rule]
    milestones, steps = _ramp_steps(base_lrs, step_factor, min_lr, power)
    ramp = stepped(
        epochs,
        batch_size,
        base_lrs[0],
        milestones,
        steps,
        max_batch_size=max_batch_size,
        cap=cap,
        name=name,
        factor=step_factor,
        cap_lr_power=power,
    )
    # stepped keeps one phase per step; a clamped batch with an unchanged LR repeats one.
    settings = ramp.settings()
    merged = FunctionSchedule(lambda e: (settings[e].batch_size, settings[e].lr), epochs, name)
    params = {
        "rule": rule,
        "step_factor": step_factor,
        "epochs": epochs,
        "batch_size": batch_size,
        "max_batch_size": max_batch_size,
        "cap": cap,
        "min_lr": min_lr,
        "base": getattr(lr_schedule, "name", type(lr_schedule).__name__),
        "base_lrs": base_lrs,
    }
    return replace(merged.to_schedule(), params=params)


def seesaw(
    epochs: int,
    batch_size: int,
    lr: float,
    milestones: Sequence[int],
    factor: float = 2.0,
    max_batch_size: int | None = None,
    cap: str = "clamp",
) -> Schedule:
    """Seesaw: the Adam ramp of ``decay_lr(epochs, batch_size, lr, milestones, factor)``.

    Where the step decay divides the LR by ``factor``, divide it by ``sqrt(factor)`` and
    multiply the batch by ``factor`` instead: from milestone ``k`` on (uncapped), the
    batch is ``batch_size * factor**k`` and the LR ``lr / sqrt(factor)**k``.

    Args:
        epochs, batch_size, lr, milestones, factor: as in `decay_lr` (Seesaw's factor is 2).
        max_batch_size, cap: as in `increase_bs`.

    Example:

    >>> [(p.batch_size, round(p.lr, 6)) for p in seesaw(6, 256, 0.004, [2, 4]).phases]
    [(256, 0.004), (512, 0.002828), (1024, 0.002)]
    """
    base = decay_lr(epochs, batch_size, lr, milestones, factor)
    # step_factor=factor: every milestone is one step, whatever the factor.
    ramp = from_lr_schedule(
        base,
        rule="adam",
        step_factor=factor,
        max_batch_size=max_batch_size,
        cap=cap,
        name="seesaw",
    )
    params = stepped_params(epochs, batch_size, lr, milestones, factor, max_batch_size, cap)
    return replace(ramp, params=params)


def cosine_lr(epochs: int, lr: float, min_lr: float = 0.0) -> Callable[[int], float]:
    """A per-epoch cosine ``epoch -> lr``, from ``lr`` at epoch 0 to ``min_lr`` at ``epochs``.

    The per-epoch form of `cosine_decay`, a base for `from_lr_schedule`.

    Example:

    >>> [round(cosine_lr(4, 0.1)(e), 4) for e in range(5)]
    [0.1, 0.0854, 0.05, 0.0146, 0.0]
    """
    import numpy as np  # only here, as in Schedule.lr_at_updates

    check_positive_int("epochs", epochs)
    check_positive_float("lr", lr)
    curve = cosine_decay(total=epochs, min_lr=min_lr)
    return lambda epoch: float(curve(lr, float(epoch), np))


def cbs_warmup(
    epochs: int,
    trajectory: Sequence[tuple[int, float]],
    lr: float,
    *,
    batch_size: int,
    max_batch_size: int | None = None,
    multiple_of: int = 1,
    scale_lr: str = "none",
) -> Schedule:
    """The batch from a measured critical-batch-size trajectory.

    Each epoch uses the largest critical batch measured at or before it (so the batch never
    shrinks), rounded down to a multiple of ``multiple_of``, at least ``batch_size`` and at
    most ``max_batch_size``; epochs before the first measurement use ``batch_size``. The LR
    is ``lr`` at ``batch_size``, scaled with the batch by ``scale_lr`` (see `scaled_lr`).

    Args:
        epochs: total epochs.
        trajectory: ``(epoch, critical_batch)`` pairs, 0-based epochs strictly increasing.
        lr: the LR at ``batch_size``.
        batch_size: the smallest batch, and the reference of the LR scaling.
        max_batch_size: the largest batch (None: no cap).
        multiple_of: batches are multiples of this (e.g. the ghost-batch size).
        scale_lr: one of `SCALING_RULES`.

    Example:

    >>> s = cbs_warmup(6, [(0, 90.0), (2, 700.0), (3, 500.0), (4, 5000.0)], 0.1,
    ...                batch_size=128, max_batch_size=2048, multiple_of=128, scale_lr="sqrt")
    >>> [(p.epochs, p.batch_size, round(p.lr, 6)) for p in s.phases]
    [(2, 128, 0.1), (2, 640, 0.223607), (2, 2048, 0.4)]
    """
    check_positive_int("epochs", epochs)
    check_positive_float("lr", lr)
    check_positive_int("batch_size", batch_size)
    check_positive_int("multiple_of", multiple_of)
    check_choice("scale_lr", scale_lr, SCALING_RULES)
    if max_batch_size is not None:
        check_positive_int("max_batch_size", max_batch_size)
        if max_batch_size < batch_size:
            raise ScheduleError("max_batch_size", "is smaller than the initial batch size")
    points = _check_trajectory(trajectory, epochs)
    batches = []
    for epoch in range(epochs):
        critical = max((b for e, b in points if e <= epoch), default=0.0)
        batch = max(batch_size, int(critical // multiple_of) * multiple_of)
        batches.append(batch if max_batch_size is None else min(batch, max_batch_size))
    lrs = [scaled_lr(lr, batch, batch_size, scale_lr) for batch in batches]
    params = {
        "epochs": epochs,
        "trajectory": [list(point) for point in points],
        "lr": lr,
        "batch_size": batch_size,
        "max_batch_size": max_batch_size,
        "multiple_of": multiple_of,
        "scale_lr": scale_lr,
    }
    schedule = FunctionSchedule(lambda e: (batches[e], lrs[e]), epochs, "cbs_warmup")
    return replace(schedule.to_schedule(), params=params)


def _ramp_steps(
    base_lrs: Sequence[float], step_factor: float, min_lr: float, power: float
) -> tuple[list[int], list[tuple[float, float]]]:
    """The milestones and `stepped`'s ``(batch_multiplier, lr_divisor)`` pairs of the ramp."""
    milestones, steps = [], []
    reference = base_lrs[0]
    for epoch, lr in enumerate(base_lrs[1:], start=1):
        if lr > reference * (1 + _RTOL):
            steps.append((1.0, reference / lr))  # a rise: the LR follows, the batch holds
        elif min_lr < lr <= reference / step_factor * (1 + _RTOL):
            ratio = reference / lr
            steps.append((ratio, ratio ** (1.0 - power)))
        else:
            continue
        milestones.append(epoch)
        reference = lr
    return milestones, steps


def _base_lrs(
    lr_schedule: Any, epochs: int | None, batch_size: int | None, num_examples: Any
) -> tuple[int, int, list[float]]:
    """``epochs``, ``batch_size`` and the base LR at the start of every epoch."""
    if isinstance(lr_schedule, BaseSchedule):
        base = lr_schedule.tabulated()
        batches = sorted({p.batch_size for p in base.phases})
        if len(batches) > 1:
            raise ScheduleError(
                "lr_schedule",
                f"the base schedule {base.name!r} changes its batch size ({batches}); "
                "a ramp starts from an LR schedule at one batch size",
            )
        epochs = _same("epochs", epochs, base.epochs)
        batch_size = _same("batch_size", batch_size, batches[0])
        if base.curve is None:
            return epochs, batch_size, [s.lr for s in base.settings()]
        if num_examples is None:
            raise ScheduleError(
                "num_examples", "the base schedule has a per-update LR curve; give num_examples"
            )
        plan = EpochPlan.of(num_examples)

        def lr_at(update: int) -> Any:
            return base.lr_at_updates(update, plan)

    elif callable(lr_schedule):
        check_positive_int("epochs", epochs)
        check_positive_int("batch_size", batch_size)
        plan = None if num_examples is None else EpochPlan.of(num_examples)
        lr_at = lr_schedule
    else:
        raise ScheduleError(
            "lr_schedule", f"must be a schedule or a callable, got {type(lr_schedule).__name__}"
        )
    per_epoch = 1 if plan is None else plan.updates(batch_size)
    lrs = [_lr_value(lr_at, epoch * per_epoch, epoch) for epoch in range(epochs)]
    if not lrs[0] > 0:
        raise ScheduleError("lr_schedule", f"the LR at epoch 0 must be > 0, got {lrs[0]}")
    return epochs, batch_size, lrs


def _same(param: str, given: int | None, own: int) -> int:
    if given is not None and given != own:
        raise ScheduleError(param, f"is {given} but the base schedule has {own}")
    return own


def _lr_value(lr_at: Callable[[int], Any], step: int, epoch: int) -> float:
    try:
        value = float(lr_at(step))
    except (TypeError, ValueError) as error:
        raise ScheduleError("lr_schedule", f"gave no number at epoch {epoch}: {error}") from None
    if not math.isfinite(value) or value < 0:
        raise ScheduleError("lr_schedule", f"the LR at epoch {epoch} is {value}; must be >= 0")
    return value


def _check_factor(param: str, value: Any) -> None:
    check_positive_float(param, value)
    if not value > 1:
        raise ScheduleError(param, f"must be > 1, got {value}")


def _check_trajectory(trajectory: Sequence[Any], epochs: int) -> list[tuple[int, float]]:
    points = []
    for point in trajectory:
        try:
            epoch, critical = point
        except (TypeError, ValueError):
            raise ScheduleError(
                "trajectory", f"needs (epoch, critical_batch) pairs, got {point!r}"
            ) from None
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < epochs:
            raise ScheduleError("trajectory", f"epoch {epoch!r} is not in 0..{epochs - 1}")
        check_positive_float("trajectory", critical)
        if points and epoch <= points[-1][0]:
            raise ScheduleError("trajectory", f"epochs must be strictly increasing at {epoch}")
        points.append((epoch, float(critical)))
    if not points:
        raise ScheduleError("trajectory", "needs at least one (epoch, critical_batch) pair")
    return points
