"""The sharp-minima study: Keskar's F1 on Fashion-MNIST, small against large batch, 5 seeds.

Trains F1 (784 -> 5 x [Dense 512, BN, ReLU] -> 10) with Adam (LR 0.001) for 20 epochs on
the first 20,000 Fashion-MNIST training images, with batch 256 and with batch 2,000 (10 %
of the training set, as Keskar et al.), seeds 0-4; the two runs of a seed start from the
same initial weights (a paired design). The runs go to ``RUNS`` (with ``--saveState``, not
committed); their config.json, log.csv and summary.json are copied to ``RESULTS``. Then,
for each seed and solution (epoch 20), it measures and writes to
``RESULTS/analysis/seed_<k>/<solution>.json``:

- ``weights``, ``evaluation``: the hidden kernels' norms, the distance from the initial
  weights, the training loss on all training images and the test accuracy;
- ``landscape``: the training loss along `CURVE_DIRECTIONS` filter-normalized random
  directions (Li et al.), on the first `CURVE_EXAMPLES` training images;
- ``sharpness <eps>``: Keskar's Metric 2.1 in the full space (on the first
  `SHARPNESS_EXAMPLES` training images) at each of `EPSILONS`, from `STARTS` random starts
  (every start's value kept), with `first_order_sharpness` beside it;
- ``rescaled <c>``: the same network with every hidden Dense layer (each followed by
  batch norm) scaled by ``c`` in `SCALES` (`rescale_before_batch_norm`): the largest change
  of its output probabilities (the function is the same) and its sharpness at the first
  epsilon; ``matched`` (large batch only): the same, each hidden kernel scaled to the norm
  of the small-batch solution's kernel of that seed;
- ``interpolation`` (in ``seed_<k>/interpolation.json``): loss and accuracy on the line
  from the small-batch to the large-batch solution, the BN statistics recomputed;

and, last, the 2-D landscapes of the first seed (``surface_<solution>.npz``). The order
puts the cheap measures and the sharpness at the first epsilon on every seed first, then
the costly ones one after another, each on every seed (the second epsilon, the
large-batch network rescaled to the small-batch kernels' norms, the networks rescaled by
the first of `SCALES`, the third epsilon, the second scale); every measure is skipped
when its file already holds it, so an interrupted study resumes where it stopped. One
start of a full-space search of the 1.46 million weights took 20 to 40 s here (2 cores
shared with other jobs); a profile puts more than half of it in scipy's L-BFGS-B
preparing its bounds coordinate by coordinate in Python, not in the loss. Last, it writes
the README's table (``RESULTS/sharp_minima.md``, included by ``results/tables.py``) and,
with ``--plots``, the figures (`sharp_minima_report`).

    python notebooks/sharp_minima_study.py --plots Plots   # 75 min on 2 shared cores
    python notebooks/sharp_minima_study.py --skip_training --plots Plots   # tables, figures
    BSI_QUICK=1 python notebooks/sharp_minima_study.py --runs /tmp/r --results /tmp/s
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from bsi_keras import load_dataset, run
from bsi_keras.analysis import (
    evaluate,
    first_order_sharpness,
    interpolate,
    load_solution,
    loss_landscape,
    parse_range,
    random_direction,
    rescale_before_batch_norm,
    sharpness,
    weight_values,
)

QUICK = os.environ.get("BSI_QUICK") == "1"
SEEDS = [0, 1] if QUICK else [0, 1, 2, 3, 4]
EPOCHS = 1 if QUICK else 20
NUM_TRAIN = 600 if QUICK else 20_000
NUM_TEST = 200 if QUICK else None  # None: the whole test set
DATASET = "mnist_sample" if QUICK else "fashion_mnist"
DATA = ["--dataset", DATASET, "--num_train", str(NUM_TRAIN)]
DATA += [] if NUM_TEST is None else ["--num_test", str(NUM_TEST)]
BATCHES = {"small_batch": 20 if QUICK else 256, "large_batch": NUM_TRAIN // 10}
COMMON = [
    "--model",
    "f1",
    *DATA,
    "--schedule",
    "constant",
    "--optimizer",
    "adam",
    "--lr",
    "0.001",
    "--epochs",
    str(EPOCHS),
    "--mini_batch_size",
    "0",  # batch norm over the whole batch, as the reference
    "--saveState",
    "--seeds",
    *map(str, SEEDS),
    "--verbose",
    "0",
]
LOGS = ("config.json", "log.csv", "summary.json")
EPSILONS = (1e-3, 5e-4, 2.5e-4)  # the paper's two and a half of the smaller
STARTS = 2 if QUICK else 3
ITERATIONS = 2 if QUICK else 10  # L-BFGS-B iterations per start (the paper's 10)
SHARPNESS_EXAMPLES = 200 if QUICK else 2_000
SCALES = (2.0, 0.5)
HIDDEN = [f"dense{i}" for i in range(1, 6)]  # F1's Dense layers that batch norm follows
CURVE = "-1:1:5" if QUICK else "-1:1:21"
CURVE_DIRECTIONS = 2 if QUICK else 5
CURVE_EXAMPLES = 200 if QUICK else 2_000
LINE_POINTS = 4 if QUICK else 13  # alpha in [-1, 2], step 0.25
LINE_EXAMPLES = 200 if QUICK else 5_000
SURFACE = "-1:1:3" if QUICK else "-1:1:21"
SURFACE_EXAMPLES = 200 if QUICK else 1_000
EVAL_BATCH = 5000
MACHINE = f"{os.cpu_count()}-core {platform.processor() or platform.machine()} CPU"


def train(runs: Path) -> None:
    """Train the runs that have not finished (``--seeds`` resumes and skips the others)."""
    for solution, batch in BATCHES.items():
        run.main([*COMMON, "--batch_size", str(batch), "--filename", str(runs / solution)])


def copy_logs(runs: Path, results: Path) -> None:
    """Copy each run folder's config, log and summary (no weights) to ``results``."""
    for solution in BATCHES:
        for seed in SEEDS:
            source = runs / solution / f"seed_{seed}"
            target = results / solution / f"seed_{seed}"
            target.mkdir(parents=True, exist_ok=True)
            for name in LOGS:
                shutil.copy2(source / name, target / name)


