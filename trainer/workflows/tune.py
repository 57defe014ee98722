"""Hyperparameter search on Optuna: trials of ``engine.fit``, resumable, optionally k-fold.

Each trial takes values from the search space (:mod:`trainer.workflows.space`), validates the
resulting config, and trains it with :func:`trainer.training.engine.fit` into
``DIR/trials/NNN`` (or,
with k folds, ``DIR/trials/NNN/fold-K``: the training pool is split by
:func:`trainer.datasets.kfold.kfold_indices`, stratified for classification, each fold's
preprocessing fitted on its own training part, the test split left as it is). The objective
is an epoch-logged quantity (default ``val_loss``): its value at the epoch whose weights the
run kept (the best one when early stopping restores it, else the last), averaged over folds.
It is reported to Optuna every epoch, so the median pruner stops trials that fall behind.

The study lives in ``DIR/study.db`` (SQLite) unless ``storage`` names a shared database
URL. A search killed at any point resumes with the same command: finished trials are kept,
a trial that was running is retried with the same values, and trials run until ``trials``
have finished (completed, pruned, or failed for a reason the trial itself caused: invalid
config, diverged loss). With the default storage the directory is locked, so every trial
still marked running belongs to a process that died; with a shared one, Optuna's heartbeat
finds dead processes' trials.

The sampler is seeded with the config's seed plus the number of trials so far, so a search
in one directory is reproducible; with shared storage each process draws its own seed, so
processes that start together do not propose the same values. Each trial records the seed
in its ``sampler_seed`` user attribute.
"""

from __future__ import annotations

import contextlib
import csv
import os
import secrets
import signal
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trainer import datasets
from trainer.config.loading import to_yaml
from trainer.core import files
from trainer.core.errors import ConfigError, DivergedError, Interrupted, RunError, UsageError
from trainer.core.registry import did_you_mean
from trainer.training import backend, engine
from trainer.workflows import leaderboard
from trainer.workflows.space import Space, configure

STUDY = "trainer-tune"
HEARTBEAT_SECONDS = 60  # shared storage: a trial silent for GRACE_SECONDS is dead
GRACE_SECONDS = 180
STORAGE_ATTEMPTS = 5  # opening a new database while other processes create its tables
STORAGE_BACKOFF_SECONDS = 0.2  # doubled after each failed attempt, with jitter


@dataclass
class Settings:
    """What defines a search; a resumed search must have the same."""

    config: Path
    overrides: list[str]
    space: Space
    trials: int
    metric: str = "val_loss"
    direction: str = "auto"
    sampler: str = "tpe"
    folds: int = 0
    prune: bool = True
    storage: str | None = None
    base: Any = field(default=None, repr=False)  # the resolved base Config

    def identity(self) -> dict[str, Any]:
        return {
            "config": to_yaml(self.base),
            "space": self.space.describe(),
            "metric": self.metric,
            "direction": self.direction,
            "sampler": self.sampler,
            "folds": self.folds,
        }


def resolve(settings: Settings) -> Settings:
    """Check the objective and sampler settings before TensorFlow starts; fill in 'auto'."""
    from trainer.config.loading import load_config
    from trainer.workflows.space import check_space

    check_space(settings.space, settings.config, settings.overrides)
    base = load_config(settings.config, settings.overrides)
    if settings.trials < 1:
        raise UsageError(f"--trials must be at least 1 (got {settings.trials})")
    if settings.sampler not in ("grid", "random", "tpe"):
        raise UsageError(
            f"unknown sampler '{settings.sampler}'; "
            f"{did_you_mean(settings.sampler, ['grid', 'random', 'tpe'])}"
        )
    if settings.folds == 1 or settings.folds < 0:
        raise UsageError(
            f"--folds must be 0 (no cross-validation) or at least 2 (got {settings.folds})"
        )
    logged = base.logged_names()
    if settings.folds:  # every fold validates on its held-out part
        logged = list(dict.fromkeys([*logged, *(f"val_{n}" for n in logged if "val_" not in n)]))
    if settings.metric not in logged:
        raise UsageError(
            f"--metric '{settings.metric}' is not logged every epoch by this config; "
            f"{did_you_mean(settings.metric, logged)}",
            hint="the objective is an epoch-logged quantity such as val_loss or val_accuracy",
        )
    direction = settings.direction
    if direction == "auto":
        name = settings.metric.removeprefix("val_")
        from trainer.evaluation.metrics import HIGHER_IS_BETTER

        direction = "maximize" if name in HIGHER_IS_BETTER else "minimize"
    if direction not in ("minimize", "maximize"):
        raise UsageError(f"--direction must be auto, minimize or maximize (got '{direction}')")
    if settings.sampler == "grid":
        settings.space.grid()  # raises for a float range without a step
    return replace(settings, direction=direction, base=base)


