"""The schedule builders, exhaustively: phases, caps, equivalences, errors."""

import ast
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from bsi_keras import schedules
from bsi_keras.schedules import Phase, Schedule, ScheduleError

N_CIFAR = 50_000


def noise(schedule: Schedule, epoch: int, n: int = N_CIFAR) -> float:
    s = schedule.at(epoch)
    return schedules.noise_scale(s.lr, n, s.batch_size)


def test_constant_is_one_phase():
    s = schedules.constant(5, 128, 0.1)
    assert s.phases == (Phase(5, 128, 0.1),)
    assert s.milestones == ()
    assert [s.at(e).batch_size for e in range(5)] == [128] * 5


def test_decay_lr_reference_values():
    s = schedules.decay_lr(200, 128, 0.1, [60, 120, 160], 5)
    assert [p.epochs for p in s.phases] == [60, 60, 40, 40]
    assert [p.batch_size for p in s.phases] == [128] * 4
    assert [p.lr for p in s.phases] == pytest.approx([0.1, 0.02, 0.004, 0.0008])


def test_increase_bs_reference_values_and_cap():
    s = schedules.increase_bs(200, 128, 0.1, [60, 120, 160], 5, max_batch_size=50_000)
    assert [p.batch_size for p in s.phases] == [128, 640, 3200, 16000]
    assert [p.lr for p in s.phases] == [0.1] * 4
    capped = schedules.increase_bs(200, 8192, 0.65, [60, 120, 160], 2, max_batch_size=50_000)
    # The reference clamps at the cap and leaves the LR alone.
    assert [p.batch_size for p in capped.phases] == [8192, 16384, 32768, 50000]
    assert [p.lr for p in capped.phases] == [0.65] * 4


def test_hybrid_smith_and_cs5824():
    smith = schedules.hybrid(200, 128, 0.1, [60, 120, 160], 5, grow_steps=1)
    assert [p.batch_size for p in smith.phases] == [128, 640, 640, 640]
    assert [p.lr for p in smith.phases] == pytest.approx([0.1, 0.1, 0.02, 0.004])
    keras_repro = schedules.hybrid(6, 100, 0.05, [2, 4], 5, grow_steps=1)
    assert [(p.batch_size, round(p.lr, 9)) for p in keras_repro.phases] == [
        (100, 0.05),
        (500, 0.05),
        (500, 0.01),
    ]
    no_growth = schedules.hybrid(6, 100, 0.1, [2, 4], 5, grow_steps=0)
    assert no_growth.phases == schedules.decay_lr(6, 100, 0.1, [2, 4], 5).phases


@pytest.mark.parametrize(
    ("name", "expected"), [("decay_lr", 78_200), ("hybrid", 34_520), ("increase_bs", 29_000)]
)
def test_cifar_update_counts(name, expected):
    """The totals the dry run prints for 200 epochs from 128 with factor 5 (issue 3)."""
    build = getattr(schedules, name)
    s = build(200, 128, 0.1, [60, 120, 160], 5)
    assert s.total_updates(N_CIFAR) == expected
    assert s.table(N_CIFAR)[-1]["cumulative_updates"] == expected


def test_fashion_mnist_update_counts():
    s = schedules.increase_bs(6, 100, 0.05, [2, 4], 5)
    assert s.total_updates(60_000) == 1488
    assert schedules.decay_lr(6, 100, 0.05, [2, 4], 5).total_updates(60_000) == 3600
    assert s.total_updates(60_001, drop_remainder=True) == 1488
    assert s.total_updates(60_001) == 1494


@pytest.mark.parametrize(
    ("factor", "milestones", "batch", "lr"),
    list(itertools.product([2, 5, 10], [[2, 4], [1, 3, 5], [60, 120, 160]], [64, 128], [0.1, 0.4])),
)
def test_noise_scale_equivalence_every_epoch(factor, milestones, batch, lr):
    """decay_lr and increase_bs (uncapped) have the same noise scale lr*N/B at every epoch."""
    epochs = milestones[-1] + 2
    decay = schedules.decay_lr(epochs, batch, lr, milestones, factor)
    grow = schedules.increase_bs(epochs, batch, lr, milestones, factor)
    for epoch in range(epochs):
        assert noise(grow, epoch) == pytest.approx(noise(decay, epoch), rel=1e-12)


