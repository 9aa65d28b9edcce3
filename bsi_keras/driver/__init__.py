"""The schedule driver: `fit` runs a batch-size / learning-rate schedule through `model.fit`.

Keras's ``fit`` takes one batch size. `fit` here calls ``model.fit`` once per epoch with that
epoch's batch size and learning rate, and makes the calls look like one run to the user's
callbacks: ``on_train_begin``/``on_train_end`` once, global epoch numbers, one `History`.
Around it, it times every epoch, counts parameter updates, evaluates, stops a diverging
run, and (with ``checkpoint_dir``) checkpoints after every epoch so a killed run resumes
exactly where it stopped.

Read `loop` first (the epoch loop); the rest are its pieces: `feeds` (the epoch's data;
`tf_feed` its TensorFlow part), `bridge` (callbacks, epoch timing), `execution` (several
steps per call of the train function), `lr` (the learning rate), `signals` (SIGINT/SIGTERM).
`RunState`, what a checkpoint holds besides the variables, lives with the checkpoint's
format in `bsi_keras.checkpoint`.
"""

from bsi_keras.checkpoint import RunState
from bsi_keras.driver.fit import fit
from bsi_keras.driver.signals import TrainingInterrupted
from bsi_keras.schedules import EpochPlan

__all__ = ["EpochPlan", "RunState", "TrainingInterrupted", "fit"]
