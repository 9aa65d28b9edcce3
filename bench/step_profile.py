"""Where the milliseconds of an MNIST-CNN train step go, against PyTorch eager's step.

Each piece is one compiled function of the current Keras backend (TensorFlow or JAX) that
runs ``LOOP`` steps per call (as the driver's several steps per execution do), fed the same
batch over and over (no input pipeline), timed interleaved with PyTorch's twin pieces
(`common.interleave`, one thread count) in milliseconds per step:

- ``forward``: the model's training forward pass and loss;
- ``gradient``: forward and backward, no update;
- ``step``: forward, backward and the SGD-momentum update;
- ``step_one_call``: ``step`` with one step per call (Keras's default): the difference to
  ``step`` is the per-call dispatch;
- ``no_ghost_bn``: ``step`` of the model without its ghost batch norm layer, still with the
  gradient of the convolution's input (which the ghost BN's weights need): the difference to
  ``step`` is the ghost BN's own cost (reshapes, moments, normalization, moving statistics);
- ``step_xla`` (TensorFlow only): ``step_one_call`` compiled whole by XLA
  (``jit_compile=True``).

``input_pipeline`` is one epoch of the driver's TensorFlow feed (`driver.tf_feed.batches`)
without training, per step. The PyTorch pieces are ``torch_forward``, ``torch_gradient``,
``torch_step``.

    KERAS_BACKEND=jax python bench/step_profile.py [--batch_sizes 100 2500] [--rounds 3]

Writes ``bench/results/step_profile_<backend>[_<tag>].json``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common
import keras
import numpy as np
import torch
import torch.nn.functional as F
import torch_models

import bsi_keras
from bsi_keras.optimizers import SGD

LOOP = 8  # steps per compiled call of ``step_in_loop``
MIN_SECONDS = 0.3  # each piece repeats for at least this long per round


def models(no_ghost_bn: bool = False) -> tuple[keras.Model, Any, Any]:
    """The MNIST CNN (without its first layer with ``no_ghost_bn``), its optimizer, loss."""
    keras.utils.set_random_seed(0)
    model = bsi_keras.get_model("mnist_cnn")
    if no_ghost_bn:
        model = keras.Sequential([keras.Input((28, 28, 1)), *model.layers[1:]])
    optimizer = SGD(0.01, momentum=0.9)
    optimizer.build(model.trainable_variables)
    return model, optimizer, keras.losses.SparseCategoricalCrossentropy()


def tensorflow_pieces(x: np.ndarray, y: np.ndarray) -> dict[str, Callable[[], Any]]:
    """name -> one call of a piece on TensorFlow; each returns how many steps it ran."""
    import tensorflow as tf

    x, y = tf.constant(x), tf.constant(y)

    def build(no_ghost_bn: bool = False, loop: int = LOOP, jit: bool = False, part: str = "step"):
        model, optimizer, loss_fn = models(no_ghost_bn)
        variables = model.trainable_variables
        # Without the ghost BN, the input's gradient stands for the one the layer needs.
        sources = [*variables, x] if no_ghost_bn else variables

        def one() -> Any:
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = loss_fn(y, model(x, training=True))
            if part == "forward":
                return loss
            grads = tape.gradient(loss, sources)
            if part == "gradient":  # every gradient used, or TensorFlow prunes some
                return tf.add_n([tf.reduce_sum(g) for g in grads])
            optimizer.apply(grads[: len(variables)], variables)
            return grads[-1]

        @tf.function(jit_compile=jit)
        def call() -> Any:
            out = one()
            for _ in tf.range(loop - 1):
                out = one()
            return out

        return _counted(lambda: call().numpy(), loop)

    return {
        "forward": build(part="forward"),
        "gradient": build(part="gradient"),
        "step": build(),
        "step_one_call": build(loop=1),
        "no_ghost_bn": build(no_ghost_bn=True),
        "step_xla": build(loop=1, jit=True),  # slow here: one step per call is enough
    }


def jax_pieces(x: np.ndarray, y: np.ndarray) -> dict[str, Callable[[], Any]]:
    """name -> one call of a piece on JAX; each returns how many steps it ran."""
    import jax

    x, y = jax.numpy.asarray(x), jax.numpy.asarray(y)

    def build(no_ghost_bn: bool = False, loop: int = LOOP, part: str = "step"):
        model, optimizer, loss_fn = models(no_ghost_bn)
        state = [
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in optimizer.variables],
        ]

        def loss_of(trainable: Any, images: Any, other: Any) -> Any:
            out, other = model.stateless_call(trainable, other, images, training=True)
            return loss_fn(y, out), other

        # Without the ghost BN, the input's gradient stands for the one the layer needs.
        gradient = jax.value_and_grad(loss_of, argnums=(0, 1) if no_ghost_bn else 0, has_aux=True)

        def one(carry: Any) -> Any:
            trainable, other, slots = carry
            if part == "forward":  # the loss joins the carry, or XLA prunes the network
                loss, other = loss_of(trainable, x, other)
                return _lists(trainable, [o + 0.0 * loss for o in other], slots)
            (_, other), grads = gradient(trainable, x, other)
            if no_ghost_bn:
                grads, input_grad = grads
                other = [o + 0.0 * input_grad.sum() for o in other]
            if part == "gradient":
                return _lists(grads, other, slots)
            trainable, slots = optimizer.stateless_apply(slots, grads, trainable)
            return _lists(trainable, other, slots)

        call = jax.jit(lambda carry: jax.lax.fori_loop(0, loop, lambda _, c: one(c), carry))

        def run() -> None:
            if part == "gradient":  # gradients replace the weights: keep these
                jax.block_until_ready(call(state))
            else:
                state[:] = jax.block_until_ready(call(state))

        return _counted(run, loop)

    return {
        "forward": build(part="forward"),
        "gradient": build(part="gradient"),
        "step": build(),
        "step_one_call": build(loop=1),
        "no_ghost_bn": build(no_ghost_bn=True),
    }


def torch_pieces(x: np.ndarray, y: np.ndarray, threads: int) -> dict[str, Callable[[], Any]]:
    """PyTorch eager's forward, gradient and step on the same batch (channels-last)."""
    torch.manual_seed(0)
    model = torch_models.mnist_cnn().to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.from_numpy(x).permute(0, 3, 1, 2)
    labels = torch.from_numpy(y.astype(np.int64))

    def build(part: str) -> Callable[[], int]:
        def one() -> None:
            torch.set_num_threads(threads)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(images), labels)
            if part != "forward":
                loss.backward()
            if part == "step":
                optimizer.step()

        return _counted(one, 1)

    return {f"torch_{part}": build(part) for part in ("forward", "gradient", "step")}


