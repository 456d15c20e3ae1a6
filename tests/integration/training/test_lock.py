"""The training lock: exclusive across processes, names its holder, released when the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training.lock import LockHeldError, training_lock

HOLD_SCRIPT = """
import sys, time
from pathlib import Path
from training.lock import training_lock
with training_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_second_holder_is_refused_with_the_holder_named(tmp_path: Path) -> None:
    lock_path = tmp_path / "var" / "train.lock"
    with training_lock(lock_path):
        with pytest.raises(LockHeldError) as refused, training_lock(lock_path):
            pass
        message = str(refused.value)
        assert str(lock_path) in message
        assert f"pid {os.getpid()}" in message
    # Released: taking it again works.
    with training_lock(lock_path):
        pass


def test_lock_dies_with_a_killed_process(tmp_path: Path) -> None:
    lock_path = tmp_path / "train.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, str(lock_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockHeldError, match=f"pid {holder.pid}"), training_lock(lock_path):
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        deadline = time.monotonic() + 5
        while True:
            try:
                with training_lock(lock_path):
                    break
            except LockHeldError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert f"pid={os.getpid()}" in lock_path.read_text()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
