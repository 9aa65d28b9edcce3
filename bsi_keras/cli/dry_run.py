"""``--dry-run``: a schedule's phase table, its updates and noise scale, without training."""

from __future__ import annotations

from bsi_keras.schedules import AdaptiveSchedule, BaseSchedule, EpochPlan, FunctionSchedule

DRY_RUN_COLUMNS = (
    "phase",
    "epochs",
    "first_epoch",
    "batch_size",
    "lr",
    "updates_per_epoch",
    "cumulative_updates",
    "noise_scale",
)


def print_dry_run(schedule: BaseSchedule, plan: EpochPlan, momentum: float) -> None:
    """Print a schedule's phase table and its total updates on ``plan``'s epochs."""
    if isinstance(schedule, AdaptiveSchedule):
        print(
            f"adaptive: starts at batch {schedule.batch_size}, LR {schedule.lr:g}; after each "
            f"epoch the batch becomes {schedule.coefficient:g} x the measured B_simple (in "
            f"multiples of {schedule.multiple_of}), never shrinking, at most x{schedule.factor:g} "
            f"per epoch, capped at {schedule.max_batch_size}. The batch sizes depend on "
            "measurements; the fastest growth the rule allows:"
        )
    schedule = schedule.tabulated()
    dropped = ", last partial batch dropped" if plan.drop_remainder else ""
    print(
        f"{schedule.name} on N = {plan.num_examples} training examples{dropped}, "
        f"momentum {momentum}:"
    )
    print("  " + " ".join(f"{h:>18}" for h in DRY_RUN_COLUMNS))
    for row in schedule.table(plan, momentum):
        print("  " + " ".join(f"{row[h]:>18.6g}" for h in DRY_RUN_COLUMNS))
    if schedule.curve is not None:
        print(f"  per-update LR curve: {schedule.curve}")
    print(f"  total updates: {schedule.total_updates(plan)}")
    base = _ramp_base(schedule)
    if base is not None:
        print(f"the base LR schedule of the {schedule.params['rule']} ramp, at its epochs' start:")
        print_dry_run(base, plan, momentum)


def _ramp_base(schedule: BaseSchedule) -> BaseSchedule | None:
    """The LR schedule a batch ramp was made from (`schedules.from_lr_schedule`), or None."""
    params = getattr(schedule, "params", None) or {}
    if "base_lrs" not in params:
        return None
    lrs, batch = params["base_lrs"], params["batch_size"]
    return FunctionSchedule(lambda e: (batch, lrs[e]), len(lrs), params["base"]).to_schedule()
