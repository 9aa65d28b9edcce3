"""CIFAR data: the official pickle format, npz files, the offline message, and augmentation."""

import json
import pickle

import keras
import numpy as np
import pytest

from bsi_keras.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DatasetUnavailable,
    augment_epoch,
    load_dataset,
)


def write_batch(path, images: np.ndarray, label_keys: dict[bytes, list[int]]) -> None:
    """One batch in the official format: rows of red, green, blue 32x32 planes."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {b"batch_label": b"fake", b"data": rows, b"filenames": [b"x.png"] * len(images)}
    with open(path, "wb") as f:
        pickle.dump({**batch, **label_keys}, f)


def fake_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def normalized(images: np.ndarray) -> np.ndarray:
    return (images / 255.0 - IMAGENET_MEAN) / IMAGENET_STD


def test_cifar10_from_the_official_pickle_folder(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    train = [fake_images(2, seed) for seed in range(5)]
    for i, images in enumerate(train, start=1):
        write_batch(folder / f"data_batch_{i}", images, {b"labels": [i, 9 - i]})
    test = fake_images(3, 7)
    write_batch(folder / "test_batch", test, {b"labels": [0, 1, 2]})
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert ds.x_train.shape == (10, 32, 32, 3) and ds.x_train.dtype == np.float32
    assert ds.y_train.tolist() == [1, 8, 2, 7, 3, 6, 4, 5, 5, 4] and ds.y_test.dtype == np.int32
    np.testing.assert_allclose(ds.x_train, normalized(np.concatenate(train)), rtol=1e-5)
    np.testing.assert_allclose(ds.x_test, normalized(test), rtol=1e-5)
    assert ds.num_classes == 10 and ds.source == str(folder)
    assert "ImageNet" in ds.info()["preprocessing"] and json.dumps(ds.info())


def test_cifar100_from_the_folder_itself_with_fine_labels(tmp_path):
    write_batch(
        tmp_path / "train",
        fake_images(4, 0),
        {b"fine_labels": [99, 0, 5, 5], b"coarse_labels": [19, 0, 1, 1]},
    )
    write_batch(
        tmp_path / "test", fake_images(2, 1), {b"fine_labels": [42, 7], b"coarse_labels": [3, 4]}
    )
    ds = load_dataset("cifar100", data_dir=tmp_path)
    assert ds.num_classes == 100 and ds.y_train.tolist() == [99, 0, 5, 5]
    assert ds.y_test.tolist() == [42, 7] and ds.x_test.shape == (2, 32, 32, 3)


def test_cifar10_from_npz_and_subsets_keep_the_augmentation(tmp_path):
    arrays = {
        "x_train": fake_images(6, 0),
        "y_train": np.arange(6).reshape(6, 1),
        "x_test": fake_images(2, 1),
        "y_test": np.array([[3], [4]]),
    }
    np.savez(tmp_path / "cifar10.npz", **arrays)
    ds = load_dataset("cifar10", data_dir=tmp_path, num_train=4)
    assert ds.x_train.shape == (4, 32, 32, 3) and ds.y_test.tolist() == [3, 4]
    assert ds.train_augmentation is not None and "subset" in ds.notes
    plain = load_dataset("cifar10", data_dir=tmp_path, augment=False)
    assert plain.train_augmentation is None and plain.notes["augmentation"] == "none"
    np.savez(tmp_path / "cifar10.npz", **{**arrays, "x_train": arrays["x_train"] / 255.0})
    with pytest.raises(ValueError, match="uint8"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_cifar_augmentation_pads_with_black(tmp_path):
    np.savez(
        tmp_path / "cifar10.npz",
        x_train=np.full((64, 32, 32, 3), 255, np.uint8),
        y_train=np.zeros(64),
        x_test=fake_images(1, 0),
        y_test=np.zeros(1),
    )
    ds = load_dataset("cifar10", data_dir=tmp_path)
    out = ds.train_augmentation(ds.x_train, 0, 0)  # the driver's call: (x, seed, epoch)
    black, white = -IMAGENET_MEAN / IMAGENET_STD, (1.0 - IMAGENET_MEAN) / IMAGENET_STD
    for channel in range(3):
        values = np.unique(out[..., channel])
        np.testing.assert_allclose(values, sorted([black[channel], white[channel]]), rtol=1e-6)


def test_cifar_offline_message_says_how_to_get_it(tmp_path, monkeypatch):
    def offline():
        raise Exception(
            "URL fetch failure on https://www.cs.toronto.edu: Name or service not known"
        )

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("cifar10", data_dir=tmp_path)  # an empty folder: nothing local either
    message = str(info.value)
    assert "Name or service not known" in message
    assert "cifar-10-python.tar.gz" in message and "--data-dir" in message
    assert "cifar-10-batches-py/" in message


def test_augmentation_is_a_pure_function_of_seed_and_epoch():
    x = np.random.default_rng(0).normal(size=(50, 32, 32, 3)).astype("float32")
    first = augment_epoch(x, seed=1, epoch=2)
    np.testing.assert_array_equal(first, augment_epoch(x.copy(), seed=1, epoch=2))
    assert not np.array_equal(first, augment_epoch(x, seed=1, epoch=3))
    assert not np.array_equal(first, augment_epoch(x, seed=2, epoch=2))
    assert first.shape == x.shape and first.dtype == x.dtype
    for dtype in ("uint8", "float64"):
        assert augment_epoch(x.astype(dtype), 1, 2).dtype == np.dtype(dtype)


def test_crops_are_shifted_copies_of_the_padded_image():
    x = np.random.default_rng(0).normal(size=(30, 32, 32, 3)).astype("float32")
    fill = np.array([-1.0, -2.0, -3.0], dtype="float32")
    out = augment_epoch(x, seed=0, epoch=0, fill=fill)
    padded = np.empty((30, 40, 40, 3), dtype="float32")
    padded[...] = fill
    padded[:, 4:36, 4:36] = x
    seen = set()
    for i in range(len(x)):
        matches = [
            (dy, dx, mirror)
            for dy in range(9)
            for dx in range(9)
            for mirror in (False, True)
            if np.array_equal(
                out[i], padded[i, dy : dy + 32, dx : dx + 32][:, :: -1 if mirror else 1]
            )
        ]
        assert len(matches) == 1, f"image {i} is no crop of its padded image"
        seen.add(matches[0])
    assert len({(dy, dx) for dy, dx, _ in seen}) > 10 and {m for *_, m in seen} == {False, True}


def test_flips_are_exact_mirrors_and_can_be_turned_off():
    x = np.random.default_rng(0).normal(size=(40, 32, 32, 3)).astype("float32")
    out = augment_epoch(x, seed=5, epoch=0, padding=0)
    mirrored = [np.array_equal(o, xi[:, ::-1]) for o, xi in zip(out, x)]
    kept = [np.array_equal(o, xi) for o, xi in zip(out, x)]
    assert all(m != k for m, k in zip(mirrored, kept)) and 5 < sum(mirrored) < 35
    np.testing.assert_array_equal(augment_epoch(x, 5, 0, padding=0, flip=False), x)


def test_offsets_and_flips_are_uniform():
    # Pixel values encode their coordinates, so the centre of a crop tells its shift.
    n, size, padding = 9000, 8, 2
    grid = (np.arange(size)[:, None] * size + np.arange(size)[None, :] + 1).astype("float32")
    out = augment_epoch(np.broadcast_to(grid[None, :, :, None], (n, size, size, 1)), 3, 0, padding)
    mirrored = out[:, 3, 3, 0] > out[:, 3, 4, 0]
    centre = np.where(mirrored, out[:, 3, 4, 0], out[:, 3, 3, 0]) - 1  # unmirrored (3, 3)
    dy, dx = centre // size - 3, centre % size - 3
    counts = np.bincount(((dy + padding) * 5 + dx + padding).astype(int), minlength=25)
    assert counts.size == 25 and counts.min() > 0.75 * n / 25 and counts.max() < 1.25 * n / 25
    assert abs(mirrored.mean() - 0.5) < 0.03


def test_augmentation_rejects_bad_input():
    with pytest.raises(ValueError, match="channels"):
        augment_epoch(np.zeros((4, 32, 32)), 0, 0)
    with pytest.raises(ValueError, match="padding"):
        augment_epoch(np.zeros((1, 4, 4, 1)), 0, 0, padding=4)
    assert augment_epoch(np.zeros((0, 32, 32, 3)), 0, 0).shape == (0, 32, 32, 3)
