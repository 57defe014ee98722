"""training.distribution: mirrored and multi_host runs end where one device ends.

Real processes on the whole digits set: 1149 training samples, a global batch of 32 (36
steps an epoch, the last of 29 samples, which two replicas cannot split: it is padded), 2
epochs, ``steps_per_execution`` auto. The runs on several devices or processes are compared
with one device on the same global batch, weight by weight, after every epoch (issue #15:
a 4-step test with no short batch missed a 1e-3 difference that the last batch made).
multi_host workers and the rendezvous run inside a loopback-only network namespace
(``unshare -n``), because JAX's coordinator and gloo listen on every interface; without
namespaces those tests are skipped.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from trainer.config.loading import load_config
from trainer.core.errors import ConfigError, UsageError
from trainer.training.distribution import Cluster, resolve
from trainer.training.replicas import ReplicatedBatches

ROOT = Path(__file__).resolve().parent.parent
PORT = 12355  # inside a private network namespace: no other test can hold it
CONFIG = {
    "name": "dist",
    "seed": 3,
    "dataset": {"type": "digits", "validation_split": 0.2, "test_split": 0.2},
    "model": {"type": "fnn", "units": [16]},
    "optimizer": {"type": "sgd", "learning_rate": 0.05},
    "training": {"epochs": 2, "batch_size": 32, "device": "cpu"},
    "checkpoint": {"keep": 10},
}
STEPS = 36  # 1149 training samples in batches of 32
MULTI_HOST = "training.distribution={type: multi_host, timeout: 20}"


def environment(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **extra}
    for name in ("TRAINER_FAULT", "TF_CONFIG", "SLURM_NTASKS", "SLURM_PROCID", "XLA_FLAGS"):
        if name not in extra:
            env.pop(name, None)
    return env


def epoch_weights(run: Path) -> dict[str, dict[str, np.ndarray]]:
    """The model's weights in each epoch-end checkpoint of ``run``, by checkpoint name."""
    found = {}
    for epoch in range(1, CONFIG["training"]["epochs"] + 1):
        name = f"step-{epoch * STEPS:09d}"
        with np.load(run / "checkpoints" / name / "state.npz") as archive:
            found[name] = {k: archive[k] for k in archive.files if k.startswith("model/")}
    return found


def assert_same_weights(run: Path, reference: Path) -> None:
    """Every epoch's weights agree with one device's to float32 summation order: 1e-6 is
    about 8 float32 ulps of the largest weights, the size an all-reduce's other order of
    additions leaves after 72 steps (measured: at most 6e-8)."""
    ours, theirs = epoch_weights(run), epoch_weights(reference)
    for name in theirs:
        for key in theirs[name]:
            np.testing.assert_allclose(ours[name][key], theirs[name][key], rtol=0, atol=1e-6,
                                       err_msg=f"{name} {key}")  # fmt: skip


