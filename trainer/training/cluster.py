"""The cluster a ``multi_host`` process belongs to, and the rendezvous before JAX connects.

The description comes from what launchers already set (read with no TensorFlow or JAX):
``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``; else ``TF_CONFIG``
(Kubernetes' TFJob); else SLURM's task count, rank and node list. The JAX variables win.
The rendezvous is a plain-socket handshake on the coordinator's port: every process
present, all with the same config, or an error after the timeout, because
``jax.distributed.initialize`` aborts the whole process (no exception) when a peer never comes.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from typing import TYPE_CHECKING, Any

from trainer.core.errors import RunError, UsageError

if TYPE_CHECKING:
    from trainer.training.distribution import Cluster

HINT = (
    "set JAX_COORDINATOR_ADDRESS=host:port (process 0's machine), JAX_NUM_PROCESSES and "
    "JAX_PROCESS_ID on every machine (or run under SLURM, or set TF_CONFIG); see the README, "
    "'More than one machine'"
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
                    _reply(connection, f"missing: {', '.join(map(str, absent))}")
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
    last, reached = None, False
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=deadline - time.monotonic()) as s:
                reached = True
                s.sendall(json.dumps(hello).encode() + b"\n")
                s.settimeout(cluster.timeout + 5)  # the coordinator answers by its own deadline
                verdict = s.makefile().readline().strip()
            if verdict == "ok":
                return
            if not verdict:
                raise ConnectionResetError("the coordinator closed the connection")
            if verdict.startswith("missing: "):
                raise RunError(
                    f"process {cluster.process_id}: the coordinator {cluster.coordinator} waited "
                    f"{cluster.timeout} s for process(es) {verdict.removeprefix('missing: ')}; "
                    "they never connected",
                    hint="start `trainer fit` on every machine with the same JAX_NUM_PROCESSES "
                    "(or raise training.distribution.timeout)",
                )
            raise UsageError(
                f"process {cluster.process_id} was refused by the coordinator "
                f"{cluster.coordinator}: {verdict.removeprefix('error: ')}",
                hint="run the same config and cluster settings on every machine",
            )
        except OSError as error:
            last = error.strerror or str(error) or type(error).__name__
            time.sleep(0.5)
    if reached:
        raise RunError(
            f"process {cluster.process_id} of {cluster.processes} reached the coordinator "
            f"{cluster.coordinator}, but not every process arrived within {cluster.timeout} s",
            hint="start `trainer fit` on every machine with the same JAX_NUM_PROCESSES "
            "(or raise training.distribution.timeout)",
        )
    raise RunError(
        f"process {cluster.process_id} of {cluster.processes} could not reach the coordinator "
        f"{cluster.coordinator} within {cluster.timeout} s (last error: {last})",
        hint="start process 0 too, check JAX_COORDINATOR_ADDRESS and that the port is open "
        "between the machines (or raise training.distribution.timeout)",
    )
