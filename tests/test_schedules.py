"""The schedule builders, exhaustively: phases, caps, equivalences, errors."""

import itertools
import math

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