def distribution_of(run: Path) -> dict:
    return json.loads((run / "environment.json").read_text())["distribution"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """One directory for the session, shared by pytest-xdist's workers (the reference runs
    are made once, under a lock)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "distribution"
    root.mkdir(exist_ok=True)
    (root / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    return root


def fresh(workspace: Path, name: str) -> Path:
    where = workspace / name
    shutil.rmtree(where, ignore_errors=True)
    (where / "tmp").mkdir(parents=True)  # TMPDIR of the workers: process 1's scratch copy
    shutil.copy(workspace / "config.yaml", where)
    return where


# -- one process, several devices ------------------------------------------------------------
TWO_RUNS = """
import sys
{setup}
from trainer.cli.commands import app
# mirrored first: the one-device run after it also checks that the engine was let go
for run, extra in (("two", ["--set", {mirrored!r}]), ("one", [])):
    try:
        app(["fit", "config.yaml", "--run-dir", run, *extra])
    except SystemExit as exit:
        if exit.code:
            raise
"""
TWO_LOGICAL_CPUS = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""


def two_runs(workspace: Path, prefix: str, setup: str, mirrored: str, **env: str) -> None:
    """A mirrored run ('two') and a one-device run ('one') in one process, in ``prefix/``."""
    with open(workspace / f".{prefix}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another xdist worker may be making them
        if (workspace / prefix / "one" / "metrics.json").is_file():
            return
        where = fresh(workspace, prefix)
        script = TWO_RUNS.format(setup=setup, mirrored=mirrored)
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=where,
            env=environment(**env),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def jax_runs(workspace: Path) -> Path:
    """JAX on two host devices: the one-device reference ('one') and DataParallel ('two')."""
    two_runs(
        workspace,
        "jax",
        "",
        "training.distribution=mirrored",
        KERAS_BACKEND="jax",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    return workspace / "jax"


def test_mirrored_tensorflow_two_logical_cpus_matches_one_device(workspace):
    mirrored = "training.distribution={type: mirrored, devices: [cpu:0, cpu:1]}"
    two_runs(workspace, "tf", TWO_LOGICAL_CPUS, mirrored, KERAS_BACKEND="tensorflow")
    runs = workspace / "tf"
    assert distribution_of(runs / "two")["engine"] == "tf.distribute.MirroredStrategy"
    assert distribution_of(runs / "two")["replicas"] == 2
    assert_same_weights(runs / "two", runs / "one")


def test_mirrored_jax_two_devices_matches_one_device(workspace):
    runs = jax_runs(workspace)
    assert distribution_of(runs / "two")["engine"] == "keras.distribution.DataParallel"
    assert distribution_of(runs / "two")["replicas"] == 2
    assert_same_weights(runs / "two", runs / "one")
    rows = (runs / "two" / "history.csv").read_text().splitlines()
    assert len(rows) == 1 + CONFIG["training"]["epochs"]


# -- several processes, inside a loopback-only network namespace ---------------------------
def find_namespace() -> tuple[list[str] | None, str]:
    """The command that enters a new network namespace (as root, else in a user namespace),
    or None and why neither works here."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return None, "needs `unshare` (util-linux) and `ip` (Debian's iproute2)"
    problems = []
    for command in (["unshare", "-n"], ["unshare", "-rn"]):
        done = subprocess.run(
            [*command, "sh", "-c", "ip link set lo up"], capture_output=True, text=True
        )
        if done.returncode == 0:
            return command, ""
        problems.append(f"`{' '.join(command)}`: {done.stderr.strip()}")
    return None, "network namespaces are not permitted here: " + "; ".join(problems)


UNSHARE, NO_NAMESPACE = find_namespace()
needs_namespace = pytest.mark.skipif(UNSHARE is None, reason=NO_NAMESPACE)


def in_namespace(where: Path, commands: list[tuple[int, list[str], dict]]) -> list:
    """Start ``(process id, trainer args, env)`` workers together in one private namespace.

    Returns each worker's (exit code, output). The namespace holds only a loopback
    interface, so nothing listens outside it.
    """
    lines = ["ip link set lo up"]
    for i, (process, args, extra) in enumerate(commands):
        env = " ".join(f"{k}='{v}'" for k, v in {"JAX_PROCESS_ID": process, **extra}.items())
        trainer = " ".join(f"'{a}'" for a in [sys.executable, "-m", "trainer", *args])
        lines.append(f"({env} {trainer} > out{i}.log 2>&1; echo $? > rc{i}) &")
    lines.append("wait")
    common = environment(
        KERAS_BACKEND="jax",
        JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{PORT}",
        JAX_NUM_PROCESSES=str(len(commands)),
        TMPDIR=str(where / "tmp"),
    )
    subprocess.run(
        [*UNSHARE, "sh", "-c", "\n".join(lines)],
        cwd=where,
        env=common,
        timeout=300,
        check=True,
    )
    return [
        (int((where / f"rc{i}").read_text()), (where / f"out{i}.log").read_text())
        for i in range(len(commands))
    ]


def fit_args(run: str, *more: str) -> list[str]:
    return ["fit", "config.yaml", "--run-dir", run, "--set", MULTI_HOST, *more]


@needs_namespace
def test_multi_host_two_processes_match_one_process(workspace):
    where = fresh(workspace, "hosts")
    results = in_namespace(where, [(0, fit_args("run"), {}), (1, fit_args("run"), {})])
    for code, output in results:
        assert code == 0, output[-3000:]
    run = where / "run"
    described = distribution_of(run)
    fed = described.pop("fed")
    assert described | {"coordinator": None} == {
        "mode": "multi_host",
        "engine": "keras.distribution.DataParallel + jax.distributed",
        "replicas": 2,
        "processes": 2,
        "process_id": 0,
        "coordinator": None,
        "cluster_from": "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID",
    }
    assert_same_weights(run, jax_runs(workspace) / "one")
    # what each process fed, per epoch: half of every batch, the one padding row in process 1
    assert [[(e["epoch"], e["steps"], e["samples"], e["padding"]) for e in p["epochs"]]
            for p in fed] == [[(1, 36, 575, 0), (2, 36, 575, 0)],
                              [(1, 36, 574, 1), (2, 36, 574, 1)]]  # fmt: skip
    assert fed[0]["epochs"][0]["sha256"] != fed[1]["epochs"][0]["sha256"]
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 1 + CONFIG["training"]["epochs"]  # one writer, no duplicated rows
    scratch = [p for p in (where / "tmp").iterdir() if "process1" in p.name]
    assert scratch and not (scratch[0] / "checkpoints").exists()  # process 1 wrote elsewhere
    assert str(scratch[0]) in results[1][1]


@needs_namespace
def test_multi_host_killed_worker_then_restart_resumes(workspace):
    where = fresh(workspace, "killed")
    cadence = ("--set", "training.steps_per_execution=12", "--set", "checkpoint.every_steps=12")
    killed = in_namespace(
        where,
        [
            (0, fit_args("run", *cadence), {}),
            (1, fit_args("run", *cadence), {"TRAINER_FAULT": "sigkill@48"}),
        ],
    )
    assert killed[1][0] == 137, killed[1][1][-3000:]  # SIGKILL after step 48 (epoch 2, 12)
    assert killed[0][0] != 0  # the chief's collective fails: an error, not a hang
    assert "step-000000048" in (where / "run" / "checkpoints" / "latest").read_text()
    restarted = in_namespace(
        where, [(0, fit_args("run", *cadence), {}), (1, fit_args("run", *cadence), {})]
    )
    for code, output in restarted:
        assert code == 0, output[-3000:]
        assert "resuming from step-000000048" in output
    assert_same_weights(where / "run", jax_runs(workspace) / "one")


STREAMED = {
    "name": "streamed",
    "seed": 5,
    "dataset": {
        "type": "image_folder",
        "path": "images",
        "image_size": [8, 8],
        "in_memory": False,
        "validation_split": 0.2,
        "test_split": 0.2,
    },  # fmt: skip
    "model": {"type": "cnn", "filters": [4], "dense_units": [8]},
    "optimizer": {"type": "sgd", "learning_rate": 0.05},
    "training": {"epochs": 2, "batch_size": 8, "device": "cpu"},
    "checkpoint": {"keep": 10},
}


@needs_namespace
def test_multi_host_streamed_images_each_process_reads_only_its_share(workspace):
    """Two processes stream an image folder: each decodes its half of every batch (never the
    whole folder), and they end where one process streaming all of it ends."""
    from PIL import Image

    where = fresh(workspace, "streamed")
    (where / "config.yaml").write_text(yaml.safe_dump(STREAMED))
    rng = np.random.default_rng(0)
    for c in range(3):  # 60 images: 38 train (5 steps of 8, the last of 6), 10 val, 12 test
        (where / "images" / f"class{c}").mkdir(parents=True)
        for i in range(20):
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            pixels[..., c] = 255
            Image.fromarray(pixels).save(where / "images" / f"class{c}" / f"{i}.png")
    one = subprocess.run([sys.executable, "-m", "trainer", "fit", "config.yaml", "--run-dir",
                          "one"], cwd=where, env=environment(KERAS_BACKEND="jax"),
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    results = in_namespace(where, [(0, fit_args("run"), {}), (1, fit_args("run"), {})])
    for code, output in results:
        assert code == 0, output[-3000:]
        assert "data: streamed from 60 files" in " ".join(output.split())
    for epoch in (1, 2):
        name = f"step-{epoch * 5:09d}"
        with np.load(where / "run" / "checkpoints" / name / "state.npz") as ours, np.load(
            where / "one" / "checkpoints" / name / "state.npz"
        ) as theirs:  # fmt: skip
            for key in (k for k in theirs.files if k.startswith("model/")):
                np.testing.assert_allclose(ours[key], theirs[key], rtol=0, atol=1e-6,
                                           err_msg=f"{name} {key}")  # fmt: skip
    fed = distribution_of(where / "run")["fed"]
    build = 2  # the one-batch evaluation that creates the metrics reads two images
    for process in fed:
        fed_rows = sum(e["samples"] + e["padding"] for e in process["epochs"])
        assert fed_rows == 2 * 19  # half of the 38 training images, each epoch
        assert process["images_decoded"] == fed_rows + build
    assert fed[0]["epochs"][0]["sha256"] != fed[1]["epochs"][0]["sha256"]


@needs_namespace
@pytest.mark.parametrize(
    ("workers", "processes", "expected"),
    [
        ([1], 2, "could not reach the coordinator 127.0.0.1:12355 within 2 s"),
        ([0], 2, "waited 2 s for process(es) 1 of 2; they never connected"),
        ([0, 1], 3, "2 s for process(es) 2"),  # 1 joined, 2 never came: both are told
    ],
)
def test_multi_host_missing_peer_times_out(workspace, workers, processes, expected):
    args = [
        "fit",
        "config.yaml",
        "--run-dir",
        "never",
        "--set",
        "training.distribution={type: multi_host, timeout: 2}",
    ]
    extra = {"JAX_NUM_PROCESSES": str(processes)}
    where = fresh(workspace, f"alone{'-'.join(map(str, workers))}")
    for code, output in in_namespace(where, [(w, args, extra) for w in workers]):
        assert code == 1, output[-3000:]  # a failure while running, not a hang
        assert expected in " ".join(output.split())
    assert not (where / "never").exists()


@needs_namespace
def test_multi_host_processes_with_different_configs_are_refused(workspace):
    base = ["fit", "config.yaml", "--run-dir", "differ", "--set", MULTI_HOST]
    where = fresh(workspace, "differ")
    results = in_namespace(where, [(0, base, {}), (1, [*base, "--set", "seed=4"], {})])
    for code, output in results:
        assert code == 2, output[-3000:]
        assert "process 1 runs a different config" in output
    assert not (where / "differ").exists()


# -- configuration and cluster description (no TensorFlow) ---------------------------------
@pytest.fixture
def config(tmp_path):
    def _load(*overrides: str):
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(CONFIG))
        return load_config(path, list(overrides))

    return _load


JAX_CLUSTER = {
    "JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234",
    "JAX_NUM_PROCESSES": "2",
    "JAX_PROCESS_ID": "1",
}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["training.backend=tensorflow", "training.distribution=multi_host"],
            "runs on the JAX backend only",
        ),
        (["training.distribution={type: none, devices: [gpu:0]}"], "applies to type 'mirrored'"),
        (["training.lr_scaling=linear"], "needs a distribution with several replicas"),
        (["training.distribution={type: mirrored, devices: [gpu0]}"], "gpu0"),
        (["training.distribution=ring"], "ring"),
    ],
)
def test_config_rules(config, overrides, expected):
    with pytest.raises(ConfigError, match="distribution|lr_scaling") as error:
        config(*overrides)
    assert expected in str(error.value)


