"""The dataset layer: loaders, readers, downloads, splits and scaling.

Nothing here imports TensorFlow: datasets are numpy and scikit-learn only, so these tests
stay fast and run wherever the package's light dependencies are installed.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from trainer.core.errors import DataError
from trainer.datasets import DATASETS, load
from trainer.datasets import mnist as mnist_module

IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
N_TRAIN, N_TEST = 60, 20  # size of the fake MNIST files


# --------------------------------------------------------------------------- helpers


def params(name: str, **overrides):
    """Validated params for dataset ``name``, as the config schema would build them."""
    return DATASETS.get(name).params(type=name, **overrides)


def idx_bytes(array: np.ndarray) -> bytes:
    """Uncompressed IDX: zero, dtype 0x08 (unsigned byte), ndim, big-endian sizes, data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    path.write_bytes(gzip.compress(idx_bytes(array)))
    return path


def fake_mnist_arrays() -> dict[str, np.ndarray]:
    """60 train / 20 test 28x28 uint8 images covering 0..255, each class equally often."""
    rng = np.random.default_rng(1234)
    return {
        "x_train": rng.integers(0, 256, size=(N_TRAIN, 28, 28), dtype=np.uint8),
        "y_train": np.arange(N_TRAIN, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, size=(N_TEST, 28, 28), dtype=np.uint8),
        "y_test": np.arange(N_TEST, dtype=np.uint8) % 10,
    }


