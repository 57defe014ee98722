"""Files that survive crashes, files read with care, and the run directory's lock.

Every file the trainer writes goes through a temporary name, ``fsync`` and ``os.replace``,
so a crash leaves the old version or the new one, never half of one. Every file it reads
must be a regular file (a FIFO would block forever, ``/dev/zero`` never ends), and what is
read whole is read only up to a bound.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

from trainer.core.errors import DataError, StorageError, UsageError

KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


class Unreadable(Exception):
    """Why a path cannot be read as a file; callers turn it into their own error."""


def not_a_file(path: Path) -> str | None:
    """Why ``path`` (symlinks followed) is not a regular file to read, or None if it is."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "file not found"
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if stat.S_ISREG(mode):
        return None
    return f"is {KINDS.get(stat.S_IFMT(mode), 'not a regular file')}, not a regular file"


def require_data_file(path: Path) -> None:
    """A DataError unless ``path`` is a regular file: a FIFO would block the read forever, a
    device like /dev/zero never ends."""
    problem = not_a_file(path)
    if problem == "file not found":
        raise DataError(
            f"{path}: file not found",
            hint=f"relative paths start from the current directory ({Path.cwd()})",
        )
    if problem is not None:
        raise DataError(f"{path}: {problem}", hint="point the dataset at a regular file")


def archive_problem(path: Path) -> str | None:
    """Why the zip archive ``path`` is unsafe or unreadable (not a zip, a truncated one, a
    member whose name is absolute or climbs out with ``..``: zip slip), or None."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        return f"not a Keras archive, or a truncated one ({error})"
    unsafe = [n for n in names if n.startswith(("/", "\\")) or ".." in Path(n).parts]
    if unsafe:
        return (f"refused: the archive holds member {unsafe[0][:200]!r}, a path that leaves "
                "the archive's folder")  # fmt: skip
    return None


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, refused if it holds more than ``limit``.

    Opened without blocking and checked on the open descriptor, so a path swapped for a FIFO
    after a check cannot hang the read either.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise Unreadable("file not found") from None
    except OSError as error:
        raise Unreadable(f"cannot be read ({error.strerror or error})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise Unreadable(f"is {KINDS.get(stat.S_IFMT(mode), 'not a regular file')}, not a "
                         "regular file")  # fmt: skip
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise Unreadable(f"is larger than {limit:,} bytes, more than this file ever needs")
    return data


DAMAGED = (
    "the run directory was damaged or edited: restore the file, or train again into a new "
    "run directory with `trainer fit CONFIG --run-dir NEW`"
)


def read_run_json(path: Path) -> dict[str, Any]:
    """A JSON object of a run directory: a DataError (exit 4) naming it if it is damaged."""
    try:
        data = read_json(path)
    except Unreadable as problem:
        raise DataError(f"{path}: {problem}", hint=DAMAGED) from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: holds a JSON {type(data).__name__}, not an object", hint=DAMAGED)
    return data


def read_json(path: Path, limit: int = 64 * 2**20) -> Any:
    """A JSON file the trainer wrote, read back as untrusted input (:class:`Unreadable`)."""
    data = read_bounded(path, limit)
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Unreadable(f"is not valid JSON ({error})") from None


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
