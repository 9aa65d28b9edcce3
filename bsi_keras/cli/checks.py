"""The one error of a run spec, and the value checks that raise it naming the flag.

Example:

>>> positive_int("--epochs", 0)
Traceback (most recent call last):
...
bsi_keras.cli.checks.SpecError: argument --epochs: must be a positive integer, got 0
"""

from __future__ import annotations

import math


class SpecError(ValueError):
    """A run setting is invalid; the message names its command-line flag.

    Args:
        flag: the flag, e.g. ``"--lr"``.
        message: what is wrong, e.g. ``"must be a positive number, got -1"``.

    Attributes:
        flag, message: as given; ``str()`` is ``"argument --lr: must be ..."``, argparse's
            form, so the command line prints it with its usage line.
    """

    def __init__(self, flag: str, message: str):
        super().__init__(f"argument {flag}: {message}")
        self.flag = flag
        self.message = message


def is_int(value: object) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(flag: str, value: object, optional: bool = False) -> None:
    """Refuse anything but an integer >= 1 (or None where ``optional``)."""
    if optional and value is None:
        return
    if not (is_int(value) and value >= 1):
        raise SpecError(flag, f"must be a positive integer, got {value}")


def non_negative_int(flag: str, value: object, optional: bool = False) -> None:
    """Refuse anything but an integer >= 0 (or None where ``optional``)."""
    if optional and value is None:
        return
    if not (is_int(value) and value >= 0):
        raise SpecError(flag, f"must be >= 0, got {value}")


def positive_number(flag: str, value: object, optional: bool = False) -> None:
    """Refuse anything but a finite number > 0 (or None where ``optional``)."""
    if optional and value is None:
        return
    if not (is_number(value) and value > 0):
        raise SpecError(flag, f"must be a positive number, got {value}")


def non_negative_number(flag: str, value: object, optional: bool = False) -> None:
    """Refuse anything but a finite number >= 0 (or None where ``optional``)."""
    if optional and value is None:
        return
    if not (is_number(value) and value >= 0):
        raise SpecError(flag, f"must be >= 0, got {value}")


def one_of(flag: str, value: object, choices: tuple[str, ...] | list[str]) -> None:
    """Refuse a value outside ``choices``."""
    if value not in choices:
        raise SpecError(f"{flag}", f"invalid choice: {value!r} (choose from {', '.join(choices)})")
