"""What each replica and process sees: its share of every batch, and the chief's checkpoints.

Used only when ``training.distribution`` is not ``none`` (NumPy and the backends load here,
never at config time).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from trainer.core.errors import RunError
from trainer.datasets import pipeline


class _Replicated:
    """Mixin for the pipeline's batches: equal replica shares, this process's slice only."""

    def __init__(
        self, x, y, batch_size: int, seed: int, *, replicas: int, process: int, processes: int
    ) -> None:
        super().__init__(x, y, batch_size, seed)
        self.dropped = (self.n % batch_size) % replicas
        self.process, self.processes = process, processes

    def order(self, epoch: int) -> np.ndarray:
        full = super().order(epoch)
        return full[: len(full) - self.dropped]  # the last batch's tail: a multiple of replicas

    def epoch(self, epoch: int, start_step: int = 0):
        if self.processes == 1:
            return super().epoch(epoch, start_step)
        return self._slices(epoch, start_step)

    def _slices(self, epoch: int, start_step: int):
        indices = self.order(epoch)
        for step in range(start_step, self.steps):
            batch = indices[step * self.batch_size : (step + 1) * self.batch_size]
            share = len(batch) // self.processes
            rows = batch[self.process * share : (self.process + 1) * share]
            yield self._x[rows], self._y[rows]


class ReplicatedBatches(_Replicated, pipeline.NumpyBatches):
    """NumPy batches (JAX), each process feeding its slice of every global batch."""


class ReplicatedTensorBatches(_Replicated, pipeline.TrainingBatches):
    """tf.data batches (one process, MirroredStrategy splits each batch over replicas)."""


# -- checkpoints shared by the chief --------------------------------------------------------
def broadcast_bytes(data: bytes | None, is_source: bool) -> bytes:
    """``data`` from the chief, on every process (over JAX's collectives)."""
    from jax.experimental import multihost_utils

    length = np.array(len(data) if is_source else 0, dtype=np.int64)
    length = int(multihost_utils.broadcast_one_to_all(length, is_source=is_source))
    buffer = np.frombuffer(data, dtype=np.uint8) if is_source else np.zeros(length, np.uint8)
    received = multihost_utils.broadcast_one_to_all(buffer, is_source=is_source)
    return np.asarray(received, dtype=np.uint8).tobytes()


class SharedCheckpoints:
    """The chief's ``checkpoints/``: only it writes; every process reads what it restores."""

    def __init__(self, inner, is_chief: bool) -> None:
        self.inner, self.is_chief = inner, is_chief
        self.root = inner.root

    def save(self, arrays, meta) -> Path:
        if self.is_chief:
            return self.inner.save(arrays, meta)
        return self.root / f"step-{meta['global_step']:09d}"

    def clean_temporaries(self) -> None:
        if self.is_chief:
            self.inner.clean_temporaries()

    def valid_names(self) -> list[str]:
        return self.inner.valid_names()

    def latest(self):
        from trainer.training.checkpoint import Restored

        answer = None
        if self.is_chief:
            try:
                found = self.inner.latest()
                answer = {
                    "found": None if found is None else [found.path.name, found.meta, found.skipped]
                }
            except RunError as error:
                answer = {"error": error.message, "hint": error.hint}
        answer = json.loads(broadcast_bytes(json.dumps(answer).encode(), self.is_chief))
        if "error" in answer:
            raise RunError(answer["error"], hint=answer["hint"])
        if answer["found"] is None:
            return None
        name, meta, skipped = answer["found"]
        return Restored(self.root / name, meta, skipped)

    def load_arrays(self, path: Path) -> dict[str, np.ndarray]:
        from trainer.training.checkpoint import STATE

        data = (path / STATE).read_bytes() if self.is_chief else None
        with np.load(io.BytesIO(broadcast_bytes(data, self.is_chief)), allow_pickle=False) as f:
            return {name: f[name] for name in f.files}
