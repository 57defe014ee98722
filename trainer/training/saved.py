"""A run's saved model: written atomically, loaded in Keras safe mode, refused if non-finite,
and evaluated through its family's hook (``trainer eval``, ``predict`` and ``export`` start
from :func:`finished_run_config` and :func:`load_model`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from trainer import datasets
from trainer.config.schema import Config
from trainer.core.errors import DivergedError, RunError, StorageError, UsageError
from trainer.core.files import fsync
from trainer.models import MODELS, hook
from trainer.training import backend, finite


def is_complete(run_dir: Path) -> bool:
    return (run_dir / "metrics.json").is_file() and (run_dir / "model.keras").is_file()


def evaluate_run(run_dir: Path) -> tuple[Config, dict[str, Any]]:
    """Reload a finished run's config, data and model and recompute its metrics."""
    cfg = finished_run_config(run_dir)
    saved = run_dir / "preprocessing.json"
    preprocessing = json.loads(saved.read_text()) if saved.is_file() else None
    data = datasets.load(cfg.dataset, cfg.seed, preprocessing=preprocessing)
    backend.start(cfg.training)
    return cfg, evaluate_model(load_model(run_dir, cfg), cfg, data)


def finished_run_config(run_dir: Path) -> Config:
    """The config of a run that saved its model (eval, predict, export start here)."""
    from trainer.config.loading import load_config

    for name in ("config.yaml", "model.keras"):
        if not (run_dir / name).is_file():
            raise UsageError(
                f"'{run_dir}' is not a finished run directory: {name} is missing",
                hint="pass a directory written by `trainer fit`",
            )
    return load_config(run_dir / "config.yaml")


def load_model(run_dir: Path, cfg: Config):
    """A run's ``model.keras``, loaded in Keras safe mode (the backend must be started)."""
    import keras

    module = MODELS.get(cfg.model.type).info.get("custom_objects_module")
    if module:  # registers the family's Keras classes (a trusted module of this package)
        import importlib

        importlib.import_module(module)
    try:
        model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged archive
        path = run_dir / "model.keras"
        if "Lambda" in str(error) or "unsafe" in str(error).lower():
            raise RunError(
                f"{path}: refused: it contains a Lambda layer or other arbitrary Python code, "
                "which Keras safe mode will not run",
                hint="only evaluate models from sources you trust; retrain it with `trainer fit`",
            ) from error
        raise RunError(f"{path}: cannot be loaded ({error})") from error
    refuse_non_finite(model, f"{run_dir / 'model.keras'}: refused: it holds non-finite weights")
    return model


def refuse_non_finite(model, what: str) -> None:
    """DivergedError (exit 5) naming each weight of ``model`` that holds NaN or Inf."""
    found = finite.model_problems(model)
    if found:
        raise DivergedError(f"{what}: {finite.summary(found)}", hint=finite.CAUSES)


def evaluate_model(model, cfg: Config, data: datasets.Dataset, artifacts: Path | None = None):
    """The ``metrics.json`` object; ``artifacts`` is where a family may write pictures."""
    result = hook("evaluate", cfg.model.type)(model, cfg, data, artifacts)
    describe = MODELS.get(cfg.model.type).info.get("describe")
    if describe is not None:
        result["model"] = describe(model)
    return result


def save_model(model, path: Path) -> None:
    """Save through a temporary file and ``os.replace``, so a crash never leaves half a model."""
    temporary = path.with_name(f".{path.stem}.tmp{os.getpid()}.keras")
    try:
        model.save(temporary)
        fsync(temporary)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise StorageError(f"cannot write {path} ({error.strerror or error})") from error
