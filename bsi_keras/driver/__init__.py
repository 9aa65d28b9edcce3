"""The schedule driver (the code moves into this package's modules next)."""

from bsi_keras.driver.loop import TrainingInterrupted, fit

__all__ = ["TrainingInterrupted", "fit"]
