"""Batch ramps from LR schedules: Smith et al.'s SGD rule, Seesaw's Adam rule, cbs_warmup."""

import itertools
import json
import math

import pytest

from bsi_keras import schedules
from bsi_keras.schedules import ScheduleError

POWERS = {"sgd": 1.0, "adam": 0.5}  # the ramp keeps lr / B**p on the base's course


def pairs(schedule):
    return [(s.batch_size, s.lr) for s in schedule.settings()]


def assert_same_settings(a, b, rel=1e-12):
    """The same batch every epoch, and the same LR up to float rounding."""
    assert [s.batch_size for s in a.settings()] == [s.batch_size for s in b.settings()]
    assert [s.lr for s in a.settings()] == pytest.approx([s.lr for s in b.settings()], rel=rel)


def follows(ramp, base_lrs, batch_size, rule, epoch):
    """The ramp's lr / B**p over the base's lr / B0**p at ``epoch``."""
    p = POWERS[rule]
    setting = ramp.at(epoch)
    return (setting.lr / setting.batch_size**p) / (base_lrs[epoch] / batch_size**p)


def round_trips(schedule):
    config = json.loads(json.dumps(schedule.to_config()))  # what config.json holds
    assert schedules.from_config(config) == schedule
    assert schedules.from_config(config).to_config() == config


class HalvingDecay:
    """Keras's ExponentialDecay(lr0, decay_steps, 0.5) as a plain class: the duck type."""

    def __init__(self, lr0, decay_steps, staircase=False):
        self.lr0, self.decay_steps, self.staircase = lr0, decay_steps, staircase

    def __call__(self, step):
        exponent = step / self.decay_steps
        return self.lr0 * 0.5 ** (math.floor(exponent) if self.staircase else exponent)


# The closed form of the issue, for step schedules.


@pytest.mark.parametrize(
    ("factor", "milestones", "batch", "lr"),
    list(
        itertools.product(
            [1.5, 2, 3, 4, 5, 10], [[2, 4], [1, 3, 5], [60, 120, 160]], [64, 128], [0.1, 0.004]
        )
    ),
)
def test_seesaw_of_a_step_schedule_is_the_closed_form(factor, milestones, batch, lr):
    """From milestone k on: batch B0 * factor**k, LR lr0 / sqrt(factor)**k."""
    epochs = milestones[-1] + 2
    s = schedules.seesaw(epochs, batch, lr, milestones, factor)
    ramp = schedules.from_lr_schedule(
        schedules.decay_lr(epochs, batch, lr, milestones, factor), rule="adam", step_factor=factor
    )
    assert ramp.phases == s.phases and s.name == "seesaw"
    assert len(s.phases) == len(milestones) + 1
    for epoch in range(epochs):
        k = sum(1 for m in milestones if epoch >= m)
        assert s.at(epoch).batch_size == round(batch * factor**k)
        assert s.at(epoch).lr == pytest.approx(lr / math.sqrt(factor) ** k, rel=1e-12)


@pytest.mark.parametrize("factor", [2, 2.5, 5, 10])
def test_default_step_factor_takes_every_decay_of_at_least_two(factor):
    base = schedules.decay_lr(200, 128, 0.1, [60, 120, 160], factor)
    ramp = schedules.from_lr_schedule(base, rule="adam")
    assert ramp.phases == schedules.seesaw(200, 128, 0.1, [60, 120, 160], factor).phases


def test_decays_smaller_than_the_step_factor_accumulate():
    """Decays by 1.5: 1.5 is not yet 2, 2.25 is (one step of 2.25), then 1.5 again is not."""
    base = schedules.decay_lr(8, 100, 0.09, [2, 4, 6], 1.5)
    ramp = schedules.from_lr_schedule(base, rule="sgd")
    assert ramp.milestones == (4,)
    assert [(p.batch_size, p.lr) for p in ramp.phases] == [(100, 0.09), (225, 0.09)]


# Smith et al.'s rule is increase_bs.


@pytest.mark.parametrize(
    ("factor", "milestones", "max_batch", "cap"),
    list(
        itertools.product(
            [2, 5, 10], [[2, 4], [60, 120, 160]], [None, 500, 1000, 3200], schedules.CAP_POLICIES
        )
    ),
)
def test_sgd_rule_of_decay_lr_is_increase_bs(factor, milestones, max_batch, cap):
    epochs = milestones[-1] + 2
    base = schedules.decay_lr(epochs, 128, 0.1, milestones, factor)
    ramp = schedules.from_lr_schedule(
        base, rule="sgd", step_factor=factor, max_batch_size=max_batch, cap=cap
    )
    grow = schedules.increase_bs(epochs, 128, 0.1, milestones, factor, max_batch, cap)
    assert_same_settings(ramp, grow)
    if max_batch is None:  # no cap: no repeated phase, the phases themselves are equal
        assert ramp.phases == grow.phases


