"""The data feeds: each epoch's ``model.fit`` inputs, in a fresh order, at any batch size.

A feed knows its ``num_examples`` and answers ``epoch(seed, epoch, batch_size, plan)`` with
the ``model.fit`` arguments of that epoch, a pure function of the seed and the epoch (so a
resumed run sees the same data). `training_feed` picks the feed for ``x``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from bsi_keras.driver import tf_feed
from bsi_keras.runtime import distribution
from bsi_keras.schedules import EpochPlan
from bsi_keras.train_step import accumulate, keras_private

Augmentation = Callable[[np.ndarray, int, int], np.ndarray]


def training_feed(
    x: Any,
    y: Any,
    sample_weight: np.ndarray | None,
    augmentation: Augmentation | None,
    class_weight: Mapping[int, float] | None,
) -> ArrayFeed | TFDatasetFeed | PyDatasetFeed:
    """The feed of ``fit``'s training data.

    Raises:
        ValueError: ``y`` or ``sample_weight`` beside a dataset (which holds its targets).
    """
    is_dataset = isinstance(x, keras.utils.PyDataset) or (
        type(x).__module__.startswith("tensorflow") and hasattr(x, "cardinality")
    )
    if is_dataset and (y is not None or sample_weight is not None):
        raise ValueError(
            f"y and sample_weight go inside the {type(x).__name__} (as (x, y) or (x, y, w) "
            "elements), not beside it"
        )
    if isinstance(x, keras.utils.PyDataset):
        return PyDatasetFeed(x)
    if is_dataset:
        return TFDatasetFeed(x)
    # Keras weighs classes differently for datasets than for arrays: keep arrays then.
    return ArrayFeed(
        x,
        y,
        sample_weight,
        augmentation,
        tensorflow_batches=class_weight is None,
        class_weight=class_weight,
    )


def micro_batch_layout(
    sizes: list[int], physical: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each slot of an epoch's fixed-shape micro-batches takes its example from.

    Every update of ``s`` examples becomes ``ceil(s / physical)`` micro-batches of exactly
    ``physical`` slots; the slots past its ``s`` examples are padding (they repeat the
    update's last example, with no weight).

    Args:
        sizes: the epoch's update sizes (`EpochPlan.batch_sizes`).
        physical: the micro-batch shape.

    Returns:
        ``(positions, real, ends_update)`` per slot: the position in the epoch's example
        order, 1 for a real example (0 for padding), and 1 in the last micro-batch of an
        update.

    Example:

    >>> positions, real, ends = micro_batch_layout([5, 2], physical=3)
    >>> positions.tolist(), real.tolist(), ends.tolist()
    ([0, 1, 2, 3, 4, 4, 5, 6, 6], [1, 1, 1, 1, 1, 0, 1, 1, 0], [0, 0, 0, 1, 1, 1, 1, 1, 1])
    """
    positions, real, ends = [], [], []
    start = 0
    for size in sizes:
        slots = -(-size // physical) * physical
        offset = np.arange(slots)
        positions.append(start + np.minimum(offset, size - 1))
        real.append((offset < size).astype("int64"))
        ends.append((offset >= slots - physical).astype("int64"))
        start += size
    return np.concatenate(positions), np.concatenate(real), np.concatenate(ends)


@dataclass
class ArrayFeed:
    """Training arrays, served in a fresh order (and augmentation) every epoch.

    On TensorFlow, numeric numpy arrays become tensors, and every epoch is a dataset that
    gathers its batches (``tensorflow_batches``, see `tf_feed.batches`): without
    augmentation from tensors made once, instead of a permuted copy that ``model.fit``
    copies again. Permuted (and augmented) numpy arrays are prepared one epoch ahead in a
    background thread (`Background`), so that the accelerator does not wait for the host.
    """

    x: Any
    y: Any
    sample_weight: np.ndarray | None = None
    augmentation: Augmentation | None = None
    tensorflow_batches: bool = True
    class_weight: Mapping[int, float] | None = None  # folded in for micro-batches only
    num_examples: int = field(init=False)
    tensors: Any = field(default=None, init=False, repr=False)  # TensorFlow copies, made once
    ahead: tuple[tuple[int, ...], Background] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.x is None:
            raise ValueError("fit needs training inputs x")
        arrays = keras.tree.flatten((self.x, self.y, self.sample_weight))
        sizes = {len(a) for a in arrays if a is not None}
        if len(sizes) != 1:
            raise ValueError(f"x, y and sample_weight differ in length: {sorted(sizes)}")
        self.num_examples = sizes.pop()
        self.tensorflow_batches = self.tensorflow_batches and tf_feed.applies_to(
            (self.x, self.y, self.sample_weight)
        )

    def split(self, fraction: float) -> tuple[Any, ...]:
        """Hold out the last ``fraction`` of the examples (Keras's validation_split)."""
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"validation_split must be in (0, 1), got {fraction}")
        cut = self.num_examples - int(self.num_examples * fraction)
        held_out = _map_arrays(lambda a: a[cut:], (self.x, self.y))
        self.x, self.y, self.sample_weight = _map_arrays(
            lambda a: a[:cut], (self.x, self.y, self.sample_weight)
        )
        self.num_examples = cut
        return held_out

    def epoch(self, seed: int, epoch: int, batch_size: int, plan: EpochPlan) -> dict:
        """``model.fit`` arguments for epoch ``epoch`` (a pure function of seed and epoch)."""
        kept = plan.examples(batch_size)
        if self.tensorflow_batches and self.augmentation is None:
            if self.tensors is None:
                self.tensors = tf_feed.as_tensors((self.x, self.y, self.sample_weight))
            order = self._order(seed, epoch)[:kept]
            return {"x": tf_feed.batches(self.tensors, order, batch_size)}
        arrays = self._arrays(seed, epoch, kept)
        following = (seed, epoch + 1, kept)  # guessing that the batch size stays
        self.ahead = (following, Background(lambda: self._prepare(*following)))
        if self.tensorflow_batches:
            return {"x": tf_feed.batches(tf_feed.as_tensors(arrays), np.arange(kept), batch_size)}
        # Of several processes, each feeds its share of every batch (one process: all).
        (x, y, sample_weight), batch_size = distribution.process_share(arrays, batch_size)
        return {"x": x, "y": y, "sample_weight": sample_weight, "batch_size": batch_size}

    def micro_batches(
        self, seed: int, epoch: int, batch_size: int, plan: EpochPlan, physical: int
    ) -> dict:
        """`epoch`'s examples as micro-batches of ``physical`` slots for the accumulating
        train step (`micro_batch_layout`), their sample weight packed as it reads it."""
        sizes = plan.batch_sizes(batch_size)
        positions, real, ends = micro_batch_layout(sizes, physical)
        kept = sum(sizes)
        if self.tensorflow_batches and self.augmentation is None:
            if self.tensors is None:
                self.tensors = tf_feed.as_tensors((self.x, self.y, self.sample_weight))
            order = self._order(seed, epoch)[:kept][positions]
            packed = accumulate.pack(self._weights(order), real, ends)
            return {"x": tf_feed.batches(self.tensors[:2], order, physical, packed)}
        x, y, _ = self._arrays(seed, epoch, kept)
        following = (seed, epoch + 1, kept)  # guessing that the batch size stays
        self.ahead = (following, Background(lambda: self._prepare(*following)))
        order = self._order(seed, epoch)[:kept][positions]
        packed = accumulate.pack(self._weights(order), real, ends)
        x, y = _map_arrays(lambda a: np.take(a, positions, axis=0), (x, y))
        if self.tensorflow_batches:
            tensors = tf_feed.as_tensors((x, y))
            return {"x": tf_feed.batches(tensors, np.arange(len(positions)), physical, packed)}
        return {"x": x, "y": y, "sample_weight": packed, "batch_size": physical}

    def build_compiled_state(self, model: keras.Model) -> None:
        """Build the compiled loss and metrics from one plain example, before the first
        micro-batch (whose packed weight Keras's own build would misread)."""
        first = _map_arrays(lambda a: np.asarray(a[:1]), (self.x, self.y))
        keras_private.build_compiled_state(model, *first)

    def _weights(self, examples: np.ndarray) -> np.ndarray | None:
        """The sample and class weights of ``examples`` (None: all 1)."""
        weight = None if self.sample_weight is None else self.sample_weight[examples]
        if self.class_weight is not None:
            labels = np.asarray(self.y)[examples]
            labels = labels.argmax(-1) if labels.ndim > 1 and labels.shape[-1] > 1 else labels
            by_class = np.array([self.class_weight.get(int(c), 1.0) for c in labels.ravel()])
            weight = by_class if weight is None else weight * by_class
        return weight

    def _order(self, seed: int, epoch: int) -> np.ndarray:
        return np.random.default_rng([seed, epoch]).permutation(self.num_examples)

    def _arrays(self, seed: int, epoch: int, kept: int) -> tuple[Any, Any, Any]:
        """The epoch's arrays: prepared ahead if they were, else now."""
        if self.ahead is not None and self.ahead[0] == (seed, epoch, kept):
            return self.ahead[1].result()
        return self._prepare(seed, epoch, kept)

    def _prepare(self, seed: int, epoch: int, kept: int) -> tuple[Any, Any, Any]:
        """The first ``kept`` examples in the epoch's order, augmented."""
        order = self._order(seed, epoch)[:kept]
        x, y, sample_weight = _map_arrays(
            lambda a: np.take(a, order, axis=0), (self.x, self.y, self.sample_weight)
        )
        if self.augmentation is not None:
            x = self.augmentation(x, seed, epoch)
        return x, y, sample_weight


