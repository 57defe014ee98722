"""Experiment tracking: TensorBoard logs in every run, and an optional MLflow run.

TensorBoard: Keras's own ``keras.callbacks.TensorBoard`` writes ``RUN_DIR/tensorboard/``
(``train/`` and ``validation/``): a scalar per logged quantity per epoch, the model's graph,
and weight histograms every ``histogram_freq`` epochs. The training loop calls ``fit`` once
per epoch and may be interrupted and resumed, so :class:`EpochTensorBoard` keeps one writer
per process, writes the graph once per run and skips an epoch that did not finish (a resume
logs it when it does), so each epoch appears once.

Epochs are counted from 1 here as everywhere a person reads them (``history.csv``, the
console, plots): TensorBoard's step and MLflow's step for epoch N are N, not Keras's N - 1.

MLflow (``tracking.mlflow``): the flattened config as params, each epoch's logs as metrics
(step = epoch, as in TensorBoard), the test metrics as ``test_<name>``, the diagnosis as tags,
and the config, metrics, history and ``model.keras`` as artifacts, through ``MlflowClient``
(no global active run). The MLflow run id is kept in ``RUN_DIR/tracking.json``, so a resumed
run continues the same MLflow run.

Nothing here imports TensorFlow or MLflow until a run starts; the config section and its
check are plain pydantic.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.core.errors import Interrupted, UsageError

if TYPE_CHECKING:
    from trainer.config.schema import Config

LOG_DIR = "tensorboard"
RECORD = "tracking.json"
SQLITE = "sqlite:///"


class Tracker:
    """The tracking of one ``fit``: its Keras callbacks, then the final results.

    Created before the run directory is locked, so a wrong MLflow URI fails before
    anything is written. ``with tracker:`` around training marks the MLflow run killed or
    failed when training raises, and closes the TensorBoard writers. Only the chief of a
    distributed run (``chief``) tracks: the others would log the same run again.
    """

    def __init__(self, cfg: Config, run_dir: Path, resume: bool,
                 warn: Callable[[str], None] = lambda text: None,
                 chief: bool = True) -> None:  # fmt: skip
        self.cfg, self.run_dir, self.resume, self.warn = cfg, run_dir, resume, warn
        self.chief, self.board = chief, None
        wanted = chief and cfg.tracking.mlflow is not None
        self.mlflow = MlflowRun(cfg, run_dir) if wanted else None

    def start(self, model) -> list:
        """The callbacks for ``fit``; opens (or, on resume, reopens) the MLflow run."""
        callbacks = []
        settings = self.cfg.tracking.tensorboard
        if settings.enabled and self.chief:
            if importlib.util.find_spec("tensorflow") is None:
                self.warn("warning: no TensorBoard logs: they are written with TensorFlow's "
                          "summary writer, and TensorFlow is not installed")  # fmt: skip
            else:
                logs = self.run_dir / LOG_DIR
                graph = settings.write_graph and not any(logs.glob("train/events.out.*"))
                self.board = epoch_tensorboard()(logs, settings.histogram_freq, graph)
                callbacks.append(self.board)
        if self.mlflow is not None:
            self.mlflow.start(self.resume)
            callbacks.append(self.mlflow.callback())
        return callbacks

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self.board is not None:
            self.board.close()
        if error is not None and self.mlflow is not None:
            self.mlflow.end("KILLED" if isinstance(error, Interrupted) else "FAILED")

    def finish(self, metrics: dict[str, Any], diagnosis: dict[str, Any] | None) -> None:
        """Log the test metrics, diagnosis and files of a complete run; end the MLflow run.

        The run is complete and saved by now, so a tracking server that fails here is a
        warning, not a failed run.
        """
        if self.mlflow is None:
            return
        try:
            self.mlflow.finish(metrics, diagnosis)
        except Exception as error:  # any MLflow/store failure: the run itself is saved
            self.warn(f"warning: MLflow: could not log the results ({error})")


def epoch_tensorboard():
    """The TensorBoard callback class, built on first use (it subclasses a Keras class)."""
    import keras

    class EpochTensorBoard(keras.callbacks.TensorBoard):
        """``keras.callbacks.TensorBoard`` for a loop that calls ``fit`` once per epoch.

        Keras resets and closes its writers at the end of every ``fit`` (one new event file
        per epoch) and writes the graph in every one; here the writers stay open until
        :meth:`close`, the graph is written once, and an epoch that was interrupted or
        diverged (``stop_training`` set by the loop's supervisor) is not logged.
        """

        def __init__(self, log_dir: Path, histogram_freq: int, write_graph: bool) -> None:
            super().__init__(str(log_dir), histogram_freq=histogram_freq, write_graph=False)
            self.graph_pending = write_graph
            self.kept: dict = {}

        def set_model(self, model) -> None:
            super().set_model(model)  # resets the writers: keep this process's ones
            self._writers = self.kept
            if self.graph_pending:
                self._write_keras_model_summary()  # the conceptual graph (Functional models)
                write_forward_graph(self._train_writer, model)
                self.graph_pending = False

        def on_epoch_end(self, epoch, logs=None) -> None:
            if not self.model.stop_training:  # step = the 1-based epoch (module docstring)
                super().on_epoch_end(epoch + 1, logs)

        def on_test_end(self, logs=None) -> None:
            if not self.model.stop_training:
                super().on_test_end(logs)

        def on_train_end(self, logs=None) -> None:
            for writer in self._writers.values():
                writer.flush()

        def close(self) -> None:
            self._close_writers()
            self.kept.clear()

    return EpochTensorBoard


def write_forward_graph(writer, model) -> None:
    """The op graph of the model's forward pass (Keras 3 no longer traces one for ``fit``)."""
    import keras

    if keras.backend.backend() != "tensorflow" or not getattr(model, "inputs", None):
        return  # subclassed models (VAE, GAN) have no fixed input signature to trace
    import tensorflow as tf

    specs = [tf.TensorSpec([None, *x.shape[1:]], x.dtype) for x in model.inputs]
    graph = tf.function(lambda *x: model(list(x) if len(x) > 1 else x[0])).get_concrete_function(
        *specs
    )
    with writer.as_default():
        tf.summary.graph(graph.graph)


class MlflowRun:
    """One MLflow run in the store the config names, driven through ``MlflowClient``."""

    def __init__(self, cfg: Config, run_dir: Path) -> None:
        settings = cfg.tracking.mlflow
        from mlflow.tracking import MlflowClient

        for name in ("mlflow", "alembic"):  # their INFO lines would bypass the report module
            logging.getLogger(name).setLevel(logging.WARNING)

        self.cfg, self.run_dir, self.settings = cfg, run_dir, settings
        self.uri, self.run_id = _absolute(settings.uri), None
        name = settings.experiment or cfg.name
        try:
            self.client = MlflowClient(tracking_uri=self.uri)
            found = self.client.get_experiment_by_name(name)
            self.experiment_id = found.experiment_id if found else self.client.create_experiment(
                name, artifact_location=self._artifact_location()
            )  # fmt: skip
        except Exception as error:  # MLflow's own errors, or the database driver's
            message = getattr(error, "message", None) or str(error).splitlines()[0]
            raise UsageError(
                f"tracking.mlflow: cannot use the MLflow store '{settings.uri}' ({message})",
                hint="give a database URI such as sqlite:///mlflow.db, or a running server's "
                "http:// address",
            ) from None

    def _artifact_location(self) -> str | None:
        if self.settings.artifact_location or not self.uri.startswith(SQLITE):
            return self.settings.artifact_location
        return (Path(self.uri.removeprefix(SQLITE)).parent / "mlartifacts").as_uri()

    def start(self, resume: bool) -> None:
        record = _read_record(self.run_dir).get("mlflow", {})
        if resume and record.get("run_id") and record.get("uri") == self.uri:
            self.run_id = record["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            self._tag_changed_params()
            return
        run = self.client.create_run(
            self.experiment_id, run_name=self.run_dir.name,
            tags={"trainer.run_dir": str(self.run_dir.absolute()),
                  "trainer.model": self.cfg.model.type, "trainer.dataset": self.cfg.dataset.type},
        )  # fmt: skip
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in sorted(self._params().items())]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        record = {"uri": self.uri, "experiment_id": self.experiment_id,
                  "run_id": self.run_id}  # fmt: skip
        _write_record(self.run_dir, {**_read_record(self.run_dir), "mlflow": record})

    def _params(self) -> dict[str, str]:
        from trainer.results.runs import flatten

        flat = flatten(self.cfg.model_dump(mode="json"))
        return {key: str(value)[:6000] for key, value in flat.items()}

    def _tag_changed_params(self) -> None:
        """MLflow params never change: a resume with a changed config tags what changed."""
        logged = self.client.get_run(self.run_id).data.params
        for key, value in sorted(self._params().items()):
            if logged.get(key) != value:
                before = logged.get(key, "(unset)")
                self.client.set_tag(self.run_id, f"trainer.resumed_with.{key}",
                                    f"{before} -> {value}")  # fmt: skip

    def callback(self):
        import keras

        tracked = self

        class MlflowEpochs(keras.callbacks.Callback):
            """Each finished epoch's logs (and learning rate) as MLflow metrics."""

            def on_epoch_end(self, epoch, logs=None):
                if self.model.stop_training:  # interrupted: a resume logs this epoch
                    return
                values = {k: float(v) for k, v in (logs or {}).items()}
                rate = getattr(getattr(self.model, "optimizer", None), "learning_rate", None)
                if rate is not None:
                    values["learning_rate"] = float(keras.ops.convert_to_numpy(rate))
                tracked.log_metrics(values, step=epoch + 1)

        return MlflowEpochs()

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        import math

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items() if math.isfinite(v)]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, metrics: dict[str, Any], diagnosis: dict[str, Any] | None) -> None:
        test = {f"test_{k}": v for k, v in metrics.get("test", {}).items()
                if isinstance(v, int | float)}  # fmt: skip
        self.log_metrics(test, step=0)
        if diagnosis:
            self.client.set_tag(self.run_id, "diagnosis", diagnosis["verdict"])
            self.client.set_tag(self.run_id, "diagnosis.summary", diagnosis["summary"][:5000])
        for name in ("config.yaml", "metrics.json", "diagnosis.json", "history.csv",
                     "environment.json", "preprocessing.json"):  # fmt: skip
            if (self.run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(self.run_dir / name))
        if self.settings.log_model and (self.run_dir / "model.keras").is_file():
            self.client.log_artifact(self.run_id, str(self.run_dir / "model.keras"), "model")
        self.end("FINISHED")

    def end(self, status: str) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)


def _absolute(uri: str) -> str:
    """A relative SQLite path resolves against the current directory, as config paths do."""
    if uri.startswith(SQLITE) and not uri.startswith(SQLITE + "/"):
        return SQLITE + str(Path(uri.removeprefix(SQLITE)).absolute())
    return uri


def _read_record(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / RECORD).read_text())
    except (OSError, ValueError):
        return {}


def _write_record(run_dir: Path, record: dict[str, Any]) -> None:
    from trainer.core.files import write_json

    write_json(run_dir / RECORD, record)
