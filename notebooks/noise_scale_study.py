"""The noise-scale study: adaptive batch sizes against hand-made schedules.

Runs, into ``ROOT/<name>``, on full Fashion-MNIST with the small CNN (6 epochs from batch
100, SGD with momentum 0.9 at LR 0.05, the noise scale measured every 10 updates in every
run): decay_lr, increase_bs (factor 5 at epochs 2 and 4), and the adaptive schedule with
coefficient 1 and 0.25. A constant-batch run on the bundled MNIST sample shows how
B_simple evolves on MNIST. Then writes the table and the figures.

    python notebooks/noise_scale_study.py --root runs/noise_scale_study --plots Plots
    BSI_QUICK=1 python notebooks/noise_scale_study.py   # a tiny version, for the tests
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bsi_keras import plots, run
from bsi_keras.cli import report
from bsi_keras.run_folder import RunFolder

QUICK = os.environ.get("BSI_QUICK") == "1"
DATA = (
    ["--dataset", "mnist_sample", "--num_train", "1000", "--num_test", "200"]
    if QUICK
    else ["--dataset", "fashion_mnist"]
)
COMMON = [
    *DATA,
    "--epochs",
    "3" if QUICK else "6",
    "--batch_size",
    "100",
    "--lr",
    "0.05",
    "--noise_scale_every",
    "10",
    "--factor",
    "5",
    "--verbose",
    "0",
]
MILESTONES = ["--milestones", "1", "2"] if QUICK else ["--milestones", "2", "4"]
RUNS = {
    "decay_lr": [*COMMON, "--schedule", "decay_lr", *MILESTONES],
    "increase_bs": [*COMMON, "--schedule", "increase_bs", *MILESTONES],
    "adaptive": [*COMMON, "--schedule", "adaptive"],
    "adaptive_0.25": [*COMMON, "--schedule", "adaptive", "--coefficient", "0.25"],
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


def run_study(root: Path) -> list[Path]:
    """Train every run that has no summary yet; return the Fashion-MNIST run folders."""
    for name, argv in [*RUNS.items(), ("mnist_sample_constant", MNIST)]:
        folder = root / name
        if not RunFolder(folder).summary_path.exists():
            print(f"{name}: training")
            run.main([*argv, "--filename", str(folder)])
    return [root / name for name in RUNS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default="runs/noise_scale_study")
    parser.add_argument("--plots", default=None, help="also write the figures here")
    args = parser.parse_args()
    root = Path(args.root)
    folders = run_study(root)
    print(report.summary_table(folders), end="")
    out = Path(args.plots) if args.plots else root
    plots.noise_scale_figure(
        folders,
        out / "noise_scale_schedules.png",
        title="Fashion-MNIST: batch size, measured B_simple, Smith's g",
    )
    plots.noise_scale_figure(
        [root / "mnist_sample_constant"],
        out / "noise_scale_mnist.png",
        title="MNIST sample, constant batch 100: measured B_simple",
    )
    plots.comparison_figure(
        folders,
        out / "noise_scale_comparison.png",
        title="Fashion-MNIST: adaptive against hand-made schedules",
    )
    print(f"figures in {out}")


if __name__ == "__main__":
    main()