class Background:
    """A function of no arguments running in a daemon thread (a run may end without it)."""

    def __init__(self, function: Callable[[], Any]):
        self.outcome: tuple[bool, Any] | None = None
        self.thread = threading.Thread(target=self._run, args=(function,), daemon=True)
        self.thread.start()

    def _run(self, function: Callable[[], Any]) -> None:
        try:
            self.outcome = (True, function())
        except BaseException as error:  # re-raised by `result` in the caller's thread
            self.outcome = (False, error)

    def result(self) -> Any:
        """The function's value (waiting for it), or its exception raised here."""
        self.thread.join()
        succeeded, value = self.outcome
        if not succeeded:
            raise value
        return value


@dataclass
class TFDatasetFeed:
    """A `tf.data.Dataset` of known size, rebatched every epoch."""

    dataset: Any
    num_examples: int = field(init=False)

    def __post_init__(self) -> None:
        if tf_feed.is_batched(self.dataset):
            self.dataset = self.dataset.unbatch()  # batched: its batches are redone per epoch
        self.num_examples = int(self.dataset.cardinality())
        if self.num_examples == -1:  # infinite
            raise ValueError("the tf.data.Dataset repeats forever; pass one epoch of data")
        if self.num_examples < 0:  # unknown (e.g. after unbatch): count it once
            import tensorflow as tf

            self.num_examples = int(self.dataset.reduce(0, lambda count, _: count + 1))
            # Keras runs one step too many on a dataset of unknown size.
            self.dataset = self.dataset.apply(
                tf.data.experimental.assert_cardinality(self.num_examples)
            )

    def split(self, fraction: float) -> tuple[Any, ...]:
        raise ValueError("validation_split needs numpy arrays; pass validation_data instead")

    def epoch(self, seed: int, epoch: int, batch_size: int, plan: EpochPlan) -> dict:
        epoch_seed = int(np.random.default_rng([seed, epoch]).integers(2**31))
        ordered = self.dataset.shuffle(self.num_examples, seed=epoch_seed)
        return {"x": ordered.batch(batch_size, drop_remainder=plan.drop_remainder).prefetch(2)}


