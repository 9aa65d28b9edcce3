"""Markdown tables: the one writer of the rows that reports, studies and the README print.

Example:

>>> print("\\n".join([*head(["run", "accuracy (%)"]), row(["a", mean_std(88.5, 0.24, 2)])]))
| run | accuracy (%) |
| --- | --- |
| a | 88.50 +- 0.24 |
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def row(cells: Sequence[object]) -> str:
    """One table row of ``cells``, each written with `str`."""
    return "| " + " | ".join(map(str, cells)) + " |"


def head(header: Sequence[object]) -> list[str]:
    """The header row of a table and the separator line under it."""
    return [row(header), "|" + " --- |" * len(header)]


def mean_std(mean: float, std: float, digits: int) -> str:
    """``mean +- std`` to ``digits`` after the point; ``n/a`` for the std of a single value.

    Args:
        mean: the mean.
        std: the sample standard deviation (NaN when there is one value).
        digits: digits after the point of both.
    """
    spread = "n/a" if math.isnan(std) else f"{std:.{digits}f}"
    return f"{mean:.{digits}f} +- {spread}"
