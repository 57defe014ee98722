"""Hostile inputs, round two (issue #16): every file a user or an attacker can hand the trainer.

One case per class of failure and per file the trainer reads: the config, ``--set``, data
files (CSV, NPZ, images), and every file of a run directory it reads back (config.yaml,
preprocessing.json, metrics.json, model.keras). Each case runs ``python -m trainer`` in its
own process under a time limit (a FIFO that blocks would fail the case, not hang the suite)
and asserts the documented exit code, words that name the file or key and the fix, no
traceback, no "internal error", a bounded output, and no run directory left behind by a
refused ``fit``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TINY = {
    "seed": 0,
    "dataset": {"type": "digits", "limit": 120},
    "model": {"type": "fnn", "units": [8]},
    "training": {"epochs": 1, "batch_size": 32},
}
LIMIT = 60  # seconds per case: a hang fails the case
BOUNDED = 6000  # characters of output: hostile values are cut, not echoed whole


def trainer(cwd: Path, *args: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TRAINER_FAULT", None)
    done = subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=LIMIT,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def assert_refused(result: tuple[int, str], code: int, *words: str) -> str:
    rc, output = result
    assert rc == code, output[-3000:]
    for word in words:
        assert word in output, f"{word!r} not in: {output[-3000:]}"
    assert "Traceback" not in output and "internal error" not in output, output[-3000:]
    assert len(output) < BOUNDED, f"{len(output)} characters of output"
    return output


def config(where: Path, **sections) -> str:
    data = {**TINY, **sections}
    (where / "config.yaml").write_text(yaml.safe_dump(data))
    return "config.yaml"


def fit_refused(where: Path, code: int, *words: str, args: tuple = ()) -> str:
    output = assert_refused(trainer(where, "fit", *args, "--run-dir", "run"), code, *words)
    assert not (where / "run").exists()  # refused before anything was written
    return output


# -- 1. special files, 6. messages that drown the terminal, 8. locations: the config --------
def bomb(levels: int = 8) -> str:
    """A YAML alias bomb: 9**levels values from a few hundred bytes."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "{" + ", ".join(lines) + "}"


