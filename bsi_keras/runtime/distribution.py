"""Data-parallel training on every device of one or several processes, with Keras's own
distribution machinery.

On JAX, `keras.distribution.DataParallel` shards every batch over the devices and keeps the
computation global (the train step sees the whole batch). On TensorFlow,
`tf.distribute.MirroredStrategy` runs the step on each replica's share and sums the
gradients. Either way the schedule's batch sizes are global batches (each device gets
``B / devices``), the LR scaling rules act on the global batch, and ghost batch norm
normalizes whole virtual batches of consecutive examples, which stay on one device when
the virtual batch size divides ``B / devices``.

Several processes (one per GPU, or per machine) train one run together on JAX: each joins
the cluster (`join_cluster`, through `keras.distribution.initialize`; CPU collectives
through gloo) and feeds its share of every global batch (`process_share`): process ``p``
of ``P`` gives rows ``p B / P`` to ``(p + 1) B / P`` of each batch, which JAX assembles into
the global batch in process order, so the global batches, their ghost batches and the
arithmetic are those of one process. Only process 0 writes the run folder
(`process_folder`). The cluster comes from the environment (`Cluster.from_environment`):
Keras's own ``KERAS_DISTRIBUTION_JOB_ADDRESSES``, ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and
``KERAS_DISTRIBUTION_PROCESS_ID``; else torchrun's ``MASTER_ADDR``, ``MASTER_PORT``,
``WORLD_SIZE`` and ``RANK``; else SLURM's ``SLURM_NTASKS`` and ``SLURM_PROCID`` where
``MASTER_ADDR`` and ``MASTER_PORT`` are set (by the sbatch script: without them SLURM's tasks
are independent runs). A process joins its cluster as ``python -m bsi_keras.run`` starts
(`join_cluster`), before anything asks the backend for its devices. ``python -m
bsi_keras.launch --nproc N -- ...`` sets them for N processes of one machine. On
TensorFlow the multi-process path is `MultiWorkerMirroredStrategy`, not run here (see the
README's Scale section).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

# The backends whose Keras distribution machinery this module drives.
SUPPORTED_BACKENDS = ("jax", "tensorflow")


def check_supported(backend: str) -> None:
    """Refuse a backend that data-parallel training cannot run on.

    Args:
        backend: a Keras backend name, e.g. ``keras.backend.backend()``.

    Raises:
        ValueError: when ``backend`` is not in `SUPPORTED_BACKENDS`; the message names
            the supported ones and how to choose one.

    Example:

    >>> check_supported("jax")
    >>> check_supported("torch")
    Traceback (most recent call last):
    ...
    ValueError: needs the jax or tensorflow backend, not torch (set KERAS_BACKEND)
    """
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(
            f"needs the {' or '.join(SUPPORTED_BACKENDS)} backend, not {backend} "
            "(set KERAS_BACKEND)"
        )


def data_parallel() -> tuple[contextlib.AbstractContextManager, int]:
    """Train on every device from now on (every process's, after `join_cluster`).

    Returns:
        The scope to build and compile the model in, and the number of devices.

    Raises:
        ValueError: on a backend outside `SUPPORTED_BACKENDS`.

    Example:

    >>> scope, devices = data_parallel()
    >>> devices >= 1
    True
    """
    backend = keras.backend.backend()
    check_supported(backend)
    if backend == "jax":
        devices = keras.distribution.list_devices()  # of every process of the cluster
        # Each process feeds its own share (`process_share`): Keras is not to shard it again.
        distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
        keras.distribution.set_distribution(distribution)
        return contextlib.nullcontext(), len(devices)
    import tensorflow as tf

    # Every GPU, or else every (logical) CPU device.
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    strategy = tf.distribute.MirroredStrategy([device.name for device in devices])
    return strategy.scope(), strategy.num_replicas_in_sync


def scope(distribute: bool) -> contextlib.AbstractContextManager:
    """The scope a run's model is built in: data-parallel (`data_parallel`, said so on
    stdout) with ``distribute``, else none."""
    if not distribute:
        return contextlib.nullcontext()
    strategy_scope, devices = data_parallel()
    print(f"data-parallel over {devices} devices; batch sizes are global")
    return strategy_scope


@dataclass(frozen=True)
class Cluster:
    """The processes that train one run together.

    Attributes:
        coordinator: ``host:port`` of process 0 (None: one process).
        num_processes: how many processes.
        process_id: this process's index, 0 to ``num_processes - 1``.
    """

    coordinator: str | None = None
    num_processes: int = 1
    process_id: int = 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Cluster:
        """The cluster the environment variables describe (one process where none do).

        Raises:
            ValueError: a count or index that is no integer, out of range, or several
                processes without a coordinator; the message names the variable.

        Example:

        >>> Cluster.from_environment({"MASTER_ADDR": "node1", "MASTER_PORT": "1234",
        ...                           "WORLD_SIZE": "2", "RANK": "1"})
        Cluster(coordinator='node1:1234', num_processes=2, process_id=1)
        >>> Cluster.from_environment({})
        Cluster(coordinator=None, num_processes=1, process_id=0)
        """
        master = None
        if "MASTER_ADDR" in environ:
            master = f"{environ['MASTER_ADDR']}:{environ.get('MASTER_PORT', '')}"
        # Keras's list of addresses starts with the coordinator's.
        keras_coordinator = environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "").split(",")[0]
        for count, index, coordinator in (
            (
                "KERAS_DISTRIBUTION_NUM_PROCESSES",
                "KERAS_DISTRIBUTION_PROCESS_ID",
                keras_coordinator,
            ),
            ("WORLD_SIZE", "RANK", master),
            # SLURM's tasks are one cluster only where MASTER_ADDR says so (they may be
            # independent runs, such as the workers of a sweep).
            ("SLURM_NTASKS", "SLURM_PROCID", master) if master else ("", "", None),
        ):
            if count in environ:
                return cls._checked(environ, count, index, coordinator or None)
        return cls()

    @classmethod
    def _checked(
        cls, environ: Mapping[str, str], count: str, index: str, coordinator: str | None
    ) -> Cluster:
        values = {}
        for name in (count, index):
            try:
                values[name] = int(environ.get(name, "0"))
            except ValueError:
                raise ValueError(f"{name}={environ[name]!r} is not an integer") from None
        if values[count] < 1 or not 0 <= values[index] < values[count]:
            raise ValueError(
                f"{index}={values[index]} must be 0 to {count} - 1 ({count}={values[count]})"
            )
        if values[count] > 1 and (coordinator is None or coordinator.endswith(":")):
            raise ValueError(
                f"{count}={values[count]} processes need the coordinator's host:port "
                "(KERAS_DISTRIBUTION_JOB_ADDRESSES, or MASTER_ADDR and MASTER_PORT)"
            )
        return cls(coordinator if values[count] > 1 else None, values[count], values[index])


def join_cluster(cluster: Cluster | None = None) -> None:
    """Join ``cluster`` (nothing for one process), before anything asks the backend for its
    devices.

    Args:
        cluster: the processes (None: `Cluster.from_environment`).

    Raises:
        ValueError: several processes on a backend other than JAX; an environment that
            describes no cluster (`Cluster.from_environment`).
    """
    cluster = cluster or Cluster.from_environment()
    if cluster.num_processes == 1:
        return
    if keras.backend.backend() != "jax":
        raise ValueError(
            f"{cluster.num_processes} processes need the jax backend, not "
            f"{keras.backend.backend()} (TensorFlow's MultiWorkerMirroredStrategy is not "
            "wired in: see the README's Scale section)"
        )
    import jax

    # CPU processes reduce their gradients through gloo (GPUs through NCCL, by themselves).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize(cluster.coordinator, cluster.num_processes, cluster.process_id)


def check_run(distribute: bool, micro_batches: bool) -> None:
    """Refuse a run that the processes of the cluster cannot train together.

    Args:
        distribute: whether the run is data-parallel (``--distribute``).
        micro_batches: whether it accumulates micro-batches (``--max_physical_batch``).

    Raises:
        ValueError: several processes without ``distribute``, or with micro-batches.
    """
    count = processes()[1]
    if count > 1 and not distribute:
        raise ValueError(f"{count} processes train one run only data-parallel: add --distribute")
    if count > 1 and micro_batches:
        raise ValueError(f"{count} processes cannot share micro-batches (--max_physical_batch)")


def processes() -> tuple[int, int]:
    """``(this process's index, the number of processes)`` of the run ((0, 1) alone)."""
    if keras.backend.backend() != "jax":
        return 0, 1
    import jax

    return jax.process_index(), jax.process_count()


def process_share(arrays: Any, batch_size: int) -> tuple[Any, int]:
    """This process's share of an epoch's arrays, batch after batch, and its batch size.

    Process ``p`` of ``P`` keeps rows ``p b / P`` to ``(p + 1) b / P`` of each batch of ``b``
    rows (``batch_size``, the last batch possibly shorter); alone it keeps everything.

    Args:
        arrays: a structure of arrays (None entries allowed) of the epoch's rows, in order.
        batch_size: the global batch size.

    Raises:
        ValueError: a batch that ``P`` processes cannot split evenly.

    Example:

    >>> process_share((np.arange(8), None), 4)
    ((array([0, 1, 2, 3, 4, 5, 6, 7]), None), 4)
    """
    index, count = processes()
    if count == 1:
        return arrays, batch_size
    rows = len(next(a for a in keras.tree.flatten(arrays) if a is not None))
    return keras.tree.map_structure(
        lambda a: None if a is None else a[share_rows(rows, batch_size, index, count)], arrays
    ), batch_size // count


def share_rows(rows: int, batch_size: int, index: int, count: int) -> np.ndarray:
    """The rows process ``index`` of ``count`` feeds of ``rows`` rows in batches.

    Raises:
        ValueError: a batch that ``count`` processes cannot split evenly.

    >>> share_rows(10, 4, 1, 2).tolist()  # batches 0-3, 4-7 and 8-9
    [2, 3, 6, 7, 9]
    """
    shares = []
    for start in range(0, rows, batch_size):
        size = min(batch_size, rows - start)
        if size % count:
            raise ValueError(
                f"a batch of {size} examples does not split over {count} processes: every "
                f"batch size (and the epoch's last batch, or use --drop_remainder) must be a "
                f"multiple of {count}"
            )
        share = size // count
        shares.append(np.arange(start + index * share, start + (index + 1) * share))
    return np.concatenate(shares) if shares else np.arange(0)


@contextlib.contextmanager
def process_folder(run_dir: str | os.PathLike, resume: bool) -> Iterator[Path]:
    """The folder this process writes the run into: ``run_dir`` for process 0 (or alone);
    for any other, a private temporary copy (of ``run_dir``'s files, to resume from its
    checkpoint), removed at the end, so the run folder is written by one process only."""
    if processes()[0] == 0:
        yield Path(run_dir)
        return
    with tempfile.TemporaryDirectory(prefix="bsi_keras_process_") as scratch:
        copy = Path(scratch) / Path(run_dir).name
        if resume:
            # run_dir's files but its locks, snapshots and TensorBoard logs, and but the
            # temporary files of process 0's atomic writes (``X.tmp``, ``X.tmp.keras``),
            # which its rename may take away while they are copied.
            ignore = shutil.ignore_patterns(".*", "weights", "tensorboard", "*.tmp", "*.tmp.*")
            shutil.copytree(run_dir, copy, ignore=ignore)
        yield copy
