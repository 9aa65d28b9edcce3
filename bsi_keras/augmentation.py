"""The CIFAR augmentation: random crops of the padded images and horizontal flips, per epoch.

A pure function of the images, the run's seed and the epoch, so that a resumed run sees the
same images as the uninterrupted one (`bsi_keras.data.Dataset.train_augmentation` applies it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Added to the (seed, epoch) of the augmentation's random stream, so that its draws are
# independent of the driver's shuffle, which is seeded by (seed, epoch) alone.
_AUGMENT_STREAM = 0x617567


def augment_epoch(
    x: np.ndarray,
    seed: int,
    epoch: int,
    padding: int = 4,
    flip: bool = True,
    fill: float | Sequence[float] = 0.0,
) -> np.ndarray:
    """One epoch's random crops of the padded images and horizontal flips.

    The standard CIFAR augmentation (torchvision's ``RandomCrop(32, padding=4)`` then
    ``RandomHorizontalFlip()``): each image is padded by ``padding`` pixels of ``fill`` on
    every side, a window of the original size is cut at a uniformly drawn offset, and the
    result is mirrored left-right with probability 1/2. The draws depend only on ``seed``,
    ``epoch`` and the number of images, so a resumed run augments exactly as the
    uninterrupted one. Vectorized: the images are grouped by their (offset, flip) draw and
    each group is one slice copy.

    Args:
        x: images, ``(n, height, width, channels)``.
        seed: the run's seed.
        epoch: the 0-based epoch.
        padding: pixels of padding on each side (the largest shift), below the image size.
        flip: whether to mirror half of the images.
        fill: value of the padding, one number or one per channel (use the normalized
            value of black to match padding raw pixels with zeros).

    Returns:
        A new array of the same shape and dtype.

    Example:

    >>> x = np.arange(2 * 4 * 4 * 1, dtype="float32").reshape(2, 4, 4, 1)
    >>> a, b = augment_epoch(x, seed=0, epoch=3, padding=1), augment_epoch(x, 0, 3, padding=1)
    >>> a.shape == x.shape and a.dtype == x.dtype and bool((a == b).all())
    True
    """
    if x.ndim != 4:
        raise ValueError(f"augment_epoch needs (n, height, width, channels) images, got {x.shape}")
    if not 0 <= padding < min(x.shape[1:3]):
        raise ValueError(f"padding must be in [0, {min(x.shape[1:3])}), got {padding}")
    n = len(x)
    if n == 0:
        return x.copy()
    rng = np.random.default_rng([seed, epoch, _AUGMENT_STREAM])
    shifts = rng.integers(-padding, padding + 1, size=(n, 2))
    mirrored = rng.integers(0, 2, size=n) if flip else np.zeros(n, dtype=int)
    span = 2 * padding + 1
    group_of = ((shifts[:, 0] + padding) * span + shifts[:, 1] + padding) * 2 + mirrored
    order = np.argsort(group_of, kind="stable")
    starts = np.flatnonzero(np.diff(group_of[order])) + 1
    out = np.empty_like(x)
    out[...] = np.asarray(fill, dtype=x.dtype)
    for members in np.split(order, starts):
        first = members[0]
        _paste_shifted(out, x, members, *shifts[first], bool(mirrored[first]))
    return out


def _paste_shifted(
    out: np.ndarray, x: np.ndarray, members: np.ndarray, dy: int, dx: int, mirror: bool
) -> None:
    """``out[i, r, c] = x[i, r + dy, c + dx]`` where that exists, mirrored if asked."""
    height, width = x.shape[1:3]
    window = x[members, max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)]
    top, left = max(-dy, 0), max(-dx, 0)
    rows, cols = window.shape[1:3]
    if mirror:
        window = window[:, :, ::-1]
        left = width - left - cols
    out[members, top : top + rows, left : left + cols] = window
