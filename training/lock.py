"""One training run at a time across processes: an OS file lock that dies with its holder.

``fcntl.flock`` on ``settings.lock_path``, non-blocking. The kernel releases the lock when the
holding process exits for any reason (SIGKILL included), so a stale lock file never blocks a run: the
file stays on disk and only records who held it last (pid and start time, one ``key=value`` a line).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


class LockHeldError(RuntimeError):
    """Another process holds the training lock."""

    def __init__(self, lock_path: Path, holder: str) -> None:
        super().__init__(f"another training run holds the lock {lock_path} ({holder})")
        self.lock_path = lock_path
        self.holder = holder


def describe_holder(lock_path: Path) -> str:
    """What the lock file says about its holder, e.g. ``pid 4242, started 2026-11-26T10:00:00+00:00``."""
    try:
        fields = dict(
            line.split("=", 1) for line in lock_path.read_text(encoding="utf-8").splitlines() if "=" in line
        )
    except OSError:
        return "holder unknown"
    pid = fields.get("pid", "?")
    started = fields.get("started", "?")
    return f"pid {pid}, started {started}"


@contextmanager
def training_lock(lock_path: Path) -> Iterator[Path]:
    """Hold the exclusive training lock for the body; raise :class:`LockHeldError` when taken.

    Yields the lock path. The lock file is created (with its folder) when missing and is never
    deleted, so two processes always lock the same inode.
    """
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeldError(lock_path, describe_holder(lock_path)) from None
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"pid={os.getpid()}\nstarted={started}\n".encode(), 0)
        os.fsync(descriptor)
        log.info("training lock %s taken by pid %d", lock_path, os.getpid())
        try:
            yield lock_path
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            log.debug("training lock %s released", lock_path)
    finally:
        os.close(descriptor)