def search(settings: Settings, root: Path, progress_factory: Callable, notify: Callable):
    """Run (or resume) the search in ``root``; returns the study summary (``tune.json``)."""
    import optuna

    from trainer.core.files import RunLock

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # report.py tells of each trial
    # the heartbeat that shared storage relies on is marked experimental; it is what we want
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    files.check_writable(root)
    root.mkdir(parents=True, exist_ok=True)
    with RunLock(root) if settings.storage is None else contextlib.nullcontext():
        study, seed = _open_study(settings, root)
        _recover(study, settings, notify)
        remaining = settings.trials - len(finished(study))
        if remaining > 0:
            try:
                study.optimize(
                    lambda trial: _objective(trial, settings, root, progress_factory, seed),
                    n_trials=remaining,
                    callbacks=[
                        _stop_at(settings.trials),
                        lambda s, t: notify(leaderboard.row(settings, t)),
                    ],
                    catch=(DivergedError,),  # a failed trial; the search goes on
                )
            except Interrupted as error:  # the search, not the trial's run, is what to resume
                raise Interrupted(
                    f"{error.message}; the search stopped",
                    exit_code=error.exit_code,
                    hint=f"resume it by running the same `trainer tune ... --run-dir {root}`",
                ) from None
        return leaderboard.summarize(study, settings, root)


def _open_study(settings: Settings, root: Path):
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    if settings.storage is None:
        storage = _storage(f"sqlite:///{(root / 'study.db').absolute()}")
        done = 0
        if STUDY in optuna.study.get_all_study_names(storage):
            done = len(optuna.load_study(study_name=STUDY, storage=storage).trials)
        seed = settings.base.seed + done  # a resumed sampler must not replay the first proposals
    else:
        storage = _storage(
            settings.storage,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(),
        )
        seed = secrets.randbits(32)  # processes sharing a study must not propose alike
    if settings.sampler == "grid":
        sampler = optuna.samplers.GridSampler(settings.space.grid(), seed=seed)
    elif settings.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
        if settings.prune
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        study_name=STUDY,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction=settings.direction,
        load_if_exists=True,
    )
    identity = settings.identity()
    saved = study.user_attrs.get("settings")
    if saved is None:
        study.set_user_attr("settings", identity)
    elif saved != identity:
        changed = sorted(k for k in identity if identity[k] != saved.get(k))
        raise UsageError(
            f"the search stored in {settings.storage or root / 'study.db'} was started with "
            f"different settings: {', '.join(changed)} changed",
            hint="resume with the same config, space, metric, direction, sampler and folds, "
            "or start a new search in another --run-dir",
        )
    return study, seed


def _storage(url: str, attempts: int = STORAGE_ATTEMPTS, **kwargs):
    """``RDBStorage(url)``, retried while another process is creating the same tables.

    Optuna creates its tables and stamps the schema version when a storage is first opened;
    two processes doing so at once on a new database collide (a table that "already exists",
    alembic's UNIQUE version row, SQLite's "database is locked"). The loser tries again after
    a short, jittered backoff, and by then finds the tables made.
    """
    import random
    import time

    import optuna
    from optuna.storages import RDBStorage
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(1, attempts + 1):
        try:
            return RDBStorage(url, **kwargs)
        except (IntegrityError, OperationalError, optuna.exceptions.StorageInternalError) as e:
            cause = e.__cause__ if isinstance(e, optuna.exceptions.StorageInternalError) else e
            transient = isinstance(cause, IntegrityError) or (
                isinstance(cause, OperationalError)
                and any(s in str(cause) for s in ("database is locked", "already exists"))
            )
            if not transient:
                raise
            if attempt == attempts:
                first_line = str(getattr(cause, "orig", None) or cause).splitlines()[0]
                raise RunError(
                    f"could not open the study storage {_hide_password(url)} after {attempts} "
                    f"attempts: {first_line}",
                    hint="if other `trainer tune` processes were starting on it, run this one "
                    "again; it joins the study they created",
                ) from e
            time.sleep(STORAGE_BACKOFF_SECONDS * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: shown as given
        return url


def _recover(study, settings: Settings, notify: Callable) -> None:
    """With the directory locked, every running trial was left by a killed process: retry it."""
    from optuna.trial import TrialState

    if settings.storage is not None:
        return  # the heartbeat does this for shared storage
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        if trial.params:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        notify({"note": f"trial {trial.number} was interrupted; retrying its values"})


def finished(study) -> list:
    """Trials that count towards the total: complete, pruned, or failed by their own doing."""
    from optuna.trial import TrialState

    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and "error" in t.user_attrs)
    ]


def _stop_at(total: int):
    def callback(study, trial) -> None:
        if len(finished(study)) >= total:
            study.stop()

    return callback