def test_phases_repeated_by_the_clamp_are_merged():
    base = schedules.decay_lr(8, 128, 0.1, [2, 4, 6], 5)
    ramp = schedules.from_lr_schedule(base, step_factor=5, max_batch_size=1000)
    assert [(p.epochs, p.batch_size, p.lr) for p in ramp.phases] == [
        (2, 128, 0.1),
        (2, 640, 0.1),
        (4, 1000, 0.1),
    ]
    assert all(a != b for a, b in itertools.pairwise(ramp.phases))


# The caps under the Adam rule.


@pytest.mark.parametrize("max_batch", [256, 1000, 2048, 5000])
def test_adam_clamp_caps_the_batch_and_keeps_the_rules_lr(max_batch):
    s = schedules.seesaw(200, 128, 0.01, [60, 120, 160], 4, max_batch_size=max_batch)
    free = schedules.seesaw(200, 128, 0.01, [60, 120, 160], 4)
    for epoch in range(200):
        assert s.at(epoch).batch_size == min(free.at(epoch).batch_size, max_batch)
        assert s.at(epoch).lr == free.at(epoch).lr


@pytest.mark.parametrize("max_batch", [256, 1000, 2048, 5000])
def test_adam_decay_lr_cap_keeps_lr_over_sqrt_batch_on_the_base(max_batch):
    """The growth the cap refuses goes into the LR as its square root: lr/sqrt(B) follows."""
    base = schedules.decay_lr(200, 128, 0.01, [60, 120, 160], 4)
    s = schedules.seesaw(
        200, 128, 0.01, [60, 120, 160], 4, max_batch_size=max_batch, cap="decay_lr"
    )
    lrs = [e.lr for e in base.settings()]
    for epoch in range(200):
        assert s.at(epoch).batch_size <= max_batch
        assert follows(s, lrs, 128, "adam", epoch) == pytest.approx(1.0, rel=1e-12)


# Continuous schedules: the discretization.


@pytest.mark.parametrize(
    ("rule", "step_factor", "epochs", "batch"),
    list(itertools.product(POWERS, [2, 3, 4], [10, 90, 200], [128, 1000])),
)
def test_cosine_is_followed_within_one_step_factor(rule, step_factor, epochs, batch):
    """lr / B**p is the base's at every step (up to the batch's rounding), and between steps
    above it by a factor in [1, step_factor)."""
    base = schedules.cosine_lr(epochs, 0.1)
    lrs = [base(e) for e in range(epochs)]
    ramp = schedules.from_lr_schedule(
        base, epochs=epochs, batch_size=batch, rule=rule, step_factor=step_factor
    )
    assert ramp.params["base_lrs"] == lrs
    rounding = POWERS[rule] * 0.5 / batch  # relative error of lr / B**p from a rounded batch
    for epoch in range(epochs):
        ratio = follows(ramp, lrs, batch, rule, epoch)
        if epoch == 0 or epoch in ramp.milestones:
            assert ratio == pytest.approx(1.0, rel=rounding)
        else:
            assert 1.0 - rounding <= ratio < step_factor * (1.0 + rounding)
    for a, b in itertools.pairwise([0, *ramp.milestones]):  # every step falls by >= the factor
        assert lrs[b] <= lrs[a] / step_factor * (1 + 1e-9)


def test_cosine_step_count_of_the_docstring():
    """200 epochs, step factor 2: 11 steps (at most log2(lr0 / lr(199)) = 13.98), the first
    where the LR has halved, the last on the last epoch; growth (2E / pi)^2."""
    ramp = schedules.from_lr_schedule(
        schedules.cosine_lr(200, 0.1), epochs=200, batch_size=128, rule="adam"
    )
    assert ramp.milestones == (100, 134, 155, 169, 179, 186, 191, 194, 196, 198, 199)
    growth = ramp.phases[-1].batch_size / 128
    assert growth == pytest.approx((2 * 200 / math.pi) ** 2, rel=1e-3)


