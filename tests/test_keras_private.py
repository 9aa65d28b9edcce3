"""Canaries: one test per private Keras API the package uses (`bsi_keras.train_step.keras_private`).

A Keras release that renames or changes one of them fails exactly the test named after it.
"""

import keras
import numpy as np
import pytest
from keras import ops

from bsi_keras.optimizers import SGD
from bsi_keras.train_step import keras_private

X = np.ones((4, 3), dtype="float32")
Y = np.zeros((4, 1), dtype="float32")


def regularized_model() -> keras.Model:
    """A compiled linear model with an L2 penalty of 0.5 |w|^2 and weights all 1."""
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(
                1,
                kernel_initializer="ones",
                kernel_regularizer=keras.regularizers.L2(0.5),
                use_bias=False,
            ),
        ]
    )
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return model


def test_canary_call_has_training_arg_tells_layers_apart():
    class Identity(keras.layers.Layer):
        def call(self, inputs):
            return inputs

    assert keras_private.call_has_training_arg(keras.layers.Dropout(0.5)) is True
    assert keras_private.call_has_training_arg(Identity()) is False


def test_canary_losses_override_replaces_model_losses_inside_the_block():
    model = regularized_model()
    assert float(ops.sum(model.losses)) == pytest.approx(1.5)
    with keras_private.losses_override(model, [ops.convert_to_tensor(7.0)]):
        assert [float(v) for v in model.losses] == [7.0]
    assert float(ops.sum(model.losses)) == pytest.approx(1.5)


def test_canary_compute_loss_exists_and_returns_scalar():
    model = regularized_model()
    y_pred = model(X)  # 3 for every example: mse 9, plus the penalty 1.5
    loss = keras_private.compute_loss(model, X, Y, y_pred, None, training=True)
    assert ops.shape(loss) == ()
    assert float(loss) == pytest.approx(10.5)


def test_canary_unscale_loss_for_distribution_is_identity_on_one_replica():
    loss = ops.convert_to_tensor(2.5)
    assert float(keras_private.unscale_loss_for_distribution(loss)) == 2.5


def test_canary_update_loss_tracker_feeds_the_reported_loss():
    model = regularized_model()
    model.fit(X, Y, epochs=1, verbose=0)  # builds the compiled metrics and the tracker
    for metric in model.metrics:
        metric.reset_state()
    keras_private.update_loss_tracker(model, ops.convert_to_tensor(3.0), 4)
    keras_private.update_loss_tracker(model, ops.convert_to_tensor(1.0), 12)
    assert float(model.metrics[0].result()) == pytest.approx(1.5)  # (3*4 + 1*12) / 16


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the JAX trainer's method")
def test_canary_update_metrics_variables_returns_logs_and_new_values():
    model = regularized_model()
    model.fit(X, Y, epochs=1, verbose=0)
    for metric in model.metrics:
        metric.reset_state()
    values = [v.value for v in model.metrics_variables]
    y_pred = ops.ones((4, 1))
    logs, new_values = keras_private.update_metrics_variables(
        model, values, ops.convert_to_tensor(2.0), X, Y, y_pred, None
    )
    assert float(logs["loss"]) == pytest.approx(2.0)
    assert float(logs["mae"]) == pytest.approx(1.0)
    assert len(new_values) == len(model.metrics_variables)
    assert float(model.metrics[0].result()) == 0.0  # the tracker's variables are untouched


def test_canary_is_default_hook_marks_the_base_callback_hooks():
    class Listener(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pass

    assert keras_private.is_default_hook(Listener(), "on_epoch_end") is False
    assert keras_private.is_default_hook(Listener(), "on_train_batch_end") is True
    assert keras_private.is_default_hook(keras.callbacks.Callback(), "on_epoch_begin") is True


def test_canary_optimizer_get_variable_index_follows_the_built_variables():
    # `bsi_keras.optimizers.SGD.update_step` calls this protected hook directly, as Keras's own
    # optimizers do: the optimizers room sits below train_step and cannot import its module.
    variables = [keras.Variable(np.zeros(2)), keras.Variable(np.zeros(3))]
    optimizer = SGD(learning_rate=0.1, momentum=0.9)
    optimizer.build(variables)
    assert [optimizer._get_variable_index(v) for v in variables] == [0, 1]


def test_canary_build_compiled_state_builds_loss_metrics_and_optimizer():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    keras_private.build_compiled_state(model, np.zeros((1, 3)), np.zeros((1, 2)))
    assert model.optimizer.built and model._compile_loss.built and model._compile_metrics.built


def test_canary_compute_metrics_of_weighs_unweighted_metrics_by_the_mask():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"], weighted_metrics=["mse"])
    y = np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]], "float32")
    y_pred = np.zeros_like(y)
    real = np.array([1.0, 1.0, 0.0], "float32")
    logs = keras_private.compute_metrics_of(model, y, y_pred, real * 2.0, real)
    assert float(logs["mae"]) == 0.5  # the padded third example does not count
    assert float(logs["mse"]) == 0.5


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the JAX trainer's jit")
def test_canary_jitted_train_step_is_the_jit_keras_calls():
    """Lowered and compiled ahead for batch 8, Keras's own fit at batch 8 traces nothing."""
    import jax

    model = regularized_model()
    traces = []
    step = model.train_step

    def counting(*args):
        traces.append(args)
        return step(*args)

    model.train_step = counting
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0)
    state, data = traces[-1]
    spec = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype), (state, data))
    bigger = jax.tree.map(lambda s: jax.ShapeDtypeStruct((8, *s.shape[1:]), s.dtype), spec[1])
    keras_private.jitted_train_step(model).lower(spec[0], bigger).compile()
    assert len(traces) == 2
    model.fit(np.ones((8, 3), "float32"), np.zeros((8, 1), "float32"), batch_size=8, verbose=0)
    assert len(traces) == 2


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the TensorFlow trainer's")
def test_canary_one_step_function_is_the_tf_function_the_train_function_calls():
    import tensorflow as tf

    model = regularized_model()
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0)
    one_step = keras_private.one_step_function(model.train_function)
    before = one_step.experimental_get_tracing_count()
    one_step.get_concrete_function((tf.TensorSpec((8, 3)), tf.TensorSpec((8, 1))))
    assert one_step.experimental_get_tracing_count() == before + 1
    model.fit(np.ones((8, 3), "float32"), np.zeros((8, 1), "float32"), batch_size=8, verbose=0)
    assert one_step.experimental_get_tracing_count() == before + 1  # found, not traced