def test_generative_models_are_refused(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "dataset": {"type": "digits"},
                "model": {"type": "vae"},
                "training": {"distribution": "mirrored"},
            }
        )
    )
    with pytest.raises(ConfigError, match="own train step"):
        load_config(path)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID not set"),
        ({**JAX_CLUSTER, "JAX_PROCESS_ID": ""}, "JAX_PROCESS_ID not set"),
        ({**JAX_CLUSTER, "JAX_COORDINATOR_ADDRESS": "10.0.0.1"}, "is not host:port"),
        ({**JAX_CLUSTER, "JAX_PROCESS_ID": "2"}, "process index 2 (JAX_PROCESS_ID) is not in 0..1"),
        ({**JAX_CLUSTER, "JAX_NUM_PROCESSES": "two"}, "JAX_NUM_PROCESSES: 'two' is not a whole"),
        ({"TF_CONFIG": "{'cluster': 1}"}, "TF_CONFIG is not valid JSON"),
        ({"TF_CONFIG": '{"cluster": {}}'}, "TF_CONFIG has no cluster.worker list"),
        (
            {"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps"}}'},
            "TF_CONFIG's task must be",
        ),
        (
            {
                "TF_CONFIG": json.dumps(
                    {"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}
                )
            },
            "is not in its cluster",
        ),
    ],
)
def test_malformed_cluster_descriptions(config, environ, expected):
    cfg = config("training.backend=jax", "training.distribution=multi_host")
    with pytest.raises(UsageError) as error:
        resolve(cfg, environ)
    assert expected in str(error.value)
    assert error.value.hint


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (JAX_CLUSTER, ("10.0.0.1:1234", 2, 1)),
        (
            {
                "TF_CONFIG": json.dumps(
                    {
                        "cluster": {"chief": ["c:5000"], "worker": ["w0:5000"]},
                        "task": {"type": "worker", "index": 0},
                    }
                )
            },
            ("c:5000", 2, 1),
        ),
        (
            {
                "SLURM_NTASKS": "4",
                "SLURM_PROCID": "3",
                "SLURM_JOB_ID": "4097",
                "SLURM_STEP_NODELIST": "node[07-10],gpu2",
            },
            ("node07:61441", 4, 3),
        ),
        (
            {
                "SLURM_NTASKS": "4",
                "SLURM_PROCID": "3",
                "SLURM_JOB_ID": "1",
                "SLURM_STEP_NODELIST": "node7",
                "JAX_COORDINATOR_ADDRESS": "head:9",
            },
            ("head:9", 4, 3),
        ),
    ],
)
def test_cluster_descriptions(config, environ, expected):
    cfg = config("training.backend=jax", "training.distribution=multi_host")
    cluster = resolve(cfg, environ)
    assert (cluster.coordinator, cluster.processes, cluster.process_id) == expected
    assert cluster.is_chief is (expected[2] == 0)


