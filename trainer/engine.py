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

from trainer import (
    augmentation,
    datasets,
    distribution,
    faults,
    finite,
    optimizers,
    pipeline,
    plots,
)
from trainer.config import to_yaml
from trainer.errors import DivergedError, RunError, StorageError, UsageError
from trainer.models import MODELS, hook
from trainer.schema import Config


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
    diagnosis: dict[str, Any] | None = None


def fit(cfg: Config, run_dir: Path, progress: Progress, resume: bool = False,
        keep_learning_rate: bool = False,
        data: datasets.Dataset | None = None) -> FitResult:  # fmt: skip
    """Train ``cfg`` into ``run_dir`` (continuing its newest checkpoint if ``resume``).

    ``data`` replaces the dataset the config names (a cross-validation fold, see
    :mod:`trainer.tune`); by default it is loaded from ``cfg.dataset``.
    """
    from trainer.checkpoint import RunLock
    from trainer.diagnosis import diagnose
    from trainer.loop import Loop
    from trainer.tracking import Tracker

    cluster = distribution.resolve(cfg)  # before TensorFlow: a bad cluster description fails here
    run_dir = cluster.run_dir(run_dir)  # only process 0 writes the run directory
    check_writable(run_dir)
    progress.stage(f"loading dataset '{cfg.dataset.type}'")
    saved = run_dir / "preprocessing.json"
    preprocessing = json.loads(saved.read_text()) if resume and saved.is_file() else None
    if data is None:
        data = datasets.load(cfg.dataset, cfg.seed, preprocessing=preprocessing)
    for warning in data.warnings:
        progress.stage(f"warning: {warning}")
    weights = _class_weights(cfg, data)
    progress.stage("starting the Keras backend")
    device = cluster.start(cfg.training)
    resume = cluster.agree(resume)  # process 0 decides for all
    seed_everything(cfg.seed, cfg.deterministic)
    model = build_model(cfg, data.spec)
    trained = augmentation.for_training(model, cfg, data.x_train)  # `model` if none
    n_train = len(data.x_train)
    batch_size = n_train if cfg.training.batch_size == "full" else cfg.training.batch_size
    steps_per_epoch = pipeline.steps_per_epoch(n_train, batch_size)

    def make_optimizer(params):
        params = cluster.scale_learning_rate(params, cfg.training.lr_scaling)
        return optimizers.build(params, steps_per_epoch, cfg.training.epochs)

    import keras

    steps_per_execution = pipeline.steps_per_execution(
        cluster.steps_per_execution(cfg.training.steps_per_execution), steps_per_epoch,
        divisor=keras.backend.backend() != "tensorflow",
    )  # fmt: skip
    jit_compile = cluster.jit_compile(resolve_jit(cfg.training.jit_compile, trained, device))
    supervised = MODELS.get(cfg.model.type).info.get("compile") is None
    one_tf_device = cluster.mode == "none" and keras.backend.backend() == "tensorflow"
    fused = jit_compile is True and supervised and one_tf_device  # see trainer.fused
    hook("compile", cfg.model.type)(
        trained, cfg, make_optimizer, steps_per_execution=1 if fused else steps_per_execution,
        jit_compile=jit_compile,
    )  # fmt: skip
    targets = hook("targets", cfg.model.type)
    y_train = targets(data.x_train, data.y_train)
    fault = faults.from_env()  # a test hook; None unless TRAINER_FAULT is set
    if fault is not None:
        data.x_train = fault.poison_data(
            data.x_train, lambda e: pipeline.permutation(cfg.seed, e, n_train), steps_per_epoch,
            batch_size,
        )  # fmt: skip
    rows = cluster.build_rows()
    hook("build_state", cfg.model.type)(trained, data.x_train[:rows], y_train[:rows])
    validation = None if data.x_val is None else (data.x_val, targets(data.x_val, data.y_val))
    eval_batch = pipeline.eval_batch_size(cfg.training, model, cluster.local_replicas)
    validation = cluster.validation(validation, eval_batch)
    if fused:
        from trainer.fused import FusedBatches, fuse

        batches = FusedBatches(data.x_train, y_train, batch_size, cfg.seed,
                               group=steps_per_execution, class_weight=weights)  # fmt: skip
        fuse(trained, batches)
        weights = None  # the batches carry them, as sample weights
    else:
        batches = cluster.training_batches(data.x_train, y_train, batch_size, cfg.seed)
    data.x_train = batches.features  # the pipeline's copy: the split is held once

    tracker = Tracker(
        cfg, run_dir, resume, progress.stage, chief=cluster.is_chief
    )  # a bad MLflow URI fails here
    with RunLock(run_dir):
        if not resume:
            write_text(run_dir / "config.yaml", to_yaml(cfg))
            write_json(run_dir / "preprocessing.json", data.preprocessing)
            augmentation.write_preview(run_dir, cfg, data.x_train)
        environment = describe_environment(cfg, device)
        environment["distribution"] = cluster.describe()
        extra = [
            *hook("callbacks", cfg.model.type)(model, cfg, data, run_dir),
            *tracker.start(trained),
        ]  # TensorBoard, MLflow
        loop = Loop(trained, optimizers_of(trained), cfg, run_dir, progress, batches,
                    validation, eval_batch, class_weight=weights, callbacks=extra)  # fmt: skip
        loop.checkpoints = cluster.checkpoints(loop.checkpoints)
        if resume and loop.resume(keep_learning_rate):
            environment["resumed_from"] = loop.position.resumed_from
            for problem in loop.position.skipped:
                progress.stage(f"warning: skipped damaged checkpoint {problem}")
            progress.stage(f"resuming from {loop.position.resumed_from} (epoch "
                           f"{loop.position.epoch + 1}, step {loop.position.step})")  # fmt: skip
        write_json(run_dir / "environment.json", environment)
        started = time.perf_counter()
        with tracker:  # closes the logs; marks an MLflow run killed or failed on errors
            loop.run()
        seconds = time.perf_counter() - started

        cluster.finish()
        progress.stage("saving and evaluating")
        refuse_non_finite(model, "the trained model (after restoring early stopping's best "
                          "weights) has non-finite weights; no model was saved")  # fmt: skip
        save_model(model, run_dir / "model.keras")
        metrics = evaluate_model(model, cfg, data, run_dir)
        early = loop.early
        training = {
            "epochs_run": len(loop.history.rows),
            "stopped_early": loop.stopped_early,
            "best_epoch": None
            if early is None or early.best_epoch is None
            else early.best_epoch + 1,
            "steps_per_epoch": steps_per_epoch,
            "steps_per_execution": steps_per_execution,
            "jit_compile": getattr(trained, "jit_compile", jit_compile),
            "fused_steps": fused,
            "batch_size": batch_size,
            "eval_batch_size": eval_batch,
            "epoch_seconds": [round(t, 3) for t in loop.epoch_seconds],
            "train_seconds": round(seconds, 3),
            "data_sizes": data.sizes(),
            "scaling": data.scaling.get("method"),
            "final": dict(loop.history.rows[-1]) if loop.history.rows else {},
        }
        environment["training"] = training
        write_json(run_dir / "environment.json", environment)
        plots.write(run_dir, metrics, training)
        diagnosis = diagnose(loop.history.rows, metrics, cfg)
        write_json(run_dir / "diagnosis.json", diagnosis)
        write_json(run_dir / "metrics.json", metrics)  # written last: marks the run complete
        tracker.finish(metrics, diagnosis)
    return FitResult(run_dir, metrics, training, diagnosis)


