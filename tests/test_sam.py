"""SAM and ASAM in the train step: hand-computed steps, BN statistics, m-sharpness, CLI."""

import json

import keras
import numpy as np
import pytest

from bsi_keras import cli, run
from bsi_keras.optimizers import SGD, get_optimizer
from bsi_keras.train_step import StepOptions, install
from bsi_keras.train_step.sam import SAM, from_name, is_bias

RNG = np.random.default_rng(0)
X = RNG.normal(size=(8, 3)).astype("float32")
Y = RNG.normal(size=(8, 2)).astype("float32")
KERNEL = RNG.normal(size=(3, 2)).astype("float32")
BIAS = RNG.normal(size=2).astype("float32")
LR = 0.1
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


def numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


# The known loss: a linear model y = x W + b with the mean squared error.
def gradient(w, b, x, y):
    residual = x @ w + b - y
    scale = 2.0 / residual.size
    return scale * x.T @ residual, scale * residual.sum(axis=0)


def sam_gradient(w, b, x, y, rho, eta=None, scale_bias=False):
    """Perturb, take the gradient there (ASAM when ``eta`` is given: T_w = |w| + eta)."""
    gw, gb = gradient(w, b, x, y)
    tw = 1.0 if eta is None else np.abs(w) + eta
    tb = np.abs(b) + eta if scale_bias else 1.0
    norm = np.sqrt(np.sum((tw * gw) ** 2) + np.sum((tb * gb) ** 2)) + 1e-12
    return gradient(w + rho * tw**2 * gw / norm, b + rho * tb**2 * gb / norm, x, y)


def m_sharpness_gradient(w, b, x, y, rho, m):
    """The size-weighted mean of each group of ``m``'s own SAM gradient."""
    groups = [slice(start, start + m) for start in range(0, len(x), m)]
    parts = [sam_gradient(w, b, x[g], y[g], rho) for g in groups]
    sizes = [len(x[g]) for g in groups]
    return tuple(sum(n * p[i] for n, p in zip(sizes, parts)) / len(x) for i in range(2))


def sgd_step(grads):
    w, b = KERNEL.astype("float64"), BIAS.astype("float64")
    return w - LR * grads[0], b - LR * grads[1]


def linear_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    model.set_weights([KERNEL, BIAS])
    return model


def train_one_step(model, options, optimizer=None, loss="mse", batch=8, epochs=1):
    model.compile(optimizer=optimizer or SGD(LR), loss=loss)
    with install(model, options):
        model.fit(X, Y, batch_size=batch, epochs=epochs, shuffle=False, verbose=0)
    return [numpy(v) for v in model.trainable_variables]


def assert_weights(actual, expected):
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, **TOLERANCE)


def test_one_sam_step_equals_the_hand_computed_update():
    weights = train_one_step(linear_model(), StepOptions(sam=SAM(rho=0.05)))
    assert_weights(weights, sgd_step(sam_gradient(KERNEL, BIAS, X, Y, rho=0.05)))


def test_one_asam_step_scales_the_kernel_but_not_the_bias():
    weights = train_one_step(linear_model(), StepOptions(sam=SAM(adaptive=True)))
    expected = sgd_step(sam_gradient(KERNEL, BIAS, X, Y, rho=0.5, eta=0.01))
    assert_weights(weights, expected)
    scaled_bias = sam_gradient(KERNEL, BIAS, X, Y, rho=0.5, eta=0.01, scale_bias=True)
    assert not np.allclose(weights[1], sgd_step(scaled_bias)[1], **TOLERANCE)


def test_the_base_optimizer_takes_the_step_with_the_perturbed_gradient():
    weights = train_one_step(
        linear_model(), StepOptions(sam=SAM()), optimizer=keras.optimizers.Adam(0.01)
    )
    variables = [keras.Variable(KERNEL), keras.Variable(BIAS)]
    grads = sam_gradient(KERNEL, BIAS, X, Y, rho=0.05)
    keras.optimizers.Adam(0.01).apply(
        [keras.ops.convert_to_tensor(g, "float32") for g in grads], variables
    )
    assert_weights(weights, [numpy(v) for v in variables])


