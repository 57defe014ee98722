"""Tables larger than memory: `trainer fit` on a Parquet table read whole against spilled.

Generates the table of ``bench/tables.py`` (``--rows`` rows, 30 columns, 5% missing, 3
categorical columns) as Parquet, then runs `trainer fit` on it twice, one process after the
other, with ``dataset.in_memory: true`` and ``false`` (columns read one at a time into
memory-mapped files, trainer/datasets/spill.py), the same small MLP and one epoch. Figures: the
child's peak RSS (ru_maxrss from wait4, which counts the mapped file pages it touched), its
peak anonymous memory (RssAnon of /proc/PID/status, sampled every 0.1 s: what the kernel cannot
drop to make room), wall time, the epoch's seconds and training rows per second, and whether
the two runs' test metrics are equal (they should be: the same bits). ``--write`` puts the
table in bench/RESULTS.md (this script's own section).

    python bench/spill.py                       # 2,000,000 rows
    python bench/spill.py --rows 200000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import write_section  # noqa: E402 - after the path is set
from tables import generate, machine_line  # noqa: E402

TITLE = "## Tables larger than memory: read whole against spilled (`bench/spill.py`)"


def config(path: Path, in_memory: bool, spill: Path) -> dict:
    return {
        "name": f"spill-{in_memory}",
        "seed": 0,
        "dataset": {
            "type": "csv",
            "path": str(path),
            "target": "target",
            "task": "binary",
            "missing": "median",
            "in_memory": in_memory,
            "spill_dir": str(spill),
            "validation_split": 0.1,
            "test_split": 0.1,
        },  # fmt: skip
        "model": {"type": "fnn", "units": [64, 32]},
        "training": {"epochs": 1, "batch_size": 256},
        "metrics": ["accuracy", "auc"],
    }


def sampled(command: list[str], env: dict) -> dict:
    """Run a child, sampling its anonymous memory; its wall time and peaks (bytes)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=ROOT)
        anon = 0
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            try:
                for line in Path(f"/proc/{child.pid}/status").read_text().splitlines():
                    if line.startswith("RssAnon:"):
                        anon = max(anon, int(line.split()[1]) * 1024)
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if code != 0:
        raise SystemExit(f"{command} failed ({code}):\n{stderr[-3000:]}")
    peak = usage.ru_maxrss
    return {"wall": wall, "peak": peak * 1024, "anon": anon, "stdout": stdout, "stderr": stderr}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = generate(folder, args.rows)["parquet"]
        for in_memory in (True, False):
            settings = folder / f"c-{in_memory}.yaml"
            settings.write_text(yaml.safe_dump(config(path, in_memory, folder / "spill")))
            run = folder / f"run-{in_memory}"
            command = [sys.executable, "-m", "trainer", "fit", str(settings), "--run-dir",
                       str(run), "--json"]  # fmt: skip
            measured = sampled(command, env)
            environment = json.loads((run / "environment.json").read_text())
            measured["metrics"] = json.loads(measured["stdout"])
            measured["data"] = environment.get("data", {}).get("reason", "")
            measured["epoch"] = environment["training"]["epoch_seconds"][0]
            measured["train"] = environment["training"]["data_sizes"]["train"]
            results[in_memory] = measured
            print(f"  in_memory {in_memory}: wall {measured['wall']:.0f} s, peak "
                  f"{measured['peak'] / 2**30:.2f} GiB, anon {measured['anon'] / 2**30:.2f} GiB, "
                  f"epoch {measured['epoch']:.1f} s; {measured['data']}", flush=True)  # fmt: skip
    same = results[True]["metrics"] == results[False]["metrics"]
    rows = ["| table | peak RSS | peak anonymous | wall | epoch | training rows/s |",
            "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for in_memory, m in results.items():
        label = "read whole (`in_memory: true`)" if in_memory else "spilled (`in_memory: false`)"
        rate = m["train"] / m["epoch"]
        rows.append(f"| {label} | {m['peak'] / 2**30:.2f} GiB | {m['anon'] / 2**30:.2f} GiB | "
                    f"{m['wall']:.0f} s | {m['epoch']:.1f} s | {rate:,.0f} |")  # fmt: skip
    report = (
        f"{TITLE}\n\nMeasured on {date.today()} with `python bench/spill.py --rows {args.rows}`: "
        f"the table of `bench/tables.py` ({args.rows:,} rows, 30 columns) as one Parquet file, "
        "`trainer fit` with an MLP 64-32, batch 256, one epoch, `missing: median`, validation "
        "and test splits of 0.1, once read whole and once spilled, one process after the other. "
        "Peak RSS is ru_maxrss (it counts the pages of the mapped files the run touched, which "
        "the kernel can drop); peak anonymous is RssAnon sampled every 0.1 s. The test metrics "
        f"of the two runs are {'equal' if same else 'NOT equal'}.\n\n"
        f"Machine: {machine_line()}.\n\n" + "\n".join(rows) + "\n\n"
        f'Spilled run\'s start-up line: "data: {results[False]["data"]}".\n'
    )
    print("\n" + report)
    if args.write:
        write_section(TITLE, report)


if __name__ == "__main__":
    main()
