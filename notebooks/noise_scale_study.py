"""The noise-scale study: adaptive batch sizes against hand-made schedules, over seeds.

Runs, into ``ROOT/noise_scale_adaptive/<schedule>/seed_<k>/``, on full Fashion-MNIST with
the MNIST CNN (ghost batch 10; 6 epochs from batch 100, SGD with momentum 0.9 at LR 0.05, the
noise scale measured every 10 updates unless said), seeds 0 to 4:

- ``decay_lr`` and ``increase_bs``: factor 5 at epochs 2 and 4;
- ``doubling``: the control, a fixed geometric schedule that doubles the batch every epoch
  (100, 200, ..., 3,200: 1,182 updates), ``increase_bs`` with factor 2 at epochs 1 to 5;
- ``adaptive``: the batch after each epoch is the measured B_simple (at most x5 per epoch);
- ``adaptive_0.25``: the same with coefficient 0.25;
- ``adaptive_every_update``: coefficient 1, the noise scale measured every update (the
  adaptive schedule's default), so that its average spans several measurements.

The schedules of one seed share initial weights and data order (paired). Then, into
``ROOT/noise_scale_mnist/constant/seed_<k>/``, a constant batch of 100 on the bundled MNIST sample,
measured every update, shows how B_simple evolves on MNIST. A run that finished before is
skipped (an interrupted one resumed), so the same command finishes what an earlier one left:
on the committed ``results/`` it trains nothing. Then prints the README's tables of the study
(``results/tables.py``: means, paired differences, the time to the target accuracy, the batch
size and B_simple per epoch) and draws its figures (``results/figures.py``), from the folders.

    python notebooks/noise_scale_study.py --root results --plots Plots
    BSI_QUICK=1 python notebooks/noise_scale_study.py --root /tmp/q --plots /tmp/q  # tiny
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path
from types import ModuleType

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bsi_keras import run
from bsi_keras.run_folder import RunFolder

QUICK = os.environ.get("BSI_QUICK") == "1"
SEEDS = [0, 1] if QUICK else [0, 1, 2, 3, 4]
EPOCHS = 3 if QUICK else 6
DATA = (
    ["--dataset", "mnist_sample", "--num_train", "1000", "--num_test", "200"]
    if QUICK
    else ["--dataset", "fashion_mnist"]
)
COMMON = [
    *DATA,
    "--epochs",
    str(EPOCHS),
    "--batch_size",
    "100",
    "--lr",
    "0.05",
    "--verbose",
    "0",
]
MEASURED = ["--noise_scale_every", "10"]
MILESTONES = ["--factor", "5", "--milestones", *(["1", "2"] if QUICK else ["2", "4"])]
EVERY_EPOCH = ["--factor", "2", "--milestones", *map(str, range(1, EPOCHS))]
ADAPTIVE = ["--schedule", "adaptive", "--factor", "5"]
RUNS = {
    "decay_lr": [*COMMON, *MEASURED, "--schedule", "decay_lr", *MILESTONES],
    "increase_bs": [*COMMON, *MEASURED, "--schedule", "increase_bs", *MILESTONES],
    "doubling": [*COMMON, *MEASURED, "--schedule", "increase_bs", *EVERY_EPOCH],
    "adaptive": [*COMMON, *MEASURED, *ADAPTIVE],
    "adaptive_0.25": [*COMMON, *MEASURED, *ADAPTIVE, "--coefficient", "0.25"],
    # The adaptive rule on its default measurement, every update: a window of 2,000 examples
    # then averages 20 measurements at batch 100 (2 at every 10 updates).
    "adaptive_every_update": [*COMMON, "--noise_scale_every", "1", *ADAPTIVE],
}
MNIST = [
    "--dataset",
    "mnist_sample",
    "--schedule",
    "constant",
    "--epochs",
    "2" if QUICK else "6",
    "--batch_size",
    "100",
    "--lr",
    "0.05",
    "--noise_scale_every",
    "1",
    "--verbose",
    "0",
]
FASHION, MNIST_SAMPLE = "noise_scale_adaptive", "noise_scale_mnist"
# The README's tables of the study, by their name in results/tables.py.
TABLES = (
    "noise_scale_adaptive",
    "noise_scale_adaptive_vs_doubling",
    "noise_scale_adaptive_target",
    "noise_scale_adaptive_target_vs_doubling",
    "noise_scale_adaptive_epochs",
    "noise_scale_mnist",
)
RESULTS_SCRIPTS = Path(__file__).resolve().parent.parent / "results"


def results_script(name: str) -> ModuleType:
    """``results/<name>.py`` (the tables or the figures), imported from its file."""
    spec = importlib.util.spec_from_file_location(f"results_{name}", RESULTS_SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train(argv: list[str], root: Path, seed: int) -> None:
    """Train ``argv`` with seed ``seed`` into ``root/seed_<seed>`` unless it finished."""
    if RunFolder(root / f"seed_{seed}").status() != "finished":
        print(f"{root}/seed_{seed}: training", flush=True)
        code = run.main([*argv, "--filename", str(root), "--seeds", str(seed)])
        if code != 0:
            raise SystemExit(f"{root}/seed_{seed}: exit code {code}")


def run_study(root: Path, seeds: list[int] = SEEDS) -> tuple[Path, Path]:
    """Train every run of the study that has not finished; return the folders of the
    Fashion-MNIST schedules and of the MNIST-sample runs (``root / FASHION``,
    ``root / MNIST_SAMPLE``)."""
    for seed in seeds:
        _train(MNIST, root / MNIST_SAMPLE / "constant", seed)
    for seed in seeds:  # seed by seed: a study cut short still holds whole pairs
        for name, argv in RUNS.items():
            _train(argv, root / FASHION / name, seed)
    return root / FASHION, root / MNIST_SAMPLE


def study_tables(root: Path) -> dict[str, str]:
    """The study's tables (Markdown) from the run folders under ``root``, by name."""
    tables = results_script("tables")
    return {name: tables.table(name, root) for name in TABLES}


def draw(root: Path, plots_dir: Path) -> list[Path]:
    """Draw the study's figures from the run folders under ``root`` into ``plots_dir``."""
    return results_script("figures").draw_noise_scale(root, plots_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default="results", help="the run folders' root")
    parser.add_argument("--plots", default="Plots", help="where to write the figures")
    args = parser.parse_args()
    root = Path(args.root)
    run_study(root)
    for name, text in study_tables(root).items():
        print(f"{name}:\n\n{text}\n")
    for path in draw(root, Path(args.plots)):
        print(f"figure: {path}")


if __name__ == "__main__":
    main()
