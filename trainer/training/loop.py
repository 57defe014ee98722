"""The epoch loop around ``model.fit``: checkpoints, resume, signals, divergence, history.

Each epoch is one ``fit`` call over that epoch's batches (from the step a resumed run
stopped at), with a :class:`Supervisor` callback that counts steps, writes periodic and
epoch-end checkpoints (each only once every weight is finite), watches for NaN loss and
signals, keeps early-stopping state that survives a restart, and appends ``history.csv``.
No call into the graph runs past a step of ``checkpoint.every_steps`` (the engine sizes the
calls, the fused layout ends them there), so each periodic checkpoint is written at its step.
Keras's own ``EarlyStopping`` and ``BackupAndRestore`` forget their state across processes,
so this module owns both.
"""

from __future__ import annotations

import csv
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainer.core.errors import (
    EXIT_SIGINT,
    EXIT_SIGTERM,
    DivergedError,
    Interrupted,
    RunError,
    StorageError,
)
from trainer.training import checkpoint, faults, finite


class EarlyStopper:
    """Early stopping whose state (best value, patience used, best weights) is checkpointed."""

    def __init__(self, monitor: str, patience: int, min_delta: float, mode: str,
                 restore_best_weights: bool) -> None:  # fmt: skip
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        if mode == "auto":
            mode = "max" if any(k in monitor for k in ("acc", "auc", "precision", "recall",
                                                        "r2")) else "min"  # fmt: skip
        self.mode, self.restore_best_weights = mode, restore_best_weights
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_weights: list[np.ndarray] | None = None

    def improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, epoch: int, logs: dict[str, float], model) -> bool:
        """Record an epoch; True when training should stop."""
        value = logs.get(self.monitor)
        if value is None or not math.isfinite(value):
            return False
        if self.improved(value):
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            if self.restore_best_weights:
                self.best_weights = [np.array(w) for w in model.get_weights()]
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch}  # fmt: skip

    def load(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.wait, self.stopped_epoch = state["wait"], state["stopped_epoch"]
        keys = sorted(k for k in arrays if k.startswith("best/"))
        self.best_weights = [arrays[k] for k in keys] if keys else None

    def arrays(self) -> dict[str, np.ndarray]:
        if not self.best_weights:
            return {}
        return {f"best/{i:05d}": w for i, w in enumerate(self.best_weights)}


class HistoryLog:
    """``history.csv``: one row per finished epoch, flushed as it is written.

    Its ``epoch`` column counts from 1, as the console, plots, report, ``environment.json``,
    TensorBoard and MLflow do (Keras's callbacks count from 0; the loop converts). A run
    written before that convention (first row ``0``) is renumbered when it is resumed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.is_file():
            with open(path, newline="") as handle:
                self.rows = list(csv.DictReader(handle))
            if self.rows and self.rows[0].get("epoch") == "0":
                for number, row in enumerate(self.rows, start=1):
                    row["epoch"] = str(number)

    def truncate(self, rows: int) -> None:
        """Drop rows written after the checkpoint being resumed (no duplicated epochs)."""
        self.rows = self.rows[:rows]
        self._rewrite()

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        """Record the finished epoch ``epoch`` (0-based, as Keras passes it) as ``epoch + 1``."""
        values = {k: repr(float(v)) for k, v in sorted(logs.items())}
        self.rows.append({"epoch": epoch + 1, **values})
        self._rewrite()

    def _rewrite(self) -> None:
        columns = ["epoch", *sorted({k for row in self.rows for k in row} - {"epoch"})]
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        try:
            with open(temporary, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns, restval="")
                writer.writeheader()
                writer.writerows(self.rows)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise StorageError(f"cannot write {self.path} ({error.strerror or error})") from error


class SignalGuard:
    """SIGINT/SIGTERM ask training to stop after the current step; a second one exits at once."""

    def __init__(self, notify) -> None:
        self.received: int | None = None
        self._notify, self._previous = notify, {}

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
            if hasattr(signal, "SIGXFSZ"):  # a file-size limit surfaces as an OSError instead
                self._previous[signal.SIGXFSZ] = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        return self

    def _handle(self, signum, frame) -> None:
        if self.received is not None:
            os._exit(128 + signum)
        self.received = signum
        self._notify(f"{signal.Signals(signum).name} received: stopping after this step "
                     "(send it again to quit at once)")  # fmt: skip

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


@dataclass
class Position:
    epoch: int = 0  # 0-based epoch in progress
    step: int = 0  # optimizer steps done within it
    global_step: int = 0
    history_rows: int = 0
    metric_values: list | None = None  # the epoch's metric accumulators, for a mid-epoch resume
    resumed_from: str | None = None
    skipped: list[str] = field(default_factory=list)


class Loop:
    """Runs the epochs of one run, resumable at any checkpointed step."""

    def __init__(self, model, optimizers, cfg, run_dir: Path, progress, batches,
                 validation, eval_batch: int, callbacks: list | None = None) -> None:  # fmt: skip
        self.model, self.optimizers, self.cfg = model, optimizers, cfg
        self.extra_callbacks = list(callbacks or [])  # (class weights ride in the batches)
        self.batches, self.progress = batches, progress
        self.validation, self.eval_batch = validation, eval_batch
        self.steps = batches.steps
        self.fault = faults.from_env()
        self.checkpoints = checkpoint.Checkpoints(
            run_dir / "checkpoints", keep=cfg.checkpoint.keep, fault=self.fault
        )
        self.history = HistoryLog(run_dir / "history.csv")
        stopping = cfg.early_stopping
        self.early = None if stopping is None else EarlyStopper(**stopping.model_dump())
        self.position = Position()
        self.guard: SignalGuard | None = None
        self.diverged: str | None = None  # what became non-finite, where
        self.epoch_seconds: list[float] = []
        self.stopped_early = False
        self.at: dict[str, int] = {}  # {"epoch": e} for batches whose layout depends on it

    # -- resume ---------------------------------------------------------------------------
    def resume(self, keep_learning_rate: bool) -> bool:
        """Load the newest intact checkpoint; False when there is none."""
        self.checkpoints.clean_temporaries()
        restored = self.checkpoints.latest()
        if restored is None:
            self.history.truncate(0)
            return False
        arrays = self.checkpoints.load_arrays(restored.path)
        chief = getattr(self.checkpoints, "is_chief", True)  # others hold no history.csv
        contradiction = position_problem(restored.path.name, restored.meta, arrays,
                                         len(self.history.rows) if chief else None)  # fmt: skip
        if contradiction is not None:
            raise RunError(
                f"{restored.path}: refused: its recorded position contradicts the run "
                f"({contradiction})",
                hint=f"the checkpoint was edited: remove {restored.path} to resume from the one "
                "before it, or train again into a new run directory",
            )
        skip = ("learning_rate",) if keep_learning_rate else ()
        state = {k: v for k, v in arrays.items() if not k.startswith("best/")}
        checkpoint.restore(self.model, self.optimizers, state, skip)
        meta = restored.meta
        if self.early is not None and meta.get("early_stopping"):
            self.early.load(meta["early_stopping"], arrays)
        self.history.truncate(meta["history_rows"])
        metric_values = [np.array(v) for v in self.model.metrics_variables]
        self.position = Position(
            meta["epoch"], meta["step"], meta["global_step"], meta["history_rows"],
            metric_values if meta["step"] else None, restored.path.name, restored.skipped,
        )  # fmt: skip
        self.stopped_early = bool(meta.get("stopped_early"))
        return True

    # -- checkpoints ----------------------------------------------------------------------
    def save(self, epoch: int, step: int,
             arrays: dict[str, np.ndarray] | None = None) -> Path | None:  # fmt: skip
        """Checkpoint (``arrays``: the model's, already captured and checked), unless non-finite.

        A weight or optimizer variable holding NaN or Inf stops the run instead
        (:attr:`diverged`), and the previous checkpoint stays ``latest``.
        """
        arrays = self.finite_state(epoch, step) if arrays is None else arrays
        if arrays is None:
            return None
        if self.early is not None:
            arrays.update(self.early.arrays())
        meta = {
            "epoch": epoch, "step": step, "global_step": self.position.global_step,
            "history_rows": len(self.history.rows), "stopped_early": self.stopped_early,
            "early_stopping": None if self.early is None else self.early.state(),
        }  # fmt: skip
        return self.checkpoints.save(arrays, meta)

    def finite_state(self, epoch: int, step: int) -> dict[str, np.ndarray] | None:
        """The model and optimizer state, or None (and the run stops) if any is non-finite.

        ``epoch`` (0-based) and ``step`` (within it) say where, for the message.
        """
        arrays = checkpoint.capture(self.model, self.optimizers)
        found = finite.checkpoint_problems(arrays)
        if found:
            plural = "s" * (len(found) > 1)
            self.diverged = (f"{len(found)} variable{plural} became non-finite in epoch "
                             f"{epoch + 1} at step {step}: {finite.summary(found)}")  # fmt: skip
            self.model.stop_training = True
            return None
        return arrays

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        import keras

        loop = self
        epochs = self.cfg.training.epochs
        every = self.cfg.checkpoint.every_steps

        class Supervisor(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                loop.epoch_started = time.perf_counter()
                values = loop.position.metric_values
                if values is not None:  # mid-epoch resume: continue the epoch's averages
                    for variable, value in zip(self.model.metrics_variables, values, strict=True):
                        variable.assign(value)
                    loop.position.metric_values = None

            def save_mid_epoch(self):
                # Reading the callback's ``model`` makes Keras's JAX trainer write the epoch's
                # state back into the variables (it keeps it apart between epoch ends).
                loop.model = self.model
                loop.save(loop.epoch, loop.position.step)

            def on_train_batch_end(self, batch, logs=None):
                position = loop.position
                before = position.global_step
                position.step = loop.batches.steps_done(loop.start, batch, **loop.at)
                position.global_step = loop.epoch * loop.steps + position.step
                # the epoch's running mean loss(es) so far; ``float`` waits for the execution
                losses = {k: float(v) for k, v in (logs or {}).items() if "loss" in k}
                loop.progress.step(position.step, losses)
                bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
                if bad:  # any loss (a GAN has two) that is NaN or infinite
                    found = finite.model_problems(self.model)
                    loop.diverged = (
                        f"the training loss became {next(iter(bad.values()))} in epoch "
                        f"{loop.epoch + 1} at step {position.step}"
                        + (f" (non-finite: {finite.summary(found)})" if found else "")
                    )  # fmt: skip
                    self.model.stop_training = True
                    return
                if loop.fault is not None:
                    loop.fault.after_step(before, position.global_step, self.model)
                if loop.guard.received is not None:
                    self.save_mid_epoch()
                    self.model.stop_training = True
                    return
                crossed = every and position.global_step // every > before // every
                if crossed and position.step < loop.steps:  # epoch ends checkpoint anyway
                    self.save_mid_epoch()

            def on_epoch_end(self, epoch, logs=None):
                if self.model.stop_training:  # interrupted or diverged: not a finished epoch
                    return
                loop.model = self.model  # (the JAX trainer writes its state back: see above)
                arrays = loop.finite_state(epoch, loop.steps)
                if arrays is None:  # not a finished epoch either: no history row, no checkpoint
                    return
                logs = {k: float(v) for k, v in (logs or {}).items()}
                logs["learning_rate"] = _learning_rate(self.model)
                loop.history.append(epoch, logs)
                seconds = time.perf_counter() - loop.epoch_started
                loop.epoch_seconds.append(seconds)
                loop.progress.epoch(epoch + 1, epochs, logs, seconds)
                if loop.early is not None and loop.early.update(epoch, logs, self.model):
                    loop.stopped_early = True
                loop.save(epoch + 1, 0, arrays)

        supervisor = Supervisor()
        self.progress.start(
            epochs, self.steps, batch_size=self.batches.batch_size,
            samples_per_epoch=self.batches.n, epochs_done=self.position.epoch,
            steps_done=self.position.step,
        )  # fmt: skip
        with SignalGuard(self.progress.stage) as guard:
            self.guard = guard
            try:
                for epoch in range(self.position.epoch, epochs):
                    if self.stopped_early:
                        break
                    self.epoch = epoch
                    self.start = self.position.step if epoch == self.position.epoch else 0
                    # fused executions end at the epoch's checkpoint steps: their layout differs
                    self.at = {"epoch": epoch} if getattr(self.batches, "by_epoch", False) else {}
                    self.model.fit(
                        self.batches.epoch(epoch, self.start),
                        initial_epoch=epoch,
                        epochs=epoch + 1,
                        steps_per_epoch=self.batches.executions(self.start, **self.at),
                        validation_data=self.validation,
                        validation_batch_size=self.eval_batch,
                        callbacks=[supervisor, *self.extra_callbacks],
                        shuffle=False,
                        verbose=0,
                    )
                    self._raise_if_stopped()
                    self.position.step = 0
            finally:
                self.progress.finish()
        if self.early is not None and self.early.restore_best_weights and self.early.best_weights:
            self.model.set_weights(self.early.best_weights)

    def _raise_if_stopped(self) -> None:
        if self.diverged is not None:
            names = self.checkpoints.valid_names()
            kept = f"the last finite checkpoint ({names[-1]}) was kept" if names else (
                "no checkpoint had been written yet")  # fmt: skip
            raise DivergedError(f"{self.diverged}; {kept} and no model was saved",
                                hint=finite.CAUSES)  # fmt: skip
        if self.guard.received is not None:
            signum = self.guard.received
            code = EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM
            raise Interrupted(
                f"{signal.Signals(signum).name}: stopped in epoch {self.epoch + 1} at step "
                f"{self.position.step}; checkpoint written",
                exit_code=code,
                hint="continue with: trainer fit --resume " + str(self.checkpoints.root.parent),
            )


def position_problem(name: str, meta: dict, arrays: dict,
                     history_rows: int | None) -> str | None:  # fmt: skip
    """What in a checkpoint's recorded position contradicts the rest of the run, or None.

    The manifest guards against damage, not against an edit that re-signs it: the position
    must agree with the checkpoint's name, the history the run wrote, and the optimizer's own
    step counter.
    """
    try:
        epoch, step, global_step = (int(meta[k]) for k in ("epoch", "step", "global_step"))
        rows = int(meta["history_rows"])
    except (KeyError, TypeError, ValueError) as error:
        return f"meta.json lacks a valid {error}"
    if min(epoch, step, global_step, rows) < 0 or name != f"step-{global_step:09d}":
        return f"it is named {name} but records global step {global_step}"
    if rows != epoch:
        return f"it records {epoch} finished epochs but {rows} history rows"
    if history_rows is not None and history_rows < rows:
        return f"it records {rows} history rows, but history.csv holds {history_rows}"
    counters = [k for k in arrays if k.endswith("/iteration")]
    if len({k.split("/")[0] for k in counters}) == 1 and len(counters) == 1:
        taken = int(arrays[counters[0]])
        if taken != global_step:
            return f"it records global step {global_step}, but its optimizer took {taken} steps"
    return None


def _learning_rate(model) -> float:
    optimizer = getattr(model, "optimizer", None)
    try:
        return float(np.asarray(optimizer.learning_rate))  # a MirroredVariable has no __float__
    except (AttributeError, TypeError, ValueError):
        return float("nan")
