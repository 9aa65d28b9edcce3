"""Property-based: any flag values either run or are refused naming a flag, never a traceback."""

import itertools

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bsi_keras import cli, run
from bsi_keras.models import available_models

WEIRD = st.sampled_from(["", "abc", "1e3", "-0", "nan", "inf", "-inf", "0x10", "1,2", "∞"])
INTS = st.one_of(st.integers(-5, 20), st.integers(-(10**12), 10**12), WEIRD)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-2, 2), st.just(1e300), WEIRD
)


def phase_spec():
    item = st.tuples(INTS, INTS, FLOATS).map(lambda t: f"{t[0]}x{t[1]}@{t[2]}")
    return st.lists(item, min_size=0, max_size=4).map(",".join)


def choice_or_junk(choices):
    return st.one_of(st.sampled_from(list(choices)), st.text(max_size=8))


FLAG_VALUES = {
    "--epochs": INTS,
    "--batch_size": INTS,
    "--lr": FLOATS,
    "--milestones": st.lists(INTS, min_size=1, max_size=4),
    "--factor": FLOATS,
    "--max": INTS,
    "--cap": choice_or_junk(["clamp", "decay_lr"]),
    "--grow_steps": INTS,
    "--schedule": choice_or_junk([*cli.SCHEDULES, "all"]),
    "--phases": phase_spec(),
    "--model": choice_or_junk(available_models()),
    "--dataset": choice_or_junk(["mnist_sample", "synthetic", "fashion_mnist", "cifar10"]),
    "--optimizer": choice_or_junk(["sgd", "momentum", "nesterov", "adam", "nadam"]),
    "--momentum": FLOATS,
    "--weight_decay": FLOATS,
    "--clip_norm": FLOATS,
    "--mini_batch_size": INTS,
    "--num_train": INTS,
    "--num_test": INTS,
    "--seed": INTS,
    "--eval_batch_size": INTS,
    "--checkpoint_every": INTS,
    "--resume": st.sampled_from(["/nonexistent/run", "."]),
    "--filename": st.just("/nonexistent/never/written"),
}


@st.composite
def command_lines(draw, flags=FLAG_VALUES):
    chosen = draw(st.lists(st.sampled_from(sorted(flags)), unique=True, max_size=7))
    argv = []
    for flag in chosen:
        value = draw(flags[flag])
        values = value if isinstance(value, list) else [value]
        argv += [flag, *(str(v) for v in values)]
    return argv


def check_outcome(argv, capsys) -> None:
    try:
        code = run.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text
    if code == 2:
        assert "error: argument --" in captured.err, captured.err
    elif code == 1:
        assert "error:" in captured.err or "diverged" in captured.out, text
    else:
        assert code == 0, (code, text)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(argv=command_lines())
@example(argv=["--batch_size", "0", "--phases", "", "--milestones", "0", "-inf"])  # found on JAX
def test_any_flags_are_checked_before_training(argv, capsys):
    """Dry runs: every combination passes every check, or is refused naming a flag."""
    check_outcome([*argv, "--dry-run"], capsys)


SMALL = {
    "--epochs": st.integers(-1, 2),
    "--batch_size": st.integers(-1, 300),
    "--lr": st.sampled_from([-1.0, 0.0, 1e-3, 0.1, 10.0, 1e30]),
    "--milestones": st.lists(st.integers(-1, 3), min_size=1, max_size=2),
    "--factor": st.sampled_from([0.5, 2.0, 5.0, 1e300]),
    "--mini_batch_size": st.integers(-1, 40),
    "--model": st.sampled_from(["mnist_cnn", "f1", "mnist_f1", "nonsense"]),
    "--optimizer": st.sampled_from(["sgd", "adam", "nesterov"]),
    "--momentum": st.sampled_from([0.0, 0.5, 1.0]),
    "--schedule": st.sampled_from([*cli.SCHEDULES, "all"]),
    "--num_test": st.integers(-1, 60),
}
counter = itertools.count()


@pytest.mark.filterwarnings("ignore")
@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(argv=command_lines(SMALL))
def test_small_real_runs_run_or_are_refused(argv, capsys, tmp_path):
    folder = tmp_path / f"run{next(counter)}"
    base = ["--dataset", "mnist_sample", "--num_train", "150", "--verbose", "0"]
    check_outcome([*base, "--num_test", "50", *argv, "--filename", str(folder)], capsys)