@dataclass
class PyDatasetFeed:
    """A `keras.utils.PyDataset` whose ``batch_size`` attribute the driver sets."""

    dataset: keras.utils.PyDataset
    num_examples: int = field(init=False)

    def __post_init__(self) -> None:
        if not hasattr(self.dataset, "batch_size"):
            raise ValueError(
                "a PyDataset needs a batch_size attribute (used by its __len__ and "
                "__getitem__) so the driver can change the batch size"
            )
        self.num_examples = getattr(self.dataset, "num_examples", None) or (
            len(self.dataset) * self.dataset.batch_size
        )

    def split(self, fraction: float) -> tuple[Any, ...]:
        raise ValueError("validation_split needs numpy arrays; pass validation_data instead")

    def epoch(self, seed: int, epoch: int, batch_size: int, plan: EpochPlan) -> dict:
        self.dataset.batch_size = batch_size
        return {"x": self.dataset}


@dataclass
class ValidationFeed:
    """``model.evaluate`` arguments of the validation data, the same after every epoch.

    On TensorFlow, batches of tensors made once (the batches ``model.evaluate`` would make
    of the arrays, without copying them again).
    """

    data: tuple[Any, ...]
    batch_size: int
    tensors: Any = field(default=None, init=False, repr=False)  # made at the first evaluation

    def __post_init__(self) -> None:
        if not isinstance(self.data, tuple) or len(self.data) not in (2, 3):
            raise ValueError(
                "validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight), "
                f"got {type(self.data).__name__} of {len(self.data)}"
            )
        # A batch beyond the data would size the evaluation's buffers for nothing.
        self.batch_size = min(self.batch_size, len(keras.tree.flatten(self.data[0])[0]))

    def inputs(self) -> dict[str, Any]:
        if not tf_feed.applies_to(self.data):
            x, y, *weights = self.data
            weight = weights[0] if weights else None
            return {"x": x, "y": y, "sample_weight": weight, "batch_size": self.batch_size}
        if self.tensors is None:
            self.tensors = tf_feed.as_tensors(self.data)
        order = np.arange(len(keras.tree.flatten(self.data)[0]))
        return {"x": tf_feed.batches(self.tensors, order, self.batch_size)}


def _map_arrays(fn: Callable[[Any], Any], structure: Any) -> Any:
    """Apply ``fn`` to every array of a nested structure, leaving None alone."""
    return keras.tree.map_structure(lambda a: None if a is None else fn(a), structure)