def _class_weights(cfg: Config, data) -> dict[int, float] | None:
    """Per-class loss weights from ``training.class_weight`` (None when unweighted)."""
    setting = getattr(cfg.training, "class_weight", "none")
    if not data.spec.is_classification or setting == "none":
        return None
    from trainer.datasets.imbalance import class_weights

    return class_weights(data.y_train, setting, data.spec.class_names)


def is_complete(run_dir: Path) -> bool:
    return (run_dir / "metrics.json").is_file() and (run_dir / "model.keras").is_file()


def optimizers_of(model) -> list:
    """Every optimizer the model trains with (a GAN has two), in a stable order."""
    import keras

    found = [model.optimizer] if getattr(model, "optimizer", None) is not None else []
    for name in sorted(vars(model)):
        value = getattr(model, name, None)
        if isinstance(value, keras.optimizers.Optimizer) and all(value is not o for o in found):
            found.append(value)
    return found


def check_writable(run_dir: Path, need_bytes: int = 20 * 2**20) -> None:
    """Fail before anything starts if the run directory cannot be created or the disk is full.

    Nothing is created here, so a run that fails later for another reason leaves no trace.
    """
    import shutil

    existing = run_dir.absolute()
    while not existing.exists():
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is a file, not a directory"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"no permission to write in {existing}"
    elif shutil.disk_usage(existing).free < need_bytes:
        free = shutil.disk_usage(existing).free // 2**20
        problem = f"only {free} MiB free on that disk; at least {need_bytes // 2**20} MiB needed"
    if problem:
        raise StorageError(
            f"cannot write to run directory {run_dir}: {problem}",
            hint="choose a writable place with enough space via --run-dir or --runs-root",
        )