def test_multi_host_on_tensorflow_by_environment_is_refused(config):
    cfg = config("training.distribution=multi_host")  # backend auto
    with pytest.raises(UsageError, match="set training.backend: jax"):
        resolve(cfg, {"KERAS_BACKEND": "tensorflow", **JAX_CLUSTER})


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("training.jit_compile=true", "XLA does not run"),
        ("training.steps_per_execution=4", "several steps per call"),
    ],
)
def test_mirrored_tensorflow_limits(config, override, expected):
    cfg = config("training.distribution=mirrored", override)
    with pytest.raises(UsageError, match=expected):
        resolve(cfg, {"KERAS_BACKEND": "tensorflow"})


def test_bad_cluster_fails_before_tensorflow_starts(workspace):
    where = fresh(workspace, "bad")
    script = (
        "import sys\nfrom trainer.cli.commands import app\n"
        "try:\n    app(['fit', 'config.yaml', '--run-dir', 'nothing', '--set', "
        f"{MULTI_HOST!r}])\n"
        "except SystemExit as exit:\n    print('exit', exit.code, 'tensorflow' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=where,
        capture_output=True,
        text=True,
        env=environment(KERAS_BACKEND="jax"),
        timeout=120,
    )
    assert "exit 2 False" in done.stdout, done.stdout + done.stderr
    assert "JAX_COORDINATOR_ADDRESS" in done.stdout + done.stderr
    assert not (where / "nothing").exists()