def test_is_bias_by_name():
    model = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3), keras.layers.BatchNormalization()]
    )
    names = {v.name: is_bias(v) for v in model.trainable_variables}
    assert names == {"kernel": False, "bias": True, "gamma": False, "beta": True}


def bn_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, name="hidden"),
            keras.layers.BatchNormalization(momentum=0.5, name="bn"),
            keras.layers.Dense(2, name="out"),
        ]
    )


@pytest.mark.parametrize("micro", [None, 4])
@pytest.mark.parametrize("adaptive", [False, True])
def test_batch_norm_statistics_move_once_per_step_from_the_clean_pass(micro, adaptive):
    plain, sam = bn_model(), bn_model()
    train_one_step(plain, StepOptions(max_physical_batch=micro))
    sam_weights = train_one_step(
        sam, StepOptions(max_physical_batch=micro, sam=SAM(rho=0.5, adaptive=adaptive))
    )
    for a, b in zip(plain.non_trainable_variables, sam.non_trainable_variables):
        np.testing.assert_allclose(numpy(a), numpy(b), **TOLERANCE)
    mean = numpy(sam.get_layer("bn").moving_mean)
    assert not np.allclose(mean, 0.0)  # the statistics did move
    # The weights differ: the second pass ran at the perturbed point.
    assert not np.allclose(sam_weights[0], numpy(plain.trainable_variables[0]), **TOLERANCE)


def test_m_sharpness_with_m_the_batch_is_plain_sam():
    plain = train_one_step(linear_model(), StepOptions(sam=SAM()))
    assert_weights(train_one_step(linear_model(), StepOptions(sam=SAM(m=8))), plain)
    assert_weights(train_one_step(linear_model(), StepOptions(sam=SAM(m=20))), plain)


def test_m_sharpness_with_smaller_m_perturbs_each_group():
    weights = train_one_step(linear_model(), StepOptions(sam=SAM(m=3)))  # groups 3, 3, 2
    expected = sgd_step(m_sharpness_gradient(KERNEL, BIAS, X, Y, 0.05, 3))
    assert_weights(weights, expected)
    plain = sgd_step(sam_gradient(KERNEL, BIAS, X, Y, rho=0.05))
    assert not np.allclose(weights[0], plain[0], **TOLERANCE)


@pytest.mark.parametrize(("m", "micro"), [(None, 3), (4, 2), (4, 8), (3, 2)])
def test_micro_batches_do_not_change_the_perturbation(m, micro):
    """Accumulation is exact: only m decides which examples share a perturbation."""
    alone = train_one_step(linear_model(), StepOptions(sam=SAM(m=m)))
    split = train_one_step(linear_model(), StepOptions(max_physical_batch=micro, sam=SAM(m=m)))
    assert_weights(split, alone)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf_keras needs TensorFlow")
