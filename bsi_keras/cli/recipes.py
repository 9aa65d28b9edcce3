"""The sweeps' recipes: named grids of runs, each a run name and its flag values by dest.

A recipe is a function returning ``(run name, flag values)`` pairs; the values lie over the
command line's defaults (`bsi_keras.cli.sweep.run_spec` makes each a `RunSpec`).
`register_recipe` adds one of your own.

Example:

>>> [name for name, _ in RECIPES["smith"]()]
['decay_lr', 'hybrid', 'increase_bs']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

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


# The SAM study, per dataset: its flags, batch sizes (x4 apart, small to large) and the LR
# of the smallest batch size per optimizer family.
SAM_STUDY_DATASETS: dict[str, tuple[Overrides, tuple[int, ...], dict[str, float]]] = {
    "fashion": (
        {"dataset": "fashion_mnist", "model": "mnist_cnn", "epochs": 20, "save_state": True},
        (32, 128, 512, 2048),
        {"sgd": 0.0025, "adam": 2.5e-4},
    ),
    # Keskar et al.'s shallow CNN; its per-epoch weights (7 MB each) are not kept.
    "cifar10": (
        {**CIFAR, "model": "c1", "epochs": 50, "warmup_epochs": 2.0},
        (128, 512, 2048, 8192),
        {"sgd": 0.025, "adam": 1e-4},
    ),
}
# Label -> (optimizer flags, its LR family, whether it runs at every batch size or only at
# the large half).
SAM_STUDY_OPTIMIZERS: dict[str, tuple[Overrides, str, bool]] = {
    "momentum": ({"optimizer": "momentum"}, "sgd", True),
    "sam_momentum": ({"optimizer": "sam_momentum"}, "sgd", False),
    "asam_momentum": ({"optimizer": "asam_momentum"}, "sgd", False),
    # m-sharpness: a perturbation per group of 128 examples (Foret et al., section 4.1).
    "sam_momentum_m128": ({"optimizer": "sam_momentum", "sam_m": 128}, "sgd", False),
    "adam": ({"optimizer": "adam"}, "adam", True),
    "sam_adam": ({"optimizer": "sam_adam"}, "adam", False),
}


def sam_study_lrs(base_lr: float, count: int = 4) -> list[float]:
    """The SAM study's LR grid, ``base_lr * 4**k`` for ``k < count``.

    The batch sizes being x4 apart, the linear scaling rule (the LR proportional to the
    batch size, ``base_lr`` at the smallest) is the grid's diagonal.

    >>> sam_study_lrs(0.005)
    [0.005, 0.02, 0.08, 0.32]
    """
    return [float(f"{base_lr * 4**k:.6g}") for k in range(count)]


def _sam_study() -> list[Run]:
    runs = []
    for dataset, (base, batches, base_lrs) in SAM_STUDY_DATASETS.items():
        for label, (optimizer, family, every_batch) in SAM_STUDY_OPTIMIZERS.items():
            lrs = sam_study_lrs(base_lrs[family], len(batches))
            for batch in batches if every_batch else batches[len(batches) // 2 :]:
                common = {**base, "schedule": "constant", **optimizer, "batch_size": batch}
                runs += [
                    (f"{dataset}_{label}_b{batch}_lr{lr:g}", {**common, "lr": lr}) for lr in lrs
                ]
    return runs


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
    "sam_study": _sam_study,
    "keras_reproduction": _keras_reproduction,
}


def register_recipe(name: str, recipe: Callable[[], list[Run]]) -> None:
    """Add a recipe (a function returning ``(run name, flag values by dest)`` pairs)."""
    if name in RECIPES:
        raise ValueError(f"a recipe named {name!r} exists")
    RECIPES[name] = recipe
