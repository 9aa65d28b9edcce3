"""bsi_keras's Nadam takes the steps of TensorFlow 1.15's tf.keras Nadam (Keras 2's schedule)."""

import keras
import numpy as np
import pytest

from bsi_keras.optimizers import get_optimizer
from bsi_keras.optimizers.nadam import Nadam


def tf115_nadam_steps(w, grads, lr=0.001, beta_1=0.9, beta_2=0.999, eps=1e-7, decay=0.004):
    """TensorFlow 1.15's ``optimizer_v2/nadam.py`` ``_resource_apply_dense``, in numpy."""
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    m_cache = 1.0
    for t, grad_of in enumerate(grads, start=1):
        g = grad_of(w)
        m_t = beta_1 * (1 - 0.5 * 0.96 ** (decay * t))
        m_t_1 = beta_1 * (1 - 0.5 * 0.96 ** (decay * (t + 1)))
        m_schedule_new = m_cache * m_t
        m_cache = m_schedule_new
        m_schedule_next = m_schedule_new * m_t_1
        g_prime = g / (1 - m_schedule_new)
        m = beta_1 * m + (1 - beta_1) * g
        m_prime = m / (1 - m_schedule_next)
        v = beta_2 * v + (1 - beta_2) * g * g
        v_prime = v / (1 - beta_2**t)
        m_bar = (1 - m_t) * g_prime + m_t_1 * m_prime
        w = w - lr * m_bar / (np.sqrt(v_prime) + eps)
    return w


def run_keras(optimizer, w0, target, steps):
    w = keras.Variable(w0.astype("float32"))
    for _ in range(steps):
        grad = 2 * (keras.ops.convert_to_numpy(w) - target)  # d/dw sum (w - target)^2
        optimizer.apply([keras.ops.convert_to_tensor(grad)], [w])
    return keras.ops.convert_to_numpy(w)


@pytest.mark.parametrize("lr", [0.001, 0.15])
def test_nadam_matches_tensorflow_1_15(lr):
    w0 = np.array([1.0, -2.0, 0.5])
    target = np.array([0.3, 0.1, -0.4])
    steps = 30
    expected = tf115_nadam_steps(w0, [lambda w: 2 * (w - target)] * steps, lr=lr)
    got = run_keras(get_optimizer("nadam", lr), w0, target, steps)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_keras_3_nadam_is_the_schedule_decay_of_one():
    """Keras 3's own Nadam is ours with schedule_decay 1 (0.96 ** t): the two differ."""
    w0 = np.array([1.0, -2.0, 0.5])
    target = np.zeros(3)
    ours_at_one = run_keras(Nadam(0.01, schedule_decay=1.0), w0, target, 20)
    keras3 = run_keras(keras.optimizers.Nadam(0.01), w0, target, 20)
    np.testing.assert_allclose(ours_at_one, keras3, rtol=1e-5, atol=1e-6)
    keras2 = run_keras(Nadam(0.01), w0, target, 20)
    assert np.abs(keras2 - keras3).max() > 1e-3


def test_nadam_config_round_trip():
    opt = Nadam(0.002, schedule_decay=0.01)
    again = Nadam.from_config(opt.get_config())
    assert again.schedule_decay == 0.01 and float(again.learning_rate) == pytest.approx(0.002)
    with pytest.raises(ValueError, match="schedule_decay"):
        Nadam(schedule_decay=0.0)