def write_fake_idx_dir(directory: Path, arrays: dict[str, np.ndarray]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for key, name in IDX_NAMES.items():
        write_idx(directory / name, arrays[key])
    return directory


def write_fake_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def fake_image_path(tmp_path: Path, fmt: str) -> Path:
    arrays = fake_mnist_arrays()
    if fmt == "idx":
        return write_fake_idx_dir(tmp_path / "idx", arrays)
    return write_fake_npz(tmp_path / "fake.npz", arrays)


def raises_data_error(path: Path, *fragments: str):
    """Context manager: a DataError whose message names ``path`` and every fragment."""

    class _Check:
        def __enter__(self):
            self._ctx = pytest.raises(DataError)
            self.info = self._ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            suppressed = self._ctx.__exit__(*exc)
            message = self.info.value.message
            assert str(path) in message, message
            for fragment in fragments:
                assert fragment.lower() in message.lower(), (fragment, message)
            return suppressed

    return _Check()


# --------------------------------------------------------------------------- every dataset

# name -> (params, expected sizes, input_shape, num_classes). Every registered dataset must
# appear here, so that a new loader is tested as soon as it is registered.
IMAGE_CASE = (
    {"limit": 40, "validation_split": 0.25},
    {"train": 30, "validation": 10, "test": N_TEST},  # shipped test split, limit 40 > 20
    (28, 28, 1),
    10,
)
CASES = {
    "mnist": IMAGE_CASE,
    "fashion_mnist": IMAGE_CASE,
    "digits": (
        {"limit": 200, "test_split": 0.25, "validation_split": 0.2},
        {"train": 120, "validation": 30, "test": 50},
        (8, 8, 1),
        10,
    ),
    "synthetic_classification": (
        {
            "samples": 200,
            "features": 3,
            "informative": 2,
            "classes": 3,
            "limit": 150,
            "test_split": 0.2,
            "validation_split": 0.25,
        },
        {"train": 90, "validation": 30, "test": 30},
        (3,),
        3,
    ),  # fmt: skip
    "synthetic_sequence": (
        {"samples": 100, "length": 12, "limit": 80, "test_split": 0.25, "validation_split": 0.25},
        {"train": 45, "validation": 15, "test": 20},
        (12, 1),
        0,
    ),
    "csv": (
        {"target": "label", "test_split": 0.25, "validation_split": 0.25},
        {"train": 22, "validation": 8, "test": 10},
        (2,),
        3,
    ),
    "npz": (
        {"test_split": 0.2, "validation_split": 0.25},
        {"train": 30, "validation": 10, "test": 10},
        (3,),
        2,
    ),
    "image_folder": (
        {
            "image_size": [6, 6],
            "color_mode": "grayscale",
            "test_split": 0.2,
            "validation_split": 0.25,
        },
        {"train": 12, "validation": 4, "test": 4},
        (6, 6, 1),
        2,
    ),
    "synthetic_linear": (
        {
            "samples": 50,
            "features": 2,
            "weight": [1.0, -1.0],
            "test_split": 0.2,
            "validation_split": 0.1,
        },
        {"train": 36, "validation": 4, "test": 10},
        (2,),
        0,
    ),  # fmt: skip
}


def write_small_csv(tmp_path: Path) -> Path:
    """40 rows, two numeric inputs, three classes (tables scale numeric columns only)."""
    lines = ["a,b,label"] + [f"{i * 0.5},{(i * 7) % 11},{'pqr'[i % 3]}" for i in range(40)]
    path = tmp_path / "small.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_small_npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    path = tmp_path / "small.npz"
    np.savez(path, x=rng.normal(size=(50, 3)), y=np.arange(50) % 2)
    return path


def write_small_image_folder(tmp_path: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(6)
    for label in ("cats", "dogs"):
        (tmp_path / "images" / label).mkdir(parents=True, exist_ok=True)
        for i in range(10):
            pixels = rng.integers(0, 256, size=(6, 6), dtype=np.uint8)
            pixels[0, 0], pixels[0, 1] = 0, 255  # the full range, for unit scaling checks
            Image.fromarray(pixels).save(tmp_path / "images" / label / f"{i}.png")
    return tmp_path / "images"


USER_FILES = {  # datasets read from the user's files -> a writer of a small one
    "csv": write_small_csv,
    "npz": write_small_npz,
    "image_folder": write_small_image_folder,
}


def _has_path(name: str) -> bool:
    """An MNIST-style path: an .npz archive or a directory of IDX files."""
    return "path" in DATASETS.get(name).params.model_fields and name not in USER_FILES


def _cases() -> list:
    out = []
    for name in DATASETS.names():
        for fmt in ("idx", "npz") if _has_path(name) else (None,):
            out.append(pytest.param(name, fmt, id=f"{name}-{fmt}" if fmt else name))
    return out


def small_params(name: str, fmt: str | None, tmp_path: Path, **overrides):
    if name not in CASES:
        pytest.fail(f"dataset '{name}' is registered but has no small case in CASES")
    kwargs = dict(CASES[name][0])
    if name in USER_FILES:
        kwargs["path"] = USER_FILES[name](tmp_path)
    elif fmt is not None:
        kwargs["path"] = fake_image_path(tmp_path, fmt)
    kwargs.update(overrides)
    return params(name, **kwargs)


def test_every_registered_dataset_has_a_case():
    assert set(DATASETS.names()) == set(CASES)


@pytest.mark.parametrize(("name", "fmt"), _cases())
def test_load_shapes_dtypes_spec_and_sizes(name, fmt, tmp_path):
    p = small_params(name, fmt, tmp_path)
    _, sizes, input_shape, num_classes = CASES[name]
    ds = load(p, seed=0)

    assert ds.sizes() == sizes
    assert ds.spec.task == p.task()
    assert ds.spec.input_shape == input_shape
    assert ds.spec.num_classes == num_classes
    splits = [(ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)]
    for x, y in splits:
        assert x.dtype == np.float32
        assert x.shape[1:] == input_shape
        assert len(x) == len(y)
        if ds.spec.is_classification:
            assert y.dtype == np.int32 and y.ndim == 1
            assert 0 <= y.min() and y.max() < num_classes
        else:
            assert y.dtype == np.float32 and y.shape == (len(x), 1)
    if ds.spec.is_classification:
        assert len(ds.spec.class_names) == num_classes
    else:
        assert ds.spec.target_dim == 1 and ds.spec.class_names == ()


@pytest.mark.parametrize(("name", "fmt"), _cases())
def test_unit_scaling_maps_train_to_0_1(name, fmt, tmp_path):
    ds = load(small_params(name, fmt, tmp_path, scaling="unit"), seed=0)
    assert ds.scaling["method"] == "unit"
    assert ds.x_train.min() == pytest.approx(0.0, abs=1e-6)
    assert ds.x_train.max() == pytest.approx(1.0, abs=1e-6)
    if _has_path(name) or name == "digits":  # known pixel range: every split is in [0, 1]
        for x in (ds.x_val, ds.x_test):
            assert 0.0 <= x.min() and x.max() <= 1.0


@pytest.mark.parametrize(("name", "fmt"), _cases())
def test_standard_scaling_is_fitted_on_train_only(name, fmt, tmp_path):
    raw = load(small_params(name, fmt, tmp_path, scaling="none"), seed=3)
    ds = load(small_params(name, fmt, tmp_path, scaling="standard"), seed=3)
    assert ds.scaling["method"] == "standard"
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-4)

    mean = raw.x_train.mean(axis=0)
    std = raw.x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    np.testing.assert_allclose(np.asarray(ds.scaling["mean"]), mean, rtol=1e-5, atol=1e-4)
    for scaled, unscaled in ((ds.x_val, raw.x_val), (ds.x_test, raw.x_test)):
        np.testing.assert_allclose(scaled, (unscaled - mean) / std, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("name", "fmt"), _cases())
def test_same_seed_same_splits_other_seed_other_splits(name, fmt, tmp_path):
    p = small_params(name, fmt, tmp_path)
    first, again, other = load(p, seed=7), load(p, seed=7), load(p, seed=8)
    for attr in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(first, attr), getattr(again, attr))
    assert not np.array_equal(first.x_train, other.x_train)
    assert not np.array_equal(first.x_val, other.x_val)


