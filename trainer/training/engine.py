"""Seed, build, compile, fit, save: the one training path every model family goes through.

Data flows one way: validated config -> dataset and spec -> model -> fit -> run directory
-> evaluation. The engine never prints: it reports progress through a :class:`Progress`
object the caller passes in (see :mod:`trainer.cli.console`).
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from trainer import datasets, optimizers
from trainer.config.loading import to_yaml
from trainer.config.schema import Config
from trainer.core.errors import DataError
from trainer.core.files import check_writable, read_run_json, write_json, write_text
from trainer.datasets import pipeline, storage
from trainer.evaluation import plots
from trainer.models import MODELS, hook
from trainer.training import augmentation, checkpoint, distribution, faults
from trainer.training.saved import evaluate_model, refuse_non_finite, save_model


class Progress(Protocol):
    """Where training reports what it is doing (the command line's terminal, a tuning trial).

    ``start`` gives the run's size and, for a resumed run, where it stands: ``epochs_done``
    finished epochs and ``steps_done`` optimizer steps into the next (``batch_size`` and
    ``samples_per_epoch`` give samples/s). ``step`` comes after each execution with the steps
    done in the current epoch and, from training, the running mean loss(es) of the epoch.
    ``epoch`` comes after each finished epoch, numbered from 1, with its logs.
    """

    def stage(self, text: str) -> None: ...
    def start(self, epochs: int, steps_per_epoch: int, *, batch_size: int | None = None,
              samples_per_epoch: int | None = None, epochs_done: int = 0,
              steps_done: int = 0) -> None: ...  # fmt: skip
    def step(self, step: int, logs: dict[str, float] | None = None) -> None: ...
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
    :mod:`trainer.workflows.tune`); by default it is loaded from ``cfg.dataset``.
    """
    from trainer.core.files import RunLock
    from trainer.results.diagnosis import diagnose
    from trainer.training.loop import Loop
    from trainer.training.tracking import Tracker

    cluster = distribution.resolve(cfg)  # before TensorFlow: a bad cluster description fails here
    run_dir = cluster.run_dir(run_dir)  # only process 0 writes the run directory
    check_writable(run_dir)
    progress.stage(f"loading dataset '{cfg.dataset.type}'")
    saved = run_dir / "preprocessing.json"
    preprocessing = read_run_json(saved) if resume and saved.exists() else None
    if data is None:
        data = datasets.load(cfg.dataset, cfg.seed, preprocessing=preprocessing)
    for warning in data.warnings:
        progress.stage(f"warning: {warning}")
    progress.stage(f"data: {data.storage['reason']}")
    streamed = not data.storage["in_memory"]
    weights = class_weights_of(cfg, data)
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

    jit_compile = cluster.jit_compile(resolve_jit(cfg.training.jit_compile, trained, device))
    supervised = MODELS.get(cfg.model.type).info.get("compile") is None
    if streamed and not supervised:
        raise DataError(
            f"model '{cfg.model.type}' trains on data held in memory, but {data.storage['reason']}",
            hint="make the data smaller (dataset.limit, dataset.image_size), or set "
            "dataset.in_memory: true if it fits",
        )
    one_tf_device = cluster.mode == "none" and keras.backend.backend() == "tensorflow"
    # see trainer.training.fused: the fused steps hold the training split on the device
    fused = jit_compile is True and supervised and one_tf_device and not streamed
    every = cfg.checkpoint.every_steps
    steps_per_execution = aligned_steps_per_execution(
        cluster.steps_per_execution(cfg.training.steps_per_execution), steps_per_epoch, every,
        divisor=keras.backend.backend() != "tensorflow", fused=fused, notify=progress.stage,
    )  # fmt: skip
    hook("compile", cfg.model.type)(
        trained, cfg, make_optimizer, steps_per_execution=1 if fused else steps_per_execution,
        jit_compile=jit_compile,
    )  # fmt: skip
    targets = hook("targets", cfg.model.type)
    y_train = targets(data.x_train, data.y_train)
    fault = faults.from_env()  # a test hook; None unless TRAINER_FAULT is set
    if fault is not None and not streamed:
        data.x_train = fault.poison_data(
            data.x_train, lambda e: pipeline.permutation(cfg.seed, e, n_train), steps_per_epoch,
            batch_size,
        )  # fmt: skip
    rows = cluster.build_rows()
    hook("build_state", cfg.model.type)(trained, np.asarray(data.x_train[:rows]), y_train[:rows])
    validation = None if data.x_val is None else (data.x_val, targets(data.x_val, data.y_val))
    eval_batch = pipeline.eval_batch_size(cfg.training, model, cluster.local_replicas)
    validation = cluster.validation(validation, eval_batch)
    if validation is not None and streamed:
        validation = storage.feed(*validation, batch_size=eval_batch)
    if fused:
        from trainer.training.fused import FusedBatches, fuse

        batches = FusedBatches(data.x_train, y_train, batch_size, cfg.seed,
                               group=steps_per_execution, class_weight=weights,
                               every=every)  # fmt: skip
        fuse(trained, batches)
    else:  # the batches carry the class weights, as sample weights
        batches = cluster.training_batches(data.x_train, y_train, batch_size, cfg.seed, weights)
    data.x_train = batches.features  # the pipeline's copy: the split is held once

    tracker = Tracker(
        cfg, run_dir, resume, progress.stage, chief=cluster.is_chief
    )  # a bad MLflow URI fails here
    with RunLock(run_dir):
        removed = checkpoint.remove_leftovers(run_dir)  # of a process killed while saving
        if removed:
            progress.stage(f"removed {len(removed)} temporary file(s) that an interrupted save "
                           f"left behind: {', '.join(removed)}")  # fmt: skip
        if not resume:
            write_text(run_dir / "config.yaml", to_yaml(cfg))
            write_json(run_dir / "preprocessing.json", data.preprocessing)
            augmentation.write_preview(run_dir, cfg, data.x_train)
        environment = describe_environment(cfg, device)
        environment["data"] = data.storage
        environment["distribution"] = cluster.describe()
        extra = [
            *hook("callbacks", cfg.model.type)(model, cfg, data, run_dir),
            *tracker.start(trained),
        ]  # TensorBoard, MLflow
        loop = Loop(trained, optimizers_of(trained), cfg, run_dir, progress, batches,
                    validation, eval_batch, callbacks=extra)  # fmt: skip
        loop.checkpoints = cluster.checkpoints(loop.checkpoints)
        if resume and loop.resume(keep_learning_rate):
            environment["resumed_from"] = loop.position.resumed_from
            for problem in loop.position.skipped:
                progress.stage(f"warning: skipped damaged checkpoint {problem}")
            progress.stage(f"resuming from {loop.position.resumed_from} (epoch "
                           f"{loop.position.epoch + 1}, step {loop.position.step})")  # fmt: skip
        write_json(run_dir / "environment.json", environment)
        started = time.perf_counter()
        streams = (data.x_train, data.x_val, data.x_test)  # a bad file read later is named
        with tracker, storage.reported(*streams):  # tracker: marks an MLflow run killed/failed
            loop.run()
        seconds = time.perf_counter() - started
        fed = cluster.fed(batches)  # a collective: every process, before the engine is let go
        if fed is not None:
            environment["distribution"]["fed"] = fed
        cluster.finish()
        progress.stage("saving and evaluating")
        refuse_non_finite(model, "the trained model (after restoring early stopping's best "
                          "weights) has non-finite weights; no model was saved")  # fmt: skip
        save_model(model, run_dir / "model.keras")
        with storage.reported(*streams):
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
    # Every process leaves together: a worker done long before the chief has written the run
    # would otherwise wait alone at JAX's shutdown barrier and time out under load.
    cluster.agree(True)
    return FitResult(run_dir, metrics, training, diagnosis)


def aligned_steps_per_execution(requested, steps: int, every: int, divisor: bool, fused: bool,
                                notify) -> int:  # fmt: skip
    """``training.steps_per_execution`` for this run, lowered so that no call into the graph
    runs past a step of ``checkpoint.every_steps`` (``notify`` says so when it is lowered).

    A call that ran past a checkpoint step would write that checkpoint only at its end
    (``every_steps: 10`` with 64 steps per call wrote steps 64 and 128, issue #16), so a
    SIGKILL could lose 63 steps, not the promised fewer than ``every``. Lowering
    (not refusing) an explicit value keeps a config valid whatever its dataset's size, since
    the value that fits depends on the steps per epoch; the steps per call change no update,
    only the speed. Fused steps end each execution at a checkpoint step themselves (at most
    ``every`` steps then); Keras runs the same number of steps per call from each epoch's start,
    so there the value must divide where the checkpoint steps fall (see
    :func:`trainer.datasets.pipeline.steps_per_execution`).
    """
    value = pipeline.steps_per_execution(requested, steps, divisor, every, anywhere=fused)
    unaligned = pipeline.steps_per_execution(requested, steps, divisor)
    if value < unaligned and fused:
        notify(f"training.steps_per_execution: {unaligned} steps per call lowered to at "
               f"most {value}: each call ends at a step of checkpoint.every_steps "
               f"({every})")  # fmt: skip
    elif value < unaligned:
        common = math.gcd(steps, every)
        where = "any step" if common == 1 else f"multiples of {common}"
        notify(
            f"training.steps_per_execution: {unaligned} steps per call lowered to {value}: "
            f"each call must end at a step of checkpoint.every_steps ({every}), and with "
            f"{steps} steps per epoch those fall at {where} within an epoch; for longer calls "
            f"make checkpoint.every_steps a multiple of the steps per epoch ({steps}), or give "
            "it more factors in common with them"
        )
    return value


def class_weights_of(cfg: Config, data) -> dict[int, float] | None:
    """Per-class loss weights from ``training.class_weight`` (None when unweighted)."""
    setting = getattr(cfg.training, "class_weight", "none")
    if not data.spec.is_classification or setting == "none":
        return None
    from trainer.datasets.imbalance import class_weights

    return class_weights(data.y_train, setting, data.spec.class_names)


def optimizers_of(model) -> list:
    """Every optimizer the model trains with (a GAN has two), in a stable order."""
    import keras

    found = [model.optimizer] if getattr(model, "optimizer", None) is not None else []
    for name in sorted(vars(model)):
        value = getattr(model, name, None)
        if isinstance(value, keras.optimizers.Optimizer) and all(value is not o for o in found):
            found.append(value)
    return found


def build_model(cfg: Config, spec: datasets.DataSpec):
    """The model of ``cfg``, its layers under the configured dtype policy (precision)."""
    import keras

    keras.config.set_dtype_policy(cfg.training.precision)  # process-wide: set on every build
    entry = MODELS.get(cfg.model.type)
    return entry.factory(spec, **cfg.model.kwargs(), **cfg.regularization.model_dump())


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

    from trainer.training.backend import enable_determinism

    keras.utils.set_random_seed(seed)
    if deterministic:
        enable_determinism(keras.backend.backend())


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
