"""Files that survive crashes, and the run directory's lock.

Every file the trainer writes goes through a temporary name, ``fsync`` and ``os.replace``,
so a crash leaves the old version or the new one, never half of one.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from trainer.core.errors import StorageError, UsageError


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise StorageError(f"cannot write {path} ({error.strerror or error})") from error


def write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")


def check_writable(run_dir: Path, need_bytes: int = 20 * 2**20) -> None:
    """Fail before anything starts if the run directory cannot be created or the disk is full.

    Nothing is created here, so a run that fails later for another reason leaves no trace.
    """
    import shutil

    existing = run_dir.absolute()
    while not existing.exists():
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is a file, not a directory"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"no permission to write in {existing}"
    elif shutil.disk_usage(existing).free < need_bytes:
        free = shutil.disk_usage(existing).free // 2**20
        problem = f"only {free} MiB free on that disk; at least {need_bytes // 2**20} MiB needed"
    if problem:
        raise StorageError(
            f"cannot write to run directory {run_dir}: {problem}",
            hint="choose a writable place with enough space via --run-dir or --runs-root",
        )


class RunLock:
    """An exclusive lock on a run directory; a second process fails fast, naming the holder."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"
        self._handle = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UsageError(
                f"run directory '{self.path.parent}' is in use by {holder}",
                hint="wait for that run to finish, or stop it first",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.close()
            self.path.unlink(missing_ok=True)
