"""What a run is built of before it trains: its model, with its weights, and its physical
batch where ``--max_physical_batch auto`` asks the device (`bsi_keras.runtime.physical_batch`)."""

from __future__ import annotations

from collections.abc import Mapping

import keras

from bsi_keras.cli.checks import SpecError
from bsi_keras.cli.spec import RunSpec
from bsi_keras.data import Dataset
from bsi_keras.runtime import physical_batch
from bsi_keras.schedules import BaseSchedule


def build_model(spec: RunSpec, dataset: Dataset) -> keras.Model:
    """The spec's model for the dataset's inputs, with the ``--weights`` it asks for.

    Raises:
        SpecError: naming ``--weights``, for ImageNet weights Keras cannot download or a
            weights file that does not fit the model.
    """
    from bsi_keras.models import get_model

    options, weights = spec.model, spec.model.weights
    try:
        model = get_model(
            options.name,
            input_shape=dataset.input_shape,
            num_classes=dataset.num_classes,
            virtual_batch_size=options.mini_batch_size or None,
            weight_decay=options.weight_decay,
            bn_statistics=options.bn_statistics,
            **({"weights": weights} if weights == "imagenet" else {}),
        )
    except (ValueError, TypeError):
        raise
    except Exception as error:  # keras.utils.get_file raises a bare Exception offline
        if weights != "imagenet":
            raise
        raise SpecError(
            "--weights",
            f"Keras could not download the ImageNet weights of {options.name} ({error}); "
            "without network, pass a local .weights.h5 or .keras file instead",
        ) from None
    if weights not in (None, "imagenet"):
        try:
            model.load_weights(weights)
        except Exception as error:  # h5py's and Keras's errors of a file that does not fit
            raise SpecError(
                "--weights",
                f"{weights} does not fit {options.name} built for {dataset.name}: {error}",
            ) from None
    return model


def check_model(spec: RunSpec, dataset: Dataset) -> None:
    """Refuse a model that cannot take the dataset's inputs before any run starts."""
    try:
        build_model(spec, dataset)
    except SpecError:
        raise
    except (ValueError, TypeError, MemoryError, *_resource_errors()) as error:
        raise SpecError(
            "--model",
            f"{spec.model.name} cannot be built for {dataset.name}'s inputs "
            f"{dataset.input_shape}: {error}",
        ) from None


def probed_physical_batch(
    spec: RunSpec,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    dataset: Dataset,
    schedule: BaseSchedule,
    record: Mapping[str, object],
) -> tuple[int | None, Mapping[str, object]]:
    """The probed physical batch where ``--max_physical_batch auto`` asks for one, and the
    record for ``config.json`` with the probe's measurements."""
    if spec.step.max_physical_batch != physical_batch.AUTO:
        return None, record
    largest = min(physical_batch.LARGEST, max(s.batch_size for s in schedule.planned()))
    smallest = min(spec.model.mini_batch_size or 32, largest)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    chosen, throughput = physical_batch.probe(
        model,
        dataset.input_shape,
        dataset.num_classes,
        physical_batch.candidates(smallest, largest),
    )
    print(f"physical batch: {chosen} (examples/s by size: {throughput})")
    probed = {"chosen": chosen, "examples_per_second": [[b, s] for b, s in throughput.items()]}
    return chosen, {**record, "max_physical_batch": probed}


def _resource_errors() -> tuple[type[Exception], ...]:
    """What the backend raises for a model too large for the device's memory."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return (tf.errors.ResourceExhaustedError, tf.errors.InvalidArgumentError)
    return (RuntimeError,)  # JAX's XlaRuntimeError, torch's OutOfMemoryError
