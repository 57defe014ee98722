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
seen twice in an epoch; a last short batch is cut to a multiple of R (at most R - 1 samples
of an epoch, different ones each epoch). Only process 0, the chief, writes the run
directory: the others write into a scratch directory, take the chief's decision to resume
and receive its checkpoint over the collective (no shared disk needed).

The cluster is described by what launchers already set, read before TensorFlow or JAX
starts: ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``, else
``TF_CONFIG`` (Kubernetes TFJob), else SLURM's ``SLURM_NTASKS``, ``SLURM_PROCID`` and node
list. Before JAX connects, the processes meet on the coordinator's port and compare their
configs, so a missing worker is an error after ``training.distribution.timeout`` seconds
(JAX itself aborts the process on that timeout) and a worker with another config is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from trainer import pipeline
from trainer.errors import RunError, UsageError

if TYPE_CHECKING:
    from trainer.schema import Config

Device = Annotated[str, StringConstraints(pattern=r"^(cpu|gpu):\d+$")]
HINT = (
    "set JAX_COORDINATOR_ADDRESS=host:port (process 0's machine), JAX_NUM_PROCESSES and "
    "JAX_PROCESS_ID on every machine (or run under SLURM, or set TF_CONFIG); see the README, "
    "'More than one machine'"
)


class Distribution(BaseModel):
    """How many devices or machines train one model (see :mod:`trainer.distribution`)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["none", "mirrored", "multi_host"] = Field(
        "none",
        description="none: one device; mirrored: every local GPU (or `devices`); multi_host: "
        "several processes that read the cluster from JAX_* variables, TF_CONFIG or SLURM "
        "(JAX backend).",
    )
    devices: list[Device] | None = Field(
        None, description="mirrored only: the local devices, e.g. [gpu:0, gpu:1]."
    )
    timeout: int = Field(
        300, ge=1, description="multi_host: seconds to wait for the other processes."
    )


def check_distribution(cfg: Config) -> Iterator[tuple[tuple, str]]:
    """Config rules of ``training.distribution`` (no TensorFlow)."""
    from trainer.models import MODELS

    where = ("training", "distribution")
    setting = cfg.training.distribution
    if setting.devices is not None and setting.type != "mirrored":
        yield (*where, "devices"), "applies to type 'mirrored' only; remove it"
    if setting.type != "none" and MODELS.get(cfg.model.type).info.get("compile"):
        yield (
            (*where, "type"),
            (
                f"model '{cfg.model.type}' trains with its own train step, which does not split "
                "its loss over replicas; use distribution 'none' for it"
            ),
        )
    if setting.type == "multi_host" and cfg.training.backend == "tensorflow":
        yield (*where, "type"), UNSUPPORTED
    if cfg.training.lr_scaling != "none" and setting.type == "none":
        yield ("training", "lr_scaling"), "needs a distribution with several replicas; remove it"


UNSUPPORTED = (
    "'multi_host' runs on the JAX backend only: TensorFlow's MultiWorkerMirroredStrategy "
    "fails with Keras 3 fit (keras-team/keras#20585); set training.backend: jax"
)


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

        Returns the device description, as :func:`trainer.backend.select_device` does.
        """
        from trainer.backend import activate, select_device

        if self.mode == "multi_host":
            activate(training.backend, training.device)
            self._connect()
        device = select_device(training.backend, training.device)
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

    def training_batches(self, x, y, batch_size: int, seed: int):
        """The pipeline's batches, cut so every replica gets an equal share of each batch."""
        if self.mode == "none":
            return pipeline.training_batches(x, y, batch_size, seed)
        n = len(x)
        if batch_size % self.replicas:
            what = "the full training split" if batch_size == n else "training.batch_size"
            raise UsageError(
                f"{what} ({batch_size}) does not split evenly over {self.replicas} replicas",
                hint=f"set training.batch_size to a multiple of {self.replicas}: it is the global "
                f"batch, and each replica takes batch_size / {self.replicas}",
            )
        short = n % batch_size
        if 0 < short < self.replicas:
            raise UsageError(
                f"the last batch of each epoch has {short} samples, fewer than the "
                f"{self.replicas} replicas, so it cannot be split",
                hint="choose a batch_size that divides the training split more evenly",
            )
        kind = ReplicatedTensorBatches if self.backend == "tensorflow" else ReplicatedBatches
        return kind(
            x,
            y,
            batch_size,
            seed,
            replicas=self.replicas,
            process=self.process_id,
            processes=self.processes,
        )

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
        return bool(broadcast_bytes(b"1" if flag else b"0", self.is_chief) == b"1")

    def checkpoints(self, inner):
        return inner if self.processes == 1 else SharedCheckpoints(inner, self.is_chief)

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


