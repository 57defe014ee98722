"""A run's saved model: written atomically, loaded in Keras safe mode, refused if non-finite,
and evaluated through its family's hook (``trainer eval``, ``predict`` and ``export`` start
from :func:`finished_run_config` and :func:`load_model`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trainer import datasets
from trainer.config.schema import Config
from trainer.core.errors import DataError, DivergedError, RunError, StorageError, UsageError
from trainer.core.files import DAMAGED, archive_problem, fsync, not_a_file, read_run_json
from trainer.models import MODELS, hook
from trainer.training import backend, finite


def is_complete(run_dir: Path) -> bool:
    return (run_dir / "metrics.json").is_file() and (run_dir / "model.keras").is_file()


def evaluate_run(run_dir: Path) -> tuple[Config, dict[str, Any]]:
    """Reload a finished run's config, data and model and recompute its metrics."""
    cfg = finished_run_config(run_dir)
    saved = run_dir / "preprocessing.json"
    preprocessing = read_run_json(saved) if saved.is_file() else None
    try:
        data = datasets.load(cfg.dataset, cfg.seed, preprocessing=preprocessing)
    except (KeyError, TypeError, IndexError, AttributeError) as error:  # an edited file's fields
        raise DataError(
            f"{saved}: does not describe this run's preprocessing ({type(error).__name__}: "
            f"{str(error)[:200]})",
            hint=DAMAGED,
        ) from None
    backend.start(cfg.training)
    model = load_model(run_dir, cfg)
    check_fits(model, data.spec, run_dir / "model.keras")
    return cfg, evaluate_model(model, cfg, data)


def check_fits(model, spec, path: Path) -> None:
    """RunError unless the model takes the data's inputs (and, classifying, has its classes)."""
    shape = getattr(model, "input_shape", None)  # subclassed families (vae, gan) have none
    expected = tuple(shape[1:]) if isinstance(shape, tuple) else None
    if expected is not None and expected != tuple(spec.input_shape):
        raise RunError(
            f"{path}: the model takes inputs shaped {expected}, but the run's data gives "
            f"{tuple(spec.input_shape)}",
            hint="the model or config.yaml of this run was replaced; " + DAMAGED,
        )


def finished_run_config(run_dir: Path) -> Config:
    """The config of a run that saved its model (eval, predict, export start here)."""
    from trainer.config.loading import load_config

    for name in ("config.yaml", "model.keras"):
        problem = not_a_file(run_dir / name)
        if problem == "file not found":
            raise UsageError(
                f"'{run_dir}' is not a finished run directory: {name} is missing",
                hint="pass a directory written by `trainer fit`",
            )
        if problem is not None and name == "model.keras":
            raise RunError(f"{run_dir / name}: {problem}", hint=DAMAGED)
    return load_config(run_dir / "config.yaml")


def load_model(run_dir: Path, cfg: Config):
    """A run's ``model.keras``, loaded in Keras safe mode (the backend must be started)."""
    import keras

    module = MODELS.get(cfg.model.type).info.get("custom_objects_module")
    if module:  # registers the family's Keras classes (a trusted module of this package)
        import importlib

        importlib.import_module(module)
    from trainer.losses import one_hot_labels
    from trainer.optimizers import linear_warmup

    one_hot_labels()  # registers the trainer's loss wrapper, which a compiled model may name
    linear_warmup()  # and its warm-up schedule, which the model's optimizer may use
    path = check_archive(run_dir / "model.keras", run_dir)
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged archive
        if "Lambda" in str(error) or "unsafe" in str(error).lower():
            raise RunError(
                f"{path}: refused: it contains a Lambda layer or other arbitrary Python code, "
                "which Keras safe mode will not run",
                hint="only evaluate models from sources you trust; retrain it with `trainer fit`",
            ) from error
        raise RunError(f"{path}: cannot be loaded ({str(error)[:300]})", hint=DAMAGED) from error
    refuse_non_finite(model, f"{path}: refused: it holds non-finite weights")
    return model


def check_archive(path: Path, run_dir: Path) -> Path:
    """``path`` if it is a Keras archive of this run that is safe to open, else a RunError.

    Refused: a ``model.keras`` that is (or links to) anything but a regular file inside the run
    directory, so ``trainer eval RUN`` evaluates the run's own model and never one a link
    smuggled in; an archive that is not a zip (truncated); one with a member whose name is
    absolute or climbs out with ``..`` (zip slip), whatever Keras would do with it.
    """
    real = path.resolve()
    if path.is_symlink() and not real.is_relative_to(run_dir.resolve()):
        raise RunError(
            f"{path}: refused: it is a symbolic link to {real}, outside the run directory",
            hint="copy the model file into the run directory if you trust it",
        )
    problem = not_a_file(path)
    if problem is not None:
        raise RunError(f"{path}: {problem}", hint=DAMAGED)
    found = archive_problem(path)
    if found is not None:
        refused = found.startswith("refused")
        raise RunError(
            f"{path}: {found}",
            hint="only load models from sources you trust; retrain it with `trainer fit`"
            if refused
            else DAMAGED,
        )
    return path


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
