"""The bad-input corpus: every case through `trainer fit`, checking the exit code, the key
words of the message, and that nothing was left behind (no run directory, no partial file).

Config problems exit 2 before anything is read; data problems exit 4 before training.
"""

import gzip
import hashlib
import struct

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from trainer.cli.commands import app

runner = CliRunner()
GOOD = "dataset:\n  type: digits\n  limit: 100\ntraining:\n  epochs: 1\n"


def _idx(path, array, magic_dtype=0x08):
    header = struct.pack(">HBB", 0, magic_dtype, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def _mnist_dir(root, *, truncate=None, bad_magic=None, label_count=None):
    rng = np.random.default_rng(0)
    folder = root / "idx"
    folder.mkdir()
    sizes = {"train": 30, "t10k": 10}
    for part, n in sizes.items():
        _idx(folder / f"{part}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        labels = rng.integers(0, 10, label_count if part == "train" and label_count else n)
        _idx(folder / f"{part}-labels-idx1-ubyte.gz", labels,
             magic_dtype=bad_magic if part == "train" and bad_magic else 0x08)  # fmt: skip
    if truncate:
        path = folder / "train-images-idx3-ubyte.gz"
        data = gzip.decompress(path.read_bytes())[:-truncate]
        path.write_bytes(gzip.compress(data))
    return folder


def _npz(root, **arrays):
    path = root / "data.npz"
    np.savez(path, **arrays)
    return path


def _images(n=20):
    rng = np.random.default_rng(1)
    return rng.integers(0, 255, (n, 28, 28)).astype(np.uint8), rng.integers(0, 10, n)


def _good_npz_arrays():
    x, y = _images()
    return {"x_train": x, "y_train": y, "x_test": x[:5], "y_test": y[:5]}


# Each case: (id, config text or a function of tmp_path returning it, --set args, code, words)
CONFIG_CASES = [
    (
        "unknown key",
        "dataset: digits\noptimiser: adam\n",
        [],
        2,
        ["optimiser", "did you mean 'optimizer'"],
    ),
    (
        "unknown nested key",
        "dataset: digits\ntraining:\n  epoch: 3\n",
        [],
        2,
        ["training.epoch", "line 3"],
    ),
    (
        "unknown dataset",
        "dataset: digit\n",
        [],
        2,
        ["unknown dataset type 'digit'", "did you mean 'digits'"],
    ),
    ("unknown model", "dataset: digits\nmodel: fn\n", [], 2, ["unknown model type 'fn'", "'fnn'"]),
    (
        "unknown optimizer",
        "dataset: digits\noptimizer: adamm\n",
        [],
        2,
        ["unknown optimizer type", "'adam'"],
    ),
    (
        "negative learning rate",
        "dataset: digits\noptimizer:\n  type: adam\n  learning_rate: -0.1\n",
        [],
        2,
        ["optimizer.learning_rate", "greater than 0"],
    ),
    (
        "infinite learning rate",
        "dataset: digits\noptimizer:\n  type: sgd\n  learning_rate: .inf\n",
        [],
        2,
        ["optimizer.learning_rate", "finite"],
    ),
    (
        "validation split 1.5",
        "dataset:\n  type: digits\n  validation_split: 1.5\n",
        [],
        2,
        ["dataset.validation_split", "less than 1"],
    ),
    (
        "zero epochs",
        "dataset: digits\ntraining:\n  epochs: 0\n",
        [],
        2,
        ["training.epochs", "greater than or equal to 1"],
    ),
    (
        "zero batch size",
        "dataset: digits\ntraining:\n  batch_size: 0\n",
        [],
        2,
        ["training.batch_size", "positive integer or 'full'"],
    ),
    ("zero limit", "dataset:\n  type: digits\n  limit: 0\n", [], 2, ["dataset.limit"]),
    ("negative seed", "dataset: digits\nseed: -1\n", [], 2, ["seed", "greater than or equal to 0"]),
    (
        "negative units",
        "dataset: digits\nmodel:\n  type: fnn\n  units: [8, -3]\n",
        [],
        2,
        ["model.units.1", "greater than 0"],
    ),
    (
        "activation typo",
        "dataset: digits\nmodel:\n  type: fnn\n  activation: rellu\n",
        [],
        2,
        ["did you mean 'relu'"],
    ),
    (
        "monitor not logged",
        "dataset: digits\nearly_stopping:\n  monitor: val_f1\n",
        [],
        2,
        ["early_stopping.monitor", "only in the final report"],
    ),
    (
        "monitor without validation",
        "dataset:\n  type: digits\n  validation_split: 0\nearly_stopping: {}\n",
        [],
        2,
        ["validation_split is 0"],
    ),
    (
        "metric for the wrong task",
        "dataset: digits\nmetrics: [r2]\n",
        [],
        2,
        ["'r2' does not apply", "multiclass"],
    ),
    (
        "loss for the wrong task",
        "dataset: synthetic_linear\nloss: binary_crossentropy\n",
        [],
        2,
        ["does not fit the regression task"],
    ),
    (
        "gd with mini-batches",
        "dataset: digits\noptimizer: gd\ntraining:\n  batch_size: 32\n",
        [],
        2,
        ["full-batch", "batch_size: full"],
    ),
    (
        "dropout on linear",
        "dataset: digits\nmodel: linear\nregularization:\n  dropout: 0.5\n",
        [],
        2,
        ["does not use dropout"],
    ),
    ("run name escaping the root", "name: ../../x\ndataset: digits\n", [], 2, ["cannot hold '/'"]),
    (
        "yaml syntax error",
        "dataset: digits\ntraining: [1, 2\n",
        [],
        2,
        ["YAML syntax error", "line"],
    ),
    (
        "duplicate key",
        "dataset: digits\nseed: 1\nseed: 2\n",
        [],
        2,
        ["duplicate key 'seed'", "line 2"],
    ),
    (
        "python tag",
        "dataset: !!python/object/apply:os.system ['echo pwned']\n",
        [],
        2,
        ["unsupported YAML tag"],
    ),
    (
        "alias bomb",
        "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
        [],
        2,
        ["alias bomb"],
    ),
    ("empty file", "", [], 2, ["is empty"]),
    ("top-level list", "- dataset\n", [], 2, ["must be a mapping"]),
    ("missing dataset", "seed: 1\n", [], 2, ["dataset", "required"]),
    ("set without equals", GOOD, ["--set", "training.epochs"], 2, ["expected KEY.PATH=VALUE"]),
    ("set into a scalar", GOOD, ["--set", "dataset.type.x=3"], 2, ["'dataset.type' holds a"]),
    ("set an unknown key", GOOD, ["--set", "training.epoch=3"], 2, ["training.epoch (--set)"]),
    ("bad gate", GOOD, ["--fail-under", "accuracy"], 2, ["METRIC=NUMBER"]),
]


def _data_cases():
    def mnist_npz(tmp_path, **arrays):
        path = _npz(tmp_path, **arrays)
        return f"dataset:\n  type: mnist\n  path: {path}\n"

    def mnist_idx(tmp_path, **kwargs):
        return f"dataset:\n  type: fashion_mnist\n  path: {_mnist_dir(tmp_path, **kwargs)}\n"

    def not_a_zip(tmp_path):
        (tmp_path / "data.npz").write_text("hello")
        return f"dataset:\n  type: mnist\n  path: {tmp_path / 'data.npz'}\n"

    def corrupt_gz(tmp_path):
        folder = _mnist_dir(tmp_path)
        (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08garbage")
        return f"dataset:\n  type: fashion_mnist\n  path: {folder}\n"

    def download(tmp_path, good_hash):
        source = _npz(tmp_path, **_good_npz_arrays())
        digest = hashlib.sha256(source.read_bytes()).hexdigest() if good_hash else "0" * 64
        url = f"file://{source}" if good_hash is not None else f"file://{tmp_path}/nothing.npz"
        return f"dataset:\n  type: mnist\n  url: {url}\n  sha256: '{digest}'\n"

    def objects(tmp_path):
        arrays = _good_npz_arrays()
        arrays["y_train"] = np.array([{"a": 1}] * 20, dtype=object)
        path = tmp_path / "data.npz"
        np.savez(path, **arrays, allow_pickle=True)
        return f"dataset:\n  type: mnist\n  path: {path}\n"

    x, y = _images()
    return [
        (
            "missing data path",
            lambda t: f"dataset:\n  type: mnist\n  path: {t / 'nope.npz'}\n",
            4,
            ["does not exist"],
        ),
        (
            "npz missing keys",
            lambda t: mnist_npz(t, x_train=x, y_train=y),
            4,
            ["missing array", "x_test"],
        ),
        ("npz not a zip", not_a_zip, 4, ["not a readable .npz"]),
        ("npz object array", objects, 4, ["data.npz"]),
        (
            "npz length mismatch",
            lambda t: mnist_npz(t, x_train=x, y_train=y[:5], x_test=x, y_test=y),
            4,
            ["x_train", "y_train"],
        ),
        ("idx truncated", lambda t: mnist_idx(t, truncate=100), 4, ["truncated or corrupt"]),
        ("idx bad magic", lambda t: mnist_idx(t, bad_magic=0x0D), 4, ["bad magic number"]),
        ("idx label count mismatch", lambda t: mnist_idx(t, label_count=7), 4, ["idx"]),
        ("gzip corrupt", corrupt_gz, 4, ["t10k-images-idx3-ubyte.gz"]),
        (
            "download unreachable",
            lambda t: download(t, None),
            4,
            ["could not download", "put it at"],
        ),
        ("download hash mismatch", lambda t: download(t, False), 4, ["SHA-256", "deleted"]),
        (
            "too little data for the split",
            lambda t: (
                "dataset:\n  type: synthetic_linear\n  samples: 2\n  test_split: 0.5\n"
                "  validation_split: 0.5\n"
            ),
            4,
            ["cannot hold out"],
        ),
    ]


def _run(tmp_path, monkeypatch, text, extra):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    (tmp_path / "config.yaml").write_text(text)
    before = {p for p in tmp_path.rglob("*")}
    result = runner.invoke(app, ["fit", "config.yaml", *extra])
    left = {p for p in tmp_path.rglob("*")} - before
    return result, left


@pytest.mark.parametrize(("text", "extra", "code", "words"),
                         [pytest.param(*c[1:], id=c[0]) for c in CONFIG_CASES])  # fmt: skip
def test_bad_config(tmp_path, monkeypatch, text, extra, code, words):
    result, left = _run(tmp_path, monkeypatch, text, extra)
    assert result.exit_code == code, result.output
    for word in words:
        assert word in result.stderr
    assert "Traceback" not in result.output
    assert not left, f"left behind: {left}"


@pytest.mark.parametrize(("make", "code", "words"),
                         [pytest.param(*c[1:], id=c[0]) for c in _data_cases()])  # fmt: skip
def test_bad_data(tmp_path, monkeypatch, make, code, words):
    text = make(tmp_path)
    result, left = _run(tmp_path, monkeypatch, text, ["--set", "training.epochs=1"])
    assert result.exit_code == code, result.output
    for word in words:
        assert word in result.stderr, result.stderr
    assert "Traceback" not in result.output
    leftovers = [p for p in left if p.name != "keras-home" and "keras-home" not in p.parts[-2:]]
    assert not [p for p in left if p.suffix == ".part"]
    assert not [p for p in leftovers if p.is_file()], f"left behind: {leftovers}"
    assert not (tmp_path / "runs").exists()


def test_corpus_is_large_enough():
    assert len(CONFIG_CASES) + len(_data_cases()) >= 40


def test_the_yaml_of_every_case_is_what_it_claims():
    # guard against a case passing for the wrong reason: the good base config itself is fine
    assert yaml.safe_load(GOOD)["dataset"]["type"] == "digits"