def test_default_scaling_is_the_datasets_own(tmp_path):
    images = load(params("mnist", path=fake_image_path(tmp_path, "npz")), seed=0)
    assert images.scaling == {"method": "unit", "min": 0.0, "max": 255.0}
    linear = load(params("synthetic_linear"), seed=0)
    assert linear.scaling == {"method": "none"}


def test_idx_and_npz_give_the_same_data(tmp_path):
    from_idx = load(params("mnist", path=fake_image_path(tmp_path, "idx")), seed=0)
    from_npz = load(params("mnist", path=fake_image_path(tmp_path, "npz")), seed=0)
    for attr in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(from_idx, attr), getattr(from_npz, attr))


def test_limit_applies_to_a_shipped_test_split(tmp_path):
    p = params("mnist", path=fake_image_path(tmp_path, "npz"), limit=5, validation_split=0)
    ds = load(p, seed=0)
    assert ds.sizes() == {"train": 5, "validation": 0, "test": 5}
    assert ds.x_val is None and ds.y_val is None
    arrays = fake_mnist_arrays()  # no validation split: the first 5 of each pool, reordered
    assert sorted(ds.y_test.tolist()) == sorted(arrays["y_test"][:5].tolist())


def test_mnist_path_that_does_not_exist(tmp_path):
    missing = tmp_path / "nowhere.npz"
    with raises_data_error(missing, "does not exist"):
        load(params("mnist", path=missing), seed=0)


def test_image_directory_with_mismatched_label_count(tmp_path):
    arrays = fake_mnist_arrays()
    arrays["y_train"] = arrays["y_train"][:50]
    directory = write_fake_idx_dir(tmp_path / "idx", arrays)
    with raises_data_error(directory, "train-labels", "(50,)"):
        load(params("fashion_mnist", path=directory), seed=0)


def test_datasets_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "from trainer.datasets import DATASETS, load\n"
        "for name in ('digits', 'synthetic_linear', 'synthetic_classification'):\n"
        "    load(DATASETS.get(name).params(type=name), 0)\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------- IDX reader