class Record:
    """One JSON file of measurements, written after each one (so a study resumes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def measure(self, key: str, compute: Any) -> Any:
        """``data[key]``, computed (and timed, and written) when missing."""
        if key not in self.data:
            started = time.perf_counter()
            value = compute()
            value["seconds"] = round(time.perf_counter() - started, 1)
            value["machine"] = f"{MACHINE}, {keras.backend.backend()}"
            self.data[key] = value
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.data, indent=1) + "\n")
            print(f"{self.path.parent.name}/{self.path.stem} {key}: {value['seconds']} s")
        return self.data[key]


def sharpness_at(model: keras.Model, x: np.ndarray, y: np.ndarray, epsilon: float) -> dict:
    """Sharpness at ``epsilon`` (every start's value) and its first-order prediction."""
    result = sharpness(
        model,
        x,
        y,
        epsilon=epsilon,
        max_iterations=ITERATIONS,
        batch_size=EVAL_BATCH,
        starts=STARTS,
    )
    return {
        "max": result.value,
        "min": result.min_value,
        "std": result.std_value,
        "starts": list(result.start_values),
        "first_order": first_order_sharpness(model, x, y, [epsilon], EVAL_BATCH)[epsilon],
        "loss": result.loss,
        "evaluations": result.evaluations,
        "examples": len(x),
    }


def rescaled_at(model: keras.Model, x: np.ndarray, y: np.ndarray, scales: dict[str, float]) -> dict:
    """The rescaling test: the same outputs, and the sharpness of the rescaled network.

    ``scales``: the factor of each hidden layer (each followed by batch norm).
    """
    copy = model
    for name, scale in scales.items():
        copy = rescale_before_batch_norm(copy, name, scale)
    probabilities = [keras.ops.convert_to_numpy(m(x, training=False)) for m in (model, copy)]
    return {
        "scales": scales,
        "max_output_difference": float(np.abs(probabilities[1] - probabilities[0]).max()),
        "loss_difference": evaluate(copy, x, y, batch_size=EVAL_BATCH).loss
        - evaluate(model, x, y, batch_size=EVAL_BATCH).loss,
        **sharpness_at(copy, x, y, EPSILONS[0]),
    }


def matched_scales(model: keras.Model, reference: keras.Model) -> dict[str, float]:
    """Per hidden layer, the factor that gives ``model``'s kernel ``reference``'s norm."""
    return {
        name: float(
            np.linalg.norm(np.asarray(reference.get_layer(name).kernel))
            / np.linalg.norm(np.asarray(model.get_layer(name).kernel))
        )
        for name in HIDDEN
    }


def landscape(model: keras.Model, x: np.ndarray, y: np.ndarray) -> dict:
    """Training loss along ``CURVE_DIRECTIONS`` filter-normalized directions (seeds 0, 1, ...)."""
    curves = [
        loss_landscape(
            model,
            x,
            y,
            random_direction(model, seed=direction),
            x_coordinates=parse_range(CURVE),
            batch_size=EVAL_BATCH,
            verbose=0,
        )
        for direction in range(CURVE_DIRECTIONS)
    ]
    return {
        "steps": curves[0].x_coordinates.tolist(),
        "loss": [c.loss.tolist() for c in curves],
        "accuracy": [c.accuracy.tolist() for c in curves],
    }


def weight_scale(model: keras.Model, initial: keras.Model) -> dict:
    """Norms of the hidden Dense kernels, and the distance from the initial weights."""
    kernels = [np.asarray(model.get_layer(n).kernel) for n in HIDDEN]
    start = [np.asarray(initial.get_layer(n).kernel) for n in HIDDEN]
    trainable, _ = weight_values(model)
    first, _ = weight_values(initial)
    return {
        "kernel_norms": [float(np.linalg.norm(k)) for k in kernels],
        "initial_kernel_norms": [float(np.linalg.norm(k)) for k in start],
        "distance_from_initial": float(
            math.sqrt(sum(np.sum((a - b) ** 2, dtype=np.float64) for a, b in zip(trainable, first)))
        ),
    }


def analyse(runs: Path, results: Path, surfaces: bool = True) -> None:
    """Measure what the module docstring lists; the cheap, leading measures first."""
    ds = load_dataset(DATASET, num_train=NUM_TRAIN, num_test=NUM_TEST)
    x_sharp, y_sharp = ds.x_train[:SHARPNESS_EXAMPLES], ds.y_train[:SHARPNESS_EXAMPLES]
    x_curve, y_curve = ds.x_train[:CURVE_EXAMPLES], ds.y_train[:CURVE_EXAMPLES]
    folder = {(seed, s): runs / s / f"seed_{seed}" for seed in SEEDS for s in BATCHES}
    record = {k: Record(results / "analysis" / f"seed_{k[0]}" / f"{k[1]}.json") for k in folder}
    cheap = {  # every seed first: the leading result, and the measures that cost little
        "weights": lambda m, k: weight_scale(m, load_solution(folder[k], 0)),
        "evaluation": lambda m, k: evaluation(m, ds),
        "landscape": lambda m, k: landscape(m, x_curve, y_curve),
        f"sharpness {EPSILONS[0]:g}": lambda m, k: sharpness_at(m, x_sharp, y_sharp, EPSILONS[0]),
    }
    small = {seed: folder[seed, "small_batch"] for seed in SEEDS}

    def matched(m: keras.Model, k: tuple) -> dict:
        return rescaled_at(
            m, x_sharp, y_sharp, matched_scales(m, load_solution(small[k[0]], EPOCHS))
        )

    # Then one measure after another on every seed, the most asked for first.
    costly = [
        (
            f"sharpness {EPSILONS[1]:g}",
            list(folder),
            lambda m, k: sharpness_at(m, x_sharp, y_sharp, EPSILONS[1]),
        ),
        ("matched", [(seed, "large_batch") for seed in SEEDS], matched),
        (
            f"rescaled {SCALES[0]:g}",
            list(folder),
            lambda m, k: rescaled_at(m, x_sharp, y_sharp, dict.fromkeys(HIDDEN, SCALES[0])),
        ),
        (
            f"sharpness {EPSILONS[2]:g}",
            list(folder),
            lambda m, k: sharpness_at(m, x_sharp, y_sharp, EPSILONS[2]),
        ),
        (
            f"rescaled {SCALES[1]:g}",
            list(folder),
            lambda m, k: rescaled_at(m, x_sharp, y_sharp, dict.fromkeys(HIDDEN, SCALES[1])),
        ),
    ]

    def measure(keys: list, key: str, compute: Any) -> None:
        for k in keys:
            if key not in record[k].data:
                model = load_solution(folder[k], EPOCHS)
                record[k].measure(key, lambda: compute(model, k))  # noqa: B023

    for key, compute in cheap.items():
        measure(list(folder), key, compute)
    train_part = (ds.x_train[:LINE_EXAMPLES], ds.y_train[:LINE_EXAMPLES])
    for seed in SEEDS:
        line = Record(results / "analysis" / f"seed_{seed}" / "interpolation.json")
        if "interpolation" not in line.data:
            small, large = (load_solution(folder[seed, s], EPOCHS) for s in BATCHES)
            line.measure("interpolation", lambda: interpolation(small, large, train_part, ds))  # noqa: B023
    for key, keys, compute in costly:
        measure(keys, key, compute)
    if surfaces:
        for solution in BATCHES:
            path = results / "analysis" / f"seed_{SEEDS[0]}" / f"surface_{solution}.npz"
            if not path.is_file():
                model = load_solution(folder[SEEDS[0], solution], EPOCHS)
                loss_landscape(
                    model,
                    ds.x_train[:SURFACE_EXAMPLES],
                    ds.y_train[:SURFACE_EXAMPLES],
                    random_direction(model, seed=0),
                    random_direction(model, seed=1),
                    parse_range(SURFACE),
                    batch_size=EVAL_BATCH,
                    verbose=0,
                ).save(path)


def evaluation(model: keras.Model, ds: Any) -> dict:
    """Training loss and accuracy (all training images) and test accuracy of a solution."""
    train = evaluate(model, ds.x_train, ds.y_train, batch_size=EVAL_BATCH)
    test = evaluate(model, ds.x_test, ds.y_test, batch_size=EVAL_BATCH)
    return {"train_loss": train.loss, "train_accuracy": train.accuracy, "test": test._asdict()}


def interpolation(small: keras.Model, large: keras.Model, train_part: tuple, ds: Any) -> dict:
    """Loss and accuracy along ``alpha large + (1 - alpha) small``, BN statistics recomputed."""
    line = interpolate(
        small,
        large,
        train_part,
        (ds.x_test, ds.y_test),
        alphas=LINE_POINTS,
        batch_size=EVAL_BATCH,
        verbose=0,
    )
    return {
        key: np.asarray(getattr(line, key)).tolist()
        for key in ("alphas", "train_loss", "train_accuracy", "test_loss", "test_accuracy")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="runs/sharp_minima")  # as the run folders record it
    parser.add_argument("--results", default="results/sharp_minima")
    parser.add_argument("--plots", default=None, help="also write the figures here")
    parser.add_argument("--skip_training", action="store_true", help="tables and figures only")
    parser.add_argument("--no_surfaces", action="store_true", help="skip the 2-D landscapes")
    args = parser.parse_args()
    runs, results = Path(args.runs), Path(args.results)
    if not args.skip_training:
        train(runs)
        copy_logs(runs, results)
        analyse(runs, results, surfaces=not args.no_surfaces)
    import sharp_minima_report  # a sibling (this folder is on sys.path) that imports this one

    text = sharp_minima_report.table(results)
    (results / "sharp_minima.md").write_text(text + "\n")
    print(text)
    if args.plots:
        for path in sharp_minima_report.draw(results, Path(args.plots)):
            print(path)


if __name__ == "__main__":
    main()