def test_rises_are_followed_in_the_lr_with_the_batch_held():
    warm_then_step = [0.025, 0.05, 0.1, 0.1, 0.05, 0.05, 0.1, 0.025].__getitem__
    sgd = schedules.from_lr_schedule(warm_then_step, epochs=8, batch_size=100, rule="sgd")
    assert pairs(sgd) == [
        (100, 0.025),
        (100, 0.05),
        (100, 0.1),
        (100, 0.1),
        (200, 0.1),
        (200, 0.1),
        (200, 0.2),  # a restart: LR doubled, the batch never shrinks
        (800, 0.2),
    ]
    adam = schedules.from_lr_schedule(warm_then_step, epochs=8, batch_size=100, rule="adam")
    lrs = [warm_then_step(e) for e in range(8)]
    for epoch in range(8):
        assert follows(adam, lrs, 100, "adam", epoch) == pytest.approx(1.0, rel=1e-12)


def test_an_lr_at_or_below_min_lr_takes_no_step():
    to_zero = [0.1, 0.05, 0.0, 0.0].__getitem__
    ramp = schedules.from_lr_schedule(to_zero, epochs=4, batch_size=64, rule="adam")
    assert pairs(ramp) == [(64, 0.1), (128, 0.1 / math.sqrt(2)), *[(128, 0.1 / math.sqrt(2))] * 2]
    floor = [0.1, 0.05, 0.005].__getitem__
    held = schedules.from_lr_schedule(floor, epochs=3, batch_size=64, min_lr=0.01)
    assert [p.batch_size for p in held.phases] == [64, 128]


# Per-update schedules: the duck type and Keras.


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_a_per_update_callable_is_read_at_each_epochs_first_update(drop_remainder):
    """Halving every 20 updates at 10 updates per epoch: Seesaw with a milestone every 2."""
    plan = schedules.EpochPlan(1_000 if not drop_remainder else 1_050, drop_remainder)
    assert plan.updates(100) == 10
    for staircase in (False, True):
        ramp = schedules.from_lr_schedule(
            HalvingDecay(0.1, 20, staircase),
            epochs=8,
            batch_size=100,
            rule="adam",
            num_examples=plan,
        )
        expected = schedules.seesaw(8, 100, 0.1, [2, 4, 6], 2)
        assert_same_settings(ramp, expected)
        assert ramp.params["base"] == "HalvingDecay"


def test_the_same_callable_counts_epochs_without_num_examples():
    ramp = schedules.from_lr_schedule(HalvingDecay(0.1, 2), epochs=8, batch_size=100)
    assert ramp.milestones == (2, 4, 6)


def test_a_schedule_with_a_cosine_curve_is_the_per_epoch_cosine():
    """Our cosine (a constant schedule with a per-update curve) read at epoch starts."""
    base = schedules.with_curve(schedules.constant(21, 100, 0.1), schedules.StepCurve("cosine"))
    ramp = schedules.from_lr_schedule(base, rule="adam", num_examples=1_000)
    per_epoch = schedules.from_lr_schedule(
        schedules.cosine_lr(21, 0.1), epochs=21, batch_size=100, rule="adam"
    )
    assert ramp.milestones == per_epoch.milestones
    assert [p.batch_size for p in ramp.phases] == [p.batch_size for p in per_epoch.phases]
    assert [p.lr for p in ramp.phases] == pytest.approx([p.lr for p in per_epoch.phases], 1e-6)


def test_a_keras_cosine_decay():
    """A real keras.optimizers.schedules.CosineDecay (the package itself imports no Keras)."""
    keras = pytest.importorskip("keras")
    epochs, plan = 21, schedules.EpochPlan(50_000)
    lr_schedule = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=epochs * 391)
    ramp = schedules.from_lr_schedule(
        lr_schedule, epochs=epochs, batch_size=128, rule="adam", num_examples=plan
    )
    per_epoch = schedules.from_lr_schedule(
        schedules.cosine_lr(epochs, 0.1), epochs=epochs, batch_size=128, rule="adam"
    )
    assert ramp.milestones == per_epoch.milestones  # float32 moves no step
    assert [p.lr for p in ramp.phases] == pytest.approx([p.lr for p in per_epoch.phases], 1e-5)
    assert ramp.params["base"] == "CosineDecay"


# Validation, configs.

STEP = schedules.decay_lr(6, 100, 0.1, [2, 4], 2)