def test_read_idx_valid_images_and_labels(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([3, 7, 9], dtype=np.uint8)
    np.testing.assert_array_equal(
        mnist_module.read_idx(write_idx(tmp_path / "i.gz", images)), images
    )
    np.testing.assert_array_equal(
        mnist_module.read_idx(write_idx(tmp_path / "l.gz", labels)), labels
    )


def test_read_idx_truncated_data(tmp_path):
    data = idx_bytes(np.zeros((10, 28, 28), dtype=np.uint8))
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(data[: 16 + 100]))  # header promises 7840 bytes
    with raises_data_error(path, "truncated", "7840"):
        mnist_module.read_idx(path)


def test_read_idx_truncated_header(tmp_path):
    path = tmp_path / "header.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08"))
    with raises_data_error(path, "truncated IDX header"):
        mnist_module.read_idx(path)


@pytest.mark.parametrize(
    "magic",
    [b"\x00\x00\x0d\x03", b"\x00\x00\x08\x02", b"\x12\x34\x08\x01"],
    ids=["float", "2d", "junk"],
)
def test_read_idx_bad_magic_number(tmp_path, magic):
    path = tmp_path / "magic.gz"
    path.write_bytes(gzip.compress(magic + struct.pack(">III", 1, 1, 1) + b"\x00"))
    with raises_data_error(path, "bad magic number"):
        mnist_module.read_idx(path)


def test_read_idx_not_gzip(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(idx_bytes(np.zeros(4, dtype=np.uint8)))  # valid IDX, but not compressed
    with raises_data_error(path, "not a readable gzip file") as info:
        mnist_module.read_idx(path)
    assert "downloaded again" in info.value.hint


def test_read_idx_truncated_gzip_stream(tmp_path):
    compressed = gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint32).astype(np.uint8)))
    path = tmp_path / "cut.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with raises_data_error(path, "not a readable gzip file"):
        mnist_module.read_idx(path)


def test_read_idx_corrupt_deflate_data(tmp_path):
    compressed = bytearray(gzip.compress(idx_bytes(np.zeros(1000, dtype=np.uint8)), mtime=0))
    compressed[10:26] = b"\xff" * 16  # after the 10-byte gzip header: an invalid deflate block
    path = tmp_path / "garbled.gz"
    path.write_bytes(bytes(compressed))
    with raises_data_error(path, "not a readable gzip file"):
        mnist_module.read_idx(path)


def test_read_idx_missing_file(tmp_path):
    path = tmp_path / "absent.gz"
    with raises_data_error(path, "file not found"):
        mnist_module.read_idx(path)


# --------------------------------------------------------------------------- npz reader


def test_read_npz_valid(tmp_path):
    arrays = fake_mnist_arrays()
    result = mnist_module.read_npz(write_fake_npz(tmp_path / "ok.npz", arrays))
    for got, key in zip(result, ("x_train", "y_train", "x_test", "y_test"), strict=True):
        np.testing.assert_array_equal(got, arrays[key])


def test_read_npz_missing_key(tmp_path):
    arrays = fake_mnist_arrays()
    del arrays["y_test"]
    path = write_fake_npz(tmp_path / "partial.npz", arrays)
    with raises_data_error(path, "missing array(s) y_test", "found x_train") as info:
        mnist_module.read_npz(path)
    assert "y_test" in info.value.hint


def test_read_npz_mismatched_lengths(tmp_path):
    arrays = fake_mnist_arrays()
    arrays["y_train"] = arrays["y_train"][:59]
    path = write_fake_npz(tmp_path / "mismatch.npz", arrays)
    with raises_data_error(path, "x_train has shape (60, 28, 28)", "y_train (59,)"):
        mnist_module.read_npz(path)


def test_read_npz_flat_images(tmp_path):
    arrays = fake_mnist_arrays()
    arrays["x_test"] = arrays["x_test"].reshape(N_TEST, -1)
    path = write_fake_npz(tmp_path / "flat.npz", arrays)
    with raises_data_error(path, "x_test has shape (20, 784)"):
        mnist_module.read_npz(path)


