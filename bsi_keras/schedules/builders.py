"""The builders: the fixed schedules of Smith et al. 2017 and of the reference studies.

Every milestone schedule (`decay_lr`, `increase_bs`, `hybrid`, `mixed_bsi`) is `stepped`
with its own list of ``(batch_multiplier, lr_divisor)`` steps; `fast_bsi` grows every epoch;
`from_phases` takes the phases as given. Each returns a `Schedule` that records its
arguments in ``params``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from bsi_keras.schedules.base import FunctionSchedule, Schedule
from bsi_keras.schedules.phases import (
    Phase,
    ScheduleError,
    check_choice,
    check_milestones,
    check_positive_float,
    check_positive_int,
    format_phases,
    parse_phases,
)

CAP_POLICIES = ("clamp", "decay_lr")


def constant(epochs: int, batch_size: int, lr: float) -> Schedule:
    """Neither the batch size nor the LR changes (the reference's ``--steady``).

    >>> constant(3, 128, 0.1).phases
    (Phase(epochs=3, batch_size=128, lr=0.1),)
    """
    return Schedule(
        (Phase(epochs, batch_size, lr),),
        name="constant",
        params={"epochs": epochs, "batch_size": batch_size, "lr": lr},
    )


def decay_lr(
    epochs: int, batch_size: int, lr: float, milestones: Sequence[int], factor: float = 5
) -> Schedule:
    """Divide the LR by ``factor`` at each milestone; the batch size stays.

    Args:
        epochs: total epochs.
        batch_size: the batch size throughout.
        lr: the initial learning rate.
        milestones: 0-based epochs at which the LR is divided (strictly increasing,
            each in ``1 .. epochs - 1``). The reference's 60/120/160 of 200 epochs.
        factor: the divisor (> 1).

    >>> [p.lr for p in decay_lr(6, 100, 0.15, [2, 4], 5).phases]
    [0.15, 0.03, 0.006]
    """
    steps = [(1.0, factor)] * len(milestones)
    return stepped(epochs, batch_size, lr, milestones, steps, name="decay_lr", factor=factor)


def increase_bs(
    epochs: int,
    batch_size: int,
    lr: float,
    milestones: Sequence[int],
    factor: float = 5,
    max_batch_size: int | None = None,
    cap: str = "clamp",
    double_end_factor: bool = False,
) -> Schedule:
    """Multiply the batch size by ``factor`` at each milestone; the LR stays.

    Args:
        epochs, batch_size, lr, milestones, factor: as in `decay_lr`.
        max_batch_size: the largest batch size (None: no cap; the command line uses the
            training set size).
        cap: what happens when the cap stops the growth: ``"clamp"`` leaves the LR alone,
            as the reference PyTorch study does; ``"decay_lr"`` puts the rest of the factor
            into an LR decay, so the noise scale ``lr * N / B`` keeps following `decay_lr`
            exactly (Smith et al.'s advice for hardware limits).
        double_end_factor: the last milestone multiplies by ``2 * factor`` (the reference's
            ``--doubleEndFactor``, e.g. 2048 -> 4096 -> 8192 -> 32768 with factor 2).

    >>> [p.batch_size for p in increase_bs(8, 128, 0.1, [2, 4, 6], 5, max_batch_size=5000).phases]
    [128, 640, 3200, 5000]
    >>> [p.batch_size for p in increase_bs(8, 2048, 0.25, [2, 4, 6], 2,
    ...                                    double_end_factor=True).phases]
    [2048, 4096, 8192, 32768]
    """
    steps = [(factor, 1.0)] * len(milestones)
    if double_end_factor and steps:
        steps[-1] = (2 * factor, 1.0)
    schedule = stepped(
        epochs, batch_size, lr, milestones, steps, max_batch_size, cap, "increase_bs", factor
    )
    # Recorded only when set, so the params of a plain increase_bs stay as they were.
    return _with_params(schedule, double_end_factor=True) if double_end_factor else schedule


def hybrid(
    epochs: int,
    batch_size: int,
    lr: float,
    milestones: Sequence[int],
    factor: float = 5,
    grow_steps: int = 1,
    max_batch_size: int | None = None,
    cap: str = "clamp",
) -> Schedule:
    """Grow the batch at the first ``grow_steps`` milestones, then decay the LR.

    Smith et al.'s hybrid schedule, which mimics a hardware limit on the batch size.

    >>> s = hybrid(6, 100, 0.05, [2, 4], factor=5, grow_steps=1)
    >>> [(p.batch_size, round(p.lr, 6)) for p in s.phases]
    [(100, 0.05), (500, 0.05), (500, 0.01)]
    """
    if not isinstance(grow_steps, int) or not 0 <= grow_steps <= len(milestones):
        raise ScheduleError(
            "grow_steps", f"must be an integer in 0..{len(milestones)}, got {grow_steps!r}"
        )
    steps = [(factor, 1.0)] * grow_steps + [(1.0, factor)] * (len(milestones) - grow_steps)
    schedule = stepped(
        epochs, batch_size, lr, milestones, steps, max_batch_size, cap, "hybrid", factor
    )
    return _with_params(schedule, grow_steps=grow_steps)


def mixed_bsi(
    epochs: int,
    batch_size: int,
    lr: float,
    milestones: Sequence[int],
    factor1: float = 4,
    factor2: float = 4,
    factor3: float = 50,
    max_batch_size: int | None = None,
    cap: str = "clamp",
) -> Schedule:
    """The reference study's mixed schedule: LR / factor1, then batch x factor2, x factor3.

    Its final run (``mixedSchedule/C10W164SGD``): factors 4, 4, 50 turn LR 0.1 into 0.025 at
    epoch 60 and batch 128 into 512 at 120 and 25,600 at 160. (The reference's default
    ``--factor1 0.25`` multiplied the LR by 4; ``factor1`` here is a divisor, default 4.)

    >>> s = mixed_bsi(200, 128, 0.1, [60, 120, 160], max_batch_size=50_000)
    >>> [(p.batch_size, p.lr) for p in s.phases]
    [(128, 0.1), (128, 0.025), (512, 0.025), (25600, 0.025)]
    """
    if len(milestones) != 3:
        raise ScheduleError("milestones", f"mixed_bsi needs exactly 3 milestones, got {milestones}")
    steps = [(1.0, factor1), (factor2, 1.0), (factor3, 1.0)]
    schedule = stepped(epochs, batch_size, lr, milestones, steps, max_batch_size, cap, "mixed_bsi")
    return _with_params(schedule, factor1=factor1, factor2=factor2, factor3=factor3)


def fast_bsi(
    epochs: int,
    batch_size: int,
    lr: float,
    max_batch_size: int,
    start_epoch: int = 5,
    growth: float = 2,
    lr_growth: float = 1.3,
    milestones: Sequence[int] = (60, 120, 160),
    lr_divisor: float = 2,
    instant: bool = False,
) -> Schedule:
    """The reference study's fast BSI: from ``start_epoch`` grow the batch every epoch.

    Every epoch from ``start_epoch`` (0-based; the reference's epoch 6) the batch is
    multiplied by ``growth`` and the LR by ``lr_growth`` until the batch reaches
    ``max_batch_size``; ``instant`` jumps to that end point at once. Independently, the LR
    is divided by ``lr_divisor`` at each milestone. From 128 at LR 0.05 with a cap of 8192,
    the end point is batch 8192 at LR 0.05 * 1.3**6 = 0.2413, as the reference's
    ``--instant`` hard-codes.

    >>> s = fast_bsi(10, 128, 0.05, max_batch_size=1024, start_epoch=2, milestones=[8])
    >>> [(e.batch_size, round(e.lr, 5)) for e in s.settings()][:6]
    [(128, 0.05), (128, 0.05), (256, 0.065), (512, 0.0845), (1024, 0.10985), (1024, 0.10985)]
    """
    check_positive_int("max_batch_size", max_batch_size)
    if max_batch_size < batch_size:
        raise ScheduleError("max_batch_size", "is smaller than the initial batch size")
    if not growth > 1:
        raise ScheduleError("factor", f"growth must be > 1, got {growth}")
    check_milestones(milestones, epochs)
    doublings = math.ceil(math.log(max_batch_size / batch_size, growth) - 1e-9)
    per_epoch = []
    for epoch in range(epochs):
        grown = min(doublings, epoch - start_epoch + 1) if epoch >= start_epoch else 0
        if instant and epoch >= start_epoch:
            grown = doublings
        decays = sum(1 for m in milestones if epoch >= m)
        batch = min(max_batch_size, round(batch_size * growth**grown))
        per_epoch.append((batch, lr * lr_growth**grown / lr_divisor**decays))
    name = "instant_bsi" if instant else "fast_bsi"
    schedule = FunctionSchedule(lambda e: per_epoch[e], epochs, name).to_schedule()
    params = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "max_batch_size": max_batch_size,
        "start_epoch": start_epoch,
        "growth": growth,
        "lr_growth": lr_growth,
        "milestones": list(milestones),
        "lr_divisor": lr_divisor,
        "instant": instant,
    }
    return replace(schedule, params=params)


def stepped(
    epochs: int,
    batch_size: int,
    lr: float,
    milestones: Sequence[int],
    steps: Sequence[tuple[float, float]],
    max_batch_size: int | None = None,
    cap: str = "clamp",
    name: str = "stepped",
    factor: float | None = None,
    cap_lr_power: float = 1.0,
) -> Schedule:
    """The mechanism behind every milestone schedule.

    At milestone ``k`` the batch size is multiplied by ``steps[k][0]`` and the LR divided
    by ``steps[k][1]``; ``max_batch_size`` and ``cap`` act as in `increase_bs`.

    Args:
        epochs, batch_size, lr, milestones: as in `decay_lr`.
        steps: one ``(batch_multiplier, lr_divisor)`` pair per milestone.
        max_batch_size, cap: as in `increase_bs`.
        name: the schedule's label.
        factor: recorded in the schedule's params, for the run config.
        cap_lr_power: with ``cap="decay_lr"``, the LR is divided by the growth the cap
            refused to this power: 1 keeps SGD's noise scale ``lr / B`` (Smith et al.),
            1/2 keeps ``lr / sqrt(B)``, the quantity Seesaw's Adam ramp follows
            (`bsi_keras.schedules.ramps`).

    >>> [p.lr for p in stepped(4, 64, 0.4, [2], [(1.0, 4.0)]).phases]
    [0.4, 0.1]
    """
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    check_positive_float("lr", lr)
    milestones = check_milestones(milestones, epochs)
    if len(steps) != len(milestones):
        raise ScheduleError("milestones", f"{len(milestones)} milestones but {len(steps)} steps")
    for multiplier, divisor in steps:
        check_positive_float("factor", multiplier)
        check_positive_float("factor", divisor)
    check_choice("cap", cap, CAP_POLICIES)
    if max_batch_size is not None:
        check_positive_int("max_batch_size", max_batch_size)
        if max_batch_size < batch_size:
            raise ScheduleError(
                "max_batch_size",
                f"{max_batch_size} is smaller than the initial batch size {batch_size}",
            )
    wanted_batch, wanted_lr = float(batch_size), float(lr)
    phases = []
    bounds = [0, *milestones, epochs]
    for k in range(len(bounds) - 1):
        if k > 0:
            wanted_batch *= steps[k - 1][0]
            wanted_lr /= steps[k - 1][1]
        actual = wanted_batch if max_batch_size is None else min(wanted_batch, max_batch_size)
        # Power 1 evaluates lr * actual / wanted, the float expression of the committed results.
        power = cap_lr_power if cap == "decay_lr" else 0.0
        phase_lr = wanted_lr * actual**power / wanted_batch**power
        if not math.isfinite(actual) or not phase_lr > 0:
            raise ScheduleError(
                "factor",
                f"{factor if factor is not None else 'the step factors'} makes the batch size "
                "overflow or the learning rate underflow; use a smaller factor or a cap",
            )
        phases.append(Phase(bounds[k + 1] - bounds[k], max(1, round(actual)), phase_lr))
    params = stepped_params(epochs, batch_size, lr, milestones, factor, max_batch_size, cap)
    return Schedule(tuple(phases), name=name, params=params)


def stepped_params(
    epochs: int,
    batch_size: int,
    lr: float,
    milestones: Sequence[int],
    factor: float | None,
    max_batch_size: int | None,
    cap: str,
) -> dict[str, Any]:
    """The params a milestone schedule records, for its ``config.json``."""
    return {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "milestones": list(milestones),
        "factor": factor,
        "max_batch_size": max_batch_size,
        "cap": cap,
    }


def from_phases(spec: str | Sequence[Phase], name: str = "phases") -> Schedule:
    """A schedule from an explicit phase list.

    Args:
        spec: either phases, or a string ``"EPOCHSxBATCH@LR,..."`` such as
            ``"2x100@0.1,2x500@0.1,2x2500@0.1"``.
        name: the schedule's label.

    >>> [p.batch_size for p in from_phases("2x100@0.1,2x500@0.1").phases]
    [100, 500]
    """
    phases = parse_phases(spec) if isinstance(spec, str) else tuple(spec)
    return Schedule(phases, name=name, params={"phases": format_phases(phases)})


def _with_params(schedule: Schedule, **extra: Any) -> Schedule:
    return replace(schedule, params={**schedule.params, **extra})
