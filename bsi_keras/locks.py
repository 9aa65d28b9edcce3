"""`FolderLock`: one writer per folder, by an atomic lock file that names its owner.

Any folder can be locked: a run folder while a process trains into it, a sweep folder while a
sweep drains it. The lock is the file ``.lock`` in the folder, created with
``O_CREAT | O_EXCL`` (atomic on local file systems), holding JSON ``{"pid", "host",
"started"}``. A lock whose owner was on this host and is no longer alive (killed, crashed) is
stale and taken over; a live owner, or one on another host, makes `FolderLock.acquire` raise
`FolderLocked` naming it.

A lock may also keep a heartbeat (``heartbeat_s``): a thread touches the file every
``heartbeat_s`` seconds while it is held, and with ``stale_after_s`` a lock of another host
whose file has not been touched for that long is stale too. Its pid cannot be asked across
hosts, so silence is the only sign that a worker on another machine is gone; a few missed
beats (the default claim: beats every 30 s, stale after 300 s) tolerate a busy file server
and the clocks of machines kept in step by NTP (milliseconds apart), and bound how long a
killed worker's run waits for another one to take it over. Sweeps claim their runs so
(`bsi_keras.cli.claims`).

Example:

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     with FolderLock(d) as lock:
...         FolderLock(d).acquire()  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
bsi_keras.locks.FolderLocked: ... is in use by process ... on ... since ...
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

LOCK_NAME = ".lock"
UNREADABLE_GRACE_S = 5.0  # how long an owner may take to write its lock file


class FolderLocked(RuntimeError):
    """Another live process holds the folder's lock.

    Attributes:
        owner: the lock file's contents (``pid``, ``host``, ``started``), {} if unreadable.
    """

    def __init__(self, folder: Path, owner: dict[str, Any]):
        who = f"process {owner.get('pid', '?')} on {owner.get('host', '?')}"
        super().__init__(
            f"{folder} is in use by {who} since {owner.get('started', '?')}; wait for it to "
            f"end, or if that process is gone, delete {folder / LOCK_NAME}"
        )
        self.owner = owner


class FolderLock:
    """The lock of ``folder`` (created, with its parents, if missing).

    Args:
        folder: the folder to lock.
        name: the lock file's name in ``folder``.
        heartbeat_s: touch the lock file this often while it is held (None: never).
        stale_after_s: a lock of another host untouched this long is stale (None: never).

    Attributes:
        taken_over: the owner of the stale lock `acquire` replaced (None: there was none).

    Use as a context manager, or call `acquire` and `release`. `release` also removes the
    folder if the lock created it and it is still empty, so a refused start leaves nothing.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        name: str = LOCK_NAME,
        heartbeat_s: float | None = None,
        stale_after_s: float | None = None,
    ):
        self.folder = Path(folder)
        self.path = self.folder / name
        self.held = False
        self.taken_over: dict[str, Any] | None = None
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self._created_folder = False
        self._stop_beating = threading.Event()

    def acquire(self) -> FolderLock:
        """Take the lock, taking over a stale one.

        Raises:
            FolderLocked: a live process holds it.
            OSError: the folder cannot be created or written.
        """
        if self.folder.exists() and not self.folder.is_dir():
            raise NotADirectoryError(f"{self.folder} exists and is not a folder")
        if not self.folder.exists():
            with contextlib.suppress(FileExistsError):  # another process made it meanwhile
                self.folder.mkdir(parents=True)
                self._created_folder = True
        for _ in range(2):  # a second try after removing a stale lock
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = read_owner(self.path)
                if not is_stale(owner, self.path, self.stale_after_s):
                    raise FolderLocked(self.folder, owner) from None
                self.path.unlink(missing_ok=True)
                self.taken_over = owner
                continue
            with os.fdopen(descriptor, "w") as f:
                json.dump(_me(), f)
            self.held = True
            if self.heartbeat_s:
                self._stop_beating.clear()
                threading.Thread(target=self._beat, daemon=True).start()
            return self
        raise FolderLocked(self.folder, read_owner(self.path))

    def release(self) -> None:
        """Give the lock back (only if this object holds it)."""
        if not self.held:
            return
        self._stop_beating.set()
        self.path.unlink(missing_ok=True)
        self.held = False
        if self._created_folder and not any(self.folder.iterdir()):
            self.folder.rmdir()

    def _beat(self) -> None:
        """Touch the lock file every ``heartbeat_s`` until released (a daemon thread: it
        dies with its process, which is what makes the silence of a killed one visible)."""
        while not self._stop_beating.wait(self.heartbeat_s):
            with contextlib.suppress(OSError):  # released meanwhile, or the disk is away
                os.utime(self.path)

    def __enter__(self) -> FolderLock:
        return self if self.held else self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def read_owner(path: Path) -> dict[str, Any]:
    """The owner recorded in a lock file ({} if it is unreadable or half-written)."""
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def is_stale(owner: dict[str, Any], path: Path, stale_after_s: float | None = None) -> bool:
    """Whether the lock ``path`` (held by ``owner``) may be taken over.

    Stale: a lock of this host whose process is gone; one still unreadable a few seconds
    after it was created (left by a kill between creating the file and writing it); with
    ``stale_after_s``, one of another host whose file nobody touched for that long.
    """
    if not owner:
        return _age(path) > UNREADABLE_GRACE_S
    if owner.get("host") != socket.gethostname():
        return stale_after_s is not None and _age(path) > stale_after_s
    return not _alive(owner.get("pid"))


def _age(path: Path) -> float:
    """Seconds since ``path`` was last written or touched (infinite if it is gone)."""
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno == errno.EPERM  # alive, owned by another user
    return True


def _me() -> dict[str, Any]:
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