def evaluate_run(run_dir: Path) -> tuple[Config, dict[str, Any]]:
    """Reload a finished run's config, data and model and recompute its metrics."""
    cfg = finished_run_config(run_dir)
    saved = run_dir / "preprocessing.json"
    preprocessing = json.loads(saved.read_text()) if saved.is_file() else None
    data = datasets.load(cfg.dataset, cfg.seed, preprocessing=preprocessing)
    select_device(cfg.training)
    return cfg, evaluate_model(load_model(run_dir, cfg), cfg, data)


def finished_run_config(run_dir: Path) -> Config:
    """The config of a run that saved its model (eval, predict, export start here)."""
    from trainer.config import load_config

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


def build_model(cfg: Config, spec: datasets.DataSpec):
    """The model of ``cfg``, its layers under the configured dtype policy (precision)."""
    import keras

    keras.config.set_dtype_policy(cfg.training.precision)  # process-wide: set on every build
    entry = MODELS.get(cfg.model.type)
    return entry.factory(spec, **cfg.model.kwargs(), **cfg.regularization.model_dump())


def select_device(training) -> str:
    from trainer.backend import select_device as start

    return start(training.backend, training.device)


def resolve_jit(setting, model, device: str):
    """XLA where it helps: GPUs (Keras decides), and on CPUs for models of Dense layers only.

    Keras's own 'auto' never uses XLA on a CPU-only machine; issue #5 measured the MLP's epoch
    about 5x faster with XLA (and steps_per_execution) on this 2-core CPU, and the
    Keras-example CNN about 4x slower, so 'auto' here decides by the layers in the model.
    An LSTM(128) on image rows measured 5.2 s against 4.5 s per steady epoch with XLA, plus
    15 s of compilation, so recurrent layers stay without it too.
    """
    if setting != "auto":
        return setting
    if device.startswith("gpu"):
        return "auto"
    slow = ("BaseConv", "BasePooling", "RNN", "Bidirectional")
    for layer in model._flatten_layers(include_self=False):
        if any(cls.__name__ in slow for cls in type(layer).__mro__):
            return False
    return True


def seed_everything(seed: int, deterministic: bool) -> None:
    import keras

    from trainer.backend import enable_determinism

    keras.utils.set_random_seed(seed)
    if deterministic:
        enable_determinism(keras.backend.backend())


def save_model(model, path: Path) -> None:
    """Save through a temporary file and ``os.replace``, so a crash never leaves half a model."""
    temporary = path.with_name(f".{path.stem}.tmp{os.getpid()}.keras")
    try:
        model.save(temporary)
        _fsync(temporary)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise StorageError(f"cannot write {path} ({error.strerror or error})") from error


def write_text(path: Path, text: str) -> None:
    from trainer.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


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
