"""Tables larger than memory: their columns and features in memory-mapped files on disk.

With ``dataset.in_memory: false``, or ``auto`` when reading the table whole would take over
half the memory available, the csv loader reads the table one column at a time (Parquet stores
each column apart, so a column costs its own bytes; a CSV is parsed once per column) and writes
each into a file under ``dataset.spill_dir`` (the system's temporary folder by default): the raw
matrix, column-major float64, from which imputation and scaling learn their statistics one
column at a time over the training rows. The transform then writes each split's float32
features, row-major, a chunk of rows at a time. Training reads each batch's rows from the
mapping (a :class:`MappedRows` view), in the order an in-memory run reads them, so a streamed
table trains to the same bits; the kernel's page cache keeps what fits.

Each file is unlinked as soon as it is created (only the mapping holds it), so nothing is left
on disk when the run ends, however it ends. Memory is then set by one column of the table, a
chunk of rows and the batches in flight, not by the table's size.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from trainer.core.errors import DataError
from trainer.datasets.lazy import LazyArray

CHUNK_ROWS = 65_536  # rows transformed at a time
# Bytes a table's cell takes at the peak of a run that reads it whole (Arrow's columns, the
# values taken from them, the raw float64 matrix, each split's copy and float32 features):
# 2.16 GiB over a spilled run's for 2,000,000 x 30 cells with 3 one-hot columns
# (bench/spill.py, 2026-12-04); wider one-hot encodings take more.
IN_MEMORY_BYTES_PER_CELL = 40
SAMPLE_BYTES = 1 << 20  # of a CSV file, to estimate its rows


class MappedRows(LazyArray):
    """A view (``index``: rows of the file) of a 2-D memory-mapped array of a table."""

    def __init__(self, data: np.memmap, directory: Path, index: np.ndarray | None = None) -> None:
        self.data, self.directory = data, directory
        self.index = np.arange(len(data), dtype=np.int64) if index is None else index

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[1:])

    @property
    def raw_dtype(self) -> np.dtype:
        return self.data.dtype

    def view(self, index: np.ndarray) -> MappedRows:
        return MappedRows(self.data, self.directory, index)

    def raw(self, indices: np.ndarray) -> np.ndarray:
        return np.asarray(self.data[self.index[np.asarray(indices, dtype=np.int64)]])

    def column(self, i: int) -> np.ndarray:
        """Column ``i`` of this view's rows (the file holds columns whole: one read)."""
        return np.asarray(self.data[:, i])[self.index]

    def chunks(self):
        """(first row, the rows as an in-memory array), ``CHUNK_ROWS`` rows at a time."""
        for low in range(0, len(self), CHUNK_ROWS):
            yield low, self.raw(np.arange(low, min(low + CHUNK_ROWS, len(self))))

    def spill(self, width: int) -> MappedRows:
        """A zeroed (rows, ``width``) float32 array beside this one, for its features."""
        data = spilled((len(self), width), np.float32, self.directory)
        return MappedRows(data, self.directory)


def spilled(shape: tuple[int, ...], dtype, directory: Path, order: str = "C") -> np.memmap:
    """A zeroed array of ``shape`` in a file of ``directory`` that is already unlinked."""
    if not int(np.prod(shape)):
        return np.zeros(shape, dtype=dtype)  # nothing to map
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, prefix="trainer-spill-") as handle:
        data = np.memmap(handle, dtype=dtype, mode="w+", shape=shape, order=order)
    return data  # the name is gone once the file is closed; the mapping keeps the data


def directory_of(spill_dir: Path | None) -> Path:
    return Path(spill_dir) if spill_dir is not None else Path(tempfile.gettempdir())


def estimate_rows(path: Path) -> int:
    """The table's rows: Parquet's metadata, or a CSV's size over the bytes of its first lines."""
    from trainer.datasets.csv_reader import is_parquet, parquet_files

    if is_parquet(path):
        import pyarrow.parquet as pq

        try:
            return sum(pq.ParquetFile(file).metadata.num_rows for file in parquet_files(path))
        except Exception:  # noqa: BLE001 - a damaged file is named when it is read
            return 0
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(SAMPLE_BYTES)
        if path.name.lower().endswith(".gz"):
            text = zlib.decompressobj(wbits=31).decompress(head)
            size = int(size * len(text) / max(1, len(head)))
            head = text
    except (OSError, zlib.error):
        return 0
    lines = head.count(b"\n")
    return int(size / (len(head) / lines)) if lines else 1


def decide_table(setting, path: Path, columns: int, spill_dir: Path | None,
                 available: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Whether the table is read whole or spilled to disk, and why (nothing is read)."""
    from trainer.datasets.storage import SHARE, available_memory, size

    rows = estimate_rows(path)
    needed = rows * max(1, columns) * IN_MEMORY_BYTES_PER_CELL
    described: dict[str, Any] = {"setting": setting, "bytes": needed, "rows": rows}
    where = f"a table of about {rows:,} rows x {columns} columns"
    if setting == "auto":
        available = available_memory() if available is None else available
        described["available"] = available
        if available is None or needed <= SHARE * available:
            left = "the memory available is unknown here" if available is None else (
                f"{size(needed)} of {size(available)} available")  # fmt: skip
            return {**described, "in_memory": True, "reason": f"in memory: {where} ({left})"}
        why = f"over half of the {size(available)} available"
    elif setting:
        return {**described, "in_memory": True,
                "reason": f"in memory: {where} (dataset.in_memory: true)"}  # fmt: skip
    else:
        why = "dataset.in_memory: false"
    directory = directory_of(spill_dir)
    on_disk = rows * max(1, columns) * 12  # the raw float64 matrix and float32 features
    _check_room(directory, on_disk)
    fs = _filesystem(directory)
    held = ", a tmpfs: in memory after all (set dataset.spill_dir)" if fs == "tmpfs" else ""
    reason = (f"spilled to disk: {where}, in memory about {size(needed)} ({why}); read a "
              f"column at a time into {directory}{held}")  # fmt: skip
    return {**described, "in_memory": False, "spill_dir": str(directory), "reason": reason}


def _check_room(directory: Path, needed: int) -> None:
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    if free < needed:
        from trainer.datasets.storage import size

        raise DataError(
            f"dataset.spill_dir: {directory} has {size(free)} free, but the streamed table "
            f"needs about {size(needed)} there",
            hint="set dataset.spill_dir to a folder on a disk with room, or free some space",
        )


def _filesystem(directory: Path) -> str | None:
    """The type of the file system holding ``directory`` (the longest mount point above it)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    target, best, kind = os.path.realpath(directory), "", None
    for line in mounts:
        parts = line.split()
        if len(parts) < 3 or len(parts[1]) <= len(best):
            continue
        if target == parts[1] or target.startswith(parts[1].rstrip("/") + "/"):
            best, kind = parts[1], parts[2]
    return kind
