"""`from_config`: any schedule back from the config a run folder stores."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bsi_keras.schedules.adaptive import AdaptiveSchedule
from bsi_keras.schedules.base import BaseSchedule, Schedule


def from_config(config: Mapping[str, Any]) -> BaseSchedule:
    """Rebuild any schedule from its ``to_config()`` (as ``config.json`` stores it).

    Args:
        config: what `BaseSchedule.to_config` returned (a `FunctionSchedule` comes back as
            the fixed `Schedule` of its evaluated phases).

    Example:

    >>> from bsi_keras.schedules import increase_bs
    >>> s = increase_bs(6, 100, 0.1, [2, 4], 5)
    >>> from_config(s.to_config()) == s
    True
    >>> a = AdaptiveSchedule(4, 100, 0.1, theta=0.5)
    >>> from_config(a.to_config()) == a
    True
    """
    if "adaptive" in config:
        options = dict(config["adaptive"])
        if options.get("theta") is not None:
            options.pop("coefficient", None)  # derived from theta
        return AdaptiveSchedule(**options)
    return Schedule.from_config(config)
