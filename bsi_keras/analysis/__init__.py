"""Reading trained solutions back: sharpness, interpolation, loss landscapes.

- `load_solution`: a run folder's model at one epoch (weights kept with ``--saveState``);
- `sharpness`: Keskar et al.'s Metric 2.1 (full space or a random subspace), and
  `first_order_sharpness`, what it would be from the gradient alone;
- `interpolate`: loss and accuracy along the line between two solutions;
- `random_direction`, `target_direction`, `loss_landscape`: Li et al.'s filter-normalized
  1-D and 2-D landscapes;
- `rescale_before_batch_norm`: the same network with a layer before batch norm scaled,
  to tell the scale of the weights from the shape of the loss;
- `critical_batch_sizes`: Merrill et al.'s critical batch size from short branches at
  several batch sizes (``python -m bsi_keras.critical_batch``);
- `figures`: their plots.

Example:

>>> from bsi_keras import analysis
>>> analysis.parse_range("-1:1:3").tolist()
[-1.0, 0.0, 1.0]
"""

from bsi_keras.analysis import figures
from bsi_keras.analysis.critical_batch import (
    CriticalBatchResult,
    critical_batch,
    critical_batch_sizes,
)
from bsi_keras.analysis.interpolation import (
    BN_STATS,
    Interpolation,
    interpolate,
    recompute_batch_norm_statistics,
)
from bsi_keras.analysis.landscape import (
    Landscape,
    filter_axes,
    loss_landscape,
    normalize_direction,
    parse_range,
    random_direction,
    target_direction,
)
from bsi_keras.analysis.rescaling import rescale_before_batch_norm
from bsi_keras.analysis.sharpness import (
    EPSILONS,
    SUBSPACE_DIM,
    Sharpness,
    box_half_widths,
    first_order_sharpness,
    random_subspace,
    sharpness,
)
from bsi_keras.analysis.solution import Evaluation, evaluate, load_solution, weight_values

__all__ = [
    "BN_STATS",
    "EPSILONS",
    "SUBSPACE_DIM",
    "CriticalBatchResult",
    "Evaluation",
    "Interpolation",
    "Landscape",
    "Sharpness",
    "box_half_widths",
    "critical_batch",
    "critical_batch_sizes",
    "evaluate",
    "figures",
    "filter_axes",
    "first_order_sharpness",
    "interpolate",
    "load_solution",
    "loss_landscape",
    "normalize_direction",
    "parse_range",
    "random_direction",
    "random_subspace",
    "recompute_batch_norm_statistics",
    "rescale_before_batch_norm",
    "sharpness",
    "target_direction",
    "weight_values",
]
