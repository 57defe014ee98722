"""Run directories: where a run goes, whether a directory holds one, and what changed.

No TensorFlow here: the CLI decides between a new run and a resume before starting it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from trainer.errors import UsageError
from trainer.schema import Config


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
        _flatten(saved.model_dump(mode="json")),
        _flatten(current.model_dump(mode="json")),
    )
    before.pop("name", None)
    after.pop("name", None)
    lines = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key, "(absent)"), after.get(key, "(absent)")
        if old != new:
            lines.append(f"{key}: {old!r} -> {new!r}")
    return lines


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): data}
