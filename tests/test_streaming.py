"""Image folders streamed from their files (issue 18): the lazy array, the in-memory policy,
the caches, and streamed runs against in-memory ones: same bits, same resume, bad files named.

Folders here are a few dozen tiny PNG and JPEG files written to ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from trainer.cli.commands import app
from trainer.core.errors import DataError
from trainer.datasets import DATASETS, load
from trainer.datasets.image_files import ImageFiles, ImageSource, decode
from trainer.datasets.image_folder import image_files
from trainer.datasets.storage import place

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
SIZE = (12, 10)


def folder(tmp_path: Path, classes=("cats", "dogs", "owls"), count=14) -> Path:
    """Images of varying sizes (resized on reading), the class in one colour channel."""
    from PIL import Image

    root = tmp_path / "images"
    rng = np.random.default_rng(5)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, size=(14 + i % 3, 11 + i % 4, 3), dtype=np.uint8)
            pixels[..., c] = 230
            suffix = ".jpg" if i % 2 else ".png"
            Image.fromarray(pixels).save(root / name / f"{i:02d}{suffix}")
    return root


def params(root: Path, **changes):
    values = {"path": str(root), "image_size": list(SIZE), **changes}
    return DATASETS.get("image_folder").params(type="image_folder", **values)


def source(root: Path, cache="none") -> ImageSource:
    files = [f for c in sorted(os.listdir(root)) for f in image_files(root / c)]
    return ImageSource(files, SIZE, "rgb", cache)


# --------------------------------------------------------------------------- the lazy array


def test_image_files_read_what_decoding_each_file_gives(tmp_path):
    src = source(folder(tmp_path))
    images = ImageFiles(src)
    expected = np.stack([decode(f, SIZE, "rgb") for f in src.files])
    assert images.shape == expected.shape and images.dtype == np.uint8 and len(images) == 42
    assert images.nbytes == expected.nbytes
    view = images[5:20]
    assert isinstance(view, ImageFiles) and src.reads.sum() == 0  # a slice reads nothing
    picked = np.array([3, 0, 7])
    np.testing.assert_array_equal(view[picked], expected[5:20][picked])  # reads those three
    assert src.reads.sum() == 3 and view.decoded == 3
    np.testing.assert_array_equal(images[4], expected[4])
    subset = images.take(np.array([40, 2, 2]))
    assert isinstance(subset, ImageFiles) and len(subset) == 3
    np.testing.assert_array_equal(np.asarray(subset), expected[[40, 2, 2]])
    np.testing.assert_array_equal(np.asarray(images), expected)


@pytest.mark.parametrize("method", ["unit", "standard", "none"])
def test_scaling_while_reading_gives_the_in_memory_bits(tmp_path, method):
    from trainer.datasets import _fit_scaler

    images = ImageFiles(source(folder(tmp_path)))
    pixels = np.asarray(images)
    scaler = _fit_scaler(method, pixels, (0.0, 255.0) if method == "unit" else None)
    lazy = images.scaled(scaler.offset, scaler.scale)
    assert lazy.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(lazy), scaler(pixels))
    low, high = lazy.value_range
    assert low <= scaler(pixels).min() and scaler(pixels).max() <= high


def test_standard_statistics_in_one_streamed_pass_match_numpy(tmp_path):
    images = ImageFiles(source(folder(tmp_path)))
    mean, std = images.pixel_statistics(chunk=5)  # 42 images in 9 chunks
    pixels = np.asarray(images, dtype=np.float64)
    np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------- the policy


@pytest.mark.parametrize("scaling", ["default", "standard", "none"])
def test_streamed_splits_hold_the_same_samples_as_in_memory_ones(tmp_path, scaling):
    root = folder(tmp_path)
    whole = load(params(root, in_memory=True, scaling=scaling), seed=4)
    streamed = load(params(root, in_memory=False, scaling=scaling), seed=4)
    assert whole.storage["in_memory"] and not streamed.storage["in_memory"]
    assert streamed.storage["reason"] == "streamed from 42 files (dataset.in_memory: false)"
    assert isinstance(streamed.x_train, ImageFiles) and isinstance(whole.x_train, np.ndarray)
    for split in ("train", "val", "test"):
        a, b = getattr(whole, f"x_{split}"), getattr(streamed, f"x_{split}")
        np.testing.assert_array_equal(getattr(whole, f"y_{split}"), getattr(streamed, f"y_{split}"))
        if scaling == "standard":  # statistics summed exactly vs NumPy's float32 pairwise sums
            np.testing.assert_allclose(np.asarray(b), a, rtol=1e-4, atol=1e-4)
        else:
            np.testing.assert_array_equal(np.asarray(b), a)
    assert streamed.preprocessing.keys() == whole.preprocessing.keys()


def test_standard_scaling_reads_the_training_split_once_and_nothing_else(tmp_path):
    data = load(params(folder(tmp_path), in_memory=False, scaling="standard"), seed=4)
    reads = data.x_train.source.reads
    assert reads[data.x_train.index].tolist() == [1] * len(data.x_train)
    assert reads.sum() == len(data.x_train)  # validation and test: not read yet


def test_auto_keeps_in_memory_what_fits_in_half_the_memory_available(tmp_path):
    images = ImageFiles(source(folder(tmp_path)))
    p = params(tmp_path / "images")
    needed = images.nbytes
    kept, said = place(p, {"train": images, "test": None}, available=2 * needed)
    assert isinstance(kept["train"], np.ndarray) and said["in_memory"]
    assert said["reason"].startswith("in memory: 42 images take")
    kept, said = place(p, {"train": images, "test": None}, available=2 * needed - 1)
    assert kept["train"] is images and not said["in_memory"]
    assert "streamed from 42 files: in memory they would take" in said["reason"]
    assert said["available"] == 2 * needed - 1 and said["bytes"] == needed


def test_cache_and_in_memory_settings_are_checked_before_anything_runs(tmp_path):
    from trainer.config.loading import load_config
    from trainer.core.errors import ConfigError

    root = folder(tmp_path)
    base = {"dataset": {"type": "image_folder", "path": str(root), "image_size": list(SIZE)}}
    cases = [
        ({"in_memory": True, "cache": "memory"}, {"type": "cnn"}, "dataset.cache"),
        ({"in_memory": False}, {"type": "vae"}, "dataset.in_memory"),
        ({"in_memory": "yes"}, {"type": "cnn"}, "dataset.in_memory"),
    ]
    for dataset, model, key in cases:
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump({"dataset": base["dataset"] | dataset, "model": model}))
        with pytest.raises(ConfigError) as found:
            load_config(config)
        assert key in str(found.value), found.value


# --------------------------------------------------------------------------- the caches


def test_memory_cache_decodes_each_image_once(tmp_path):
    src = source(folder(tmp_path), cache="memory")
    images = ImageFiles(src)
    first = images[np.arange(42)]
    again = images[np.arange(41, -1, -1)]
    np.testing.assert_array_equal(again, first[::-1])
    assert src.reads.tolist() == [1] * 42


def test_folder_cache_is_reused_by_a_later_run_and_renewed_when_a_file_changes(tmp_path):
    root, cache = folder(tmp_path), tmp_path / "cache"
    first = ImageFiles(source(root, cache=cache))
    expected = first[np.arange(42)]
    assert len(list(cache.glob("*.pixels.npy"))) == 1
    later = ImageFiles(source(root, cache=cache))  # another process, the same files
    np.testing.assert_array_equal(later[np.arange(42)], expected)
    assert later.source.reads.sum() == 0
    changed = later.source.files[3]
    os.utime(changed, ns=(1, 1))  # a new modification time: the old pixels may be stale
    renewed = ImageFiles(source(root, cache=cache))
    renewed[np.arange(42)]
    assert renewed.source.reads.sum() == 42 and len(list(cache.glob("*.pixels.npy"))) == 2


def test_a_cache_folder_that_cannot_be_written_is_a_data_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    images = ImageFiles(source(folder(tmp_path), cache=blocker))
    with pytest.raises(DataError, match="dataset.cache: cannot use"):
        images[np.arange(3)]


# --------------------------------------------------------------------------- whole runs


def config(root: Path, in_memory, **training) -> dict:
    return {
        "name": "streamed",
        "seed": 9,
        "dataset": {
            "type": "image_folder",
            "path": str(root),
            "image_size": list(SIZE),
            "in_memory": in_memory,
            "validation_split": 0.2,
        },  # fmt: skip
        "model": {"type": "cnn", "filters": [4], "dense_units": [8]},
        "regularization": {"dropout": 0.2},
        "training": {"epochs": 2, "batch_size": 8, **training},
        "checkpoint": {"every_steps": 2},
    }


def fit(tmp_path: Path, data: dict, name: str):
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return runner.invoke(app, ["fit", str(tmp_path / f"{name}.yaml"), "--run-dir",
                               str(tmp_path / name), "--json"])  # fmt: skip


def test_a_streamed_run_ends_bit_for_bit_where_the_in_memory_run_ends(tmp_path):
    root = folder(tmp_path)
    results = {m: fit(tmp_path, config(root, m), f"run-{m}") for m in (True, False)}
    for result in results.values():
        assert result.exit_code == 0, result.output
    assert json.loads(results[True].stdout) == json.loads(results[False].stdout)
    memory, streamed = tmp_path / "run-True", tmp_path / "run-False"
    assert (memory / "history.csv").read_text() == (streamed / "history.csv").read_text()
    states = []
    for run in (memory, streamed):  # keyed by position: Keras numbers the second run's names
        with np.load(run / "checkpoints" / "step-000000008" / "state.npz") as state:
            states.append({tuple(k.split("/")[:2]): state[k] for k in state.files})
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        np.testing.assert_array_equal(states[0][key], states[1][key], err_msg=str(key))
    described = json.loads((streamed / "environment.json").read_text())["data"]
    assert described["in_memory"] is False and described["files"] == 42
    assert "data: streamed from 42 files" in " ".join(results[False].stderr.split())
    evaluated = runner.invoke(app, ["eval", str(streamed), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout) == json.loads(results[False].stdout)


def trainer_process(cwd: Path, *args: str, fault: str | None = None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TRAINER_FAULT", None)
    if fault:
        env["TRAINER_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_a_streamed_run_killed_mid_epoch_resumes_to_the_same_weights(tmp_path):
    root = folder(tmp_path)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config(root, False)))
    whole = trainer_process(tmp_path, "fit", "c.yaml", "--run-dir", "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = trainer_process(tmp_path, "fit", "c.yaml", "--run-dir", "killed", fault="sigkill@7")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (tmp_path / "killed" / "model.keras").exists()
    resumed = trainer_process(tmp_path, "fit", "--resume", "killed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from step-000000006" in resumed.stderr
    for name in ("history.csv", "metrics.json"):
        assert (tmp_path / "whole" / name).read_text() == (tmp_path / "killed" / name).read_text()
    latest = (tmp_path / "whole" / "checkpoints" / "latest").read_text().strip()
    with np.load(tmp_path / "whole" / "checkpoints" / latest / "state.npz") as a, np.load(
        tmp_path / "killed" / "checkpoints" / latest / "state.npz"
    ) as b:  # fmt: skip
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_an_image_broken_after_its_header_stops_the_run_naming_it_and_keeps_checkpoints(tmp_path):
    root = folder(tmp_path)
    data = config(root, False, epochs=3)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    from trainer.config.loading import load_config

    cfg = load_config(tmp_path / "c.yaml")
    loaded = load(cfg.dataset, cfg.seed)
    # the file the training split reads last in the first epoch: found mid-epoch
    from trainer.datasets.pipeline import permutation

    order = loaded.x_train.index[permutation(cfg.seed, 0, len(loaded.x_train))]
    pngs = [i for i in order if loaded.x_train.source.files[i].suffix == ".png"]
    victim = loaded.x_train.source.files[pngs[-1]]  # a PNG's header is whole in its first bytes
    content = victim.read_bytes()
    victim.write_bytes(content[: len(content) // 2])  # the header survives, the pixels not
    result = trainer_process(tmp_path, "fit", "c.yaml", "--run-dir", "run")
    assert result.returncode == 4, result.stderr[-3000:]
    said = " ".join(result.stderr.split())
    assert f"{victim}: not a readable image" in said and "Traceback" not in result.stderr
    assert "`--resume` continues from the last checkpoint" in said
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step-*"))
    assert kept and not (tmp_path / "run" / "model.keras").exists()


def test_predict_reads_a_folder_batch_by_batch_as_the_run_did(tmp_path):
    root = folder(tmp_path)
    result = fit(tmp_path, config(root, False, epochs=1), "run")
    assert result.exit_code == 0, result.output
    out = tmp_path / "predictions.csv"
    predicted = runner.invoke(app, ["predict", str(tmp_path / "run"), "--input",
                                    str(root / "owls"), "--output", str(out)])  # fmt: skip
    assert predicted.exit_code == 0, predicted.output
    rows = out.read_text().splitlines()
    assert len(rows) == 15 and rows[1].startswith("00.png")


# --------------------------------------------------------------------------- sharding


@pytest.mark.parametrize("epoch", [0, 1])
def test_each_process_decodes_only_its_own_share_of_the_files(tmp_path, epoch):
    from trainer.training.replicas import ReplicatedBatches

    root = folder(tmp_path)
    read = []
    for process in (0, 1):  # two processes: each its own source, as on two hosts
        images = ImageFiles(source(root))
        batches = ReplicatedBatches(images, np.zeros(42, np.int32), 8, 3, replicas=2,
                                    process=process, processes=2)  # fmt: skip
        for _ in batches.epoch(epoch):
            pass
        read.append(images.source.reads.copy())
    assert read[0].max() == read[1].max() == 1  # no image twice in an epoch
    assert not (read[0] & read[1]).any()  # disjoint shards
    assert (read[0] + read[1]).tolist() == [1] * 42  # together: every image once


def test_inspect_decodes_no_image_and_says_where_training_would_keep_them(tmp_path, monkeypatch):
    from trainer.datasets import image_files
    from trainer.datasets.inspect import inspect

    decoded = []
    real = image_files.decode
    monkeypatch.setattr(image_files, "decode", lambda *a: decoded.append(a[0]) or real(*a))
    report = inspect(params(folder(tmp_path)), seed=0)
    assert decoded == [] and report["problems"] == []
    assert report["splits"] == {"train": 29, "validation": 4, "test": 9}
    assert report["storage"]["in_memory"] and report["storage"]["files"] == 42
    assert report["storage"]["reason"].startswith("in memory: 42 images take")
    result = runner.invoke(app, ["datasets", "inspect", str(write_config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "training would keep the data in memory: 42 images" in " ".join(result.output.split())


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "inspect.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path / "images", "auto")))
    return path