def describe_cluster(environ) -> tuple[str, int, int, str]:
    """(coordinator host:port, process count, this process's index, where they came from)."""
    found: dict[str, tuple[Any, str]] = {}
    if "SLURM_NTASKS" in environ or "SLURM_PROCID" in environ:
        found.update(_from_slurm(environ))
    if environ.get("TF_CONFIG"):
        found.update(_from_tf_config(environ["TF_CONFIG"]))
    for key, name in (
        ("coordinator", "JAX_COORDINATOR_ADDRESS"),
        ("processes", "JAX_NUM_PROCESSES"),
        ("process_id", "JAX_PROCESS_ID"),
    ):
        if environ.get(name):
            found[key] = (environ[name], name)
    missing = [key for key in ("coordinator", "processes", "process_id") if key not in found]
    if missing:
        names = {
            "coordinator": "JAX_COORDINATOR_ADDRESS",
            "processes": "JAX_NUM_PROCESSES",
            "process_id": "JAX_PROCESS_ID",
        }
        raise UsageError(
            "training.distribution.type is 'multi_host' but the cluster description is "
            f"incomplete: {', '.join(names[key] for key in missing)} not set",
            hint=HINT,
        )
    address, where = found["coordinator"]
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{where}: '{address}' is not host:port (e.g. 10.0.0.1:12355)", hint=HINT)
    processes, process_id = (_integer(*found[key]) for key in ("processes", "process_id"))
    if processes < 1 or not 0 <= process_id < processes:
        raise UsageError(
            f"process index {process_id} ({found['process_id'][1]}) is not in 0..{processes - 1} "
            f"for {processes} processes ({found['processes'][1]})",
            hint="number the processes 0, 1, ... one per machine; 0 runs the coordinator",
        )
    sources = sorted({where.split(" ")[0] for _, where in found.values()})
    return str(address), processes, process_id, ", ".join(sources)


def _integer(value, where: str) -> int:
    if isinstance(value, int):
        return value
    if not re.fullmatch(r"\d+", str(value).strip()):
        raise UsageError(f"{where}: '{value}' is not a whole number", hint=HINT)
    return int(value)


def _from_tf_config(text: str) -> dict[str, tuple[Any, str]]:
    """TF_CONFIG's cluster: the chief (if any) is process 0, then the workers in order."""
    try:
        spec = json.loads(text)
    except ValueError as error:
        raise UsageError(
            f"TF_CONFIG is not valid JSON ({error})",
            hint='e.g. {"cluster": {"worker": ["h0:12355", "h1:12355"]}, '
            '"task": {"type": "worker", "index": 0}}',
        ) from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    task = spec.get("task") if isinstance(spec, dict) else None
    roles = ("chief", "worker")
    if not isinstance(cluster, dict) or not any(isinstance(cluster.get(r), list) for r in roles):
        raise UsageError("TF_CONFIG has no cluster.worker list of host:port addresses", hint=HINT)
    hosts = [(role, i, a) for role in roles for i, a in enumerate(cluster.get(role) or [])]
    if not isinstance(task, dict) or task.get("type") not in roles:
        raise UsageError(
            'TF_CONFIG\'s task must be {"type": "worker" or "chief", "index": N}', hint=HINT
        )
    match = [
        n for n, (role, i, _) in enumerate(hosts) if role == task["type"] and i == task.get("index")
    ]
    if not match:
        raise UsageError(
            f"TF_CONFIG's task {task} is not in its cluster ({len(hosts)} processes)", hint=HINT
        )
    where = "TF_CONFIG"
    return {
        "coordinator": (hosts[0][2], where),
        "processes": (len(hosts), where),
        "process_id": (match[0], where),
    }