def pipeline_piece(x: np.ndarray, y: np.ndarray, batch_size: int) -> Callable[[], int]:
    """One epoch of the driver's TensorFlow feed, without training."""
    from bsi_keras.driver import tf_feed

    tensors = tf_feed.as_tensors((x, y))
    order = np.random.default_rng(0).permutation(len(x))

    def epoch() -> int:
        steps = 0
        for _ in tf_feed.batches(tensors, order, batch_size):
            steps += 1
        return steps

    return epoch


def _lists(*parts: Sequence[Any]) -> list[list[Any]]:
    """A loop carry of lists (JAX's loops need the same containers in and out)."""
    return [list(part) for part in parts]


def _counted(call: Callable[[], Any], steps: int) -> Callable[[], int]:
    """``call`` wrapped to return the ``steps`` it ran."""

    def run() -> int:
        call()
        return steps

    return run


def repeated(piece: Callable[[], int]) -> Callable[[], int]:
    """``piece`` called until ``MIN_SECONDS`` have passed; returns the steps run."""

    def run() -> int:
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < MIN_SECONDS:
            steps += piece()
        return steps

    return run


def profile(
    batch_size: int, rounds: int, threads: int, only: Sequence[str] | None = None
) -> dict[str, Any]:
    """Milliseconds per step of every piece (of ``only`` these and ``torch_step``)."""
    data = bsi_keras.load_dataset("fashion_mnist", num_test=1)
    x, y = data.x_train[:batch_size], data.y_train[:batch_size]
    backend = keras.backend.backend()
    pieces = {
        **(tensorflow_pieces(x, y) if backend == "tensorflow" else jax_pieces(x, y)),
        **torch_pieces(x, y, threads),
    }
    if backend == "tensorflow":
        pieces["input_pipeline"] = pipeline_piece(data.x_train, data.y_train, batch_size)
    if only:
        pieces = {name: piece for name, piece in pieces.items() if name in {*only, "torch_step"}}
    steps: dict[str, list[int]] = {name: [] for name in pieces}
    for piece in pieces.values():  # trace and compile first
        piece()

    def counting(name: str) -> Callable[[], None]:
        run = repeated(pieces[name])
        return lambda: steps[name].append(run())

    times = common.interleave({name: counting(name) for name in pieces}, rounds)
    per_step = {
        name: [1000 * t / n for t, n in zip(times[name], steps[name], strict=True)]
        for name in pieces
    }
    return {
        "batch_size": batch_size,
        "ms_per_step": {name: common.spread(t) for name, t in per_step.items()},
        "step_over_torch_step": common.paired_ratios(per_step["step"], per_step["torch_step"]),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[100, 2500])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--torch_threads", type=int, default=1)
    parser.add_argument("--pieces", nargs="+", help="time only these (and torch_step)")
    parser.add_argument("--tag", default="", help="added to the file name, e.g. onednn_off")
    args = parser.parse_args(argv)
    rows = []
    for batch_size in args.batch_sizes:
        row = profile(batch_size, args.rounds, args.torch_threads, args.pieces)
        rows.append(row)
        print(f"batch {batch_size} (ms per step, median (min to max)):")
        for name, summary in row["ms_per_step"].items():
            print(f"  {name:15} {common.fmt(summary, 3)}")
    backend = keras.backend.backend()
    path = common.write_result(
        "_".join(filter(None, ["step_profile", backend, args.tag])),
        {"backend": backend, "model": "mnist_cnn", "rounds": args.rounds, "rows": rows},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
