"""Tables larger than memory (issue 18): read a column at a time into memory-mapped files and
trained from them (trainer/datasets/spill.py), against the same tables read whole: the same
bits in every split and every run, the choice and its reason recorded, bad files named.

The tables are the shipped churn CSV (400 rows, gaps, categories) in each format Arrow reads.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.test_streaming import trainer_process
from trainer.core.errors import DataError
from trainer.datasets import DATASETS, load
from trainer.datasets import csv_reader as reader
from trainer.datasets.lazy import is_lazy
from trainer.datasets.spill import MappedRows, decide_table, estimate_rows, spilled

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "configs" / "data" / "imbalanced.csv"
CHURN = {
    "target": "churn",
    "columns": {"id": "ignore"},
    "missing": {"strategy": "median", "columns": {"contract": "most_frequent", "tenure": "drop"}},
    "validation_split": 0.2,
}


@pytest.fixture
def reads(monkeypatch) -> list[list[str]]:
    """The columns of each read of a Parquet table, as the reader is asked for them."""
    asked: list[list[str]] = []
    opened = reader.open_parquet

    def recording(path):
        header, places, read = opened(path)
        return header, places, lambda names: (asked.append(list(names)), read(names))[1]

    monkeypatch.setattr(reader, "open_parquet", recording)
    return asked


def params(path: Path, **changes):
    values = {"path": str(path), **CHURN, **changes}
    return DATASETS.get("csv").params(type="csv", **values)


@pytest.mark.parametrize("fmt", ["csv", "gz", "parquet", "folder"])
@pytest.mark.parametrize("encoding", ["onehot", "integer"])
def test_a_spilled_table_holds_the_bits_of_the_table_read_whole(formats, tmp_path, fmt, encoding):
    spill = tmp_path / "spill"
    whole = load(params(formats[fmt], encoding=encoding, in_memory=True), seed=3)
    streamed = load(params(formats[fmt], encoding=encoding, in_memory=False, spill_dir=str(spill)),
                    seed=3)  # fmt: skip
    assert not is_lazy(whole.x_train)
    for split in ("x_train", "x_val", "x_test"):
        assert isinstance(getattr(streamed, split), MappedRows), split
        np.testing.assert_array_equal(np.asarray(getattr(streamed, split)), getattr(whole, split))
    for split in ("y_train", "y_val", "y_test"):
        np.testing.assert_array_equal(getattr(streamed, split), getattr(whole, split))
    assert streamed.preprocessing == whole.preprocessing
    assert streamed.warnings == whole.warnings and any("dropped" in w for w in whole.warnings)
    assert streamed.storage["in_memory"] is False and whole.storage["in_memory"] is True
    assert "spilled to disk" in streamed.storage["reason"]
    assert spill.is_dir() and not list(spill.iterdir())  # unlinked as soon as made


def test_a_streamed_table_reads_one_column_at_a_time(formats, reads):
    load(params(formats["parquet"], in_memory=False), seed=0)
    assert reads and all(len(names) == 1 for names in reads)
    features = [names[0] for names in reads if names != ["churn"]]  # the target: task, labels
    assert features == ["tenure", "charge", "calls", "plan", "contract", "region"]  # fmt: skip
    reads.clear()
    load(params(formats["parquet"], in_memory=True), seed=0)
    whole = [names for names in reads if names != ["churn"]]
    assert len(whole) == 1 and len(whole[0]) == 7  # read whole: one read of every column


def test_a_validation_file_typed_as_the_training_file_is(formats, tmp_path):
    """A category column whose validation file holds only numbers stays categorical."""
    text = SHIPPED.read_text().splitlines()
    header, rows = text[0], text[1:]
    column = header.split(",").index("region")
    numeric = [",".join(v if i != column else str(n % 3) for i, v in enumerate(r.split(",")))
               for n, r in enumerate(rows[300:])]  # fmt: skip
    (tmp_path / "train.csv").write_text("\n".join([header, *rows[:300]]) + "\n")
    (tmp_path / "val.csv").write_text("\n".join([header, *numeric]) + "\n")
    settings = {k: v for k, v in CHURN.items() if k != "validation_split"}
    settings |= {"path": str(tmp_path / "train.csv"), "validation_path": str(tmp_path / "val.csv")}
    whole, streamed = (
        load(DATASETS.get("csv").params(type="csv", **settings, in_memory=flag), seed=1)
        for flag in (True, False)
    )
    np.testing.assert_array_equal(np.asarray(streamed.x_val), whole.x_val)
    assert any("categories the training split lacks" in w for w in streamed.warnings)
    assert streamed.warnings == whole.warnings


def test_auto_spills_a_table_over_half_the_memory_available(formats, monkeypatch):
    from trainer.datasets import storage

    monkeypatch.setattr(storage, "available_memory", lambda: 10_000)
    streamed = load(params(formats["csv"]), seed=0)
    assert is_lazy(streamed.x_train) and streamed.storage["setting"] == "auto"
    assert "over half of the" in streamed.storage["reason"]
    monkeypatch.setattr(storage, "available_memory", lambda: 1 << 34)
    assert load(params(formats["csv"]), seed=0).storage["in_memory"] is True


def test_row_estimates_come_from_metadata_or_the_first_lines(formats):
    assert estimate_rows(formats["parquet"]) == estimate_rows(formats["folder"]) == 400
    for fmt in ("csv", "gz"):  # the first MiB holds the whole file: exact here
        assert estimate_rows(formats[fmt]) == 401, fmt  # the header is a line too


def test_a_spill_folder_without_room_is_refused_before_reading(formats, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10, 10, 0))
    with pytest.raises(DataError) as raised:
        decide_table(False, formats["parquet"], 8, tmp_path / "spill")
    assert f"dataset.spill_dir: {tmp_path / 'spill'} has 0 B free" in raised.value.message
    assert "spill_dir" in raised.value.hint


def test_a_tmpfs_spill_folder_is_named_as_memory(formats, tmp_path, monkeypatch):
    from trainer.datasets import spill

    monkeypatch.setattr(spill, "_filesystem", lambda directory: "tmpfs")
    described = decide_table(False, formats["parquet"], 8, tmp_path)
    assert "a tmpfs: in memory after all (set dataset.spill_dir)" in described["reason"]


def test_spilled_arrays_are_zeroed_views_of_unlinked_files(tmp_path):
    data = spilled((5, 3), np.float64, tmp_path, "F")
    assert data.flags.f_contiguous and not list(tmp_path.iterdir()) and not data.any()
    data[:, 1] = np.arange(5)
    rows = MappedRows(data, tmp_path)
    view = rows.take(np.array([4, 0, 2]))
    np.testing.assert_array_equal(view.column(1), [4.0, 0.0, 2.0])
    np.testing.assert_array_equal(view[1:], data[[0, 2]])
    assert spilled((0, 3), np.float32, tmp_path).shape == (0, 3)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_bad_files_are_named_alike_streamed_or_whole(tmp_path, fmt):
    """A truncated Parquet file names its row group; a CSV's late row breaking its column's
    type names its line: the same message whether the table is read whole or streamed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if fmt == "parquet":
        path = tmp_path / "t.parquet"
        table = pa.table({"x": np.arange(3000.0), "churn": ["yes", "no"] * 1500})
        pq.write_table(table, path, row_group_size=1000)
        chunk = pq.ParquetFile(path).metadata.row_group(2).column(0)  # x in row group 2
        start, length = chunk.dictionary_page_offset, chunk.total_compressed_size
        content = bytearray(path.read_bytes())
        content[start + 20 : start + length // 2] = b"\xff" * (length // 2 - 20)
        path.write_bytes(bytes(content))  # its pages no longer decompress
    else:
        path = tmp_path / "t.csv"
        rows = [f"{i},{'yes' if i % 2 else 'no'}" for i in range(5000)] + ["oops,yes"]
        path.write_text("x,churn\n" + "\n".join(rows) + "\n")
    messages = []
    for in_memory in (True, False):
        with pytest.raises(DataError) as raised:
            load(params(path, in_memory=in_memory, columns={}, missing=None), seed=0)
        messages.append(raised.value.message)
    assert messages[0] == messages[1]
    expected = f"{path}, row group 2" if fmt == "parquet" else f"{path}, line 5002"
    assert expected in messages[0], messages[0]


def config(path: Path, in_memory: bool, spill: Path) -> dict:
    return {
        "name": "spilled",
        "seed": 4,
        "dataset": {
            "type": "csv",
            "path": str(path),
            **CHURN,
            "in_memory": in_memory,
            "spill_dir": str(spill),
        },  # fmt: skip
        "model": {"type": "fnn", "units": [8]},
        "training": {"epochs": 2, "batch_size": 32},
        "checkpoint": {"every_steps": 3},
    }


def test_a_spilled_run_ends_as_a_run_in_memory_and_resumes_after_sigkill(formats, tmp_path):
    spill = tmp_path / "spill"
    for name, in_memory in (("memory", True), ("streamed", False)):
        (tmp_path / f"{name}.yaml").write_text(
            yaml.safe_dump(config(formats["parquet"], in_memory, spill))
        )
    runs = {name: trainer_process(tmp_path, "fit", f"{name}.yaml", "--run-dir", name, "--json")
            for name in ("memory", "streamed")}  # fmt: skip
    for name, result in runs.items():
        assert result.returncode == 0, (name, result.stderr[-3000:])
    assert json.loads(runs["memory"].stdout) == json.loads(runs["streamed"].stdout)
    said = " ".join(runs["streamed"].stderr.split())
    assert "data: spilled to disk: a table of about 400 rows" in said
    data = json.loads((tmp_path / "streamed" / "environment.json").read_text())["data"]
    assert data["in_memory"] is False and data["spill_dir"] == str(spill)
    killed = trainer_process(tmp_path, "fit", "streamed.yaml", "--run-dir", "killed",
                             fault="sigkill@7")  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = trainer_process(tmp_path, "fit", "--resume", "killed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from step-000000006" in resumed.stderr
    for name in ("history.csv", "metrics.json"):
        memory = (tmp_path / "memory" / name).read_text()
        assert memory == (tmp_path / "streamed" / name).read_text() == (
            tmp_path / "killed" / name).read_text(), name  # fmt: skip
    assert not list(spill.iterdir())


def test_inspect_reads_a_streamed_table_a_column_at_a_time_and_says_so(formats, reads):
    from trainer.datasets.inspect import inspect

    whole = inspect(params(formats["parquet"], in_memory=True), seed=0)
    assert any(len(names) > 1 for names in reads)
    reads.clear()
    streamed = inspect(params(formats["parquet"], in_memory=False), seed=0)
    assert streamed["problems"] == [] and all(len(names) == 1 for names in reads)
    assert streamed["columns"] == whole["columns"] and streamed["splits"] == whole["splits"]
    assert streamed["features"] == whole["features"]
    assert whole["storage"]["in_memory"] is True
    assert streamed["storage"]["in_memory"] is False
    assert streamed["storage"]["reason"].startswith("spilled to disk: a table of about 400 rows")
