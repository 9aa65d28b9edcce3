"""The sweeps' recipes: named grids of runs, each a run name and its flag values by dest.

A recipe is a function returning ``(run name, flag values)`` pairs; the values lie over the
command line's defaults (`bsi_keras.cli.sweep.run_spec` makes each a `RunSpec`).
`register_recipe` adds one of your own.

Example:

>>> [name for name, _ in RECIPES["smith"]()]
['decay_lr', 'hybrid', 'increase_bs']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from bsi_keras.cli.flags import FlagValue

Overrides = Mapping[str, FlagValue]  # flag values by dest, over the parser's defaults
Run = tuple[str, Overrides]
CIFAR: Overrides = {"dataset": "cifar10"}


def _fixed_lr() -> list[Run]:
    return [
        (f"steady_{b}", {**CIFAR, "schedule": "constant", "batch_size": b, "lr": 0.1})
        for b in (128, 256, 512, 1024, 2048, 4096, 8192, 16384)
    ]


TUNED = (
    (128, 0.05),
    (256, 0.09),
    (512, 0.125),
    (1024, 0.155),
    (2048, 0.25),
    (4096, 0.5),
    (8192, 0.65),
    (16384, 1.25),
    (32768, 2.75),
    (50000, 3.0),
)


def _fixed_tuned() -> list[Run]:
    return [
        (f"lrd_{b}", {**CIFAR, "schedule": "decay_lr", "factor": 2.0, "batch_size": b, "lr": lr})
        for b, lr in TUNED
    ]


def _bsi_from_large() -> list[Run]:
    runs = []
    for b, lr in TUNED[1:7]:
        common = {**CIFAR, "factor": 2.0, "batch_size": b, "lr": lr}
        runs += [
            (f"bsi_{b}", {**common, "schedule": "increase_bs"}),
            (f"lrd_{b}", {**common, "schedule": "decay_lr"}),
        ]
    return runs


def _smith() -> list[Run]:
    return [
        (name, {**CIFAR, "schedule": name, "batch_size": 128, "lr": 0.1})
        for name in ("decay_lr", "hybrid", "increase_bs")
    ]


def _loss_dropout() -> list[Run]:
    # The reference's hard-coded schedule: LR/2 at 60; batch 16384 at LR 0.035 from 120;
    # batch 32768 from 160.
    phases = {"phases": "60x128@0.05,60x128@0.025,40x16384@0.035,40x32768@0.035"}
    return [
        ("loss_dropout", {**CIFAR, **phases, "loss_dropout": True}),
        ("baseline", {**CIFAR, **phases}),
    ]


# Seed 001's MobileNetV2 table (HaoKang-Timmy/large_batch_training) has two readings: the
# later upstream README trains from scratch at 0.1 x B / 256 with warmup; the seed's own
# text fine-tunes the ImageNet weights at 3e-4 x B / 32 without warmup. Both: cosine over
# 200 epochs, SGD momentum 0.9, weight decay 1e-4; ghost batches of 128, or the whole batch
# below that (the reference's plain batch norm).
MOBILENET_BATCHES = (32, 64, 128, 256, 512, 1024)
MOBILENET: Overrides = {
    **CIFAR,
    "model": "mobilenet_v2",
    "schedule": "constant",
    "scale_lr": "linear",
    "lr_curve": "cosine",
    "weight_decay": 1e-4,
}


def _mobilenet_runs(prefix: str, reading: Overrides) -> list[Run]:
    return [
        (f"{prefix}_{b}", {**MOBILENET, **reading, "batch_size": b, "mini_batch_size": min(b, 128)})
        for b in MOBILENET_BATCHES
    ]


def _mobilenet_scratch() -> list[Run]:
    reading = {"lr": 0.1, "reference_batch": 256, "warmup_epochs": 5.0}
    return _mobilenet_runs("mobilenet", reading)


def _mobilenet_finetune() -> list[Run]:
    reading = {"weights": "imagenet", "lr": 3e-4, "reference_batch": 32}
    return _mobilenet_runs("finetune", reading)


# Seed 003's grid: fixed batch sizes x {no rule, linear, sqrt scaling from LR 0.1 at 128}
# x {no warmup, 5 warmup epochs}, ghost batches of 128, the reference's LR decay.
SCALING_GRID_BATCHES = (128, 512, 2048, 8192)


def _scaling_grid() -> list[Run]:
    runs = []
    for b in SCALING_GRID_BATCHES:
        common = {
            **CIFAR,
            "schedule": "decay_lr",
            "batch_size": b,
            "lr": 0.1,
            "mini_batch_size": 128,
            "reference_batch": 128,
        }
        runs.append((f"b{b}_none", {**common, "scale_lr": "none"}))
        for rule in ("linear", "sqrt"):
            runs.append((f"b{b}_{rule}", {**common, "scale_lr": rule}))
            runs.append((f"b{b}_{rule}_warmup", {**common, "scale_lr": rule, "warmup_epochs": 5.0}))
    return runs


def _bsi_224() -> list[Run]:
    # Seed 000's "modified 2,048 BSI 2,2,4" (`--doubleEndFactor`): 2048 -> 4096 -> 8192 ->
    # 32768 at the tuned LR of batch 2048, against its LR-decay twin.
    common = {**CIFAR, "batch_size": 2048, "lr": 0.25, "factor": 2.0}
    return [
        ("bsi_224", {**common, "schedule": "increase_bs", "double_end_factor": True}),
        ("lrd_2048", {**common, "schedule": "decay_lr"}),
    ]


# The SAM study (issue 16): does SAM close the gap between batch 128 and batch 2,048 once
# the large batch is tuned? The MNIST CNN on Fashion-MNIST, SGD with momentum 0.9, a cosine
# LR curve; the first 20,000 training images, of which the last 5,000 are the validation
# split that the LR and rho are chosen on (`sam_study_final` then trains the same 15,000 and
# tests). Every batch-2,048 run warms up over 2 epochs (Goyal et al.); "sgd_2x" trains
# twice the epochs, as many gradient evaluations as SAM's two per update.
SAM_STUDY_DATA: Overrides = {
    "dataset": "fashion_mnist",
    "model": "mnist_cnn",
    "num_train": 20_000,
    "validation_examples": 5_000,
    "schedule": "constant",
    "lr_curve": "cosine",
}
SAM_STUDY_EPOCHS = 10
SAM_STUDY_SMALL, SAM_STUDY_LARGE = 128, 2048
SAM_STUDY_WARMUP_EPOCHS = 2.0
# The LR grids, x2 apart: around 0.05 at batch 128 (the MNIST family's LR), and at 2,048
# around the linear rule's 16 x 0.05 = 0.8, five steps below and one above, bracketing the
# linear-rule LR of every LR on the small grid but the largest; plus 0.141 (x sqrt 2), added
# once the x2 grid had every method at 2,048 best at 0.1 and diverging at 0.2. Rho 0.01 was
# added when the first three rhos had the smallest, 0.02, best.
SAM_STUDY_SMALL_LRS = (0.0125, 0.025, 0.05, 0.1, 0.2)
SAM_STUDY_LARGE_LRS = (0.025, 0.05, 0.1, 0.141, 0.2, 0.4, 0.8, 1.6)
SAM_STUDY_RHOS = (0.01, 0.02, 0.05, 0.1)


def sam_study_methods(
    epochs: int = SAM_STUDY_EPOCHS, rhos: Sequence[float] = SAM_STUDY_RHOS
) -> dict[str, Overrides]:
    """The SAM study's methods, by label: their flags but the LR.

    ``sgd_b128`` (the small-batch reference), ``sgd_b2048``, ``sgd_2x_b2048`` (twice the
    epochs) and one ``sam_rho<rho>_b2048`` per rho.

    >>> list(sam_study_methods(rhos=(0.05,)))
    ['sgd_b128', 'sgd_b2048', 'sgd_2x_b2048', 'sam_rho0.05_b2048']
    """
    large = {
        **SAM_STUDY_DATA,
        "batch_size": SAM_STUDY_LARGE,
        "warmup_epochs": SAM_STUDY_WARMUP_EPOCHS,
        "epochs": epochs,
        "optimizer": "momentum",
    }
    methods: dict[str, Overrides] = {
        f"sgd_b{SAM_STUDY_SMALL}": {
            **SAM_STUDY_DATA,
            "batch_size": SAM_STUDY_SMALL,
            "epochs": epochs,
            "optimizer": "momentum",
        },
        f"sgd_b{SAM_STUDY_LARGE}": large,
        f"sgd_2x_b{SAM_STUDY_LARGE}": {**large, "epochs": 2 * epochs},
    }
    for rho in rhos:
        methods[f"sam_rho{rho:g}_b{SAM_STUDY_LARGE}"] = {
            **large,
            "optimizer": "sam_momentum",
            "rho": rho,
        }
    return methods


def sam_study_runs(
    epochs: int = SAM_STUDY_EPOCHS,
    small_lrs: Sequence[float] = SAM_STUDY_SMALL_LRS,
    large_lrs: Sequence[float] = SAM_STUDY_LARGE_LRS,
    rhos: Sequence[float] = SAM_STUDY_RHOS,
) -> list[Run]:
    """The SAM study's tuning grid: every method (`sam_study_methods`) at every LR of its
    batch size's grid, evaluated on the validation split; named ``<method>_lr<lr>``.

    >>> runs = sam_study_runs()
    >>> len(runs), runs[0][0], runs[-1][0]
    (53, 'sgd_b128_lr0.0125', 'sam_rho0.1_b2048_lr1.6')
    """
    runs = []
    for label, flags in sam_study_methods(epochs, rhos).items():
        lrs = small_lrs if flags["batch_size"] == SAM_STUDY_SMALL else large_lrs
        runs += [(f"{label}_lr{lr:g}", {**flags, "lr": lr}) for lr in lrs]
    return runs


def sam_study_final(tuning: Overrides) -> Overrides:
    """A tuning run's flags for the test: the same training examples (the first
    ``num_train - validation_examples``), evaluated on the test set.

    >>> final = sam_study_final(dict(sam_study_runs())["sgd_b2048_lr0.2"])
    >>> final["num_train"], final["validation_examples"], final["lr"]
    (15000, None, 0.2)
    """
    train = tuning["num_train"] - tuning["validation_examples"]
    return {**tuning, "num_train": train, "validation_examples": None}


# Seed 002's nine experiments (JCDetwiler/batch-size-mnist, `experiments.ipynb`) as they
# ran in tf.keras 1.15 (REFERENCES.md, section 6): full MNIST, 6 epochs in steps of 2 from
# batch 100, factor 5; the model with BatchNormalization's default momentum 0.99. Optimizer
# family -> (its flags, the initial LR of decay_lr, increase_bs and hybrid). Its "Adam" runs
# are Nadam: decay_lr on the SGD schedule (0.15), the two others at tf.keras 1.15's Nadam
# default 0.001 (`optimizer_v2/nadam.py`; Keras 2.2.4's standalone Nadam had 0.002). Its
# momentum runs: momentum 0.1, the decay_lr one with Nesterov. hybrid steps the LR once, at
# the second milestone: the notebook's second `fit` restarts its scheduler's epoch count.
KERAS_REPRODUCTION: Overrides = {
    "dataset": "mnist",
    "model": "mnist_cnn_keras2",
    "epochs": 6,
    "batch_size": 100,
    "milestones": [2, 4],
    "factor": 5.0,
}
# Experiments 1 to 9 in the notebook's order: (optimizer family/schedule, optimizer flags,
# initial LR).
KERAS_REPRODUCTION_RUNS: tuple[tuple[str, Overrides, float], ...] = (
    ("sgd/decay_lr", {"optimizer": "sgd"}, 0.15),
    ("sgd/increase_bs", {"optimizer": "sgd"}, 0.07),
    ("sgd/hybrid", {"optimizer": "sgd"}, 0.05),
    ("nadam/decay_lr", {"optimizer": "nadam"}, 0.15),
    ("nadam/increase_bs", {"optimizer": "nadam"}, 0.001),
    ("nadam/hybrid", {"optimizer": "nadam"}, 0.001),
    ("momentum/decay_lr", {"optimizer": "nesterov", "momentum": 0.1}, 0.15),
    ("momentum/increase_bs", {"optimizer": "momentum", "momentum": 0.1}, 0.07),
    ("momentum/hybrid", {"optimizer": "momentum", "momentum": 0.1}, 0.05),
)


def _keras_reproduction() -> list[Run]:
    return [
        (name, {**KERAS_REPRODUCTION, **optimizer, "schedule": name.split("/")[1], "lr": lr})
        for name, optimizer, lr in KERAS_REPRODUCTION_RUNS
    ]


RECIPES: dict[str, Callable[[], list[Run]]] = {
    "fixed_lr": _fixed_lr,
    "fixed_tuned": _fixed_tuned,
    "bsi_from_large": _bsi_from_large,
    "smith": _smith,
    "loss_dropout": _loss_dropout,
    "mobilenet_scratch": _mobilenet_scratch,
    "mobilenet": _mobilenet_scratch,  # the name before the fine-tuning reading was added
    "mobilenet_finetune": _mobilenet_finetune,
    "scaling_grid": _scaling_grid,
    "bsi_224": _bsi_224,
    "sam_study": sam_study_runs,
    "keras_reproduction": _keras_reproduction,
}


def register_recipe(name: str, recipe: Callable[[], list[Run]]) -> None:
    """Add a recipe (a function returning ``(run name, flag values by dest)`` pairs)."""
    if name in RECIPES:
        raise ValueError(f"a recipe named {name!r} exists")
    RECIPES[name] = recipe
