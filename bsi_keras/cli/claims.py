"""Claims: several sweep workers drain one sweep, each run trained by exactly one of them.

Any number of ``python -m bsi_keras.sweep RECIPE`` processes may share a sweep folder (on
one machine, or on several machines sharing a file system). A worker trains a run only
while it holds the run's claim: the file ``.claim`` in the run folder, a
`bsi_keras.locks.FolderLock` created atomically (``O_CREAT | O_EXCL``) that names its
worker (pid, host, start time). Once it holds the claim, the worker looks at the run again
(another worker may have ended it meanwhile) and starts, resumes or skips it.

A claim is released when its run ends, is refused or fails, and when its worker stops on
a signal (the run left resumable for whoever claims it next). A claim whose worker is gone
is taken over:

- on the same host, at once, when its pid is no longer alive (a worker killed with SIGKILL,
  or a machine's crash followed by a restart);
- on another host, where a pid cannot be asked, when its heartbeat stops: the holder touches
  the file every `HEARTBEAT_S` seconds and a claim untouched for `STALE_AFTER_S` is stale.
  Ten missed beats are far beyond a busy file server's delay or the skew of clocks kept by
  NTP, and five minutes is short next to a training run. The run's own ``.lock``, left by
  the same dead worker, is removed with it (a lock of another host is never stale by
  itself).

A worker goes through its runs in the recipe's order, claiming the first unclaimed one;
when only runs claimed by others are left, it waits for them (polling every `POLL_S`
seconds) and takes over those whose worker dies, so a run is never lost while one worker
is left. ``--shard K/N`` gives a worker the runs ``K, K + N, K + 2N, ...`` only (0-based, as
``SLURM_ARRAY_TASK_ID`` of ``--array=0-(N-1)``); claims still keep two workers of one shard
apart.

Example:

>>> parse_shard("1/4")
(1, 4)
>>> [name for i, name in enumerate("abcde") if in_shard(i, (1, 2))]
['b', 'd']
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bsi_keras.locks import LOCK_NAME, FolderLock, FolderLocked, read_owner
from bsi_keras.run_folder import CLAIM_NAME

HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0
POLL_S = 1.0


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` as ``(K, N)``, for ``--shard`` (``0 <= K < N``).

    Raises:
        argparse.ArgumentTypeError: any other text, saying what is allowed.

    >>> parse_shard("4/4")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: 4/4: K must be 0 to N - 1 (0-based, as SLURM_ARRAY_TASK_ID of --array=0-3)
    """  # noqa: E501
    index, _, count = text.partition("/")
    try:
        shard = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not K/N (this worker's index K of N workers, e.g. 0/4, or "
            "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)"
        ) from None
    if shard[1] < 1:
        raise argparse.ArgumentTypeError(f"{text}: N must be at least 1")
    if not 0 <= shard[0] < shard[1]:
        raise argparse.ArgumentTypeError(
            f"{text}: K must be 0 to N - 1 (0-based, as SLURM_ARRAY_TASK_ID of "
            f"--array=0-{shard[1] - 1})"
        )
    return shard


def in_shard(index: int, shard: tuple[int, int] | None) -> bool:
    """Whether the run at ``index`` (in the sweep's order) belongs to ``shard`` (None: all)."""
    return shard is None or index % shard[1] == shard[0]


def claim(run_folder: Path) -> FolderLock | None:
    """This worker's claim of ``run_folder`` (created if missing), or None: another live
    worker holds it. A stale claim is taken over, with the run lock its worker left."""
    lock = FolderLock(run_folder, CLAIM_NAME, heartbeat_s=HEARTBEAT_S, stale_after_s=STALE_AFTER_S)
    try:
        lock.acquire()
    except FolderLocked:
        return None
    if lock.taken_over:
        owner = lock.taken_over
        print(
            f"{run_folder}: taking over the claim of process {owner.get('pid')} on "
            f"{owner.get('host')}, which is gone"
        )
        run_lock = run_folder / LOCK_NAME
        left = read_owner(run_lock)
        if (left.get("pid"), left.get("host")) == (owner.get("pid"), owner.get("host")):
            run_lock.unlink(missing_ok=True)
    return lock


def drain(
    names: Sequence[str],
    folder: Path,
    run: Callable[[str], object],
    stopped: Callable[[], bool],
    poll_s: float = POLL_S,
) -> None:
    """Call ``run(name)`` for each of ``names`` once, under its claim in ``folder / name``;
    wait for the runs claimed by other workers, taking over those whose worker dies.

    Args:
        names: the runs of this worker (its shard), in order.
        folder: the sweep folder.
        run: starts, resumes or skips one run (it reads the run's status itself).
        stopped: whether to stop (a signal); checked after each run and while waiting.
        poll_s: seconds between looks at the runs claimed by others.
    """
    left = list(names)
    waited: set[str] = set()
    while left and not stopped():
        for name in list(left):
            with _claimed(folder / name) as held:
                if held:
                    left.remove(name)
                    run(name)
            if stopped():
                return
        others = [name for name in left if name not in waited]
        if others:
            print(f"waiting for runs other workers hold: {', '.join(others)}")
            waited.update(others)
        if left:
            time.sleep(poll_s)


@contextlib.contextmanager
def _claimed(run_folder: Path) -> Iterator[bool]:
    """Hold the claim of ``run_folder`` within the block (yields whether it was won)."""
    lock = claim(run_folder)
    try:
        yield lock is not None
    finally:
        if lock is not None:
            lock.release()
