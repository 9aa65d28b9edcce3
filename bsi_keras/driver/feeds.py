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
from bsi_keras.schedules import EpochPlan

Augmentation = Callable[[np.ndarray, int, int], np.ndarray]


def training_feed(
    x: Any,
    y: Any,
    sample_weight: np.ndarray | None,
    augmentation: Augmentation | None,
    class_weight: Mapping[int, float] | None,
) -> ArrayFeed | TFDatasetFeed | PyDatasetFeed:
    """The feed of ``fit``'s training data."""
    if isinstance(x, keras.utils.PyDataset):
        return PyDatasetFeed(x)
    if type(x).__module__.startswith("tensorflow") and hasattr(x, "cardinality"):
        return TFDatasetFeed(x)
    # Keras weighs classes differently for datasets than for arrays: keep arrays then.
    return ArrayFeed(x, y, sample_weight, augmentation, tensorflow_batches=class_weight is None)


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
        x, y, sample_weight = arrays
        return {"x": x, "y": y, "sample_weight": sample_weight, "batch_size": batch_size}

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
        leaves = keras.tree.flatten(self.dataset.element_spec)
        if any(leaf.shape.rank and leaf.shape[0] is None for leaf in leaves):
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