def _objective(
    trial, settings: Settings, root: Path, progress_factory: Callable, seed: int
) -> float:
    import optuna

    trial.set_user_attr("sampler_seed", seed)  # this process's sampler: results stay traceable
    values = {d.key: d.suggest(trial) for d in settings.space.dimensions}
    folder = root / "trials" / f"{trial.number:03d}"
    trial.set_user_attr("run_dir", str(folder))
    try:
        cfg = configure(
            settings.config,
            settings.overrides,
            values,
            name=f"{settings.base.name}-trial-{trial.number:03d}",
        )
    except ConfigError as error:  # values valid one by one, not together
        trial.set_user_attr("error", f"invalid config: {error}")
        raise optuna.TrialPruned() from None  # not a result: TPE must not learn from it
    backend.start(cfg.training)  # before Keras is imported: it picks the backend
    import keras

    if keras.backend.backend() == "tensorflow":  # each trial's new model retraces: expected
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
    try:
        if not settings.folds:
            keras.backend.clear_session()
            return _fit(trial, cfg, folder, settings, progress_factory, 0, None)
        scores = []
        for k, data in enumerate(fold_data(cfg, settings.folds)):
            keras.backend.clear_session()
            run = folder / f"fold-{k + 1}"
            scores.append(_fit(trial, cfg, run, settings, progress_factory, k, data))
        import numpy as np

        trial.set_user_attr("fold_values", scores)
        trial.set_user_attr("std", float(np.std(scores)))
        return float(np.mean(scores))
    except DivergedError as error:
        trial.set_user_attr("error", f"diverged: {error.message}")
        raise  # an interrupted trial gets no "error": it is retried when the search resumes


def _fit(trial, cfg, run_dir: Path, settings: Settings, progress_factory, fold: int, data):
    progress = TrialProgress(progress_factory(), trial, settings.metric, fold * cfg.training.epochs)
    result = engine.fit(cfg, run_dir, progress, data=data)
    return objective_value(run_dir, result, settings.metric, cfg)


def objective_value(run_dir: Path, result: engine.FitResult, metric: str, cfg) -> float:
    """The metric at the epoch whose weights the run kept (best, if early stopping restored)."""
    with open(run_dir / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    best = result.training.get("best_epoch")
    restored = cfg.early_stopping is not None and cfg.early_stopping.restore_best_weights
    chosen = rows[best - 1] if restored and best else rows[-1]
    return float(chosen[metric])


class TrialProgress:
    """Forwards training progress and reports the objective to Optuna after every epoch."""

    def __init__(self, inner, trial, metric: str, offset: int) -> None:
        self.inner, self.trial, self.metric, self.offset = inner, trial, metric, offset

    def stage(self, text: str) -> None:
        self.inner.stage(text)

    def start(self, epochs: int, steps_per_epoch: int, **plan: int | None) -> None:
        self.inner.start(epochs, steps_per_epoch, **plan)

    def step(self, step: int, logs: dict[str, float] | None = None) -> None:
        self.inner.step(step, logs)

    def epoch(self, epoch: int, epochs: int, logs: dict[str, float], seconds: float) -> None:
        import optuna

        self.inner.epoch(epoch, epochs, logs, seconds)
        if os.environ.get("TRAINER_TUNE_FAULT") == f"sigkill@{self.trial.number}":
            os.kill(os.getpid(), signal.SIGKILL)  # test hook: a machine dying mid-trial
        value = logs.get(self.metric)
        if value is None:
            return
        self.trial.report(float(value), self.offset + epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}: {self.metric} {value:.4g}")

    def finish(self) -> None:
        self.inner.finish()


def fold_data(cfg, k: int) -> list[datasets.Dataset]:
    """``k`` datasets, one per fold of the training pool; the test split as in a plain fit."""
    from trainer.datasets.kfold import kfold_indices

    params, seed = cfg.dataset, cfg.seed
    raw = datasets.read_raw(params, seed)
    limit = params.limit
    x, y = raw.x_train[:limit], raw.y_train[:limit]
    if raw.x_val is not None:  # a named validation file joins the pool the folds divide
        import numpy as np

        x = np.concatenate([x, raw.x_val[:limit]])
        y = np.concatenate([y, raw.y_val[:limit]])
    if raw.x_test is None:
        x, x_test, y, y_test = datasets.split(
            x, y, params.test_split, seed, raw.task, "test", list(raw.class_names)
        )
    else:
        x_test, y_test = raw.x_test[:limit], raw.y_test[:limit]
    unlimited = params.model_copy(update={"limit": None})
    folds = []
    for train, held_out in kfold_indices(y, k, seed, stratified=raw.task != "regression"):
        part = replace(
            raw,
            x_train=x[train],
            y_train=y[train],
            x_val=x[held_out],
            y_val=y[held_out],
            x_test=x_test,
            y_test=y_test,
        )
        folds.append(datasets.prepare(part, unlimited, seed))
    return folds
