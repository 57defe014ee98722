"""SIGKILL at random moments of a run, then ``trainer fit --resume``: bitwise the same result.

The moments are drawn with a seeded generator among the run's 30 optimizer steps (a kill
after a step, and one halfway through writing a checkpoint) and triggered by the fault
hooks of :mod:`trainer.training.faults`, at steps, never by timers. One more run is killed
while it saves ``model.keras``, after training, and its resume must remove the temporary
that kill left.

Each run is its own process, killed for real. Importing TensorFlow, Keras and scikit-learn
costs a run ~10 s of its ~15 on 2 cores, so the processes are forked from a server that
imported them once (as multiprocessing's forkserver does, and only while it runs a single
thread: forking is safe then; else plain ``python -m trainer`` processes), two at a time.
"""

import io
import json
import os
import queue
import random
import signal
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EPOCHS, STEPS, EVERY = 3, 10, 4  # 96 training images in batches of 10, the last of 6
CONFIG = {
    "name": "killed",
    "seed": 11,
    "deterministic": True,
    "dataset": {"type": "digits", "limit": 150, "validation_split": 0.2},
    "model": {"type": "fnn", "units": [8]},
    "regularization": {"dropout": 0.3},  # its generator state must be restored too
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "training": {"epochs": EPOCHS, "batch_size": 10},  # fused steps: XLA on a Dense model
    "checkpoint": {"every_steps": EVERY, "keep": 3},
}
TOTAL = EPOCHS * STEPS
CHECKPOINTS = sorted({*range(EVERY, TOTAL + 1, EVERY), *range(STEPS, TOTAL + 1, STEPS)})

QUARTER = (TOTAL - 1) / 4  # steps 1 to 29: the kills land before the run ends
_draw = random.Random(16)  # one kill in each quarter of the steps, one in a checkpoint write
MOMENTS = [
    *(
        f"sigkill@{_draw.randrange(1 + round(q * QUARTER), 1 + round((q + 1) * QUARTER))}"
        for q in range(4)
    ),
    f"kill-in-checkpoint@{_draw.choice(CHECKPOINTS[:-1])}",
]

# Run first: kills the process when saved.save_model renames its finished temporary into
# model.keras.
KILL_IN_MODEL_SAVE = """
import os
import signal

_replace = os.replace


def replace(source, target, *args, **kwargs):
    name = os.path.basename(os.fspath(source))
    if name.startswith(".model.tmp") and name.endswith(".keras"):
        os.kill(os.getpid(), signal.SIGKILL)
    return _replace(source, target, *args, **kwargs)


os.replace = replace
"""


