"""Training on several devices or machines: ``training.distribution``, on existing engines.

Which engine runs each mode, and why (measured on Keras 3.15, TensorFlow 2.21, JAX 0.10):

  none        one device, the default path, untouched.
  mirrored    every local GPU (or ``devices: [gpu:0, gpu:1]``) of one machine.
              TensorFlow: ``tf.distribute.MirroredStrategy``, made the default strategy before
              the model is built, so variables, ``compile`` and ``fit`` run under it (it works
              with Keras 3 ``fit`` unchanged). JAX: ``keras.distribution.DataParallel`` over the
              local devices.
  multi_host  several processes, one per machine (or per GPU), JAX backend only:
              ``jax.distributed.initialize`` then ``keras.distribution.DataParallel`` over every
              device of every process. TensorFlow's ``MultiWorkerMirroredStrategy`` fails with
              Keras 3 ``fit`` (keras-team/keras#20585) and only private patches make it work,
              so it is refused with a pointer to ``backend: jax``.

The semantics are those of one device: ``training.batch_size`` is the global batch, split
evenly over the replicas (it must divide), so a step on R replicas is the step one device
takes on the same batch; the learning rate is left alone unless ``training.lr_scaling:
linear`` multiplies it by R. Epoch ``e`` visits the trainer's ``permutation(seed, e)`` as on one
device, and each process feeds only its own slice of every global batch, so no example is
seen twice in an epoch. A last short batch that R does not divide is padded to a multiple of
R with rows that weigh 0, its real rows weighing P / N, so its step is one device's step
(:class:`trainer.training.replicas.ReplicatedBatches`; cutting it instead, as before issue
#15, left 1e-3 between the weights after one epoch of digits). Only process 0, the chief,
writes the run directory: the others write into a scratch directory, take the chief's
decision to resume and receive its checkpoint over the collective (no shared disk needed).

The cluster of a ``multi_host`` run (JAX_* variables, TF_CONFIG or SLURM) and the handshake
that turns a missing peer into an error after ``training.distribution.timeout`` seconds are in
:mod:`trainer.training.cluster`; the batch shares and the chief's checkpoints in
:mod:`trainer.training.replicas`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.core.errors import UsageError
from trainer.settings.sections import UNSUPPORTED
from trainer.training.cluster import describe_cluster, rendezvous

if TYPE_CHECKING:
    from trainer.config.schema import Config


@dataclass
class Cluster:
    """This process's place in the run: its mode, engine, process index and replicas."""

    mode: str = "none"
    backend: str = "tensorflow"
    devices: list[str] | None = None
    coordinator: str | None = None
    processes: int = 1
    process_id: int = 0
    source: str | None = None  # where the cluster description came from
    timeout: int = 300
    fingerprint: str = ""
    replicas: int = 1  # devices over all processes, known once started
    local_replicas: int = 1
    scratch: Path | None = field(default=None, repr=False)

    @property
    def is_chief(self) -> bool:
        return self.process_id == 0

    @property
    def engine(self) -> str:
        if self.mode == "none":
            return "single device"
        if self.backend == "tensorflow":
            return "tf.distribute.MirroredStrategy"
        return "keras.distribution.DataParallel" + (
            " + jax.distributed" if self.mode == "multi_host" else ""
        )

    def describe(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "engine": self.engine,
            "replicas": self.replicas,
            "processes": self.processes,
            "process_id": self.process_id,
            "coordinator": self.coordinator,
            "cluster_from": self.source,
        }

    # -- before the backend starts ----------------------------------------------------------
    def run_dir(self, run_dir: Path) -> Path:
        """Where this process writes: the run directory on the chief, else a scratch one."""
        if self.is_chief:
            return run_dir
        if self.scratch is None:
            prefix = f"trainer-{run_dir.name}-process{self.process_id}-"
            self.scratch = Path(tempfile.mkdtemp(prefix=prefix))
        return self.scratch

    def start(self, training) -> str:
        """Join the other processes, start the backend, and make the engine the default one.

        Returns the device description, as :func:`trainer.training.backend.select_device` does.
        """
        from trainer.training.backend import activate, select_device

        if self.mode == "multi_host":
            activate(training.backend, training.device)
            self._connect()
        device = select_device(training.backend, training.device)
        self._clear_previous()
        if self.mode == "none":
            return device
        if self.backend == "tensorflow":
            import tensorflow as tf

            names = [f"/{d}" for d in self.devices] if self.devices else None
            strategy = tf.distribute.MirroredStrategy(names)
            tf.distribute.experimental_set_strategy(strategy)
            self.replicas = self.local_replicas = strategy.num_replicas_in_sync
        else:
            import jax
            import keras

            devices = jax.devices() if self.mode == "multi_host" else self._local_jax_devices()
            keras.distribution.set_distribution(
                keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
            )
            self.replicas, self.local_replicas = len(devices), len(devices) // self.processes
        return f"{device}; {self.replicas} replicas ({self.engine})"

    def _clear_previous(self) -> None:
        """An earlier fit in this process (``trainer tune``) may have left its engine set."""
        import keras

        if self.backend == "tensorflow":
            import tensorflow as tf

            if tf.distribute.has_strategy():
                tf.distribute.experimental_set_strategy(None)
        elif keras.distribution.distribution() is not None:
            keras.distribution.set_distribution(None)

    def _local_jax_devices(self) -> list:
        import jax

        if not self.devices:
            return jax.local_devices()
        found = {
            f"{'gpu' if d.platform != 'cpu' else 'cpu'}:{d.id}": d
            for d in jax.local_devices(backend=None) + jax.local_devices(backend="cpu")
        }
        missing = [name for name in self.devices if name not in found]
        if missing:
            raise UsageError(
                f"training.distribution.devices names {', '.join(missing)}, which JAX does "
                f"not see here (it sees: {', '.join(sorted(found))})",
                hint="list devices this machine has, or leave devices out to use all of them",
            )
        return [found[name] for name in self.devices]

    def _connect(self) -> None:
        rendezvous(self)  # before JAX starts: its own wait aborts the process on a timeout
        import jax

        jax.distributed.initialize(
            self.coordinator,
            self.processes,
            self.process_id,
            initialization_timeout=self.timeout,
            heartbeat_timeout_seconds=self.timeout,
            shutdown_timeout_seconds=self.timeout,
        )

    # -- the training set-up ----------------------------------------------------------------
    @property
    def _mirrored_tf(self) -> bool:
        return self.mode == "mirrored" and self.backend == "tensorflow"

    def jit_compile(self, resolved):
        """XLA cannot run under MirroredStrategy (variables live on other devices): off."""
        return False if self._mirrored_tf else resolved

    def steps_per_execution(self, requested):
        """One step per call under MirroredStrategy: Keras 3.15 fails with more."""
        return 1 if self._mirrored_tf else requested

    def scale_learning_rate(self, params, rule: str):
        """``linear``: the learning rate times the number of replicas (Goyal et al., 2017)."""
        if rule != "linear" or self.replicas == 1:
            return params
        return params.model_copy(update={"learning_rate": params.learning_rate * self.replicas})

    def training_batches(self, x, y, batch_size: int, seed: int,
                         class_weight: dict[int, float] | None = None):  # fmt: skip
        """The pipeline's batches, cut so every replica gets an equal share of each batch."""
        if self.mode == "none":
            from trainer.datasets import pipeline

            return pipeline.training_batches(x, y, batch_size, seed, class_weight=class_weight)
        if batch_size % self.replicas:
            what = "the full training split" if batch_size == len(x) else "training.batch_size"
            raise UsageError(
                f"{what} ({batch_size}) does not split evenly over {self.replicas} replicas",
                hint=f"set training.batch_size to a multiple of {self.replicas}: it is the global "
                f"batch, and each replica takes batch_size / {self.replicas}",
            )
        from trainer.training.replicas import ReplicatedBatches, ReplicatedTensorBatches

        kind = ReplicatedTensorBatches if self.backend == "tensorflow" else ReplicatedBatches
        return kind(
            x,
            y,
            batch_size,
            seed,
            replicas=self.replicas,
            process=self.process_id,
            processes=self.processes,
            class_weight=class_weight,
        )

    def fed(self, batches) -> list[dict[str, Any]] | None:
        """What every process fed, per epoch, gathered on each (None on one device)."""
        if self.mode == "none":
            return None
        mine = {"process": self.process_id, "epochs": batches.fed}
        if hasattr(batches.features, "decoded"):  # streamed: the training images it read
            mine["images_decoded"] = batches.features.decoded
        if self.processes == 1:
            return [mine]
        from trainer.training.replicas import broadcast_bytes

        data, me = json.dumps(mine).encode(), self.process_id
        return [
            json.loads(broadcast_bytes(data if k == me else None, k == me))
            for k in range(self.processes)
        ]

    def validation(self, validation, batch_size: int):
        """JAX shards every batch evenly: drop the last few validation samples if needed."""
        if validation is None or self.mode == "none" or self.backend == "tensorflow":
            return validation
        if batch_size % self.local_replicas:
            raise UsageError(
                f"training.eval_batch_size ({batch_size}) does not split over this machine's "
                f"{self.local_replicas} devices",
                hint=f"set it to a multiple of {self.local_replicas}",
            )
        x, y = validation
        keep = len(x) - (len(x) % batch_size) % self.local_replicas
        return x[:keep], y[:keep]

    def build_rows(self, rows: int = 2) -> int:
        """Rows of the one-batch evaluation that builds the metrics: a multiple of devices."""
        return rows * self.local_replicas

    def agree(self, flag: bool) -> bool:
        """The chief's value of ``flag`` on every process (whether to resume, say)."""
        if self.processes == 1:
            return flag
        from trainer.training.replicas import broadcast_bytes

        return bool(broadcast_bytes(b"1" if flag else b"0", self.is_chief) == b"1")

    def checkpoints(self, inner):
        if self.processes == 1:
            return inner
        from trainer.training.replicas import SharedCheckpoints

        return SharedCheckpoints(inner, self.is_chief)

    def finish(self) -> None:
        """Back to one device for saving and evaluating (JAX cannot fetch sharded outputs)."""
        if self.mode != "none" and self.backend == "jax":
            import keras

            keras.distribution.set_distribution(None)


