"""What every test shares: a quiet TensorFlow on its own backend, the table fixture, and a
fit whose saved run `trainer eval` reloads to the same test metrics."""

import gzip
import json
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


def fit_and_reload(tmp_path: Path, config: dict) -> dict:
    """`trainer fit` on ``config`` (exit 0), then `trainer eval` of its run: the same test
    metrics, which are returned."""
    import yaml
    from typer.testing import CliRunner

    from trainer.cli.commands import app

    runner = CliRunner()
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = str(tmp_path / "run")
    fitted = runner.invoke(app, ["fit", str(tmp_path / "c.yaml"), "--run-dir", run, "--json"])
    assert fitted.exit_code == 0, fitted.output
    evaluated = runner.invoke(app, ["eval", run, "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    test = json.loads(fitted.stdout)["test"]
    assert json.loads(evaluated.stdout)["test"] == test
    return test