def _from_slurm(environ) -> dict[str, tuple[Any, str]]:
    """SLURM's task count and rank, and the first node at JAX's port for the job."""
    found = {}
    if "SLURM_NTASKS" in environ:
        found["processes"] = (environ["SLURM_NTASKS"], "SLURM_NTASKS")
    if "SLURM_PROCID" in environ:
        found["process_id"] = (environ["SLURM_PROCID"], "SLURM_PROCID")
    nodes = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST")
    job = environ.get("SLURM_JOB_ID", "")
    if nodes and job.isdigit():
        first = re.match(r"([^,\[]+)(?:\[(\d+))?", nodes)
        host = first.group(1) + (first.group(2) or "") if first else nodes
        port = int(job) % 2**12 + (65535 - 2**12 + 1)  # the port JAX picks for a SLURM job
        found["coordinator"] = (f"{host}:{port}", "SLURM_STEP_NODELIST")
    return found


# -- the rendezvous before JAX connects ---------------------------------------------------
def rendezvous(cluster: Cluster) -> None:
    """Meet on the coordinator's port: every process present, all with the same config.

    JAX's own start-up aborts the process (no exception) when a peer never comes, so this
    plain-socket handshake turns that into an error after ``cluster.timeout`` seconds.
    """
    if cluster.processes == 1:
        return
    host, _, port = cluster.coordinator.rpartition(":")
    host, port = host.strip("[]"), int(port)
    deadline = time.monotonic() + cluster.timeout
    hello = {
        "process": cluster.process_id,
        "processes": cluster.processes,
        "config": cluster.fingerprint,
    }
    if cluster.is_chief:
        _host(port, hello, deadline, cluster)
    else:
        _join(host, port, hello, deadline, cluster)


def _host(port: int, hello: dict, deadline: float, cluster: Cluster) -> None:
    try:
        server = socket.create_server(("", port), reuse_port=False)
    except OSError as error:
        raise RunError(
            f"process 0 cannot listen on port {port} ({error.strerror or error})",
            hint="choose a free port in JAX_COORDINATOR_ADDRESS",
        ) from None
    peers: dict[int, socket.socket] = {}
    problems = []
    with server:
        while len(peers) < cluster.processes - 1:
            server.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                connection, _ = server.accept()
            except TimeoutError:
                absent = sorted(set(range(1, cluster.processes)) - set(peers))
                for connection in peers.values():
                    _reply(connection, "error: process(es) missing")
                raise RunError(
                    f"process 0 (the coordinator, {cluster.coordinator}) waited "
                    f"{cluster.timeout} s for process(es) {', '.join(map(str, absent))} of "
                    f"{cluster.processes}; they never connected",
                    hint="start `trainer fit` on every machine with the same "
                    "JAX_COORDINATOR_ADDRESS and JAX_NUM_PROCESSES, and check that the port is "
                    "open between them (or raise training.distribution.timeout)",
                ) from None
            connection.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                theirs = json.loads(connection.makefile().readline())
            except (OSError, ValueError):
                connection.close()
                continue
            if theirs.get("config") != hello["config"]:
                problems.append(f"process {theirs.get('process')} runs a different config")
            if theirs.get("processes") != hello["processes"]:
                problems.append(
                    f"process {theirs.get('process')} counts "
                    f"{theirs.get('processes')} processes, not {cluster.processes}"
                )
            if theirs.get("process") in peers or theirs.get("process") == 0:
                problems.append(f"two processes claim index {theirs.get('process')}")
            peers[theirs.get("process", -1)] = connection
    verdict = "ok" if not problems else "error: " + "; ".join(problems)
    for connection in peers.values():
        _reply(connection, verdict)
    if problems:
        raise UsageError(
            "the processes disagree: " + "; ".join(problems),
            hint="run the same config and cluster settings on every machine",
        )


def _reply(connection: socket.socket, verdict: str) -> None:
    with contextlib.suppress(OSError), connection:
        connection.sendall(verdict.encode() + b"\n")
        connection.recv(1)  # the peer closes first, so this port has no TIME_WAIT left