# -- the data each replica and process sees ------------------------------------------------
def shares(n: int, batch_size: int, replicas: int, processes: int, epoch: int = 0,
           class_weight=None):  # fmt: skip
    """Per process, the (row indices, sample weights) it feeds in each step of ``epoch``."""
    x = np.arange(n).reshape(n, 1)
    y = np.arange(n) % 3
    fed = []
    for process in range(processes):
        batches = ReplicatedBatches(x, y, batch_size, 7, replicas=replicas, process=process,
                                    processes=processes, class_weight=class_weight)  # fmt: skip
        fed.append([(rows[:, 0], w) for rows, _, w in batches.epoch(epoch)])
    return batches, fed


@pytest.mark.parametrize("epoch", [0, 1])
def test_each_process_feeds_a_disjoint_slice_of_the_same_global_batches(epoch):
    from trainer.datasets.pipeline import permutation

    batches, (first, second) = shares(n=70, batch_size=16, replicas=4, processes=2, epoch=epoch)
    order = permutation(7, epoch, 70)
    assert batches.steps == 5 and batches.padding == 2  # 70 = 4 * 16 + 6; 6 -> 8 for 4 replicas
    for step, ((a, wa), (b, wb)) in enumerate(zip(first, second, strict=True)):
        expected = order[step * 16 : (step + 1) * 16]
        fed, weights = np.concatenate([a, b]), np.concatenate([wa, wb])
        assert len(a) == len(b) and len(fed) % 4 == 0
        np.testing.assert_array_equal(fed[: len(expected)], expected)
        np.testing.assert_array_equal(fed[len(expected) :], expected[: len(fed) - len(expected)])
        # the mean loss over the padded batch is the mean over its real samples
        real = np.full(len(expected), len(fed) / len(expected), np.float32)
        np.testing.assert_allclose(weights, np.r_[real, np.zeros(len(fed) - len(expected))])
    seen = np.concatenate([rows for rows, _ in first + second])
    assert sorted(set(seen)) == list(range(70)) and len(seen) == 72  # all once, 2 padding rows
    assert batches.fed[-1] | {"sha256": None} == {
        "epoch": epoch + 1,
        "steps": 5,
        "samples": 34,
        "padding": 2,
        "sha256": None,
    }  # process 1: 8 of each 16, and 2 of the last 4 real rows plus both padding rows