@pytest.mark.parametrize(
    ("lr_schedule", "kwargs", "param"),
    [
        (STEP, {"rule": "sgdm"}, "rule"),
        (STEP, {"step_factor": 1}, "step_factor"),
        (STEP, {"step_factor": 0.5}, "step_factor"),
        (STEP, {"step_factor": math.inf}, "step_factor"),
        (STEP, {"cap": "wrap"}, "cap"),
        (STEP, {"max_batch_size": 50}, "max_batch_size"),
        (STEP, {"min_lr": -1.0}, "min_lr"),
        (STEP, {"epochs": 7}, "epochs"),
        (STEP, {"batch_size": 128}, "batch_size"),
        (schedules.increase_bs(6, 100, 0.1, [2, 4], 2), {}, "lr_schedule"),
        (schedules.with_curve(STEP, schedules.StepCurve("cosine")), {}, "num_examples"),
        (0.1, {"epochs": 3, "batch_size": 10}, "lr_schedule"),
        (lambda e: 0.1, {"batch_size": 10}, "epochs"),
        (lambda e: 0.1, {"epochs": 3}, "batch_size"),
        (lambda e: 0.0, {"epochs": 3, "batch_size": 10}, "lr_schedule"),
        (lambda e: 0.1 - e, {"epochs": 3, "batch_size": 10}, "lr_schedule"),
        (lambda e: math.nan, {"epochs": 3, "batch_size": 10}, "lr_schedule"),
        (lambda e: None, {"epochs": 3, "batch_size": 10}, "lr_schedule"),
        (lambda e: "fast", {"epochs": 3, "batch_size": 10}, "lr_schedule"),
    ],
)
def test_invalid_arguments_name_the_parameter(lr_schedule, kwargs, param):
    with pytest.raises(ScheduleError) as error:
        schedules.from_lr_schedule(lr_schedule, **kwargs)
    assert error.value.param == param


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"trajectory": []}, "trajectory"),
        ({"trajectory": [(0, 100.0), (0, 200.0)]}, "trajectory"),
        ({"trajectory": [(3, 100.0), (1, 200.0)]}, "trajectory"),
        ({"trajectory": [(6, 100.0)]}, "trajectory"),
        ({"trajectory": [(1.5, 100.0)]}, "trajectory"),
        ({"trajectory": [(1, -5.0)]}, "trajectory"),
        ({"trajectory": [100.0]}, "trajectory"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_batch_size": 16}, "max_batch_size"),
        ({"multiple_of": 0}, "multiple_of"),
        ({"scale_lr": "cube"}, "scale_lr"),
        ({"lr": 0.0}, "lr"),
    ],
)
def test_cbs_warmup_invalid_arguments_name_the_parameter(kwargs, param):
    arguments = {"epochs": 6, "trajectory": [(0, 100.0)], "lr": 0.1, "batch_size": 32, **kwargs}
    with pytest.raises(ScheduleError) as error:
        schedules.cbs_warmup(**arguments)
    assert error.value.param == param


def test_cbs_warmup_follows_the_largest_critical_batch_so_far():
    trajectory = [(1, 300.0), (3, 1500.0), (4, 900.0), (6, 100_000.0)]
    s = schedules.cbs_warmup(8, trajectory, 0.1, batch_size=128, max_batch_size=4096)
    assert [e.batch_size for e in s.settings()] == [128, 300, 300, 1500, 1500, 1500, 4096, 4096]
    assert {e.lr for e in s.settings()} == {0.1}
    assert s.name == "cbs_warmup" and len(s.phases) == 4
    snapped = schedules.cbs_warmup(8, trajectory, 0.1, batch_size=128, multiple_of=256)
    assert [e.batch_size for e in snapped.settings()] == [128, 256, 256, 1280, 1280, 1280] + [
        99_840
    ] * 2


@pytest.mark.parametrize("rule", schedules.SCALING_RULES)
def test_cbs_warmup_scales_the_lr_by_the_shared_rule(rule):
    s = schedules.cbs_warmup(4, [(2, 512.0)], 0.1, batch_size=128, scale_lr=rule)
    assert s.at(0).lr == 0.1
    assert s.at(3).lr == schedules.scaled_lr(0.1, 512, 128, rule)


@pytest.mark.parametrize(
    "build",
    [
        lambda: schedules.seesaw(200, 128, 0.01, [60, 120, 160], 2),
        lambda: schedules.seesaw(8, 128, 0.01, [2, 4, 6], 4, max_batch_size=1000, cap="decay_lr"),
        lambda: schedules.from_lr_schedule(
            schedules.cosine_lr(30, 0.1), epochs=30, batch_size=64, rule="adam", max_batch_size=512
        ),
        lambda: schedules.from_lr_schedule(
            HalvingDecay(0.1, 20), epochs=8, batch_size=100, num_examples=1_000
        ),
        lambda: schedules.cbs_warmup(6, [(1, 300.0), (3, 900.0)], 0.1, batch_size=64),
    ],
)
def test_ramps_round_trip_through_from_config(build):
    s = build()
    assert isinstance(s, schedules.Schedule) and s.curve is None
    round_trips(s)
