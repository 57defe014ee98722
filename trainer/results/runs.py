"""Run directories: where a run goes, whether a directory holds one, and what changed.

No TensorFlow here: the CLI decides between a new run and a resume before starting it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from trainer.config.schema import Config
from trainer.core.errors import UsageError
from trainer.core.files import Unreadable, read_bounded, read_json


def new_run_dir(cfg: Config, runs_root: Path, run_dir: Path | None) -> Path:
    """The run directory: exactly ``run_dir``, or ``runs_root/<name>-<timestamp>``."""
    if run_dir is not None:
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise UsageError(
                f"run directory '{run_dir}' already exists and is not empty",
                hint="pass a new --run-dir, or remove the old one",
            )
        return run_dir
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = runs_root / f"{cfg.name}-{stamp}"
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = runs_root / f"{cfg.name}-{stamp}-{suffix}"
    return candidate


def is_run(path: Path) -> bool:
    return (path / "config.yaml").is_file()


def config_changes(saved: Config, current: Config) -> list[str]:
    """Readable differences between two resolved configs, one ``key: old -> new`` per line."""
    before, after = (
        flatten(saved.model_dump(mode="json")),
        flatten(current.model_dump(mode="json")),
    )
    before.pop("name", None)
    after.pop("name", None)
    lines = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key, "(absent)"), after.get(key, "(absent)")
        if old != new:
            lines.append(f"{key}: {old!r} -> {new!r}")
    return lines


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): data}


# -- listing and comparing finished runs (`trainer runs list`, `trainer runs compare`) ------
KEY_METRICS = ("accuracy", "r2", "mse", "frechet_distance", "elbo", "loss")
# Which way is better, for marking the best run; metrics in neither (a GAN's losses, its
# discriminator's accuracy) have no best.
HIGHER = {"accuracy", "precision", "recall", "f1", "auc", "r2", "elbo"}
LOWER = {"loss", "mse", "mae", "rmse", "frechet_distance", "reconstruction_loss",
         "reconstruction_mse"}  # fmt: skip


def summarize(run_dir: Path) -> dict[str, Any]:
    """One run's facts for a listing: name, date, status, model, dataset, key test metric."""
    raw = _raw_config(run_dir)
    metrics = _read_json(run_dir / "metrics.json") or {}
    environment = _read_json(run_dir / "environment.json") or {}
    diagnosis = _read_json(run_dir / "diagnosis.json") or {}
    test = metrics.get("test", {})
    key = next((m for m in KEY_METRICS if test.get(m) is not None), None)
    return {
        "run": run_dir.name,
        "path": str(run_dir),
        "name": raw.get("name"),
        "started": environment.get("started") or _mtime(run_dir / "config.yaml"),
        "status": status(run_dir),
        "model": _type_of(raw.get("model")),
        "dataset": _type_of(raw.get("dataset")),
        "metric": key,
        "value": test.get(key) if key else None,
        "epochs": environment.get("training", {}).get("epochs_run"),
        "verdict": diagnosis.get("verdict"),
    }


def status(run_dir: Path) -> str:
    """``complete``, ``running`` (a live process holds the lock) or ``interrupted``."""
    if (run_dir / "metrics.json").is_file() and (run_dir / "model.keras").is_file():
        return "complete"
    lock = run_dir / ".lock"
    if lock.is_file():
        holder = lock.read_text(errors="replace").split()
        if len(holder) == 4 and holder[0] == "pid" and holder[1].isdigit():
            import socket

            if holder[3] == socket.gethostname() and _alive(int(holder[1])):
                return "running"
    return "interrupted"


def list_runs(root: Path) -> list[dict[str, Any]]:
    """Every run directly under ``root``, oldest first."""
    if not root.is_dir():
        raise UsageError(
            f"'{root}' is not a directory", hint="pass the folder that holds your runs (runs/)"
        )
    found = [summarize(path) for path in sorted(root.iterdir()) if is_run(path)]
    return sorted(found, key=lambda run: (str(run["started"]), run["run"]))


def compare(run_dirs: list[Path]) -> dict[str, Any]:
    """The config values that differ between runs, and their test metrics side by side."""
    for path in run_dirs:
        if not is_run(path):
            why = "does not exist" if not path.exists() else "has no config.yaml"
            raise UsageError(
                f"'{path}' is not a run directory: it {why}",
                hint="pass directories written by `trainer fit` (see `trainer runs list`)",
            )
    configs = [flatten(_resolved_config(path)) for path in run_dirs]
    keys = sorted(set().union(*configs) - {"name"})
    differing = {}
    for key in keys:
        values = [config.get(key, "(absent)") for config in configs]
        if any(value != values[0] for value in values[1:]):
            differing[key] = values
    tests = [(_read_json(path / "metrics.json") or {}).get("test", {}) for path in run_dirs]
    names = list(dict.fromkeys(name for test in tests for name in test))
    summaries = [summarize(path) for path in run_dirs]
    return {
        "runs": [s["run"] for s in summaries],
        "status": [s["status"] for s in summaries],
        "config": differing,
        "metrics": {name: [test.get(name) for test in tests] for name in names},
        "best": {name: _best(name, [test.get(name) for test in tests]) for name in names},
        "verdict": [s["verdict"] for s in summaries],
    }


def _best(metric: str, values: list[Any]) -> int | None:
    """The index of the best run on ``metric`` (None: no direction, or fewer than two)."""
    known = [(v, i) for i, v in enumerate(values) if isinstance(v, int | float)]
    if len(known) < 2 or metric not in HIGHER | LOWER:
        return None
    return (max if metric in HIGHER else min)(known)[1]


def _resolved_config(run_dir: Path) -> dict[str, Any]:
    """The run's config with every default filled in; the raw YAML if it no longer validates."""
    from trainer.config.loading import load_config
    from trainer.core.errors import TrainerError

    try:
        return load_config(run_dir / "config.yaml").model_dump(mode="json")
    except TrainerError:  # written by an older trainer: compare what it says
        return _raw_config(run_dir)


def _raw_config(run_dir: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(read_bounded(run_dir / "config.yaml", 2**20))
    except (Unreadable, yaml.YAMLError):  # a FIFO or a huge file never blocks the listing
        return {}
    return data if isinstance(data, dict) else {}


def _read_json(path: Path) -> Any:
    try:
        return read_json(path)
    except Unreadable:  # listings show what they can of a damaged run
        return None


def _type_of(section: Any) -> str | None:
    return section.get("type") if isinstance(section, dict) else section


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime).isoformat(timespec="seconds")


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
