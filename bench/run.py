"""Benchmark `trainer fit` against the hand-written Keras script, side by side.

Each case runs both, alternately, in separate processes, ``--reps`` times, and reports the
medians and the trainer/script ratios of the steady-state epoch time (median of epochs after
the first), total wall time, peak memory (the child's maximum RSS, from wait4) and test
accuracy, plus each side's fraction of the CPU's peak FLOP/s. Results go to stdout and,
with --write, to bench/RESULTS.md. Not part of the test suite: timings are noisy and
belong here, compared as ratios within one run.

    python bench/run.py                      # every case, 3 repetitions
    python bench/run.py --cases mlp --reps 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402 - after the path is set
from common import KEPT  # noqa: E402

PEAK_GFLOPS = 150.0  # 2 cores x AVX2 FMA (2 x 8 fp32 x 2) x ~2.3 GHz, as measured in issue #5

# Training FLOPs per sample (forward + backward ~ 3x forward, 2 FLOPs per multiply-add).
MLP_MACS = 784 * 128 + 128 * 64 + 64 * 10
CNN_MACS = 26 * 26 * 32 * 9 + 11 * 11 * 64 * 9 * 32 + 1600 * 10
LSTM_MACS = 28 * 4 * (28 * 128 + 128 * 128) + 128 * 10
CASES = {
    "mlp": {"config": "mlp.yaml", "batch": 32, "epochs": 5, "macs": MLP_MACS},
    "cnn": {"config": "cnn.yaml", "batch": 128, "epochs": 3, "macs": CNN_MACS},
    "lstm": {"config": "lstm.yaml", "batch": 128, "epochs": 3, "macs": LSTM_MACS},
}
SCALING = (10_000, 30_000, 60_000)


def run(command: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float, int]:
    """:func:`common.run`, failing loudly when the child fails."""
    done, wall, peak = common.run(command, env)
    if done.returncode != 0:
        failed = f"{' '.join(command)} failed ({done.returncode})"
        raise RuntimeError(f"{failed}:\n{done.stderr[-3000:]}")
    return done, wall, peak


def trainer_once(case: dict, limit: int | None, env: dict, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config = ROOT / "bench" / "configs" / case["config"]
        command = [sys.executable, "-m", "trainer", "fit", str(config),
                   "--run-dir", f"{tmp}/run", "--json", "--set", f"seed={seed}"]  # fmt: skip
        if limit:
            command += ["--set", f"dataset.limit={limit}", "--set", "training.epochs=3"]
        done, wall, peak = run(command, env)
        environment = json.loads(Path(tmp, "run", "environment.json").read_text())
    training = environment["training"]
    return {"epoch_seconds": training["epoch_seconds"], "wall": wall, "peak_kib": peak,
            "accuracy": json.loads(done.stdout)["test"]["accuracy"],
            "train_samples": training["data_sizes"]["train"],
            "steps_per_execution": training["steps_per_execution"],
            "jit_compile": training["jit_compile"], "fused_steps": training.get("fused_steps"),
            "eval_batch_size": training.get("eval_batch_size")}  # fmt: skip


def script_once(name: str, case: dict, limit: int | None, env: dict, seed: int) -> dict:
    epochs = 3 if limit else case["epochs"]
    command = [sys.executable, str(ROOT / "bench" / "handwritten.py"), name,
               "--epochs", str(epochs), "--batch-size", str(case["batch"]),
               "--seed", str(seed)]  # fmt: skip
    if limit:
        command += ["--limit", str(limit)]
    done, wall, peak = run(command, env)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    train = int((limit or 60_000) * 0.9)
    return {"epoch_seconds": result["epoch_seconds"], "wall": wall, "peak_kib": peak,
            "accuracy": result["accuracy"], "train_samples": train}  # fmt: skip


def steady(epoch_seconds: list[float]) -> float:
    later = epoch_seconds[1:] or epoch_seconds
    return statistics.median(later)


def measure(name: str, case: dict, reps: int, limit: int | None, env: dict) -> dict:
    sides: dict[str, list[dict]] = {"trainer": [], "script": []}
    for rep in range(reps):
        order = ("trainer", "script") if rep % 2 == 0 else ("script", "trainer")
        for side in order:
            seed = rep + 1  # both sides share each repetition's seed; accuracy is compared
            result = (trainer_once(case, limit, env, seed) if side == "trainer"  # over seeds
                      else script_once(name, case, limit, env, seed))  # fmt: skip
            sides[side].append(result)
            print(f"  {name}{'' if not limit else f' n={limit}'} {side} rep {rep + 1}: "
                  f"epoch {steady(result['epoch_seconds']):.2f}s wall {result['wall']:.1f}s "
                  f"peak {result['peak_kib'] / 1024:.0f} MiB acc {result['accuracy']:.4f}",
                  flush=True)  # fmt: skip
    summary = {}
    for side, results in sides.items():
        epoch = statistics.median(steady(r["epoch_seconds"]) for r in results)
        samples = results[0]["train_samples"]
        gflop = 6 * case["macs"] * samples / 1e9
        summary[side] = {
            "epoch": epoch,
            "wall": statistics.median(r["wall"] for r in results),
            "peak_mib": statistics.median(r["peak_kib"] for r in results) / 1024,
            "accuracy": statistics.median(r["accuracy"] for r in results),
            "peak_fraction": gflop / epoch / PEAK_GFLOPS,
            "gflop_per_epoch": gflop,
        }
    summary["settings"] = {
        k: sides["trainer"][0][k]
        for k in ("steps_per_execution", "jit_compile", "fused_steps", "eval_batch_size")
    }
    return summary


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import importlib.metadata as md

    versions = ", ".join(f"{p} {md.version(p)}" for p in ("tensorflow", "keras", "numpy"))
    return (f"{model}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, "
            f"{platform.platform()}, Python {platform.python_version()}, {versions}")  # fmt: skip


def table(rows: list[tuple[str, dict]]) -> str:
    lines = [
        "| case | epoch (trainer / script) | ratio | wall | ratio | peak MiB | ratio | "
        "accuracy (trainer / script) | peak FLOP/s (trainer / script) | trainer settings |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in rows:
        t, h = s["trainer"], s["script"]
        lines.append(
            f"| {name} | {t['epoch']:.2f} s / {h['epoch']:.2f} s | "
            f"**{h['epoch'] / t['epoch']:.2f}x** faster | "
            f"{t['wall']:.0f} s / {h['wall']:.0f} s | {h['wall'] / t['wall']:.2f}x | "
            f"{t['peak_mib']:.0f} / {h['peak_mib']:.0f} | {t['peak_mib'] / h['peak_mib']:.2f} | "
            f"{t['accuracy']:.4f} / {h['accuracy']:.4f} | "
            f"{100 * t['peak_fraction']:.1f}% / {100 * h['peak_fraction']:.1f}% | "
            f"{settings(s['settings'])} |"
        )  # fmt: skip
    return "\n".join(lines)


def settings(chosen: dict) -> str:
    fused = " (fused)" if chosen["fused_steps"] else ""
    return (f"steps_per_execution {chosen['steps_per_execution']}{fused}, "
            f"XLA {'on' if chosen['jit_compile'] is True else 'off'}, "
            f"eval batch {chosen['eval_batch_size']}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=[*CASES, "scaling"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    rows = []
    for name in args.cases:
        if name == "scaling":
            for limit in SCALING:
                rows.append((f"mlp n={limit}", measure("mlp", CASES["mlp"], args.reps, limit, env)))
        else:
            rows.append((name, measure(name, CASES[name], args.reps, None, env)))
    report = (f"Machine: {machine()}\n\nMedians of {args.reps} alternating runs per side "
              f"(repetition r uses seed r on both sides); "
              f"ratios are script / trainer for time (higher is better for the trainer) and "
              f"trainer / script for memory.\n\n{table(rows)}\n")  # fmt: skip
    print(report)
    if args.write:  # the sections other scripts own (after KEPT) stay as they are
        results = ROOT / "bench" / "RESULTS.md"
        old = results.read_text() if results.is_file() else ""
        kept = old[old.index(KEPT) :] if KEPT in old else ""
        results.write_text("# Benchmark results\n\n" + report + ("\n" + kept if kept else ""))


if __name__ == "__main__":
    main()
