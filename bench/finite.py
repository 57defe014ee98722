"""What the finiteness check costs: seconds per check against seconds per epoch, in one run.

Runs ``trainer fit`` in this process on a benchmark config (``bench/configs``) with
``trainer.training.finite.checkpoint_problems`` wrapped in a timer, so every check the loop makes
(one per checkpoint: each ``checkpoint.every_steps`` and each epoch end) is measured in the
run it guards. Also timed: ``checkpoint.capture``, the copy a checkpoint makes anyway.

    python bench/finite.py --cases mlp cnn --every 500
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Quiet:
    def stage(self, text): ...
    def start(self, epochs, steps_per_epoch): ...
    def step(self, step): ...
    def epoch(self, epoch, epochs, logs, seconds): ...
    def finish(self): ...


def timed(module, name: str, log: list[float]):
    inner = getattr(module, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            log.append(time.perf_counter() - started)

    setattr(module, name, wrapper)
    return inner


def measure(case: str, epochs: int, every: int, units: list[int] | None) -> dict:
    from trainer.config.loading import load_config
    from trainer.training import checkpoint, engine, finite

    overrides = [f"training.epochs={epochs}", f"checkpoint.every_steps={every}"]
    if units:
        overrides.append(f"model.units=[{','.join(map(str, units))}]")
    cfg = load_config(ROOT / "bench" / "configs" / f"{case}.yaml", overrides)
    checks, captures, sizes = [], [], []
    check, capture = (
        timed(finite, "checkpoint_problems", checks),
        timed(checkpoint, "capture", captures),
    )

    def counted(arrays):  # the numbers each check reads: model and optimizer variables
        sizes.append(sum(a.size for k, a in arrays.items() if not k.startswith("metrics/")))
        return checked(arrays)

    checked, finite.checkpoint_problems = finite.checkpoint_problems, counted
    try:
        with tempfile.TemporaryDirectory() as run_dir:
            result = engine.fit(cfg, Path(run_dir) / "run", Quiet())
    finally:
        finite.checkpoint_problems, checkpoint.capture = check, capture
    epoch_seconds = result.training["epoch_seconds"]
    steady = statistics.median(epoch_seconds[1:] or epoch_seconds)
    per_epoch = len(checks) / epochs
    check_s = statistics.median(checks)
    return {
        "case": case + (f" {units}" if units else ""),
        "params": sizes[-1],
        "epoch_s": steady,
        "checks_per_epoch": per_epoch,
        "check_ms": 1000 * check_s,
        "capture_ms": 1000 * statistics.median(captures),
        "share": check_s * per_epoch / steady,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--every", type=int, default=500, help="checkpoint.every_steps")
    parser.add_argument("--wide", type=int, default=0, help="also an MLP of 2 layers this wide")
    args = parser.parse_args()
    runs = [(case, None) for case in args.cases]
    if args.wide:
        runs.append(("mlp", [args.wide, args.wide]))
    print("| case | values checked | steady epoch | checks per epoch | one check | one capture "
          "(made anyway) | checks / epoch time |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for case, units in runs:
        row = measure(case, args.epochs, args.every, units)
        print(f"| {row['case']} | {row['params']} | {row['epoch_s']:.2f} s | "
              f"{row['checks_per_epoch']:.1f} | {row['check_ms']:.2f} ms | "
              f"{row['capture_ms']:.2f} ms | {100 * row['share']:.3f}% |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
