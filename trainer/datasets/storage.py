"""Where a run's prepared splits live: in memory, or streamed from their files batch by batch.

``dataset.in_memory`` (image folders): ``true`` decodes every image before training, the
fast path (one array per split, shared with TensorFlow without a copy, fused steps allowed);
``false`` streams them (:mod:`trainer.datasets.image_files`), so memory is set by the batch,
the prefetch depth and the cache, not by the folder's size; ``auto`` keeps them in memory
when the scaled splits (float32, 4 bytes a value) take at most half the memory available now
(``/proc/meminfo``'s MemAvailable, or the cgroup's limit when lower). The choice and its reason
go into ``environment.json`` (``data``) and the start-up lines. A table (``csv``) takes the
same setting, decided by its loader before it reads a value (:mod:`trainer.datasets.spill`);
archives (``npz``) are always in memory.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from trainer.datasets.lazy import is_lazy

SHARE = 0.5  # of the available memory the prepared splits may take under 'auto'


def available_memory() -> int | None:
    """Bytes this process could still allocate: MemAvailable, capped by a cgroup limit."""
    found = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            room = int(limit) - used
            found = room if found is None else min(found, room)
    except (OSError, ValueError):
        pass
    return found


def gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def size(n: int) -> str:
    """Bytes in the largest unit that keeps a whole number: '0 B', '96.0 KiB', '2.4 GiB'."""
    for power, unit in ((3, "GiB"), (2, "MiB"), (1, "KiB")):
        if n >= 1024**power:
            return f"{n / 1024**power:.1f} {unit}"
    return f"{n} B"


def place(params, splits: dict[str, Any], available: int | None = None,
          decided: dict[str, Any] | None = None):  # fmt: skip
    """``splits`` (name -> x) read into memory or left streamed, and what was decided why
    (``decided``: what the loader decided already, as a table's does before reading it)."""
    described = decided if decided is not None else decide(params, splits, available)
    if described["in_memory"]:
        splits = {name: (np.asarray(x) if is_lazy(x) else x) for name, x in splits.items()}
    return splits, described


def decide(params, splits: dict[str, Any], available: int | None = None) -> dict[str, Any]:
    """Whether ``splits`` go into memory, and why (nothing is read)."""
    lazy = {name: x for name, x in splits.items() if x is not None and is_lazy(x)}
    if not lazy:
        return {"in_memory": True, "reason": f"the {params.type} dataset is read whole"}
    setting = getattr(params, "in_memory", "auto")
    needed = sum(x.nbytes for x in lazy.values())
    files = sum(len(x) for x in lazy.values())
    described = {"setting": setting, "bytes": needed, "files": files}
    if setting == "auto":
        available = available_memory() if available is None else available
        described["available"] = available
        if available is None:
            in_memory, why = True, "in memory (the memory available is unknown here)"
        elif needed <= SHARE * available:
            in_memory = True
            why = f"in memory: {files:,} images take {gib(needed)} of {gib(available)} available"
        else:
            in_memory = False
            why = (f"streamed from {files:,} files: in memory they would take {gib(needed)}, "
                   f"over half of the {gib(available)} available")  # fmt: skip
    elif setting:
        in_memory = True
        why = f"in memory ({files:,} images, {gib(needed)}; dataset.in_memory: true)"
    else:
        in_memory, why = False, f"streamed from {files:,} files (dataset.in_memory: false)"
    cache = getattr(params, "cache", "none")
    if not in_memory:
        described["cache"] = str(cache)
        if cache != "none":
            why += f", decoded images cached in {'memory' if cache == 'memory' else cache}"
    described.update(in_memory=in_memory, reason=why)
    return described


def feed(x, y=None, batch_size: int = 256):
    """What Keras's ``predict`` / ``evaluate`` / ``validation_data`` take for ``x``: the arrays
    themselves, or, for streamed images, a :class:`keras.utils.PyDataset` of their batches."""
    if not is_lazy(x):
        return x if y is None else (x, y)
    import keras

    if keras.backend.backend() == "tensorflow":
        from trainer.datasets.pipeline import streamed_batches

        return streamed_batches(x, y, batch_size)

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=2, use_multiprocessing=False, max_queue_size=2)

        def __len__(self) -> int:
            return -(-len(x) // batch_size)

        def __getitem__(self, step: int):
            rows = np.arange(step * batch_size, min((step + 1) * batch_size, len(x)))
            return (x.read(rows),) if y is None else (x.read(rows), y[rows])

    return Batches()


@contextmanager
def reported(*arrays):
    """Re-raise the DataError a streamed read of ``arrays`` raised (a file named, exit 4) in
    place of the error tf.data or Keras wrapped it in."""
    try:
        yield
    except Exception:
        for x in arrays:
            if is_lazy(x) and x.failure is not None:
                raise x.failure from None
        raise