def test_padded_batches_keep_the_class_weights_and_the_mean_loss():
    weights = {0: 0.5, 1: 2.0, 2: 1.0}
    _, (only,) = shares(n=65, batch_size=32, replicas=2, processes=1, class_weight=weights)
    (_, w_full), _, (rows, w_last) = only
    assert len(rows) == 2 and w_last[1] == 0  # 1 sample padded to 2
    assert w_last[0] == pytest.approx(2 * weights[int(rows[0]) % 3])
    assert set(np.round(w_full, 6)) <= {0.5, 2.0, 1.0}


def test_keras_mean_over_padded_rows_is_the_mean_over_the_real_ones():
    """The arithmetic the padding relies on: Keras's mean over P weighted rows is the mean
    over the N real ones when they weigh P / N and the copies 0."""
    import keras

    y_true, y_pred = np.array([0, 1, 2]), np.array([[0.7, 0.2, 0.1], [0.3, 0.4, 0.3],
                                                   [0.2, 0.2, 0.6]], np.float32)  # fmt: skip
    loss = keras.losses.SparseCategoricalCrossentropy()
    plain = float(loss(y_true, y_pred))
    padded = float(loss(np.r_[y_true, 0], np.r_[y_pred, y_pred[:1]],
                        sample_weight=np.array([4 / 3] * 3 + [0], np.float32)))  # fmt: skip
    assert padded == pytest.approx(plain, rel=1e-6)