def _join(host: str, port: int, hello: dict, deadline: float, cluster: Cluster) -> None:
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=deadline - time.monotonic()) as s:
                s.sendall(json.dumps(hello).encode() + b"\n")
                s.settimeout(max(deadline - time.monotonic(), 0.01))
                verdict = s.makefile().readline().strip()
            if verdict == "ok":
                return
            raise UsageError(
                f"process {cluster.process_id} was refused by the coordinator "
                f"{cluster.coordinator}: {verdict.removeprefix('error: ')}",
                hint="run the same config and cluster settings on every machine",
            )
        except OSError as error:
            last = error.strerror or str(error) or type(error).__name__
            time.sleep(0.5)
    raise RunError(
        f"process {cluster.process_id} of {cluster.processes} could not reach the coordinator "
        f"{cluster.coordinator} within {cluster.timeout} s (last error: {last})",
        hint="start process 0 too, check JAX_COORDINATOR_ADDRESS and that the port is open "
        "between the machines (or raise training.distribution.timeout)",
    )


# -- data ------------------------------------------------------------------------------------
class _Replicated:
    """Mixin for the pipeline's batches: equal replica shares, this process's slice only."""

    def __init__(
        self, x, y, batch_size: int, seed: int, *, replicas: int, process: int, processes: int
    ) -> None:
        super().__init__(x, y, batch_size, seed)
        self.dropped = (self.n % batch_size) % replicas
        self.process, self.processes = process, processes

    def order(self, epoch: int) -> np.ndarray:
        full = super().order(epoch)
        return full[: len(full) - self.dropped]  # the last batch's tail: a multiple of replicas

    def epoch(self, epoch: int, start_step: int = 0):
        if self.processes == 1:
            return super().epoch(epoch, start_step)
        return self._slices(epoch, start_step)

    def _slices(self, epoch: int, start_step: int):
        indices = self.order(epoch)
        for step in range(start_step, self.steps):
            batch = indices[step * self.batch_size : (step + 1) * self.batch_size]
            share = len(batch) // self.processes
            rows = batch[self.process * share : (self.process + 1) * share]
            yield self._x[rows], self._y[rows]


class ReplicatedBatches(_Replicated, pipeline.NumpyBatches):
    """NumPy batches (JAX), each process feeding its slice of every global batch."""


class ReplicatedTensorBatches(_Replicated, pipeline.TrainingBatches):
    """tf.data batches (one process, MirroredStrategy splits each batch over replicas)."""


# -- checkpoints shared by the chief --------------------------------------------------------
def broadcast_bytes(data: bytes | None, is_source: bool) -> bytes:
    """``data`` from the chief, on every process (over JAX's collectives)."""
    from jax.experimental import multihost_utils

    length = np.array(len(data) if is_source else 0, dtype=np.int64)
    length = int(multihost_utils.broadcast_one_to_all(length, is_source=is_source))
    buffer = np.frombuffer(data, dtype=np.uint8) if is_source else np.zeros(length, np.uint8)
    received = multihost_utils.broadcast_one_to_all(buffer, is_source=is_source)
    return np.asarray(received, dtype=np.uint8).tobytes()


class SharedCheckpoints:
    """The chief's ``checkpoints/``: only it writes; every process reads what it restores."""

    def __init__(self, inner, is_chief: bool) -> None:
        self.inner, self.is_chief = inner, is_chief
        self.root = inner.root

    def save(self, arrays, meta) -> Path:
        if self.is_chief:
            return self.inner.save(arrays, meta)
        return self.root / f"step-{meta['global_step']:09d}"

    def clean_temporaries(self) -> None:
        if self.is_chief:
            self.inner.clean_temporaries()

    def valid_names(self) -> list[str]:
        return self.inner.valid_names()

    def latest(self):
        from trainer.checkpoint import Restored

        answer = None
        if self.is_chief:
            try:
                found = self.inner.latest()
                answer = {
                    "found": None if found is None else [found.path.name, found.meta, found.skipped]
                }
            except RunError as error:
                answer = {"error": error.message, "hint": error.hint}
        answer = json.loads(broadcast_bytes(json.dumps(answer).encode(), self.is_chief))
        if "error" in answer:
            raise RunError(answer["error"], hint=answer["hint"])
        if answer["found"] is None:
            return None
        name, meta, skipped = answer["found"]
        return Restored(self.root / name, meta, skipped)

    def load_arrays(self, path: Path) -> dict[str, np.ndarray]:
        from trainer.checkpoint import STATE

        data = (path / STATE).read_bytes() if self.is_chief else None
        with np.load(io.BytesIO(broadcast_bytes(data, self.is_chief)), allow_pickle=False) as f:
            return {name: f[name] for name in f.files}
