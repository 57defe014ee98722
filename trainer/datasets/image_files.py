"""Images read from their files when a batch needs them: the array a streamed run trains on.

:class:`ImageFiles` stands in for the ``(images, height, width, channels)`` array an image
folder would decode into memory. It behaves as NumPy's arrays do where the trainer uses them:
``len``, ``shape``, ``dtype``; a slice or :meth:`ImageFiles.take` is a view (nothing read);
an integer, or an array of integers, reads those images (a copy, as NumPy's fancy indexing
makes); ``np.asarray`` reads them all. Scaling is applied as each batch is read, with the same
float32 operations as in memory, so a streamed run and an in-memory one see the same bits.

Every view shares one :class:`ImageSource`: the file list, the decoder (Pillow: bilinear,
Keras's directory-loader conventions, see :mod:`trainer.datasets.image_folder`), a thread pool
that decodes a batch's files in parallel (Pillow releases the GIL while it decodes), and an
optional cache of decoded pixels (``dataset.cache``): ``memory`` keeps each image once it is
read, a folder keeps them in a memory-mapped ``.npy`` file named by a fingerprint of the
files (paths, sizes, modification times) and the image size, reused by later runs.

A file that cannot be decoded raises a :class:`DataError` naming it, and the source keeps it
(:attr:`ImageSource.failure`) so the engine can report it when the input pipeline (tf.data)
wraps the error in its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from trainer.core.errors import DataError
from trainer.datasets.lazy import LazyArray

CHANNELS = {"grayscale": ("L", 1), "rgb": ("RGB", 3), "rgba": ("RGBA", 4)}
CACHE_SUFFIX = ".pixels.npy"


def decode(file: Path, image_size: tuple[int, int], color_mode: str) -> np.ndarray:
    """One image as uint8 pixels shaped (height, width, channels), resized bilinearly."""
    from PIL import Image

    from trainer.core.files import require_data_file

    height, width = image_size
    mode, channels = CHANNELS[color_mode]
    require_data_file(file)
    try:
        with Image.open(file) as image:
            image = image.convert(mode) if image.mode != mode else image
            if image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.BILINEAR)
            return np.asarray(image).reshape(height, width, channels)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(
            f"{file}: not a readable image ({error})",
            hint="replace or remove the file; `--resume` continues from the last checkpoint "
            "(removing a file changes the data, and so the order)",
        ) from None


def check_headers(files: list[Path]) -> None:
    """Open each file's header (no decoding): a file that is not an image fails here, before
    training starts. A file damaged after its header is found when a batch reads it."""
    from PIL import Image, UnidentifiedImageError

    from trainer.core.files import require_data_file

    def check(file: Path) -> None:
        require_data_file(file)
        try:
            with Image.open(file):
                pass
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
            raise DataError(
                f"{file}: not a readable image ({error})", hint="replace or remove the file"
            ) from None

    with ThreadPoolExecutor(_workers()) as pool:
        for _ in pool.map(check, files):
            pass


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class ImageSource:
    """The files of one image folder, decoded on demand (see the module's docstring)."""

    def __init__(self, files: list[Path], image_size: tuple[int, int], color_mode: str,
                 cache: str | Path = "none") -> None:  # fmt: skip
        self.files = list(files)
        self.image_size, self.color_mode = tuple(image_size), color_mode
        self.shape = (*self.image_size, CHANNELS[color_mode][1])
        self.cache = cache
        self.reads = np.zeros(len(self.files), dtype=np.int32)  # decodes of each file so far
        self.failure: DataError | None = None
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._store: np.ndarray | None = None  # decoded pixels, when cached
        self._filled: np.ndarray | None = None
        self._filled_path: Path | None = None

    def __len__(self) -> int:
        return len(self.files)

    def __getstate__(self):  # a pool and a lock do not cross process boundaries
        state = dict(self.__dict__)
        state.update(_lock=None, _pool=None, _store=None, _filled=None)
        return state

    def __setstate__(self, state) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def read(self, positions: np.ndarray) -> np.ndarray:
        """The images at ``positions`` of the file list, uint8 (k, height, width, channels)."""
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        store = self._cache_store()
        if store is not None:
            with self._lock:
                missing = np.unique(positions[~self._filled[positions]])
            if len(missing):
                store[missing] = self._decode(missing)
                with self._lock:
                    self._filled[missing] = True
                    self._save_filled()
            return store[positions]
        return self._decode(positions)

    def _decode(self, positions: np.ndarray) -> np.ndarray:
        out = np.empty((len(positions), *self.shape), dtype=np.uint8)

        def one(i: int) -> None:
            out[i] = decode(self.files[positions[i]], self.image_size, self.color_mode)

        try:
            if len(positions) < 4:
                for i in range(len(positions)):
                    one(i)
            else:
                for _ in self.pool().map(one, range(len(positions))):
                    pass
        except DataError as error:
            self.failure = self.failure or error
            raise
        with self._lock:
            np.add.at(self.reads, positions, 1)
        return out

    def pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_workers(), thread_name_prefix="trainer-images")
            return self._pool

    # --- the cache of decoded pixels -------------------------------------------------------

    def _cache_store(self) -> np.ndarray | None:
        if self.cache == "none":
            return None
        with self._lock:
            if self._store is None:
                self._open_cache()
            return self._store

    def _open_cache(self) -> None:
        shape = (len(self.files), *self.shape)
        if self.cache == "memory":
            self._store = np.empty(shape, dtype=np.uint8)
            self._filled = np.zeros(len(self.files), dtype=bool)
            return
        folder = Path(self.cache)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{self.fingerprint()}{CACHE_SUFFIX}"
            self._filled_path = path.with_suffix(".filled.json")
            filled = np.zeros(len(self.files), dtype=bool)
            if path.exists() and self._filled_path.exists():
                store = np.load(path, mmap_mode="r+")
                done = json.loads(self._filled_path.read_text())
                if store.shape == shape and store.dtype == np.uint8 and isinstance(done, list):
                    filled[[i for i in done if isinstance(i, int) and 0 <= i < len(filled)]] = True
                else:
                    store = None
            else:
                store = None
            if store is None:
                store = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
        except (OSError, ValueError) as error:
            raise DataError(
                f"dataset.cache: cannot use {folder} as a cache of decoded images ({error})",
                hint="give a writable folder with room for them, or set dataset.cache: none",
            ) from None
        self._store, self._filled = store, filled

    def _save_filled(self) -> None:
        """Which cached images are complete, written after their pixels (atomically)."""
        if self._filled_path is None:
            return
        temporary = self._filled_path.with_name(self._filled_path.name + ".tmp")
        temporary.write_text(json.dumps(np.flatnonzero(self._filled).tolist()))
        os.replace(temporary, self._filled_path)

    def fingerprint(self) -> str:
        """A digest of what decoding depends on: the files (path, size, time) and the size."""
        digest = hashlib.sha256(json.dumps([self.image_size, self.color_mode]).encode())
        for file in self.files:
            stat = file.stat()
            digest.update(f"{file.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:24]


class ImageFiles(LazyArray):
    """A lazy (images, height, width, channels) array over an :class:`ImageSource`.

    ``scale``: (offset, scale) float32 arrays or scalars; read pixels become
    ``(x - offset) / scale`` in float32, the in-memory scaler's operations in its order.
    """

    def __init__(self, source: ImageSource, index: np.ndarray | None = None,
                 scale: tuple | None = None) -> None:  # fmt: skip
        self.source = source
        self.index = np.arange(len(source), dtype=np.int64) if index is None else index
        self.scale = scale

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.source.shape)

    @property
    def raw_dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    def view(self, index: np.ndarray) -> ImageFiles:
        return ImageFiles(self.source, index, self.scale)

    def scaled(self, offset, scale) -> ImageFiles:
        return ImageFiles(self.source, self.index, (offset, scale))

    def raw(self, indices: np.ndarray) -> np.ndarray:
        """The images at ``indices`` of this array, decoded, unscaled (uint8)."""
        return self.source.read(self.index[np.asarray(indices, dtype=np.int64)])

    @property
    def failure(self) -> DataError | None:
        return self.source.failure

    @property
    def decoded(self) -> int:
        """How many times the images of this view were decoded so far (cache hits are not)."""
        return int(self.source.reads[self.index].sum())

    @property
    def files(self) -> list[Path]:
        return [self.source.files[i] for i in self.index]

    @property
    def value_range(self) -> tuple[float, float]:
        """The range of values a read can hold (0-255 through the scaling)."""
        if self.scale is None or self.scale[0] is None:
            return (0.0, 255.0)
        offset, scale = (np.asarray(v, dtype=np.float32) for v in self.scale)
        ends = [(np.float32(v) - offset) / scale for v in (0.0, 255.0)]
        return float(np.minimum(*ends).min()), float(np.maximum(*ends).max())

    def pixel_statistics(self, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Each pixel's mean and standard deviation over these images, in one streamed pass
        (exact integer sums in float64, so no precision is lost to the order of the pass)."""
        total = np.zeros(self.source.shape, dtype=np.float64)
        squares = np.zeros(self.source.shape, dtype=np.float64)
        for low in range(0, len(self), chunk):
            pixels = self.source.read(self.index[low : low + chunk]).astype(np.float64)
            total += pixels.sum(axis=0)
            squares += np.square(pixels).sum(axis=0)
        mean = total / max(1, len(self))
        variance = np.maximum(squares / max(1, len(self)) - np.square(mean), 0.0)
        return mean.astype(np.float32), np.sqrt(variance).astype(np.float32)
