"""MNIST and Fashion-MNIST: 28x28 grey images of 10 classes, 60k for training, 10k for testing.

Files are looked for, in order: the config's ``path`` (an ``.npz`` with ``x_train``,
``y_train``, ``x_test``, ``y_test``, or a directory with the four IDX ``.gz`` files), Keras's
own cache (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``), Debian's
``dataset-fashion-mnist`` files, and finally the standard Keras download, verified by SHA-256.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Literal

from pydantic import Field

from trainer.core.errors import DataError
from trainer.core.files import require_data_file
from trainer.datasets import DATASETS, DatasetParams, RawData

KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
IDX_FILES = {  # name -> SHA-256 of the files Keras downloads (same as Debian's copies)
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip


def keras_cache() -> Path:
    """Keras's dataset cache, so files are shared with ``keras.datasets``."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "datasets"


class MnistParams(DatasetParams):
    type: Literal["mnist"] = "mnist"
    path: Path | None = Field(None, description="An .npz file or a directory of IDX .gz files.")
    url: str = Field(KERAS_ORIGIN + "mnist.npz", description="Where to download mnist.npz from.")
    sha256: str = Field(MNIST_SHA256, pattern="^[0-9a-f]{64}$")

    def task(self) -> str:
        return "multiclass"


class FashionMnistParams(DatasetParams):
    type: Literal["fashion_mnist"] = "fashion_mnist"
    path: Path | None = Field(None, description="An .npz file or a directory of IDX .gz files.")
    url: str = Field(KERAS_ORIGIN, description="Base URL of the four IDX .gz files.")

    def task(self) -> str:
        return "multiclass"


def mnist_locations(path: Path | None = None) -> list[Path]:
    return [path] if path else [keras_cache() / "mnist.npz"]


def fashion_locations(path: Path | None = None) -> list[Path]:
    return [path] if path else [keras_cache() / "fashion-mnist", DEBIAN_FASHION]


def _found(path: Path) -> bool:
    if path.is_dir():
        return all((path / name).is_file() for name in IDX_FILES)
    return path.is_file()


@DATASETS.register(MnistParams, available=lambda: _found(mnist_locations()[0]), inputs="image")
def mnist(seed: int, path: Path | None, url: str, sha256: str) -> RawData:
    """Handwritten digits 0-9 (LeCun et al.), 28x28 grey, 60k train / 10k test."""
    location = next((p for p in mnist_locations(path) if _found(p)), None)
    if location is None and path is not None:
        raise DataError(f"dataset.path '{path}' does not exist", hint=_where_hint())
    if location is None:
        location = download(url, keras_cache() / "mnist.npz", sha256)
    return _images(*read_any(location), [str(i) for i in range(10)])


@DATASETS.register(
    FashionMnistParams,
    available=lambda: any(_found(p) for p in fashion_locations()),
    inputs="image",
)
def fashion_mnist(seed: int, path: Path | None, url: str) -> RawData:
    """Zalando's clothing images in 10 classes, 28x28 grey, 60k train / 10k test."""
    location = next((p for p in fashion_locations(path) if _found(p)), None)
    if location is None and path is not None:
        raise DataError(f"dataset.path '{path}' does not exist or lacks IDX files")
    if location is None:
        location = keras_cache() / "fashion-mnist"
        for name, digest in IDX_FILES.items():
            if not (location / name).is_file():
                download(url.rstrip("/") + "/" + name, location / name, digest)
    return _images(*read_any(location), FASHION_CLASSES)


def _images(x_train, y_train, x_test, y_test, class_names) -> RawData:
    return RawData(
        x_train[..., None], y_train, "multiclass", x_test[..., None], y_test,
        class_names, value_range=(0.0, 255.0), default_scaling="unit",
    )  # fmt: skip


def _where_hint() -> str:
    return f"put mnist.npz in {keras_cache()} or set dataset.path to an .npz or IDX directory"


def read_any(location: Path):
    """(x_train, y_train, x_test, y_test) from an .npz file or a directory of IDX files."""
    if location.is_dir():
        arrays = tuple(
            read_idx(location / name)
            for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
        )  # fmt: skip
        for name, images, labels in (("train", *arrays[:2]), ("t10k", *arrays[2:])):
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise DataError(
                    f"{location}: {name}-images has shape {images.shape} and {name}-labels "
                    f"{labels.shape}; expected (n, rows, cols) images and n labels"
                )
        return arrays
    return read_npz(location)


def read_npz(path: Path):
    import numpy as np

    keys = ("x_train", "y_train", "x_test", "y_test")
    require_data_file(path)
    try:
        archive = np.load(path, allow_pickle=False)
        if not hasattr(archive, "files"):  # a bare .npy array, not an archive
            raise DataError(
                f"{path}: a single .npy array, not an .npz archive",
                hint="an MNIST .npz holds x_train, y_train, x_test and y_test",
            )
        with archive:
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise DataError(
                    f"{path}: missing array(s) {', '.join(missing)}; "
                    f"found {', '.join(archive.files) or 'none'}",
                    hint="an MNIST .npz holds x_train, y_train, x_test and y_test",
                )
            arrays = tuple(archive[k] for k in keys)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: not a readable .npz archive ({error})") from error
    for name, images, labels in (("train", *arrays[:2]), ("test", *arrays[2:])):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{path}: x_{name} has shape {images.shape} and y_{name} {labels.shape}; "
                "expected (n, rows, cols) images and n labels"
            )
    return arrays


def read_idx(path: Path):
    """Parse one gzip'd IDX file (LeCun's format): a magic number, sizes, then uint8 data."""
    import numpy as np

    require_data_file(path)
    try:
        with gzip.open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError as error:
        raise DataError(f"{path}: file not found") from error
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"{path}: not a readable gzip file ({error})",
                        hint="delete it so that it is downloaded again") from error  # fmt: skip
    if len(data) < 8:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes)")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08 or ndim not in (1, 3):
        raise DataError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise DataError(
            f"{path}: holds {len(data) - header} bytes of data, its header promises {expected} "
            f"for shape {shape}; the file is truncated or corrupt",
            hint="delete it so that it is downloaded again",
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def download(url: str, target: Path, sha256: str) -> Path:
    """Download ``url`` to ``target`` through a temporary file; keep it only if the hash matches."""
    import urllib.error
    import urllib.request

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        partial.unlink(missing_ok=True)
        raise DataError(
            f"could not download {url} ({getattr(error, 'reason', error)})",
            hint=f"offline? download it elsewhere and put it at {target}, "
            "or point dataset.path at a copy",
        ) from error
    if digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise DataError(
            f"{url}: SHA-256 {digest.hexdigest()} does not match the expected {sha256}; "
            "the download was deleted",
            hint="retry; if it persists the mirror is serving a different file",
        )
    os.replace(partial, target)
    return target