@pytest.mark.parametrize(
    "content", [b"", b"this is not a zip archive\n" * 10, b"PK\x03\x04truncated"],
    ids=["empty", "text", "zip-magic-only"],
)  # fmt: skip
def test_read_npz_not_a_zip(tmp_path, content):
    path = tmp_path / "bogus.npz"
    path.write_bytes(content)
    with raises_data_error(path, "not a readable .npz archive"):
        mnist_module.read_npz(path)


def test_read_npz_truncated_archive(tmp_path):
    path = write_fake_npz(tmp_path / "cut.npz", fake_mnist_arrays())
    path.write_bytes(path.read_bytes()[:5000])
    with raises_data_error(path, "not a readable .npz archive"):
        mnist_module.read_npz(path)


def test_read_npz_corrupt_compressed_member(tmp_path):
    path = tmp_path / "garbled.npz"
    np.savez_compressed(path, **fake_mnist_arrays())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        offset = archive.infolist()[0].header_offset
    name_len, extra_len = struct.unpack("<HH", data[offset + 26 : offset + 30])
    start = offset + 30 + name_len + extra_len
    data[start : start + 16] = b"\xff" * 16  # an invalid deflate block
    path.write_bytes(bytes(data))
    with raises_data_error(path, "not a readable .npz archive"):
        mnist_module.read_npz(path)


def test_read_npz_object_array_is_refused(tmp_path):
    arrays = fake_mnist_arrays()
    arrays["y_train"] = np.array([{"label": i} for i in range(N_TRAIN)], dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)
    with raises_data_error(path, "allow_pickle"):
        mnist_module.read_npz(path)


def test_read_npz_bare_npy_file(tmp_path):
    path = tmp_path / "single.npz"
    with path.open("wb") as handle:
        np.save(handle, np.zeros((2, 28, 28), dtype=np.uint8))
    with raises_data_error(path, ".npy", "not an .npz archive"):
        mnist_module.read_npz(path)


# --------------------------------------------------------------------------- download


def test_download_success(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"payload" * 1000)
    target = tmp_path / "cache" / "sub" / "file.bin"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()

    assert mnist_module.download(source.as_uri(), target, digest) == target
    assert target.read_bytes() == source.read_bytes()
    assert not target.with_name(target.name + ".part").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_download_sha256_mismatch(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"not what was expected")
    target = tmp_path / "cache" / "file.bin"
    with pytest.raises(DataError) as info:
        mnist_module.download(source.as_uri(), target, "0" * 64)
    assert "SHA-256" in info.value.message
    assert "deleted" in info.value.message
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no .part left behind


def test_download_unreachable(tmp_path):
    target = tmp_path / "cache" / "mnist.npz"
    url = (tmp_path / "no-such-file.npz").as_uri()
    with pytest.raises(DataError) as info:
        mnist_module.download(url, target, "0" * 64)
    assert url in info.value.message
    assert str(target) in info.value.hint
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_mnist_downloads_into_keras_home_and_reuses_the_cache(tmp_path, monkeypatch):
    keras_home = tmp_path / "keras"
    keras_home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    source = write_fake_npz(tmp_path / "mirror" / "mnist.npz", fake_mnist_arrays())
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    p = params("mnist", url=source.as_uri(), sha256=digest)
    assert not DATASETS.get("mnist").info["available"]()

    first = load(p, seed=0)
    cached = keras_home / "datasets" / "mnist.npz"
    assert cached.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in cached.parent.iterdir()) == ["mnist.npz"]
    assert DATASETS.get("mnist").info["available"]()

    source.unlink()  # a second load must not need the mirror
    second = load(p, seed=0)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_test, second.y_test)


def test_mnist_download_with_wrong_sha256_caches_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    source = write_fake_npz(tmp_path / "mirror" / "mnist.npz", fake_mnist_arrays())
    with pytest.raises(DataError, match="SHA-256"):
        load(params("mnist", url=source.as_uri()), seed=0)  # the real file's hash
    assert not (tmp_path / "keras" / "datasets" / "mnist.npz").exists()


# --------------------------------------------------------------------------- Debian's files

