"""Tables read by Arrow: CSV, .csv.gz, Parquet and a folder of Parquet files give the same
columns; damaged files and late type breaks are named by file and line or row group/row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from trainer.cli.commands import app
from trainer.core.errors import DataError
from trainer.datasets import DATASETS, load
from trainer.datasets.csv_reader import read_table

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "configs" / "data" / "imbalanced.csv"


def params(**overrides):
    return DATASETS.get("csv").params(type="csv", **overrides)


def test_every_format_reads_the_same_columns(formats):
    tables = {
        name: read_table(path, "churn", kinds={"id": "ignore"}) for name, path in formats.items()
    }
    reference = tables["csv"]
    assert reference.rows == 400 and reference.ignored == ["id"]
    for name, table in tables.items():
        assert table.rows == reference.rows, name
        assert [v.name for v in table.features] == [v.name for v in reference.features], name
        for got, want in zip([table.target, *table.features],
                             [reference.target, *reference.features], strict=True):  # fmt: skip
            assert got.resolve() == want.resolve(), (name, got.name)
            assert got.missing == want.missing and got.vocabulary == want.vocabulary, name
            for attr in ("numbers", "codes"):
                if getattr(want, attr) is None:
                    assert getattr(got, attr) is None, (name, got.name, attr)
                else:
                    np.testing.assert_array_equal(getattr(got, attr), getattr(want, attr))


def test_every_format_loads_the_same_dataset(formats):
    base = {"target": "churn", "columns": {"id": "ignore"}, "missing": "median",
            "validation_split": 0.2}  # fmt: skip
    loaded = {name: load(params(path=path, **base), seed=3) for name, path in formats.items()}
    reference = loaded["csv"]
    assert reference.spec.class_names == ("no", "yes")
    for name, ds in loaded.items():
        assert ds.preprocessing == reference.preprocessing, name
        for attr in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
            np.testing.assert_array_equal(getattr(ds, attr), getattr(reference, attr))


@pytest.mark.parametrize(
    ("config", "twin"),
    [("parquet.yaml", "csv_imbalanced.yaml"), ("csv_gzip.yaml", "csv_regression.yaml")],
)
def test_shipped_compressed_configs_hold_their_csv_twin(monkeypatch, config, twin):
    """configs/csv_gzip.yaml's file is the regression CSV gzip'd: only the path differs and the
    prepared splits are the same bits."""
    import gzip as gz

    monkeypatch.chdir(ROOT)
    from trainer.config.loading import load_config

    packed, plain = (load_config(f"configs/{name}").dataset for name in (config, twin))
    assert packed.model_copy(update={"path": plain.path}) == plain
    if packed.path.name.endswith(".gz"):
        assert gz.decompress(packed.path.read_bytes()) == plain.path.read_bytes()
    a, b = load(packed, seed=0), load(plain, seed=0)
    assert a.preprocessing == b.preprocessing
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)


def test_a_truncated_parquet_file_is_a_data_error_naming_it(tmp_path, formats):
    broken = tmp_path / "broken.parquet"
    data = formats["parquet"].read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="broken.parquet: not a readable Parquet file") as info:
        load(params(path=broken, target="churn", task="binary"), seed=0)
    assert "truncated" in info.value.hint
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"dataset": {"type": "csv", "path": str(broken),
                                                  "target": "churn"}}))  # fmt: skip
    result = CliRunner().invoke(app, ["fit", str(config), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 4, result.output
    assert "broken.parquet" in result.output


def test_a_folder_with_a_truncated_file_names_that_file(formats):
    part = formats["folder"] / "p1.parquet"
    part.write_bytes(part.read_bytes()[:-20])
    with pytest.raises(DataError, match="p1.parquet: not a readable Parquet file"):
        read_table(formats["folder"], "churn")


def test_a_folder_whose_files_differ_in_columns(formats):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"churn": ["no"], "other": [1]}), formats["folder"] / "p9.parquet")
    with pytest.raises(DataError, match="p9.parquet: its columns differ .* it lacks calls"):
        read_table(formats["folder"], "churn")


def big_csv(path: Path, bad_row: int, value: str, rows: int = 100_000) -> Path:
    """Over Arrow's 1 MiB first block, so that the bad value comes after type inference."""
    lines = ["x,z,y"] + [
        f"{value if i == bad_row else i * 0.5},{i % 7},{i % 2}" for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 2**20
    return path


def test_text_in_a_late_row_names_its_line(tmp_path):
    path = big_csv(tmp_path / "late.csv", 90_000, "oops")
    with pytest.raises(DataError) as info:
        load(params(path=path, target="y", task="binary"), seed=0)
    message = str(info.value)
    assert f"{path}, line 90002, column 'x': text 'oops' in a numeric column" in message
    assert "columns: {x: categorical}" in info.value.hint
    with pytest.raises(DataError, match="line 90002, column 'x': 'oops' is not a number"):
        load(params(path=path, target="y", task="binary", columns={"x": "numeric"}), seed=0)


def test_row_5000_breaking_the_header_types_names_its_line(tmp_path):
    path = tmp_path / "d.csv"
    text = "a,b,y\n" + "".join(f"{i},{'n/a?' if i == 4999 else i},{i % 2}\n" for i in range(6000))
    path.write_text(text)
    with pytest.raises(DataError, match=r"d.csv, line 5001, column 'b': text 'n/a\?'"):
        load(params(path=path, target="y", task="binary"), seed=0)


def test_an_infinite_value_in_a_late_row_and_blank_lines(tmp_path):
    path = big_csv(tmp_path / "inf.csv", 70_000, "-Infinity")
    with pytest.raises(DataError, match="line 70002, column 'x': '-Infinity' is not a finite"):
        load(params(path=path, target="y", task="binary"), seed=0)
    spaced = tmp_path / "spaced.csv"  # blank lines count as lines, not as rows
    spaced.write_text("x,z,y\n1,2,0\n\n   \n2,3,1\n4,5,x5\n" + "6,7,1\n" * 40)
    with pytest.raises(DataError, match="spaced.csv, line 6, target column 'y': 'x5'"):
        params(path=spaced, target="y")


def test_text_in_a_parquet_numeric_column_names_row_group_and_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = [str(i) for i in range(200)]
    values[130] = "12,5"  # a decimal comma
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"x": values, "y": [i % 2 for i in range(200)]}), path,
                   row_group_size=100)  # fmt: skip
    with pytest.raises(DataError, match="d.parquet, row group 1, row 30, column 'x': text '12,5'"):
        load(params(path=path, target="y", task="binary"), seed=0)


def test_parquet_nulls_and_nan_are_missing(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    x = [float(i) for i in range(20)]
    x[3], x[4] = float("nan"), None
    pq.write_table(pa.table({"x": x, "c": ["a", None, "NA"] + ["b"] * 17,
                             "y": [i % 2 for i in range(20)]}), path)  # fmt: skip
    table = read_table(path, "y")
    assert table.features[0].missing == 2 and table.features[1].missing == 2
    assert table.features[1].resolve() == "categorical"


def test_categorical_vocabulary_is_kept_in_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    data = yaml.safe_load((ROOT / "configs" / "parquet.yaml").read_text())
    data["training"]["epochs"] = 1
    config = tmp_path / "p.yaml"
    config.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["fit", str(config), "--run-dir", str(run), "--json"])
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "preprocessing.json").read_text())
    categories = {
        c["name"]: c["categories"] for c in saved["columns"] if c["type"] == "categorical"
    }
    assert categories["plan"] == ["basic", "plus", "pro"]
    assert categories["region"] == ["east", "north", "south", "west"]
    assert saved["class_names"] == ["no", "yes"]