@pytest.mark.parametrize("max_batch", [500, 1000, 3200, 4000])
def test_cap_decay_lr_keeps_noise_scale(max_batch):
    """With cap='decay_lr' the capped schedule still follows decay_lr's noise scale."""
    decay = schedules.decay_lr(200, 128, 0.1, [60, 120, 160], 5)
    capped = schedules.increase_bs(
        200, 128, 0.1, [60, 120, 160], 5, max_batch_size=max_batch, cap="decay_lr"
    )
    for epoch in range(200):
        assert capped.at(epoch).batch_size <= max_batch
        assert noise(capped, epoch) == pytest.approx(noise(decay, epoch), rel=1e-12)


def test_cap_clamp_breaks_equivalence_after_the_cap():
    decay = schedules.decay_lr(200, 128, 0.1, [60, 120, 160], 5)
    clamped = schedules.increase_bs(200, 128, 0.1, [60, 120, 160], 5, max_batch_size=1000)
    assert noise(clamped, 70) == noise(decay, 70)  # 640 is still under the cap
    assert noise(clamped, 130) > noise(decay, 130)  # 3200 would exceed it
    assert clamped.at(199).batch_size == 1000


def test_hybrid_capped_decay_follows_decay_lr():
    decay = schedules.decay_lr(200, 128, 0.1, [60, 120, 160], 5)
    for grow_steps in range(4):
        h = schedules.hybrid(200, 128, 0.1, [60, 120, 160], 5, grow_steps=grow_steps)
        for epoch in range(200):
            assert noise(h, epoch) == pytest.approx(noise(decay, epoch), rel=1e-12)


def test_at_and_milestones_agree():
    s = schedules.increase_bs(6, 100, 0.07, [2, 4], 5)
    assert s.milestones == (2, 4)
    assert [s.at(e).phase for e in range(6)] == [0, 0, 1, 1, 2, 2]
    with pytest.raises(IndexError):
        s.at(6)


def test_from_phases_string():
    s = schedules.from_phases("2x100@0.1, 2x500@0.1,2X2500@0.05")
    assert s.phases == (Phase(2, 100, 0.1), Phase(2, 500, 0.1), Phase(2, 2500, 0.05))
    assert s.epochs == 6
    assert s.params["phases"] == "2x100@0.1,2x500@0.1,2x2500@0.05"


@pytest.mark.parametrize("spec", ["2x100", "x100@0.1", "2x@0.1", "twox100@0.1", "2x100@abc"])
def test_from_phases_rejects_malformed(spec):
    with pytest.raises(ScheduleError) as info:
        schedules.from_phases(spec)
    assert info.value.param == "phases"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"milestones": [4, 2]}, "milestones"),
        ({"milestones": [2, 2]}, "milestones"),
        ({"milestones": [0, 3]}, "milestones"),
        ({"milestones": [2, 6]}, "milestones"),
        ({"milestones": [2.5]}, "milestones"),
        ({"lr": -0.1}, "lr"),
        ({"lr": 0.0}, "lr"),
        ({"lr": math.nan}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.0}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"factor": -5}, "factor"),
        ({"max_batch_size": 10}, "max_batch_size"),
        ({"cap": "stop"}, "cap"),
    ],
)
def test_invalid_parameters_name_the_parameter(kwargs, param):
    args = {"epochs": 6, "batch_size": 100, "lr": 0.1, "milestones": [2, 4], "factor": 5}
    args.update(kwargs)
    with pytest.raises(ScheduleError) as info:
        schedules.increase_bs(**args)
    assert info.value.param == param


def test_function_schedule_merges_phases():
    s = schedules.FunctionSchedule(lambda e: (100 if e < 3 else 500, 0.1), epochs=5)
    assert s.to_schedule().phases == (Phase(3, 100, 0.1), Phase(2, 500, 0.1))
    assert s.at(4).batch_size == 500


def test_config_round_trip():
    s = schedules.hybrid(6, 100, 0.05, [2, 4], 5, grow_steps=1, max_batch_size=4000)
    again = Schedule.from_config(s.to_config())
    assert again == s
    assert again.params["grow_steps"] == 1


def test_table_rows():
    rows = schedules.increase_bs(6, 100, 0.05, [2, 4], 5).table(60_000, momentum=0.9)
    assert [r["updates_per_epoch"] for r in rows] == [600, 120, 24]
    assert [r["cumulative_updates"] for r in rows] == [1200, 1440, 1488]
    assert rows[0]["noise_scale"] == pytest.approx(0.05 * 60_000 / (100 * 0.1))
    assert [r["first_epoch"] for r in rows] == [1, 3, 5]


# The package: one protocol, round trips, one update count, curves as composed functions.