def test_single_process_mirrored_feeds_whole_global_batches():
    batches, (only,) = shares(n=64, batch_size=32, replicas=2, processes=1)
    assert [len(rows) for rows, _ in only] == [32, 32] and batches.padding == 0
    assert all((w == 1).all() for _, w in only)


def test_batches_that_do_not_split_are_refused():
    cluster = Cluster("mirrored", "jax", replicas=4, local_replicas=4)
    expected = r"training.batch_size \(30\) does not split evenly over 4 replicas"
    with pytest.raises(UsageError, match=expected):
        cluster.training_batches(np.zeros((64, 1)), np.zeros(64), 30, 0)


def test_learning_rate_scaling(config):
    cfg = config("training.distribution=mirrored", "training.lr_scaling=linear")
    cluster = Cluster("mirrored", "jax", replicas=4, local_replicas=4)
    scaled = cluster.scale_learning_rate(cfg.optimizer, cfg.training.lr_scaling)
    assert scaled.learning_rate == pytest.approx(4 * cfg.optimizer.learning_rate)
    assert cluster.scale_learning_rate(cfg.optimizer, "none") is cfg.optimizer


# -- hyperparameter search across processes --------------------------------------------------
TUNE_CONFIG = {
    "name": "tiny",
    "seed": 0,
    "dataset": {"type": "synthetic_classification", "samples": 160, "features": 4,
                "informative": 3, "classes": 3, "validation_split": 0.25},
    "model": {"type": "fnn", "units": [8]},
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "training": {"epochs": 1, "batch_size": 40, "jit_compile": False},
    "metrics": ["accuracy"],
}  # fmt: skip


def tune_process(tmp_path: Path, name: str, storage: str, trials: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "trainer", "tune", "config.yaml", "--space", "space.yaml",
               "--run-dir", name, "--trials", str(trials), "--storage", storage,
               "--sampler", "random", "--no-prune", "--json"]  # fmt: skip
    return subprocess.Popen(command, cwd=tmp_path, env=environment(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def test_two_tune_processes_share_one_study_and_run_no_trial_twice(tmp_path):
    import optuna

    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TUNE_CONFIG))
    (tmp_path / "space.yaml").write_text("optimizer.learning_rate: {low: 0.001, high: 0.1}\n")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    trials = 4
    # Started together on a new database: both create Optuna's tables (the loser of that race
    # retries) and each seeds its sampler with its own seed, so they propose different values.
    workers = [tune_process(tmp_path, name, storage, trials) for name in ("host-a", "host-b")]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-3000:]
    ran = {name: {p.name for p in (tmp_path / name / "trials").glob("*")
                  if (p / "metrics.json").is_file()}
           for name in ("host-a", "host-b")}  # fmt: skip
    assert not ran["host-a"] & ran["host-b"]  # no trial ran in both processes
    study = optuna.load_study(study_name="trainer-tune", storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= trials
    assert {f"{t.number:03d}" for t in complete} == ran["host-a"] | ran["host-b"]
    values = [t.params["optimizer.learning_rate"] for t in complete]
    assert len(set(values)) == len(values)  # and no set of values twice
    seeds = {name: {t.user_attrs["sampler_seed"] for t in complete
                    if f"{t.number:03d}" in ran[name]}
             for name in ("host-a", "host-b")}  # fmt: skip
    assert all(len(s) <= 1 for s in seeds.values())  # one seed per process, recorded ...
    assert not seeds["host-a"] & seeds["host-b"]  # ... and not the same one
    for out, _ in outputs:  # each process reports the one shared study, as it stood at its end
        assert trials <= json.loads(out)["trials"]["complete"] <= len(complete)
