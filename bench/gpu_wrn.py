"""WRN-16-4 on a GPU: bsi_keras on JAX against PyTorch eager, and the fraction of peak.

For the lent GPU machines (JAX and PyTorch installed, no TensorFlow). The model is
``get_model("wrn_16_4")`` (post-activation, ghost BN over virtual batches of 128) and its
PyTorch twin (`torch_models.wide_resnet`), on CIFAR-shaped random data (32x32x3, 10
classes), SGD with momentum 0.9 in PyTorch's convention on both sides:

- ``bsi_keras``: `bsi_keras.fit` with a constant schedule whose epochs are ``--steps``
  batches (one count per batch size, or one for all) of numpy data in host memory, as a
  run feeds it (Keras sends each batch to the device one step ahead);
- ``torch``: an eager loop (channels-last, ``cudnn.benchmark``) over the same images,
  kept on the device.

The bsi_keras run's epochs are the rounds; after each, PyTorch trains ``--steps`` steps
(`common.EpochClock`); the first round compiles and is dropped. Images per second are per
round, median (min to max). The fraction of peak is the model's training FLOPs per step
(3 x the forward pass's multiply-adds x 2, counted from the layers: convolutions and the
dense layer) over the step time over ``--peak_tflops``. Defaults: H100 SXM dense peaks,
989 TFLOP/s in bfloat16/float16 and 67 in float32; XLA and cuDNN run float32 convolutions
on TF32 tensor cores (494 TFLOP/s dense) by default, so a float32 fraction can pass 1.

    KERAS_BACKEND=jax python bench/gpu_wrn.py [--batch_sizes 128 3200] [--steps 200 20]
        [--rounds 3] [--mixed_precision bfloat16]
    KERAS_BACKEND=jax python bench/gpu_wrn.py --steps 2 --batch_sizes 8    # CPU check

Writes ``bench/results/gpu_wrn.json`` (``gpu_wrn_<precision>.json`` with mixed precision).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# JAX would take 75 % of the GPU's memory at start, leaving PyTorch too little.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import common
import keras
import numpy as np
import torch
import torch_models

import bsi_keras
from bsi_keras import data, schedules
from bsi_keras.optimizers import SGD

LR = 0.1
MOMENTUM = 0.9
PEAK_TFLOPS = {"float32": 67.0, "bfloat16": 989.0, "float16": 989.0}


def forward_flops_per_image(model: keras.Model) -> int:
    """FLOPs (2 per multiply-add) of one image's forward pass through convolutions and
    dense layers; normalization, activations and additions are left out."""
    flops = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            height, width, filters = layer.output.shape[1:]
            kernel_h, kernel_w, channels, _ = layer.kernel.shape
            flops += 2 * height * width * filters * kernel_h * kernel_w * channels
        elif isinstance(layer, keras.layers.Dense):
            flops += 2 * int(np.prod(layer.kernel.shape))
    return flops


def keras_model(precision: str) -> keras.Model:
    """The compiled WRN-16-4 under the ``precision`` policy (float32 or mixed)."""
    policy = "float32" if precision == "float32" else f"mixed_{precision}"
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    model = bsi_keras.get_model("wrn_16_4")
    model.compile(optimizer=SGD(LR, momentum=MOMENTUM), loss="sparse_categorical_crossentropy")
    return model


def torch_contender(
    x: np.ndarray, y: np.ndarray, batch_size: int, steps: int, precision: str
) -> Any:
    """A function training the PyTorch WRN-16-4 for ``steps`` steps on the device."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = torch_models.wide_resnet().to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    images = torch.from_numpy(x).to(device).permute(0, 3, 1, 2)  # channels-last memory
    labels = torch.from_numpy(y.astype(np.int64)).to(device)
    dtype = None if precision == "float32" else getattr(torch, precision)

    def train() -> None:
        torch_models.train_epoch(model, optimizer, images, labels, batch_size, steps, dtype)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()  # give the memory back to JAX

    return train


def measure(batch_size: int, steps: int, rounds: int, precision: str, peak: float) -> dict:
    """Images per second of both contenders at ``batch_size``, and the fractions of peak."""
    dataset = data.synthetic(batch_size * steps, (32, 32, 3), num_test=1)
    x, y = dataset.x_train, dataset.y_train
    model = keras_model(precision)
    clock = common.EpochClock({"torch": torch_contender(x, y, batch_size, steps, precision)})
    bsi_keras.fit(
        model,
        x,
        y,
        schedule=schedules.constant(rounds + 1, batch_size, LR),
        callbacks=[clock],
        verbose=0,
        seed=0,
    )
    times = {"bsi_keras": clock.times["epoch"][1:], "torch": clock.times["torch"][1:]}
    step_flops = 3 * forward_flops_per_image(model) * batch_size
    return {
        "batch_size": batch_size,
        "steps": steps,
        "train_flops_per_step": step_flops,
        "images_per_second": {
            name: common.spread([len(x) / s for s in t]) for name, t in times.items()
        },
        "fraction_of_peak": {
            name: common.spread([step_flops * steps / s / (peak * 1e12) for s in t])
            for name, t in times.items()
        },
        "bsi_keras_over_torch": common.paired_ratios(times["torch"], times["bsi_keras"]),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[128, 3200])
    parser.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=[200, 20],
        help="training steps per round, one per batch size (or one for all)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per contender")
    parser.add_argument(
        "--mixed_precision", choices=("float32", "bfloat16", "float16"), default="float32"
    )
    parser.add_argument("--peak_tflops", type=float, default=None, help="the device's peak")
    args = parser.parse_args(argv)
    peak = args.peak_tflops or PEAK_TFLOPS[args.mixed_precision]
    steps = args.steps * len(args.batch_sizes) if len(args.steps) == 1 else args.steps
    if len(steps) != len(args.batch_sizes):
        parser.error("--steps takes one count, or one per batch size")
    rows = []
    for batch_size, batch_steps in zip(args.batch_sizes, steps):
        row = measure(batch_size, batch_steps, args.rounds, args.mixed_precision, peak)
        rows.append(row)
        ips, mfu = row["images_per_second"], row["fraction_of_peak"]
        print(
            f"batch {batch_size:5} ({args.mixed_precision}): images/s bsi_keras "
            f"{common.fmt(ips['bsi_keras'], 0)}, torch {common.fmt(ips['torch'], 0)}; "
            f"bsi_keras / torch = {common.fmt(row['bsi_keras_over_torch'])}x; fraction of "
            f"{peak:g} TFLOP/s: bsi_keras {common.fmt(mfu['bsi_keras'], 3)}, "
            f"torch {common.fmt(mfu['torch'], 3)}",
            flush=True,
        )
    name = "gpu_wrn" if args.mixed_precision == "float32" else f"gpu_wrn_{args.mixed_precision}"
    path = common.write_result(
        name,
        {
            "backend": keras.backend.backend(),
            "model": "wrn_16_4",
            "precision": args.mixed_precision,
            "peak_tflops": peak,
            "rounds": args.rounds,
            "rows": rows,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
