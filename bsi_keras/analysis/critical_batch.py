"""The critical-batch-size probe: short branches from a run's saved states at several batches.

Merrill, Arora, Groeneveld and Hajishirzi 2025 ("Critical Batch Size Revisited", arXiv
2505.23971, the branched-training method of their section 3) measure the critical batch
size (CBS) directly: from a checkpoint, train short branches at several batch sizes for
the same amount of data, the LR scaled with the batch by a rule, and the CBS is the
largest batch whose loss keeps up with the smallest batch's. Here, exactly:

- each branch starts from the snapshot ``weights/epoch_NNN.keras`` (``--saveState``) with
  a fresh optimizer of the run's kind (its momentum buffers or Adam moments are not in the
  snapshot; a SAM run's branches take plain steps of its base optimizer) at
  ``lr(B) = lr0 * (B / B_min) ** power`` (``power`` 0, 1/2, 1 for `RULES` ``"none"``,
  ``"sqrt"``, ``"linear"``), where ``lr0`` is the LR the run trained with right after the
  snapshot (its last LR at the final snapshot);
- every branch sees the same ``examples`` training examples in the same order (a seeded
  permutation of the training set, repeated as needed), grouped in ``examples / B``
  updates of ``B``; ``examples`` must be a multiple of every batch size;
- its loss is the mean training loss (with the model's regularization, inference mode) of
  its final weights on the first ``eval_examples`` training examples (all by default), the
  same set for every branch;
- `critical_batch`: the CBS is the largest ``B`` whose loss is at most ``(1 + tolerance)``
  times the smallest batch's, ``loss(B) <= (1 + tolerance) * loss(B_min)``; a loss that is
  not finite fails; ``B_min`` is the reference and always counts.

Where this differs from the paper: Merrill et al. compare language-model losses after the
same number of tokens with an absolute tolerance on the loss, and tune the branches'
learning rates rather than fixing one scaling rule; the tolerance here is relative (so
that it means the same at any loss level) and the rule is one flag. A batch is critical
even if a smaller one failed (the largest that passes, as the paper's definition reads),
so a noisy table can give a large CBS: read the table next to the trajectory.

Example:

>>> critical_batch({32: 1.00, 64: 1.005, 128: 1.02, 256: 1.009}, tolerance=0.01)
256
>>> critical_batch({32: 1.00, 64: 1.02}, tolerance=0.01)
32
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from bsi_keras import markdown
from bsi_keras.analysis.solution import LOSS, evaluate, load_solution, model_settings
from bsi_keras.run_folder import RunFolder

# The power of B / B_min that scales a branch's LR.
RULES = {"none": 0.0, "sqrt": 0.5, "linear": 1.0}
RESULT_FILE = "critical_batch.json"


class ProbeError(ValueError):
    """A probe setting is invalid; ``param`` names it (the command line's flag ``--param``)."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


def critical_batch(losses: Mapping[int, float], tolerance: float) -> int:
    """The largest batch whose loss is within ``(1 + tolerance)`` of the smallest batch's.

    Args:
        losses: the branch loss of each batch size.
        tolerance: the relative tolerance, >= 0.

    Returns:
        The critical batch size (the smallest batch when no larger one passes).
    """
    smallest = min(losses)
    threshold = (1.0 + tolerance) * losses[smallest]
    passing = [b for b, loss in losses.items() if math.isfinite(loss) and loss <= threshold]
    return max([smallest, *passing])


def branch_losses(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_sizes: Sequence[int],
    examples: int,
    lr: float,
    optimizer: Callable[[float], keras.optimizers.Optimizer],
    rule: str = "sqrt",
    eval_examples: int | None = None,
    seed: int = 0,
) -> dict[int, float]:
    """Train one branch per batch size from ``model``'s weights; return each branch's loss.

    ``model`` is left at its own weights. See the module docstring for the branches.

    Args:
        model: the starting point (compiled or not).
        x, y: the training set (integer labels).
        batch_sizes: the branches' batch sizes.
        examples: training examples per branch, a multiple of every batch size.
        lr: the LR at the smallest batch.
        optimizer: ``lr -> a new optimizer``.
        rule: one of `RULES`.
        eval_examples: the loss is measured on the first this many training examples.
        seed: the seed of the examples' order and of the branches' randomness.

    Returns:
        ``{batch_size: loss}``.

    Example:

    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, "softmax")])
    >>> x, y = np.ones((8, 3), "float32"), np.zeros(8, "int32")
    >>> losses = branch_losses(model, x, y, batch_sizes=[2, 8], examples=8, lr=0.1,
    ...                        optimizer=keras.optimizers.SGD, rule="none")
    >>> losses[2] < losses[8]  # identical examples: more updates, lower loss
    True
    """
    _check_probe(batch_sizes, examples, rule, eval_examples, len(x))
    order = np.random.default_rng(seed).permutation(len(x))
    order = np.resize(order, examples)  # repeated when examples > len(x)
    x_branch, y_branch = x[order], y[order]
    x_eval, y_eval = x[:eval_examples], y[:eval_examples]
    start = model.get_weights()
    smallest = min(batch_sizes)
    losses = {}
    for batch in sorted(batch_sizes):
        model.set_weights(start)
        keras.utils.set_random_seed(seed)
        scaled = lr * (batch / smallest) ** RULES[rule]
        model.compile(optimizer=optimizer(scaled), loss=LOSS)
        model.fit(x_branch, y_branch, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        losses[batch] = evaluate(model, x_eval, y_eval).loss
    model.set_weights(start)
    return losses


@dataclass(frozen=True)
class CriticalBatchResult:
    """The probe of a run: branch losses and critical batch at each saved epoch.

    Attributes:
        run: the run folder.
        epochs: the snapshots' epochs (0: the initial weights).
        batch_sizes: the branches' batch sizes, increasing.
        losses: ``losses[i][j]``: the loss of batch ``batch_sizes[j]`` from ``epochs[i]``.
        lrs: the LR at the smallest batch, per epoch.
        critical: the critical batch per epoch.
        b_simple: the run's logged ``gns_b_simple`` at each epoch (None: not measured).
        examples, rule, tolerance, eval_examples, seed: the probe's settings.
    """

    run: str
    epochs: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    losses: tuple[tuple[float, ...], ...]
    lrs: tuple[float, ...]
    critical: tuple[int, ...]
    b_simple: tuple[float | None, ...]
    examples: int
    rule: str
    tolerance: float
    eval_examples: int | None
    seed: int

    def trajectory(self) -> list[tuple[int, int]]:
        """``(epoch, critical_batch)`` pairs, what `bsi_keras.schedules.cbs_warmup` takes."""
        return list(zip(self.epochs, self.critical, strict=True))

    def to_json(self) -> dict[str, Any]:
        """The content of ``critical_batch.json`` (`read_trajectory` reads it back)."""
        return {
            "run": self.run,
            "criterion": "largest B with loss(B) <= (1 + tolerance) * loss(B_min)",
            "examples": self.examples,
            "rule": self.rule,
            "tolerance": self.tolerance,
            "eval_examples": self.eval_examples,
            "seed": self.seed,
            "batch_sizes": list(self.batch_sizes),
            "trajectory": [list(point) for point in self.trajectory()],
            "rows": [
                {
                    "epoch": epoch,
                    "lr": lr,
                    "losses": dict(zip(map(str, self.batch_sizes), losses, strict=True)),
                    "critical_batch": critical,
                    "gns_b_simple": b_simple,
                }
                for epoch, lr, losses, critical, b_simple in zip(
                    self.epochs, self.lrs, self.losses, self.critical, self.b_simple, strict=True
                )
            ],
        }

    def table(self) -> str:
        """The branch losses, critical batch and logged ``B_simple``, as a Markdown table."""
        heads = ["epoch", "lr", *(f"loss B={b}" for b in self.batch_sizes), "critical", "B_simple"]
        lines = markdown.head(heads)
        for epoch, lr, losses, critical, b_simple in zip(
            self.epochs, self.lrs, self.losses, self.critical, self.b_simple, strict=True
        ):
            cells = [str(epoch), f"{lr:g}", *(f"{v:.5g}" for v in losses), str(critical)]
            cells.append("" if b_simple is None else f"{b_simple:.4g}")
            lines.append(markdown.row(cells))
        return "\n".join(lines)

    def save(self, out: str | os.PathLike) -> dict[str, Path]:
        """Write ``critical_batch.json``, ``critical_batch.md`` and ``critical_batch.png``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / RESULT_FILE, "table": out / "critical_batch.md"}
        paths["json"].write_text(json.dumps(self.to_json(), indent=2) + "\n")
        paths["table"].write_text(self.table() + "\n")
        paths["figure"] = plot_trajectory(self, out / "critical_batch.png")
        return paths


def critical_batch_sizes(
    run_folder: str | os.PathLike,
    epochs: Sequence[int],
    batch_sizes: Sequence[int],
    examples: int,
    rule: str = "sqrt",
    tolerance: float = 0.01,
    eval_examples: int | None = None,
    seed: int = 0,
) -> CriticalBatchResult:
    """Probe a run's critical batch size at its saved epochs (see the module docstring).

    Args:
        run_folder: a run trained with ``--saveState`` (snapshots of every epoch).
        epochs: the snapshots to branch from (0: the initial weights).
        batch_sizes: at least two batch sizes.
        examples: training examples per branch, a multiple of every batch size.
        rule: the LR scaling with the batch, one of `RULES`.
        tolerance: the relative loss tolerance of `critical_batch`.
        eval_examples: the first this many training examples measure the loss (None: all).
        seed: the examples' order and the branches' randomness.

    Returns:
        The `CriticalBatchResult`.

    Raises:
        ProbeError: a setting out of range, naming it.
        RunFolderError: not a run folder, or an epoch without a snapshot.

    Example:

    >>> result = critical_batch_sizes("runs/mnist", [1, 2], [32, 64, 128], 1024)  # doctest: +SKIP
    >>> result.trajectory()  # doctest: +SKIP
    [(1, 64), (2, 128)]
    """
    if not (isinstance(tolerance, int | float) and math.isfinite(tolerance) and tolerance >= 0):
        raise ProbeError("tolerance", f"must be a number >= 0, got {tolerance!r}")
    if not epochs or any(isinstance(e, bool) or not isinstance(e, int) or e < 0 for e in epochs):
        raise ProbeError("epochs", f"must be epochs >= 0, got {list(epochs)}")
    from bsi_keras.data import load_dataset
    from bsi_keras.optimizers import get_optimizer

    folder = RunFolder(run_folder)
    config = folder.read_config()
    settings = model_settings(config)
    dataset = load_dataset(
        config["dataset"]["name"], settings.get("data_dir"), num_train=settings.get("num_train")
    )
    kind = _optimizer_settings(config)
    log = folder.read_log()
    rows = {int(row["epoch"]): row for row in log}

    def optimizer(lr: float) -> keras.optimizers.Optimizer:
        return get_optimizer(kind["name"], lr, kind.get("momentum"), kind.get("clip_norm"))

    epochs = sorted(set(epochs))
    losses, lrs = [], []
    for epoch in epochs:
        row = rows.get(epoch + 1) or rows.get(epoch)
        if row is None:
            raise ProbeError("epochs", f"{run_folder}'s log has no epoch {epoch}")
        lrs.append(float(row["learning_rate"]))
        branch = branch_losses(
            load_solution(run_folder, epoch),
            dataset.x_train,
            dataset.y_train,
            batch_sizes=batch_sizes,
            examples=examples,
            lr=lrs[-1],
            optimizer=optimizer,
            rule=rule,
            eval_examples=eval_examples,
            seed=seed,
        )
        losses.append(tuple(branch[b] for b in sorted(batch_sizes)))
    batches = tuple(sorted(batch_sizes))
    return CriticalBatchResult(
        run=str(run_folder),
        epochs=tuple(epochs),
        batch_sizes=batches,
        losses=tuple(losses),
        lrs=tuple(lrs),
        critical=tuple(critical_batch(dict(zip(batches, row)), tolerance) for row in losses),
        b_simple=tuple(_b_simple(rows.get(epoch)) for epoch in epochs),
        examples=examples,
        rule=rule,
        tolerance=float(tolerance),
        eval_examples=eval_examples,
        seed=seed,
    )


def read_trajectory(path: str | os.PathLike) -> list[tuple[int, float]]:
    """The ``(epoch, critical_batch)`` pairs of a probe's ``critical_batch.json``, or of a
    CSV file with the columns ``epoch,critical_batch`` (0-based epochs: the state after
    that many epochs).

    Raises:
        OSError: the file cannot be read.
        ValueError: it holds no such pairs (the message says what is wrong).
    """
    path = Path(path)
    text = path.read_text()
    try:
        if path.suffix.lower() == ".csv":
            points = [
                (row["epoch"], row["critical_batch"]) for row in csv.DictReader(text.splitlines())
            ]
        else:
            points = json.loads(text)["trajectory"]
        pairs = [(int(epoch), float(batch)) for epoch, batch in points]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{path} is not a critical-batch trajectory (a probe's {RESULT_FILE} or a CSV with "
            f"columns epoch,critical_batch): {type(error).__name__}: {error}"
        ) from None
    if not pairs:
        raise ValueError(f"{path} holds no (epoch, critical_batch) pair")
    return pairs


def plot_trajectory(result: CriticalBatchResult, path: str | os.PathLike) -> Path:
    """The critical batch against the epoch (log2 axis), with the run's logged ``B_simple``."""
    from bsi_keras.plots import _pyplot, save

    fig, ax = _pyplot().subplots(figsize=(5.5, 3.8))
    label = f"critical batch (tolerance {result.tolerance:g}, LR rule {result.rule})"
    ax.plot(result.epochs, result.critical, marker="o", label=label)
    measured = [(e, b) for e, b in zip(result.epochs, result.b_simple) if b and b > 0]
    if measured:
        ax.plot(*zip(*measured), marker="s", linestyle="--", label="logged B_simple")
    ax.set_yscale("log", base=2)
    ax.set_xlabel("epoch (snapshot)")
    ax.set_ylabel("batch size")
    ax.set_title(Path(result.run).name)
    ax.legend()
    return save(fig, path)


def _check_probe(
    batch_sizes: Sequence[int], examples: int, rule: str, eval_examples: int | None, size: int
) -> None:
    if rule not in RULES:
        raise ProbeError("rule", f"invalid choice: {rule!r} (choose from {', '.join(RULES)})")
    if len(set(batch_sizes)) < 2 or any(
        isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in batch_sizes
    ):
        raise ProbeError("batch_sizes", f"needs two or more positive sizes, got {batch_sizes}")
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise ProbeError("examples", f"must be a positive integer, got {examples!r}")
    uneven = [b for b in batch_sizes if examples % b]
    if uneven:
        raise ProbeError("examples", f"{examples} is not a multiple of the batch sizes {uneven}")
    if eval_examples is not None and not 1 <= eval_examples <= size:
        raise ProbeError("eval_examples", f"must be in 1..{size}, got {eval_examples}")


def _optimizer_settings(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The run's optimizer (name, momentum, clip_norm) from its spec or older ``args``."""
    if "spec" in config:
        return config["spec"]["optimizer"]
    args = config.get("args", {})
    return {k: args.get(k) for k in ("momentum", "clip_norm")} | {"name": args["optimizer"]}


def _b_simple(row: Mapping[str, str] | None) -> float | None:
    try:
        value = float(row["gns_b_simple"])
    except (TypeError, KeyError, ValueError):
        return None
    return value if math.isfinite(value) else None