BUILT = {
    "constant": lambda: schedules.constant(5, 128, 0.1),
    "decay_lr": lambda: schedules.decay_lr(6, 100, 0.1, [2, 4], 5),
    "increase_bs": lambda: schedules.increase_bs(6, 100, 0.1, [2, 4], 5, max_batch_size=1000),
    "increase_bs_double_end": lambda: schedules.increase_bs(
        8, 2048, 0.25, [2, 4, 6], 2, double_end_factor=True
    ),
    "hybrid": lambda: schedules.hybrid(6, 100, 0.05, [2, 4], 5, grow_steps=1, cap="decay_lr"),
    "mixed_bsi": lambda: schedules.mixed_bsi(200, 128, 0.1, [60, 120, 160], max_batch_size=50_000),
    "fast_bsi": lambda: schedules.fast_bsi(10, 128, 0.05, 1024, start_epoch=2, milestones=[8]),
    "instant_bsi": lambda: schedules.fast_bsi(10, 128, 0.05, 1024, 2, milestones=[8], instant=True),
    "stepped": lambda: schedules.stepped(4, 64, 0.4, [2], [(2.0, 4.0)]),
    "from_phases": lambda: schedules.from_phases("2x100@0.1,1x500@0.02"),
    "scale_lr": lambda: schedules.scale_lr(schedules.increase_bs(4, 128, 0.1, [2], 2), "sqrt"),
    "stretch_epochs": lambda: schedules.stretch_epochs(
        schedules.increase_bs(4, 128, 0.1, [2], 2), 128
    ),
    "with_curve": lambda: schedules.with_curve(
        schedules.decay_lr(6, 100, 0.1, [2, 4], 5),
        schedules.StepCurve("cosine", warmup_epochs=1.5, warmup_start_lr=0.01, min_lr=0.001),
    ),
    "cyclic": lambda: schedules.with_curve(
        schedules.constant(4, 100, 0.1), schedules.StepCurve("cyclic", cycle_epochs=0.5)
    ),
    "adaptive": lambda: schedules.AdaptiveSchedule(4, 100, 0.1, factor=3, scale_lr="linear"),
    "adaptive_theta": lambda: schedules.AdaptiveSchedule(
        6, 64, 0.05, theta=0.5, max_batch_size=4096, multiple_of=32, scale_lr="sqrt"
    ),
}


@pytest.mark.parametrize("name", sorted(BUILT))
def test_every_builder_is_a_base_schedule_that_round_trips(name):
    s = BUILT[name]()
    assert isinstance(s, schedules.BaseSchedule)
    config = json.loads(json.dumps(s.to_config()))  # what config.json holds
    assert schedules.from_config(config) == s
    assert schedules.from_config(config).to_config() == config  # params too (compare=False)


def test_function_schedule_round_trips_as_its_phases():
    s = schedules.FunctionSchedule(lambda e: (100 * (e + 1), 0.1), epochs=3)
    assert isinstance(s, schedules.BaseSchedule)
    assert schedules.from_config(s.to_config()) == s.to_schedule()


def test_transforms_keep_what_they_do_not_change():
    curve = schedules.StepCurve("cosine", warmup_epochs=1)
    base = schedules.with_curve(schedules.increase_bs(4, 128, 0.1, [2], 2), curve)
    for rebuilt in (schedules.scale_lr(base, "linear"), schedules.stretch_epochs(base, 128)):
        assert (rebuilt.name, rebuilt.curve) == ("increase_bs", curve)
        assert rebuilt.params["milestones"] == [2]
    assert schedules.with_curve(base, None).phases == base.phases


@pytest.mark.parametrize("rule", schedules.SCALING_RULES)
def test_adaptive_and_scale_lr_share_the_scaling_rule(rule):
    adaptive = schedules.AdaptiveSchedule(3, 128, 0.1, factor=8, scale_lr=rule)
    grown = adaptive.at(1, [{"batch_size": 128, "gns_b_simple": 1024.0}])
    fixed = schedules.scale_lr(schedules.constant(1, 1024, 0.1), rule, reference_batch=128)
    assert grown.batch_size == 1024
    assert grown.lr == fixed.phases[0].lr == schedules.scaled_lr(0.1, 1024, 128, rule)


