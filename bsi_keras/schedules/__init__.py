"""Batch-size and learning-rate schedules as pure data.

A schedule answers one question for the driver: *which batch size and learning rate does
epoch ``e`` use?* (`BaseSchedule.at`). A fixed schedule is a list of `Phase` objects; the
builders (`constant`, `decay_lr`, `increase_bs`, `hybrid`, `from_phases`, ...) produce the
schedules of Smith et al. 2017 ("Don't Decay the Learning Rate, Increase the Batch Size")
and of the reference reproductions. Nothing here imports Keras, so every schedule can be
inspected and tested without training anything.

The package, one concept a module:

- `phases`: `Phase`, `EpochSetting`, `EpochPlan` (the one place that counts updates),
  `ScheduleError`, the phase text ``EPOCHSxBATCH@LR,...``;
- `base`: the protocol `BaseSchedule`, the fixed `Schedule`, `FunctionSchedule`;
- `builders`: the fixed schedules by name;
- `transforms`: LR scaling, regime adaptation, the per-update curve;
- `curves`: the per-update curves (warmup, cosine, cyclic) as composable functions;
- `ramps`: batch ramps from LR schedules (`from_lr_schedule`: Smith et al.'s SGD rule and
  Seesaw's Adam rule; `seesaw`), and `cbs_warmup` from a measured critical batch size;
- `adaptive`: `AdaptiveSchedule`, the batch size from the measured noise scale;
- `config`: `from_config`.

Example:

>>> s = increase_bs(epochs=6, batch_size=100, lr=0.1, milestones=[2, 4], factor=5)
>>> [(p.epochs, p.batch_size, p.lr) for p in s.phases]
[(2, 100, 0.1), (2, 500, 0.1), (2, 2500, 0.1)]
>>> s.total_updates(60_000)
1488
"""

from bsi_keras.schedules.adaptive import AdaptiveSchedule
from bsi_keras.schedules.base import BaseSchedule, FunctionSchedule, Schedule
from bsi_keras.schedules.builders import (
    CAP_POLICIES,
    constant,
    decay_lr,
    fast_bsi,
    from_phases,
    hybrid,
    increase_bs,
    mixed_bsi,
    stepped,
)
from bsi_keras.schedules.config import from_config
from bsi_keras.schedules.curves import (
    CURVE_SHAPES,
    Curve,
    StepCurve,
    cosine_decay,
    linear_warmup,
    triangular_cycle,
    unchanged,
)
from bsi_keras.schedules.phases import (
    EpochPlan,
    EpochSetting,
    Phase,
    ScheduleError,
    format_phases,
    noise_scale,
    parse_phases,
    updates_per_epoch,
)
from bsi_keras.schedules.ramps import (
    RAMP_RULES,
    cbs_warmup,
    cosine_lr,
    from_lr_schedule,
    seesaw,
)
from bsi_keras.schedules.transforms import (
    SCALING_RULES,
    scale_lr,
    scaled_lr,
    stretch_epochs,
    with_curve,
)

__all__ = [
    "CAP_POLICIES",
    "CURVE_SHAPES",
    "RAMP_RULES",
    "SCALING_RULES",
    "AdaptiveSchedule",
    "BaseSchedule",
    "Curve",
    "EpochPlan",
    "EpochSetting",
    "FunctionSchedule",
    "Phase",
    "Schedule",
    "ScheduleError",
    "StepCurve",
    "cbs_warmup",
    "constant",
    "cosine_decay",
    "cosine_lr",
    "decay_lr",
    "fast_bsi",
    "format_phases",
    "from_config",
    "from_lr_schedule",
    "from_phases",
    "hybrid",
    "increase_bs",
    "linear_warmup",
    "mixed_bsi",
    "noise_scale",
    "parse_phases",
    "scale_lr",
    "scaled_lr",
    "seesaw",
    "stepped",
    "stretch_epochs",
    "triangular_cycle",
    "unchanged",
    "updates_per_epoch",
    "with_curve",
]
