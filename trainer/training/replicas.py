"""What each replica and process sees: its share of every batch, and the chief's checkpoints.

Used only when ``training.distribution`` is not ``none`` (NumPy and the backends load here,
never at config time).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from trainer.core.errors import RunError
from trainer.datasets import pipeline


class _Replicated:
    """Mixin for the pipeline's batches: equal replica shares, this process's slice only.

    A step on R replicas must take the step one device takes on the same batch. Every batch
    is split evenly over the replicas, so an epoch's last batch of N samples, when R does not
    divide N, is padded to P (the next multiple of R) with copies of its first samples that
    weigh 0; its N real samples weigh P / N (times their class weight), so the mean loss over
    P rows, the reduction every replica applies, is the mean over the N real ones. Every
    batch carries sample weights (ones when unweighted) so the structure never changes.
    """

    def __init__(self, x, y, batch_size: int, seed: int, *, replicas: int, process: int,
                 processes: int, class_weight: dict[int, float] | None = None) -> None:  # fmt: skip
        super().__init__(x, y, batch_size, seed, class_weight=class_weight)
        short = self.n % batch_size
        self.padding = -short % replicas  # rows added to the last batch (0 when R divides it)
        self.process, self.processes = process, processes
        self.fed: list[dict] = []  # what this process fed, per epoch (environment.json)

    def weights(self, order: np.ndarray) -> np.ndarray:
        weights = super().weights(order)
        return np.ones(len(order), np.float32) if weights is None else weights.astype(np.float32)

    def plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Epoch ``epoch``'s sample indices and weights, the last batch padded (see above)."""
        order = self.order(epoch)
        weights = self.weights(order)
        if self.padding:
            last = (self.steps - 1) * self.batch_size
            real = self.n - last
            weights[last:] *= np.float32((real + self.padding) / real)
            order = np.concatenate([order, order[last : last + self.padding]])
            weights = np.concatenate([weights, np.zeros(self.padding, np.float32)])
        return order, weights

    def epoch(self, epoch: int, start_step: int = 0):
        order, weights = self.plan(epoch)
        record = Fed(epoch + 1, self.n)
        self.fed.append(record.summary)
        if self.processes == 1:  # one process, several devices: the engine splits each batch
            first = start_step * self.batch_size
            record.add(first, order[first:], steps=self.steps - start_step)
            return self._batches(order, weights, start_step)
        return self._slices(order, weights, start_step, record)

    def _slices(self, order, weights, start_step: int, record: Fed):
        for step in range(start_step, self.steps):  # the padded last batch is still <= batch
            low = step * self.batch_size
            batch, weight = order[low : low + self.batch_size], weights[low : low + self.batch_size]
            share = len(batch) // self.processes
            rows = slice(self.process * share, (self.process + 1) * share)
            record.add(low + rows.start, batch[rows])
            yield self._x[batch[rows]], self._y[batch[rows]], weight[rows]


class Fed:
    """One epoch of one process's feed: steps, real and padding rows, and their SHA-256."""

    def __init__(self, epoch: int, n: int) -> None:
        self.n = n
        self.digest = hashlib.sha256()
        self.summary = {"epoch": epoch, "steps": 0, "samples": 0, "padding": 0, "sha256": ""}

    def add(self, position: int, rows: np.ndarray, steps: int = 1) -> None:
        """``rows`` fed from ``position`` of the epoch's plan (rows past ``n`` are padding)."""
        self.summary["steps"] += steps
        real = max(0, min(len(rows), self.n - position))
        self.summary["samples"] += real
        self.summary["padding"] += len(rows) - real
        self.digest.update(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
        self.summary["sha256"] = self.digest.hexdigest()[:16]


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