DEBIAN_FASHION = mnist_module.DEBIAN_FASHION
debian_fashion = pytest.mark.skipif(
    not DEBIAN_FASHION.is_dir(),
    reason=f"{DEBIAN_FASHION} is absent (apt install dataset-fashion-mnist)",
)


@debian_fashion
def test_fashion_mnist_uses_debian_files(tmp_path, monkeypatch):
    empty = tmp_path / "empty-keras-cache"
    empty.mkdir()
    monkeypatch.setattr(mnist_module, "keras_cache", lambda: empty)
    assert DATASETS.get("fashion_mnist").info["available"]()

    ds = load(params("fashion_mnist"), seed=0)
    sizes = ds.sizes()
    assert sizes["train"] + sizes["validation"] == 60000
    assert sizes["validation"] == 6000
    assert sizes["test"] == 10000
    assert ds.spec.input_shape == (28, 28, 1)
    assert ds.spec.num_classes == 10
    assert ds.spec.class_names == tuple(mnist_module.FASHION_CLASSES)
    assert list(empty.iterdir()) == []  # nothing was downloaded


@debian_fashion
def test_fashion_mnist_download_verifies_each_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(mnist_module, "DEBIAN_FASHION", tmp_path / "no-debian")
    factory = DATASETS.get("fashion_mnist").factory
    raw = factory(seed=0, path=None, url=DEBIAN_FASHION.as_uri())  # a local "mirror"
    cache = tmp_path / "keras" / "datasets" / "fashion-mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(IDX_NAMES.values())
    assert raw.x_train.shape == (60000, 28, 28, 1) and raw.x_test.shape == (10000, 28, 28, 1)


# --------------------------------------------------------------------------- splits


def _proportions(y: np.ndarray, classes: int) -> np.ndarray:
    return np.bincount(y, minlength=classes) / len(y)


def test_stratified_splits_keep_class_proportions():
    p = params("synthetic_classification", samples=1000, classes=3, weights=[0.6, 0.3, 0.1],
               flip_y=0.0, test_split=0.2, validation_split=0.1)  # fmt: skip
    ds = load(p, seed=0)
    overall = _proportions(np.concatenate([ds.y_train, ds.y_val, ds.y_test]), 3)
    for y in (ds.y_train, ds.y_val, ds.y_test):
        np.testing.assert_allclose(_proportions(y, 3), overall, atol=1.5 / len(y) + 1e-9)


def test_digits_splits_are_stratified():
    ds = load(params("digits", test_split=0.3), seed=0)
    for y in (ds.y_train, ds.y_val, ds.y_test):
        counts = np.bincount(y, minlength=10)
        assert counts.max() - counts.min() <= math.ceil(0.02 * len(y)) + 2


@pytest.mark.parametrize(
    ("overrides", "what"),
    [
        ({"samples": 2, "test_split": 0.2}, "test"),  # 0.4 samples to hold out
        ({"samples": 2, "test_split": 0.6, "validation_split": 0.0}, "test"),  # none left
        ({"samples": 4, "test_split": 0.25, "validation_split": 0.1}, "validation"),
    ],
)
def test_dataset_too_small_for_the_split(overrides, what):
    with pytest.raises(DataError, match=f"cannot hold out a {what} split") as info:
        load(params("synthetic_linear", **overrides), seed=0)
    assert "limit" in info.value.hint


def test_limit_too_small_for_the_split():
    with pytest.raises(DataError, match="from 2 samples"):
        load(params("digits", limit=2, test_split=0.2), seed=0)


def test_extreme_split_falls_back_to_an_unstratified_one():
    p = params("synthetic_classification", samples=10, flip_y=0.0, test_split=0.9,
               validation_split=0.0)  # fmt: skip
    ds = load(p, seed=0)  # one training sample cannot hold both classes: no stratification
    assert ds.sizes() == {"train": 1, "validation": 0, "test": 9}