# -- the cluster description --------------------------------------------------------------
def resolve(cfg: Config, environ: dict[str, str] | None = None) -> Cluster:
    """This process's :class:`Cluster` from the config and the environment (no TensorFlow)."""
    environ = os.environ if environ is None else environ
    setting, training = cfg.training.distribution, cfg.training
    backend = training.backend
    if backend == "auto":
        backend = environ.get("KERAS_BACKEND", "tensorflow")
    if setting.type == "none":
        return Cluster(backend=backend)
    if setting.type == "mirrored":
        if backend == "tensorflow" and training.jit_compile is True:
            raise UsageError(
                "training.jit_compile is true, but XLA does not run under TensorFlow's "
                "MirroredStrategy (Keras turns it off there too)",
                hint="set training.jit_compile: auto (or false), or training.backend: jax",
            )
        if backend == "tensorflow" and training.steps_per_execution not in ("auto", 1):
            raise UsageError(
                f"training.steps_per_execution is {training.steps_per_execution}, but Keras "
                "3.15 fails to run several steps per call under TensorFlow's MirroredStrategy",
                hint="set training.steps_per_execution: auto (1 here), or training.backend: jax",
            )
        return Cluster("mirrored", backend, setting.devices, timeout=setting.timeout)
    if backend != "jax":
        raise UsageError(
            f"training.distribution.type: {UNSUPPORTED}",
            hint="or use 'mirrored' for the GPUs of one machine",
        )
    coordinator, processes, process_id, source = describe_cluster(environ)
    config = json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()
    return Cluster(
        "multi_host",
        backend,
        None,
        coordinator,
        processes,
        process_id,
        source,
        setting.timeout,
        hashlib.sha256(config).hexdigest()[:16],
    )
