"""Seed, build, compile, fit, save: the one training path every model family goes through.

Data flows one way: validated config -> dataset and spec -> model -> fit -> run directory
-> evaluation. The engine never prints: it reports progress through a :class:`Progress`
object the caller passes in (see :mod:`trainer.report`).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from trainer import datasets, optimizers, pipeline
from trainer.config import to_yaml
from trainer.errors import RunError, UsageError
from trainer.models import MODELS, hook
from trainer.schema import Config

RUN_FILES = ("config.yaml", "model.keras", "history.csv", "metrics.json", "environment.json")


class Progress(Protocol):
    def stage(self, text: str) -> None: ...
    def start(self, epochs: int, steps_per_epoch: int) -> None: ...
    def step(self, step: int) -> None: ...
    def epoch(self, epoch: int, epochs: int, logs: dict[str, float], seconds: float) -> None: ...
    def finish(self) -> None: ...


@dataclass
class FitResult:
    run_dir: Path
    metrics: dict[str, Any]
    training: dict[str, Any]


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


def fit(cfg: Config, run_dir: Path, progress: Progress) -> FitResult:
    """Train ``cfg`` and write the run directory; return its metrics."""
    progress.stage(f"loading dataset '{cfg.dataset.type}'")
    data = datasets.load(cfg.dataset, cfg.seed)
    progress.stage("starting TensorFlow")
    device = select_device(cfg.training.device)
    import keras

    seed_everything(cfg.seed, cfg.deterministic)
    model = build_model(cfg, data.spec)
    n_train = len(data.x_train)
    batch_size = n_train if cfg.training.batch_size == "full" else cfg.training.batch_size
    steps_per_epoch = pipeline.steps_per_epoch(n_train, batch_size)

    def make_optimizer(params):
        return optimizers.build(params, steps_per_epoch, cfg.training.epochs)

    hook("compile", cfg.model.type)(
        model, cfg, make_optimizer,
        steps_per_execution=pipeline.steps_per_execution(
            cfg.training.steps_per_execution, steps_per_epoch
        ),
        jit_compile=cfg.training.jit_compile,
    )  # fmt: skip
    targets = hook("targets", cfg.model.type)

    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", to_yaml(cfg))
    environment = describe_environment(cfg, device)
    write_json(run_dir / "environment.json", environment)

    callbacks = [
        keras.callbacks.LambdaCallback(on_epoch_end=_log_learning_rate(model)),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
        _ProgressCallback(progress, cfg.training.epochs, steps_per_epoch),
    ]
    early = None
    if cfg.early_stopping is not None:
        early = keras.callbacks.EarlyStopping(**cfg.early_stopping.model_dump(), verbose=0)
        callbacks.append(early)
    validation = None if data.x_val is None else (data.x_val, targets(data.x_val, data.y_val))
    started = time.perf_counter()
    try:
        train = pipeline.training_batches(
            data.x_train,
            targets(data.x_train, data.y_train),
            batch_size,
            cfg.seed,
            cfg.training.epochs,
        )
        history = model.fit(
            train, epochs=cfg.training.epochs, steps_per_epoch=steps_per_epoch,
            validation_data=validation, validation_batch_size=cfg.training.eval_batch_size,
            callbacks=callbacks, shuffle=False, verbose=0,
        )  # fmt: skip
    finally:
        progress.finish()
    seconds = time.perf_counter() - started

    progress.stage("saving and evaluating")
    save_model(model, run_dir / "model.keras")
    metrics = evaluate_model(model, cfg, data, run_dir)
    write_json(run_dir / "metrics.json", metrics)
    training = {
        "epochs_run": len(history.epoch),
        "stopped_early": bool(early is not None and early.stopped_epoch > 0),
        "best_epoch": _best_epoch(early),
        "steps_per_epoch": steps_per_epoch,
        "batch_size": batch_size,
        "train_seconds": round(seconds, 3),
        "data_sizes": data.sizes(),
        "scaling": data.scaling.get("method"),
        "final": {k: float(v[-1]) for k, v in history.history.items()},
    }
    environment["training"] = training
    write_json(run_dir / "environment.json", environment)
    return FitResult(run_dir, metrics, training)


def evaluate_run(run_dir: Path) -> tuple[Config, dict[str, Any]]:
    """Reload a finished run's config, data and model and recompute its metrics."""
    from trainer.config import load_config

    for name in ("config.yaml", "model.keras"):
        if not (run_dir / name).is_file():
            raise UsageError(
                f"'{run_dir}' is not a finished run directory: {name} is missing",
                hint="pass a directory written by `trainer fit`",
            )
    cfg = load_config(run_dir / "config.yaml")
    data = datasets.load(cfg.dataset, cfg.seed)
    select_device(cfg.training.device)
    import keras

    try:
        model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged archive
        raise RunError(f"{run_dir / 'model.keras'}: cannot be loaded ({error})") from error
    return cfg, evaluate_model(model, cfg, data)


