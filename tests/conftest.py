"""What every test shares: a quiet TensorFlow on its own backend, and the table fixture."""

import gzip
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

SHIPPED = Path(__file__).resolve().parents[1] / "configs" / "data" / "imbalanced.csv"


@pytest.fixture
def formats(tmp_path) -> dict[str, Path]:
    """The shipped churn table as .csv, .csv.gz, .parquet and a folder of three .parquet files."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    paths = {"csv": tmp_path / "t.csv", "gz": tmp_path / "t.csv.gz"}
    paths["csv"].write_bytes(SHIPPED.read_bytes())
    paths["gz"].write_bytes(gzip.compress(SHIPPED.read_bytes()))
    table = pcsv.read_csv(SHIPPED)
    paths["parquet"] = tmp_path / "t.parquet"
    pq.write_table(table, paths["parquet"], row_group_size=150)
    folder = paths["folder"] = tmp_path / "parts"
    folder.mkdir()
    for i, start in enumerate((0, 100, 250)):  # name order is row order
        pq.write_table(table.slice(start, {0: 100, 1: 150, 2: 150}[i]), folder / f"p{i}.parquet")
    (folder / "_SUCCESS").write_text("")  # a marker Spark writes: not a data file
    return paths
