"""bsi_keras: large-batch training research on Keras 3.

The public API a notebook needs:

- `schedules`: batch-size / learning-rate schedules (pure data);
- `fit`: run a schedule through ``model.fit`` with callbacks that see one run;
- `train`: the same into a run folder (config, log, checkpoint, summary);
- `GhostBatchNormalization`: batch norm over virtual batches, every backend;
- `get_model`, `load_dataset`, `get_optimizer`: models, data and optimizers by name;
- `plots`: figures from run folders.
"""

# ruff: noqa: E402 (the imports below follow prefer_onednn)
from bsi_keras.runtime.cpu import prefer_onednn

prefer_onednn()  # before Keras imports TensorFlow, which reads it once

from bsi_keras import schedules
from bsi_keras.data import load_dataset
from bsi_keras.driver import fit
from bsi_keras.experiment import train
from bsi_keras.layers import GhostBatchNormalization
from bsi_keras.models import get_model
from bsi_keras.optimizers import get_optimizer

__all__ = [
    "GhostBatchNormalization",
    "fit",
    "get_model",
    "get_optimizer",
    "load_dataset",
    "schedules",
    "train",
]
__version__ = "0.1.0"