def evaluate_model(model, cfg: Config, data: datasets.Dataset, artifacts: Path | None = None):
    """The ``metrics.json`` object; ``artifacts`` is where a family may write pictures."""
    result = hook("evaluate", cfg.model.type)(model, cfg, data, artifacts)
    describe = MODELS.get(cfg.model.type).info.get("describe")
    if describe is not None:
        result["model"] = describe(model)
    return result


def build_model(cfg: Config, spec: datasets.DataSpec):
    entry = MODELS.get(cfg.model.type)
    return entry.factory(spec, **cfg.model.kwargs(), **cfg.regularization.model_dump())


def select_device(device: str) -> str:
    """Make TensorFlow use the configured device; 'gpu' with none visible is an error."""
    from trainer.backend import gpus as visible_gpus

    gpus = visible_gpus()
    import tensorflow as tf

    if device == "gpu" and not gpus:
        raise UsageError(
            "training.device is 'gpu' but TensorFlow sees no GPU",
            hint="set training.device: auto (or cpu), or check the CUDA install "
            "with `python -c 'import tensorflow as tf; print(tf.config.list_physical_devices())'`",
        )
    if device == "cpu" and gpus:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # GPUs already initialised in this process
            pass
        return "cpu"
    return f"gpu ({len(gpus)} visible)" if gpus else "cpu"


def seed_everything(seed: int, deterministic: bool) -> None:
    import keras

    keras.utils.set_random_seed(seed)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _log_learning_rate(model):
    """Put the epoch's final learning rate into the logs (and so into history.csv)."""

    def log(epoch, logs):
        if logs is not None:
            logs["learning_rate"] = float(model.optimizer.learning_rate)

    return log


def _best_epoch(early) -> int | None:
    if early is None or early.best_epoch is None:
        return None
    return int(early.best_epoch) + 1


def _progress_callback_class():
    import keras

    class ProgressCallback(keras.callbacks.Callback):
        def __init__(self, progress: Progress, epochs: int, steps: int) -> None:
            super().__init__()
            self.progress, self.epochs, self.steps = progress, epochs, steps

        def on_train_begin(self, logs=None):
            self.progress.start(self.epochs, self.steps)

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.progress.step(batch + 1)

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            seconds = time.perf_counter() - self.started
            self.progress.epoch(epoch + 1, self.epochs, logs, seconds)

    return ProgressCallback


def _ProgressCallback(progress: Progress, epochs: int, steps: int):  # noqa: N802
    return _progress_callback_class()(progress, epochs, steps)


def save_model(model, path: Path) -> None:
    """Save through a temporary file and ``os.replace``, so a crash never leaves half a model."""
    temporary = path.with_name(f".{path.stem}.tmp{os.getpid()}.keras")
    try:
        model.save(temporary)
        _fsync(temporary)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise RunError(f"cannot write {path} ({error.strerror or error})") from error


def write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise RunError(f"cannot write {path} ({error.strerror or error})") from error


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def describe_environment(cfg: Config, device: str) -> dict[str, Any]:
    import keras
    import numpy
    import sklearn

    from trainer import __version__

    versions = {
        "trainer": __version__,
        "python": sys.version.split()[0],
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
    }
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
        threads = {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        }
    else:
        threads = {}
    return {
        "versions": versions,
        "backend": backend,
        "device": device,
        "seed": cfg.seed,
        "deterministic": cfg.deterministic,
        "threads": {**threads, "cpu_count": os.cpu_count()},
        "platform": platform.platform(),
        "machine": platform.machine(),
        "started": datetime.now().isoformat(timespec="seconds"),
        "argv": sys.argv,
    }