@pytest.mark.parametrize("splits", [None, 2])
def test_equals_keras_2_sharpness_aware_minimization(splits):
    """Keras 2's ``SharpnessAwareMinimization``, an independent implementation.

    It differs from ours in ways this model avoids: it sums (not averages) the split
    gradients, so its LR is divided by the number of splits (plain SGD is linear in
    ``lr * g``); it runs its first pass in inference mode and updates batch-norm
    statistics in both passes, so the model has no batch norm and no dropout.
    """
    import tf_keras

    ours = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(2)]
    )
    theirs = tf_keras.Sequential(
        [
            tf_keras.Input((3,)),
            tf_keras.layers.Dense(4, activation="tanh"),
            tf_keras.layers.Dense(2),
        ]
    )
    theirs.set_weights(ours.get_weights())
    reference = tf_keras.models.experimental.SharpnessAwareMinimization(
        theirs, rho=0.05, num_batch_splits=splits
    )
    reference.compile(optimizer=tf_keras.optimizers.SGD(LR / (splits or 1)), loss="mse")
    reference.fit(X, Y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    m = None if splits is None else 8 // splits
    weights = train_one_step(ours, StepOptions(sam=SAM(rho=0.05, m=m)), epochs=3)
    assert_weights(weights, theirs.get_weights())


def test_fit_with_sam_composes_with_a_schedule():
    from bsi_keras import data, fit, models, schedules

    ds = data.synthetic(120, (28, 28, 1), seed=1)
    keras.utils.set_random_seed(0)
    model = models.get_model("mnist_cnn", virtual_batch_size=10)
    model.compile(
        optimizer=get_optimizer("sam_momentum", 0.05), loss="sparse_categorical_crossentropy"
    )
    schedule = schedules.increase_bs(2, 20, 0.05, [1], 2)
    options = StepOptions(sam=from_name("asam_momentum", m=20))
    history = fit(
        model, ds.x_train, ds.y_train, schedule=schedule, step_options=options, verbose=0, seed=0
    )
    assert history.history["batch_size"] == [20, 40]
    assert history.history["updates"] == [6, 9]
    assert np.all(np.isfinite(history.history["loss"]))


def test_sam_names_give_the_base_optimizer_and_the_step_option():
    assert isinstance(get_optimizer("sam_adam", 0.01), keras.optimizers.Adam)
    assert type(get_optimizer("asam_nesterov", 0.1)).__name__ == "SGD"
    assert from_name("sam_sgd") == SAM(rho=0.05)
    assert from_name("asam_sgd") == SAM(rho=0.5, adaptive=True, eta=0.01)
    assert from_name("sgd") is None
    with pytest.raises(ValueError, match="rho"):
        SAM(rho=0.0)
    with pytest.raises(ValueError, match="m must be"):
        SAM(m=0)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--optimizer", "sam_sgd"], SAM(rho=0.05)),
        (["--optimizer", "asam_adam"], SAM(rho=0.5, adaptive=True, eta=0.01)),
        (
            ["--optimizer", "asam_momentum", "--rho", "1.0", "--eta", "0", "--sam_m", "16"],
            SAM(rho=1.0, adaptive=True, eta=0.0, m=16),
        ),
        (["--optimizer", "momentum"], None),
    ],
)
def test_cli_step_options(argv, expected):
    spec = cli.RunSpec.from_argv(["--dataset", "mnist_sample", *argv])
    assert spec.step_options().sam == expected


@pytest.mark.parametrize(
    ("argv", "flag", "words"),
    [
        (["--optimizer", "sam_sgd", "--rho", "0"], "--rho", "positive"),
        (["--optimizer", "sam_sgd", "--rho", "-1"], "--rho", "positive"),
        (["--optimizer", "asam_sgd", "--eta", "-0.1"], "--eta", ">= 0"),
        (["--optimizer", "sam_sgd", "--eta", "0.1"], "--eta", "ASAM only"),
        (["--optimizer", "sgd", "--rho", "0.1"], "--rho", "sam_* and asam_*"),
        (["--optimizer", "sam_sgd", "--sam_m", "0"], "--sam_m", "positive"),
        (["--optimizer", "sam_sgd", "--sam_m", "101"], "--sam_m", "larger than the batch"),
        (["--optimizer", "sam_lion"], "--optimizer", "invalid choice"),
        (["--optimizer", "sam_adam", "--momentum", "0.9"], "--momentum", "no momentum"),
    ],
)
def test_bad_sam_flags_are_refused_naming_the_flag(argv, flag, words, capsys):
    with pytest.raises(SystemExit) as info:
        run.main(["--dataset", "mnist_sample", "--batch_size", "100", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and words in err


def test_cli_sam_sgd_short_run(tmp_path):
    folder = tmp_path / "sam"
    argv = ["--dataset", "mnist_sample", "--num_train", "200", "--num_test", "100"]
    argv += ["--optimizer", "sam_sgd", "--epochs", "2", "--batch_size", "50", "--lr", "0.05"]
    assert run.main([*argv, "--verbose", "0", "--filename", str(folder)]) == 0
    summary = json.loads((folder / "summary.json").read_text())
    # Two epochs step once at the default milestone: 4 updates of 50, then 1 of 200.
    assert summary["status"] == "finished" and summary["total_updates"] == 5
    config = json.loads((folder / "config.json").read_text())
    assert config["spec"]["optimizer"]["name"] == "sam_sgd"
    assert config["optimizer"]["class_name"] == "SGD"