def test_synthetic_classification_weights_make_it_imbalanced():
    p = params("synthetic_classification", samples=2000, weights=[0.9, 0.1])
    ds = load(p, seed=0)
    assert ds.spec.task == "binary" and ds.spec.num_classes == 2
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    minority = np.mean(y == 1)
    assert 0.05 < minority < 0.15
    balanced = load(params("synthetic_classification", samples=2000), seed=0)
    assert 0.4 < np.mean(balanced.y_train == 1) < 0.6


def test_synthetic_linear_defaults_follow_y_equals_2x():
    ds = load(params("synthetic_linear"), seed=0)
    assert ds.spec.task == "regression" and ds.spec.input_shape == (1,)
    x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])[:, 0]
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])[:, 0]
    slope, intercept = np.polyfit(x, y, 1)
    assert slope == pytest.approx(2.0, abs=0.3)
    assert intercept == pytest.approx(0.0, abs=0.3)
    assert -1.0 <= x.min() and x.max() <= 1.0  # default scaling is none: raw U(-1, 1)


# --------------------------------------------------------------------------- sequences


def test_synthetic_sequence_forecast_carries_a_last_value_forecast():
    p = params("synthetic_sequence", samples=300, length=16, noise=0.0, limit=200, scaling="none")
    ds = load(p, seed=0)
    assert ds.spec.task == "regression" and ds.spec.input_shape == (16, 1)
    assert ds.naive_name == "last value"
    assert ds.naive_test.shape == (len(ds.x_test), 1)  # limit and split applied, in order
    np.testing.assert_array_equal(ds.naive_test[:, 0], ds.x_test[:, -1, 0])
    # noise-free waves: the next value follows from the last two by sin's recurrence
    x, y = ds.x_train[:, :, 0], ds.y_train[:, 0]
    cos_w = (x[:, -1] + x[:, -3]) / (2 * x[:, -2])
    ok = np.abs(x[:, -2]) > 0.3
    np.testing.assert_allclose(y[ok], (2 * cos_w * x[:, -1] - x[:, -2])[ok], atol=1e-3)

    scaled = load(params("synthetic_sequence", samples=300, length=16, noise=0.0, limit=200,
                         scaling="standard"), seed=0)  # fmt: skip
    np.testing.assert_array_equal(scaled.naive_test, ds.naive_test)  # raw values, not scaled
    assert not np.array_equal(scaled.x_test, ds.x_test)


def test_synthetic_sequence_classification_bands():
    p = params("synthetic_sequence", kind="sine_classification", classes=4, samples=400,
               frequency_range=[0.05, 0.25], validation_split=0.0)  # fmt: skip
    ds = load(p, seed=0)
    assert ds.spec.task == "multiclass" and ds.spec.num_classes == 4
    assert ds.spec.class_names[0] == "0.05-0.1 cycles/step"
    assert ds.naive_test is None
    counts = np.bincount(np.concatenate([ds.y_train, ds.y_test]), minlength=4)
    assert counts.min() > 60  # about 100 of each band
    # a wave's zero crossings grow with its band
    crossings = (np.diff(np.sign(ds.x_train[:, :, 0]), axis=1) != 0).sum(axis=1)
    means = [crossings[ds.y_train == band].mean() for band in range(4)]
    assert means == sorted(means)
    binary = params("synthetic_sequence", kind="sine_classification", classes=2)
    assert binary.task() == "binary"


def test_synthetic_sequence_is_made_from_the_seed():
    p = params("synthetic_sequence", samples=50, validation_split=0.0)
    factory = DATASETS.get("synthetic_sequence").factory
    first, again, other = (factory(seed=s, **p.loader_kwargs()) for s in (3, 3, 4))
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.y_train, again.y_train)
    assert not np.array_equal(first.x_train, other.x_train)
    assert first.x_train.shape == (50, 32, 1) and first.x_train.dtype == np.float32


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"frequency_range": [0.2, 0.1]}, "0 < low < high <= 0.5"),
        ({"frequency_range": [0.1, 0.7]}, "0 < low < high <= 0.5"),
    ],
)
def test_synthetic_sequence_rejects_inconsistent_options(overrides, fragment):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=fragment):
        params("synthetic_sequence", **overrides)