CONFIG_CASES = {
    "fifo": (lambda w: os.mkfifo(w / "c.yaml") or "c.yaml", 2, ["c.yaml", "named pipe"]),
    "device": (lambda w: "/dev/zero", 2, ["/dev/zero", "character device"]),
    "directory": (lambda w: (w / "d.yaml").mkdir() or "d.yaml", 2, ["d.yaml", "directory"]),
    "huge": (
        lambda w: (w / "h.yaml").write_text("name: " + "a" * 3_000_000) and "h.yaml",
        2, ["h.yaml", "larger than"],
    ),
    "not utf-8 on line 42": (
        lambda w: (w / "l.yaml").write_bytes(b"# x\n" * 41 + b"name: caf\xe9\n") and "l.yaml",
        2, ["l.yaml", "line 42", "UTF-8"],
    ),
    "long value": (
        lambda w: (w / "v.yaml").write_text(yaml.safe_dump({**TINY, "name": "-" * 500_000}))
        and "v.yaml",
        2, ["name (line", "characters)"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_config_files_that_cannot_be_configs(tmp_path, case):
    make, code, words = CONFIG_CASES[case]
    path = make(tmp_path)
    fit_refused(tmp_path, code, *words, args=(path,))


SET_CASES = {
    "alias bomb": (f"name={bomb()}", ["--set", "alias bomb"]),
    "long value": ("name=" + "b" * 100_000, ["name (--set)", "characters)"]),
    "bad list item at --set": ("model.units=[abc]", ["model.units.0 (--set)"]),
    "huge batch": (f"training.batch_size={10**26}", ["training.batch_size (--set)"]),
    "huge epochs": (f"training.epochs={10**26}", ["training.epochs (--set)"]),
    "epochs past the ceiling": ("training.epochs=2000000", ["training.epochs", "1000000"]),
    "batch past int32": (f"training.batch_size={2**31}", ["training.batch_size", "2**31"]),
    "huge checkpoint cadence": (f"checkpoint.every_steps={2**40}", ["checkpoint.every_steps"]),
    "huge limit": (f"dataset.limit={2**40}", ["dataset.limit"]),
    "rate beyond float32": ("optimizer.learning_rate=1e39", ["optimizer.learning_rate", "float32"]),
    "synthetic too large": (
        "dataset={type: synthetic_classification, samples: 10000000, features: 100000}",
        ["dataset", "GiB"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", SET_CASES)
def test_overrides_the_machine_cannot_hold_or_show(tmp_path, case):
    override, words = SET_CASES[case]
    fit_refused(tmp_path, 2, *words, args=(config(tmp_path), "--set", override))


def test_every_integer_in_the_schema_has_a_ceiling():
    """Class 2 as a rule, not a list: an unbounded integer is a value the schema accepts and
    the machine cannot hold."""
    from trainer.config.schema import Config

    schema = Config.model_json_schema()
    definitions = schema.get("$defs", {})
    unbounded = set()

    def walk(node, path):
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(definitions[node["$ref"].split("/")[-1]], path)
            bounded = "maximum" in node or "exclusiveMaximum" in node
            if node.get("type") == "integer" and not bounded:
                unbounded.add(path)
            for key in ("anyOf", "oneOf", "allOf"):
                for sub in node.get(key, []):
                    walk(sub, path)
            for key, sub in node.get("properties", {}).items():
                walk(sub, f"{path}.{key}")
            if "items" in node:
                walk(node["items"], f"{path}[]")

    walk(schema, "")
    # batch sizes and steps per execution are bounded by their own validator (MAX_COUNT)
    validated = {".training.batch_size", ".training.steps_per_execution",
                 ".training.eval_batch_size", ".dataset.missing.fill_value"}  # fmt: skip
    assert unbounded - validated == set()


# -- 1. special files, 3. data that loads but cannot train, 8. exit codes: data files ------
def npz(where: Path, **arrays) -> None:
    np.savez(where / "data.npz", **arrays)


def csv_text(where: Path, text: str) -> None:
    (where / "data.csv").write_text(text)


CSV = {"type": "csv", "path": "data.csv", "target": "y"}
NPZ = {"type": "npz", "path": "data.npz"}
DATA_CASES = {
    "csv is a fifo": (CSV, lambda w: os.mkfifo(w / "data.csv"), ["data.csv", "named pipe"]),
    "npz is a device": ({**NPZ, "path": "/dev/zero"}, None, ["/dev/zero", "character device"]),
    "csv beyond float32": (
        {**CSV, "task": "binary"},
        lambda w: csv_text(w, "a,b,y\n" + "".join(f"{1e308 * (-1) ** i},{i},{i % 2}\n"
                                                  for i in range(60))),
        ["data.csv", "column 'a'", "rescale"],
    ),
    "header-only csv, task auto": (CSV, lambda w: csv_text(w, "a,b,y\n"),
                                   ["data.csv", "no data rows"]),
    "missing csv, task auto": (CSV, None, ["data.csv", "file not found"]),
    "npz with no features": (
        NPZ, lambda w: npz(w, x=np.zeros((50, 0)), y=np.arange(50) % 2),
        ["data.npz", "no features"],
    ),
    "npz label 10**9": (
        NPZ, lambda w: npz(w, x=np.zeros((50, 3)), y=np.r_[np.arange(49) % 2, 10**9]),
        ["data.npz", "1000000000", "0..k-1"],
    ),
    "npz 2-D text labels": (
        NPZ, lambda w: npz(w, x=np.zeros((50, 3)), y=np.array([["a", "b"]] * 50)),
        ["data.npz", "one per sample"],
    ),
    "npz with no samples": (
        NPZ, lambda w: npz(w, x=np.zeros((0, 3)), y=np.zeros(0)),
        ["data.npz", "no samples"],
    ),
    "an image that is a fifo": (
        {"type": "image_folder", "path": "images", "image_size": [8, 8]},
        lambda w: [(w / "images" / c).mkdir(parents=True) for c in "ab"]
        and [os.mkfifo(w / "images" / c / "1.png") for c in "ab"],
        ["1.png", "named pipe"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", DATA_CASES)
def test_data_that_cannot_train_is_a_data_error(tmp_path, case):
    dataset, make, words = DATA_CASES[case]
    if make is not None:
        make(tmp_path)
    output = fit_refused(tmp_path, 4, *words, args=(config(tmp_path, dataset=dataset),))
    assert "RuntimeWarning" not in output  # NumPy's overflow warnings stay inside


# -- 4. a damaged or edited run directory, 5. where the model file comes from --------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("finished")
    rc, output = trainer(where, "fit", config(where), "--run-dir", "run")
    assert rc == 0, output[-3000:]
    return where / "run"


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def other_model(path: Path) -> None:
    import keras

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(10, activation="softmax")])
    path.unlink()
    model.save(path)


def zip_slip(path: Path) -> None:
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("../../escaped.txt", "x")


def link_outside(path: Path) -> None:
    outside = path.parent.parent / "elsewhere.keras"
    shutil.move(path, outside)
    path.symlink_to(outside)


RUN_CASES = {
    "truncated preprocessing.json": (
        "eval", lambda r: truncate(r / "preprocessing.json"), 4,
        ["preprocessing.json", "not valid JSON", "--run-dir NEW"],
    ),
    "preprocessing.json not an object": (
        "eval", lambda r: (r / "preprocessing.json").write_text("[1, 2]"), 4,
        ["preprocessing.json", "not an object"],
    ),
    "resume with a truncated preprocessing.json": (
        "fit", lambda r: (r / "metrics.json").unlink() or truncate(r / "preprocessing.json"), 4,
        ["preprocessing.json", "not valid JSON"],
    ),
    "truncated metrics.json": (
        "fit", lambda r: truncate(r / "metrics.json"), 4, ["metrics.json", "not valid JSON"],
    ),
    "config.yaml edited to nonsense": (
        "eval", lambda r: (r / "config.yaml").write_text("dataset: {type: nope}\n"), 2,
        ["config.yaml", "unknown dataset type 'nope'"],
    ),
    "truncated model.keras": (
        "eval", lambda r: truncate(r / "model.keras"), 1, ["model.keras", "truncated"],
    ),
    "model.keras is a fifo": (
        "eval", lambda r: (r / "model.keras").unlink() or os.mkfifo(r / "model.keras"), 1,
        ["model.keras", "named pipe"],
    ),
    "model.keras links outside the run": (
        "eval", lambda r: link_outside(r / "model.keras"), 1,
        ["model.keras", "symbolic link", "elsewhere.keras"],
    ),
    "model.keras with a ../ member": (
        "eval", lambda r: zip_slip(r / "model.keras"), 1, ["model.keras", "escaped.txt"],
    ),
    "model of another input shape": (
        "eval", lambda r: other_model(r / "model.keras"), 1,
        ["model.keras", "inputs shaped (5,)", "(8, 8, 1)"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", RUN_CASES)
def test_damaged_run_directories_are_refused_by_name(finished, tmp_path, case):
    command, damage, code, words = RUN_CASES[case]
    run = tmp_path / "run"
    shutil.copytree(finished, run, symlinks=True)
    damage(run)
    args = ["fit", str(run / "config.yaml"), "--run-dir", str(run)] if command == "fit" else [
        "eval", str(run)]  # fmt: skip
    assert_refused(trainer(tmp_path, *args), code, *words)
    assert (
        not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()
    )


def test_the_intact_run_still_evaluates(finished, tmp_path):
    """The cases above refuse only what was damaged: the same run, untouched, evaluates."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    rc, output = trainer(tmp_path, "eval", str(run))
    assert rc == 0, output[-3000:]


# -- 4. a checkpoint whose position was edited and its manifest re-signed -------------------
def resign(checkpoint: Path) -> None:
    """Rewrite the manifest so the sizes and SHA-256 sums match the edited files again."""
    import hashlib
    import json

    manifest = json.loads((checkpoint / "manifest.json").read_text())
    for name in manifest:
        data = (checkpoint / name).read_bytes()
        manifest[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda m: {"epoch": m["epoch"] + 1}, ["finished epochs but"]),
        (lambda m: {"global_step": m["global_step"] - 1}, ["is named step-", "records global"]),
        (lambda m: {"history_rows": 9, "epoch": 9}, ["history.csv holds"]),
    ],
    ids=["epoch", "step", "history"],
)
def test_a_forged_checkpoint_position_is_refused(tmp_path, edit, words):
    import json

    cfg = config(tmp_path, checkpoint={"every_steps": 2})  # 3 steps an epoch
    killed = subprocess.run(
        [sys.executable, "-m", "trainer", "fit", cfg, "--run-dir", "run",
         "--set", "training.epochs=3"],
        cwd=tmp_path, capture_output=True, text=True, timeout=LIMIT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TRAINER_FAULT": "sigkill@5"},
    )  # fmt: skip
    assert killed.returncode == -signal_kill(), killed.stderr[-2000:]
    checkpoints = tmp_path / "run" / "checkpoints"
    latest = checkpoints / (checkpoints / "latest").read_text().strip()
    meta = json.loads((latest / "meta.json").read_text())
    (latest / "meta.json").write_text(json.dumps({**meta, **edit(meta)}))
    resign(latest)
    result = trainer(tmp_path, "fit", "--resume", "run")
    assert_refused(result, 1, latest.name, "refused", *words)


def signal_kill() -> int:
    import signal

    return signal.SIGKILL