# The fork server: it imports what every run imports, says how many threads it runs, then
# forks one `trainer` process per job line (JSON) of its stdin and answers its exit code.
SERVER = r"""
import json, os, signal, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import h5py, keras, matplotlib.backends.backend_agg, matplotlib.figure, scipy, tensorflow
import sklearn.datasets, sklearn.metrics, sklearn.model_selection
from trainer.cli import commands
from trainer.training import engine, loop
print("ready", len(os.listdir("/proc/self/task")), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(300)  # a run that hangs dies (SIGALRM), as a timeout would end it
            os.chdir(job["cwd"])
            os.environ.update(job["env"])
            for fd, name in ((1, "out"), (2, "err")):
                os.dup2(os.open(job[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
            if job["hook"]:
                exec(job["hook"], {})
            sys.argv = ["trainer", *job["args"]]
            try:
                commands.main()
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""


class Server:
    """One fork server (None from :meth:`start` where it could not run single-threaded)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process, self.jobs = process, 0

    @classmethod
    def start(cls, env: dict[str, str]) -> "Server | None":
        env = {**env, "OPENBLAS_NUM_THREADS": "1"}  # NumPy's BLAS would start a thread
        process = subprocess.Popen([sys.executable, "-c", SERVER], env=env, text=True,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
        ready = process.stdout.readline().split()
        if ready == ["ready", "1"]:
            return cls(process)
        process.kill()
        process.wait()
        return None

    def run(self, args, cwd: Path, env: dict[str, str], hook: str | None):
        self.jobs += 1
        out, err = (cwd / f".server-{os.getpid()}-{id(self)}-{self.jobs}.{n}" for n in "12")
        job = {"args": [str(a) for a in args], "cwd": str(cwd), "env": env, "hook": hook,
               "out": str(out), "err": str(err)}  # fmt: skip
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        code = int(self.process.stdout.readline())
        done = subprocess.CompletedProcess(args, code, out.read_text(), err.read_text())
        out.unlink()
        err.unlink()
        return done

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


SERVERS: queue.Queue = queue.Queue()  # the free servers (empty: plain processes)


def trainer(*args, cwd: Path, fault: str | None = None, hook: str | None = None):
    """``trainer ARGS`` in a process of its own; ``hook``: Python it runs first."""
    env = {"TRAINER_FAULT": fault or ""}
    try:
        server = SERVERS.get_nowait()
    except queue.Empty:
        server = None
    if server is not None:
        try:
            return server.run(args, cwd, env, hook)
        finally:
            SERVERS.put(server)
    env = {**os.environ, **env, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    prelude = f"exec({hook!r}, {{}}); " if hook else ""
    command = [sys.executable, "-c", prelude + "from trainer.cli.commands import main; main()",
               *map(str, args)]  # fmt: skip
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def listing(run: Path) -> list[str]:
    """What the run directory and its checkpoints hold (names only)."""
    return sorted(
        str(p.relative_to(run)) for folder in (run, run / "checkpoints") if folder.is_dir()
        for p in folder.iterdir()
    )  # fmt: skip


def killed_then_resumed(root: Path, run: str, fault: str | None = None,
                        hook: str | None = None) -> dict:  # fmt: skip
    killed = trainer("fit", "config.yaml", "--run-dir", run, cwd=root, fault=fault, hook=hook)
    after_kill = listing(root / run)
    latest = root / run / "checkpoints" / "latest"
    latest_after_kill = latest.read_text() if latest.is_file() else None
    resumed = trainer("fit", "--resume", run, cwd=root)
    return {"killed": killed, "after_kill": after_kill, "latest": latest_after_kill,
            "resumed": resumed}  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The uninterrupted reference and every killed-and-resumed run, two processes at a time."""
    root = tmp_path_factory.mktemp("kill-resume")
    (root / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TRAINER_FAULT", None)
    with ThreadPoolExecutor(max_workers=2) as pool:
        servers = [s for s in pool.map(lambda _: Server.start(env), range(2)) if s is not None]
    for server in servers:
        SERVERS.put(server)
    jobs = {"reference": lambda: trainer("fit", "config.yaml", "--run-dir", "reference",
                                         cwd=root)}  # fmt: skip
    for fault in MOMENTS:
        jobs[fault] = lambda fault=fault: killed_then_resumed(root, run_name(fault), fault)
    jobs["model-save"] = lambda: killed_then_resumed(root, "run-model-save",
                                                     hook=KILL_IN_MODEL_SAVE)  # fmt: skip
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {name: pool.submit(job) for name, job in jobs.items()}
            results = {name: future.result() for name, future in futures.items()}
    finally:
        for server in servers:
            server.close()
        while not SERVERS.empty():
            SERVERS.get_nowait()
    assert results["reference"].returncode == 0, results["reference"].stderr
    return root, results


def run_name(fault: str) -> str:
    return "run-" + fault.replace("@", "-")


def final_state(run: Path) -> dict[str, np.ndarray]:
    latest = (run / "checkpoints" / "latest").read_text().strip()
    with np.load(run / "checkpoints" / latest / "state.npz") as archive:
        return {k: archive[k] for k in archive.files}


def model_weights(run: Path) -> dict[str, np.ndarray]:
    """Every array of ``model.keras``'s weights file, read without Keras."""
    import h5py

    with zipfile.ZipFile(run / "model.keras") as archive:
        data = io.BytesIO(archive.read("model.weights.h5"))
    found = {}
    with h5py.File(data, "r") as weights:
        weights.visititems(
            lambda name, item: found.__setitem__(name, item[()])
            if isinstance(item, h5py.Dataset) else None
        )  # fmt: skip
    return found


def assert_same_result(root: Path, run: str) -> None:
    reference, resumed = root / "reference", root / run
    for read in (final_state, model_weights):  # weights, optimizer, generators, accumulators
        expected, got = read(reference), read(resumed)
        assert expected.keys() == got.keys()
        for key in expected:
            np.testing.assert_array_equal(expected[key], got[key], err_msg=f"{run}: {key}")
    assert (reference / "history.csv").read_text() == (resumed / "history.csv").read_text()
    assert json.loads((resumed / "metrics.json").read_text()) == json.loads(
        (reference / "metrics.json").read_text()
    )


def assert_nothing_left_over(run: Path) -> None:
    names = listing(run)
    assert not [n for n in names if ".tmp" in n], names


def test_the_moments_are_inside_training():
    assert len(MOMENTS) == 5 and any(m.startswith("kill-in-checkpoint") for m in MOMENTS)
    assert all(1 <= int(m.split("@")[1]) < TOTAL for m in MOMENTS)


@pytest.mark.parametrize("fault", MOMENTS)
def test_a_run_killed_at_a_random_moment_resumes_to_the_same_weights(runs, fault):
    root, results = runs
    result, step = results[fault], int(fault.split("@")[1])
    killed, resumed = result["killed"], result["resumed"]
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert "model.keras" not in result["after_kill"]  # killed before the run finished
    # Calls into the graph end at checkpoint steps, so the kill lost fewer than EVERY steps:
    # the newest checkpoint is the last one before the step the kill came at (or after).
    written = int(result["latest"].removeprefix("step-")) if result["latest"] else 0
    if fault.startswith("kill-in-checkpoint"):
        assert written == max([0, *(c for c in CHECKPOINTS if c < step)])
        assert f"checkpoints/.tmp-step-{step:09d}-" in " ".join(result["after_kill"])
    else:
        assert step - EVERY <= written < step, (fault, result["latest"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    if written:
        assert f"resuming from step-{written:09d}" in resumed.stderr
    assert_same_result(root, run_name(fault))
    assert_nothing_left_over(root / run_name(fault))


def test_a_kill_during_the_final_save_leaves_no_temporary_behind(runs):
    root, results = runs
    result = results["model-save"]
    assert result["killed"].returncode == -signal.SIGKILL, result["killed"].stderr[-3000:]
    left = [n for n in result["after_kill"] if n.startswith(".model.tmp")]
    assert len(left) == 1 and left[0].endswith(".keras") and "model.keras" not in result[
        "after_kill"
    ]  # fmt: skip
    assert result["latest"] == f"step-{TOTAL:09d}"  # training had finished
    resumed = result["resumed"]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    said = " ".join(resumed.stderr.split())
    assert f"removed 1 temporary file(s) that an interrupted save left behind: {left[0]}" in said
    assert_nothing_left_over(root / "run-model-save")
    assert_same_result(root, "run-model-save")


def test_remove_leftovers_takes_only_temporaries(tmp_path):
    from trainer.training.checkpoint import remove_leftovers

    run = tmp_path / "run"
    temporaries = [".model.tmp4242.keras", ".metrics.json.tmp17", ".history.csv.tmp",
                   "plots/.roc.tmp99.png", "checkpoints/.latest.tmp5",
                   "checkpoints/.tmp-step-000000008-31/state.npz"]  # fmt: skip
    kept = [".lock", "model.keras", "config.yaml", ".hidden", "notes.tmp", "plots/roc.png",
            "checkpoints/latest", "checkpoints/step-000000004/state.npz",
            "checkpoints/step-000000004/.x.tmp1", "tensorboard/.events.tmp1"]  # fmt: skip
    for name in temporaries + kept:
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("x")
    removed = remove_leftovers(run)
    assert sorted(removed) == sorted(
        [*temporaries[:-1], "checkpoints/.tmp-step-000000008-31"]
    )  # fmt: skip
    assert all((run / name).exists() for name in kept)
    assert not any((run / name).exists() for name in temporaries)
    assert remove_leftovers(run) == []
