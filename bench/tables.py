"""Reading tables: the old hand-written CSV reader against Arrow (CSV, .csv.gz, Parquet).

Writes a generated table to a temporary folder (``--rows`` rows, 30 columns: 26 numeric and
3 categorical features with 5% missing cells each, and a yes/no target) as CSV, gzip'd CSV and
Parquet, then times, for each reader, the read alone (the file into ``CsvTable`` columns) and
the read plus the preparation the ``csv`` loader does next (each column's type resolved, the
raw float64 matrix and the class labels built). The old reader is kept for this benchmark
only (``bench/legacy_csv_reader.py``, the module Arrow replaced). Figures are rows per second
and ratios to the old reader, measured in the same run; ``--write`` puts them in
bench/RESULTS.md (this script's own section, after the other scripts' marker).

    python bench/tables.py                      # 2,000,000 rows
    python bench/tables.py --rows 200000 --reps 1
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import write_section  # noqa: E402 - after the path is set

NUMERIC, CATEGORICAL, MISSING_SHARE = 26, 3, 0.05
TITLE = "## Reading tables: the old CSV reader against Arrow (`bench/tables.py`)"


def generate(folder: Path, rows: int, seed: int = 0) -> dict[str, Path]:
    """The table as .csv, .csv.gz and .parquet (numbers rounded to 3 decimals, as data is)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    columns = {}
    for i in range(NUMERIC):
        values = np.round(rng.normal(50.0 * (i % 5), 10.0 + i, rows), 3)
        columns[f"n{i}"] = pa.array(values, mask=rng.random(rows) < MISSING_SHARE)
    for i, size in enumerate((4, 12, 50)):
        words = np.array([f"c{i}_{k}" for k in range(size)])
        values = words[rng.integers(0, size, rows)]
        columns[f"cat{i}"] = pa.array(values, mask=rng.random(rows) < MISSING_SHARE)
    columns["target"] = pa.array(np.where(rng.random(rows) < 0.3, "yes", "no"))
    table = pa.table(columns)
    paths = {"csv": folder / "table.csv", "gz": folder / "table.csv.gz",
             "parquet": folder / "table.parquet"}  # fmt: skip
    pcsv.write_csv(table, paths["csv"], pcsv.WriteOptions(quoting_style="none"))
    with open(paths["csv"], "rb") as plain, gzip.open(paths["gz"], "wb", compresslevel=6) as gz:
        shutil.copyfileobj(plain, gz, 2**22)
    pq.write_table(table, paths["parquet"])
    return paths


def prepare(table, legacy: bool) -> tuple:
    """What the csv loader does with the columns read: types, raw matrix, labels."""
    import numpy as np

    from trainer.datasets import csv_file

    kinds = {v.name: v.resolve(table.path) if legacy else v.resolve() for v in table.features}
    matrix = np.empty((table.rows, len(table.features)))
    for i, values in enumerate(table.features):
        categories = tuple(sorted(values.vocabulary)) if kinds[values.name] == "categorical" else ()
        matrix[:, i] = csv_file._column(values, kinds[values.name], categories)
    names, labels = csv_file.target_labels({"train": table}, "binary")
    return matrix, names, labels["train"]


def timed(read, path: Path, legacy: bool, reps: int) -> dict:
    best_read = best_total = float("inf")
    result = None
    for _ in range(reps):
        started = time.perf_counter()
        table = read(path, "target")
        read_done = time.perf_counter()
        result = prepare(table, legacy)
        finished = time.perf_counter()
        best_read = min(best_read, read_done - started)
        best_total = min(best_total, finished - started)
    return {"read": best_read, "total": best_total, "result": result}


def machine_line() -> str:
    import importlib.metadata as md

    from run import machine  # bench/run.py's description of the machine

    return f"{machine()}, pyarrow {md.version('pyarrow')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--reps", type=int, default=1, help="best of this many reads each")
    parser.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    args = parser.parse_args()

    import legacy_csv_reader
    import numpy as np

    from trainer.datasets.csv_reader import read_table

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        paths = generate(Path(tmp), args.rows)
        sizes = {name: path.stat().st_size / 2**20 for name, path in paths.items()}
        print(f"generated {args.rows} rows in {time.perf_counter() - started:.0f} s: "
              + ", ".join(f"{n} {s:.0f} MiB" for n, s in sizes.items()), flush=True)  # fmt: skip
        cases = [("old reader, .csv", legacy_csv_reader.read_csv, "csv", True),
                 ("Arrow, .csv", read_table, "csv", False),
                 ("Arrow, .csv.gz", read_table, "gz", False),
                 ("Arrow, .parquet", read_table, "parquet", False)]  # fmt: skip
        results = []
        for name, read, kind, legacy in cases:
            measured = timed(read, paths[kind], legacy, args.reps)
            results.append((name, kind, measured))
            print(f"  {name}: read {measured['read']:.2f} s, read + prepare "
                  f"{measured['total']:.2f} s", flush=True)  # fmt: skip
    reference = results[0][2]
    for name, _, measured in results[1:]:  # every reader gives the same matrix and labels
        for want, got in zip(reference["result"], measured["result"], strict=True):
            np.testing.assert_array_equal(np.asarray(want), np.asarray(got), err_msg=name)
    rows = [
        "| reader | file | read | rows/s read | read + prepare | rows/s read + prepared | "
        "speed-up (read + prepare) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, kind, m in results:
        rows.append(
            f"| {name} | {sizes[kind]:.0f} MiB | {m['read']:.2f} s | "
            f"{args.rows / m['read']:,.0f} | "
            f"{m['total']:.2f} s | {args.rows / m['total']:,.0f} | "
            f"**{reference['total'] / m['total']:.1f}x** |"
        )  # fmt: skip
    report = (
        f"{TITLE}\n\nMeasured on {date.today()} with `python bench/tables.py --rows {args.rows} "
        f"--reps {args.reps}` (best of {args.reps}): a generated table of {args.rows:,} rows and "
        f"30 columns ({NUMERIC} numeric and {CATEGORICAL} categorical features, "
        f"{MISSING_SHARE:.0%} of their cells empty, a yes/no target), read by each reader into "
        "`CsvTable` columns, then prepared as the `csv` loader does (types resolved, the raw "
        "float64 matrix and the labels built; every reader gives the same matrix, checked). "
        f"The speed-up is against the old reader, in the same run.\n\n"
        f"Machine: {machine_line()}.\n\n" + "\n".join(rows) + "\n"
    )
    print("\n" + report)
    if args.write:
        write_section(TITLE, report)


if __name__ == "__main__":
    main()
