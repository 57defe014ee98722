"""Arrays read when a batch needs them: what a streamed split is, whatever it is read from.

A :class:`LazyArray` stands in for the ``(samples, ...)`` array a split would be in memory and
behaves as NumPy's arrays do where the trainer uses them: ``len``, ``shape``, ``dtype``,
``nbytes`` (what it would take in memory); a slice or :meth:`LazyArray.take` is a view
(nothing read); an integer, or an array of integers, reads those samples (a copy, as NumPy's
fancy indexing makes); ``np.asarray`` reads them all. Two kinds exist:

- :class:`~trainer.datasets.image_files.ImageFiles`: images decoded from their files;
- :class:`~trainer.datasets.spill.MappedRows`: a table's rows in a memory-mapped file.

The input pipeline (:mod:`trainer.datasets.pipeline`) reads a batch with :meth:`raw` (the
samples as stored: uint8 pixels, float32 features) and applies :attr:`scale` in the graph.
"""

from __future__ import annotations

import numpy as np

CHUNK = 256  # samples read at a time by np.asarray


class LazyArray:
    """The view ``index`` (positions in the whole store) of a store of samples."""

    index: np.ndarray
    scale: tuple | None = None  # (offset, scale) applied to raw() as (x - offset) / scale

    # --- what a kind of lazy array defines -------------------------------------------------

    @property
    def sample_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def raw_dtype(self) -> np.dtype:
        """The dtype :meth:`raw` returns."""
        raise NotImplementedError

    def raw(self, indices: np.ndarray) -> np.ndarray:
        """The samples at ``indices`` of this view, as stored (unscaled)."""
        raise NotImplementedError

    def view(self, index: np.ndarray) -> LazyArray:
        """The same store and scaling over other positions ``index``."""
        raise NotImplementedError

    @property
    def failure(self) -> Exception | None:
        """The DataError a read raised, kept for when the pipeline wraps it in its own."""
        return None

    # --- what NumPy's arrays answer ---------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.sample_shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.raw_dtype if self.scale is None else np.float32)

    @property
    def nbytes(self) -> int:
        """Bytes the samples would take in memory, as this array's dtype."""
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self.take(self.index[key], positions=True)
        if isinstance(key, int | np.integer):
            return self.read(np.asarray([key]))[0]
        return self.read(np.asarray(key))

    def __array__(self, dtype=None, copy=None):
        from trainer.datasets.memory import aligned_empty

        out = aligned_empty(self.shape, self.dtype)
        for low in range(0, len(self), CHUNK):
            out[low : low + CHUNK] = self.read(np.arange(low, min(low + CHUNK, len(self))))
        return out if dtype is None else out.astype(dtype, copy=False)

    # --- views and reads --------------------------------------------------------------------

    def take(self, indices, positions: bool = False) -> LazyArray:
        """A view of the samples at ``indices`` of this array (nothing is read)."""
        return self.view(np.asarray(indices, dtype=np.int64) if positions else self.index[indices])

    def read(self, indices: np.ndarray) -> np.ndarray:
        """The samples at ``indices`` of this array (scaled, as the pipeline scales them)."""
        values = self.raw(indices)
        if self.scale is None:
            return values
        offset, scale = self.scale
        scaled = values.astype(np.float32)
        if offset is not None:
            scaled -= offset
            scaled /= scale
        return scaled


def is_lazy(x) -> bool:
    return isinstance(x, LazyArray)


def take(x, indices):
    """Rows ``indices`` of ``x``: a view for lazy arrays (nothing read), else NumPy's copy."""
    return x.take(indices) if is_lazy(x) else x[indices]