@pytest.mark.parametrize("num_examples", [0, 99, 100, 101, 60_000, 60_001, 50_000])
def test_epoch_plan_counts_the_updates_of_total_updates_and_table(num_examples):
    s = schedules.increase_bs(6, 100, 0.05, [2, 4], 5, max_batch_size=1000)
    plan = schedules.EpochPlan(num_examples, drop_remainder=True)
    by_plan = sum(p.epochs * len(plan.batch_sizes(p.batch_size)) for p in s.phases)
    assert by_plan == s.total_updates(num_examples, drop_remainder=True)
    assert by_plan == s.total_updates(plan)
    rows = s.table(plan)
    assert [r["updates_per_epoch"] for r in rows] == [
        num_examples // 100,
        num_examples // 500,
        num_examples // 1000,
    ]
    assert rows[-1]["cumulative_updates"] == by_plan
    ceil = s.table(schedules.EpochPlan(num_examples))
    assert rows[0]["updates_per_epoch"] == ceil[0]["updates_per_epoch"] - (num_examples % 100 > 0)


def _cosine(lr, t, total, start, min_lr):
    progress = min(max(t - start, 0.0) / max(total - start, 1.0), 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _triangle(lr, t, half, min_lr):
    u = (t % (2 * half)) / half  # position in the cycle, in [0, 2)
    return min_lr + (lr - min_lr) * (u if u <= 1 else 2 - u)


def _warm(value, t, steps, start_lr):
    return start_lr + (value - start_lr) * t / steps if t < steps else value


T = np.concatenate([np.arange(0.0, 300.0), np.linspace(0.0, 400.0, 777)])


def test_curve_functions_are_the_closed_forms():
    cosine = schedules.cosine_decay(total=250, min_lr=0.002, start=30)
    cycle = schedules.triangular_cycle(half_period=37.5, min_lr=0.01)
    warm = schedules.linear_warmup(cycle, steps=20, start_lr=0.005)
    got = {f: f(np.full_like(T, 0.1), T, np) for f in (cosine, cycle, warm)}
    for i, t in enumerate(T):
        assert got[cosine][i] == pytest.approx(_cosine(0.1, t, 250, 30, 0.002), rel=1e-12)
        assert got[cycle][i] == pytest.approx(_triangle(0.1, t, 37.5, 0.01), rel=1e-9)
        expected = _warm(_triangle(0.1, t, 37.5, 0.01), t, 20, 0.005)
        assert got[warm][i] == pytest.approx(expected, rel=1e-9)
    assert schedules.linear_warmup(cycle, steps=0) is cycle


@pytest.mark.parametrize(
    "curve",
    [
        schedules.StepCurve("cosine", warmup_epochs=0.5, warmup_start_lr=0.001, min_lr=0.0001),
        schedules.StepCurve("cosine"),
        schedules.StepCurve("cyclic", warmup_epochs=1, cycle_epochs=0.75, min_lr=0.002),
        schedules.StepCurve("constant", warmup_epochs=2, warmup_start_lr=0.0),
    ],
)
@pytest.mark.parametrize("drop_remainder", [False, True])
def test_schedule_lr_follows_the_closed_forms(curve, drop_remainder):
    """Two phases (LR 0.1 then 0.02) with a curve, against the formulas written out."""
    s = schedules.with_curve(schedules.decay_lr(4, 64, 0.1, [2], 5), curve)
    plan = schedules.EpochPlan(1_000, drop_remainder)
    per_epoch, total = plan.updates(64), s.total_updates(plan)
    boundary = s.phase_starts(plan)[1]
    warmup = curve.warmup_epochs * per_epoch
    updates = np.arange(total + 5)
    got = s.lr_at_updates(updates, plan)
    base = schedules.with_curve(s, None).lr_at_updates(updates, plan)
    # The resolved function (lr_function) and the entry point StepCurve.apply agree exactly.
    np.testing.assert_array_equal(got, curve.apply(base, updates, total, per_epoch, np))
    for t in updates:
        lr = float(np.float32(0.1 if t < boundary else 0.02))
        if curve.shape == "cosine":
            lr = _cosine(lr, t, total, warmup, curve.min_lr)
        elif curve.shape == "cyclic":
            lr = _triangle(lr, t, curve.cycle_epochs * per_epoch, curve.min_lr)
        if warmup:
            lr = _warm(lr, t, warmup, curve.warmup_start_lr)
        assert got[t] == pytest.approx(lr, rel=1e-6, abs=1e-12)


def test_the_package_is_a_pure_room():
    """No module of bsi_keras.schedules imports Keras, a backend, or the rest of bsi_keras."""
    package = Path(schedules.__file__).parent
    for module in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{module.name}: relative import"
                names = [node.module]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                assert root not in {"keras", "tensorflow", "jax", "torch"}, (module.name, name)
                if root == "bsi_keras":
                    assert name.startswith("bsi_keras.schedules"), (module.name, name)
        assert len(module.read_text().splitlines()) < 400, module.name
