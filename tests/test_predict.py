"""`trainer predict`: new rows go through the run's saved transform and get the same
predictions the model made at fit time; wrong columns, shapes and formats are clear errors."""

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from trainer.cli.commands import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _fit(tmp_path, config: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(path), "--run-dir", str(run), "--json"])
    assert result.exit_code == 0, result.output
    return run


def _predict(run: Path, source: Path, output: Path, *options: str):
    return runner.invoke(
        app,
        ["predict", str(run), "--input", str(source), "--output", str(output), "--json", *options],
    )


def _fit_time_outputs(run: Path) -> np.ndarray:
    with np.load(run / "predictions.npz") as saved:  # the test split's outputs at fit time
        return saved["y_pred"].reshape(len(saved["y_pred"]), -1)


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    """The shipped churn CSV (missing values, categories) split into train and test files."""
    tmp_path = tmp_path_factory.mktemp("csv")
    lines = (ROOT / "configs" / "data" / "imbalanced.csv").read_text().splitlines()
    (tmp_path / "train.csv").write_text("\n".join(lines[:301]) + "\n")
    (tmp_path / "test.csv").write_text("\n".join([lines[0], *lines[301:]]) + "\n")
    config = yaml.safe_load((ROOT / "configs" / "csv_imbalanced.yaml").read_text())
    config["dataset"].update(path=str(tmp_path / "train.csv"), test_path=str(tmp_path / "test.csv"))
    del config["dataset"]["test_split"]
    config["training"]["epochs"] = 2
    return tmp_path, _fit(tmp_path, config)


def test_csv_rows_get_the_fit_time_predictions(csv_run):
    tmp_path, run = csv_run
    output = tmp_path / "predictions.csv"
    result = _predict(run, tmp_path / "test.csv", output)
    assert result.exit_code == 0, result.output
    rows = _read(output)
    assert len(rows) == 100 == json.loads(result.stdout)["rows"]
    found = np.array([float(r["probability_yes"]) for r in rows])
    np.testing.assert_allclose(found, _fit_time_outputs(run)[:, 0], rtol=0, atol=1e-6)
    assert all(
        r["prediction"] == ("yes" if float(r["probability_yes"]) > 0.5 else "no") for r in rows
    )
    np.testing.assert_allclose(
        [float(r["probability_no"]) + float(r["probability_yes"]) for r in rows], 1.0, atol=1e-6
    )


def _without(source: Path, target: Path, column: str) -> Path:
    with open(source, newline="") as handle:
        rows = list(csv.reader(handle))
    drop = rows[0].index(column)
    with open(target, "w", newline="") as handle:
        csv.writer(handle).writerows([r[:drop] + r[drop + 1 :] for r in rows])
    return target


def test_the_csvs_own_id_column_is_carried_through(csv_run):
    tmp_path, run = csv_run
    result = _predict(run, tmp_path / "test.csv", tmp_path / "with-ids.csv")
    assert result.exit_code == 0, result.output
    given = [r["id"] for r in _read(tmp_path / "test.csv")]
    assert given[0] == "1300" and [r["id"] for r in _read(tmp_path / "with-ids.csv")] == given
    assert json.loads(result.stdout)["id_column"] == "id"


def test_id_column_names_another_column_and_a_wrong_name_is_refused(csv_run):
    tmp_path, run = csv_run
    text = (tmp_path / "test.csv").read_text().splitlines()
    renamed = tmp_path / "customers.csv"  # the ids under another name, the model never read
    renamed.write_text("\n".join([text[0].replace("id,", "customer,", 1), *text[1:]]) + "\n")
    result = _predict(run, renamed, tmp_path / "by-customer.csv", "--id-column", "customer")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in _read(tmp_path / "by-customer.csv")][:2] == ["1300", "1301"]
    wrong = _predict(run, renamed, tmp_path / "wrong.csv", "--id-column", "custmer")
    assert wrong.exit_code == 4
    assert "has no column 'custmer'" in wrong.output and "did you mean 'customer'" in wrong.output


def test_ids_are_0_based_row_indices_for_csv_and_numpy_inputs(csv_run, numpy_run):
    tmp_path, run = csv_run
    bare = _without(tmp_path / "test.csv", tmp_path / "no-ids.csv", "id")
    result = _predict(run, bare, tmp_path / "numbered.csv")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in _read(tmp_path / "numbered.csv")] == [str(i) for i in range(100)]
    folder, numpy = numpy_run
    np.save(folder / "rows.npy", np.zeros((5, 4), dtype=np.float32))
    (folder / "rows.csv").write_text("a,b,c,d\n" + "0,0,0,0\n\n" * 5)  # blank lines skipped
    for source, output in (("rows.npy", "from-npy.csv"), ("rows.csv", "from-csv.csv")):
        result = _predict(numpy, folder / source, folder / output)
        assert result.exit_code == 0, result.output
        assert [r["id"] for r in _read(folder / output)] == ["0", "1", "2", "3", "4"]
    refused = _predict(numpy, folder / "rows.npy", folder / "x.csv", "--id-column", "id")
    assert refused.exit_code == 2 and "not trained on a CSV file" in refused.output


def test_an_existing_output_is_refused_before_the_model_loads_unless_overwrite(
    csv_run, monkeypatch
):
    tmp_path, run = csv_run
    output = tmp_path / "kept.csv"
    output.write_text("precious\n")

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    with monkeypatch.context() as patch:
        patch.setattr("trainer.training.saved.load_model", no_model)
        result = _predict(run, tmp_path / "test.csv", output)
    assert result.exit_code == 2
    assert f"--output '{output}' already exists" in result.output and "--overwrite" in result.output
    assert output.read_text() == "precious\n"
    replaced = _predict(run, tmp_path / "test.csv", output, "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert len(_read(output)) == 100
    same = _predict(run, tmp_path / "test.csv", tmp_path / "test.csv", "--overwrite")
    assert same.exit_code == 2 and "is the --input file" in same.output


def test_a_csv_lacking_a_trained_column_is_named(csv_run):
    tmp_path, run = csv_run
    text = (tmp_path / "test.csv").read_text().replace("tenure,", "tenur,", 1)
    (tmp_path / "renamed.csv").write_text(text)
    output = tmp_path / "bad.csv"
    result = _predict(run, tmp_path / "renamed.csv", output)
    assert result.exit_code == 4
    assert "lacks column(s) tenure" in result.output and "did you mean 'tenur'" in result.output
    assert not output.exists()


def test_text_in_a_numeric_column_is_named_with_its_line(csv_run):
    tmp_path, run = csv_run
    lines = (tmp_path / "test.csv").read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[3].split(",")
    cells[header.index("charge")] = "lots"
    lines[3] = ",".join(cells)
    (tmp_path / "typo.csv").write_text("\n".join(lines) + "\n")
    result = _predict(run, tmp_path / "typo.csv", tmp_path / "typo-out.csv")
    assert result.exit_code == 4
    assert "line 4, column 'charge': 'lots' is not a number" in result.output


def test_an_unknown_output_format_is_refused_before_anything_runs(csv_run):
    tmp_path, run = csv_run
    result = _predict(run, tmp_path / "test.csv", tmp_path / "predictions.parquet")
    assert result.exit_code == 2
    assert "unknown format '.parquet'" in result.output


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_numpy_rows_get_the_fit_time_predictions_in_every_format(tmp_path, task):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 3, 2)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.int64) + (x[:, 0, 0] > 1)
    y = y.astype(np.float32) + 0.5 if task == "regression" else y
    np.savez(tmp_path / "data.npz", x=x[:120], y=y[:120], x_test=x[120:], y_test=y[120:])
    run = _fit(
        tmp_path,
        {
            "dataset": {
                "type": "npz",
                "path": str(tmp_path / "data.npz"),
                "x_test": "x_test",
                "y_test": "y_test",
                "task": task,
                "scaling": "standard",
            },
            "model": {"type": "fnn", "units": [8]},
            "training": {"epochs": 2},
        },
    )
    expected = _fit_time_outputs(run)
    np.save(tmp_path / "new.npy", x[120:])
    flat = tmp_path / "new.csv"  # one flattened sample per row, with a header
    flat.write_text(
        "a,b,c,d,e,f\n"
        + "\n".join(",".join(repr(float(v)) for v in row) for row in x[120:].reshape(40, 6))
        + "\n"
    )
    for source, output in (
        (tmp_path / "new.npy", "out.npy"),
        (flat, "out.npz"),
        (tmp_path / "new.npy", "out.csv"),
    ):
        result = _predict(run, source, tmp_path / output)
        assert result.exit_code == 0, result.output
    probabilities = np.load(tmp_path / "out.npy")
    with np.load(tmp_path / "out.npz") as archive:
        from_csv = archive["probabilities" if task != "regression" else "predictions"]
        if task != "regression":
            assert list(archive["predictions"]) == list(probabilities.argmax(axis=1))
    rows = _read(tmp_path / "out.csv")
    if task == "regression":
        table = np.array([[float(r["prediction"])] for r in rows])
    else:
        table = np.array([[float(r[f"probability_{c}"]) for c in ("0", "1", "2")] for r in rows])
    for found in (probabilities, from_csv, table):
        np.testing.assert_allclose(found, expected, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def numpy_run(tmp_path_factory):
    """A one-epoch classifier of 4 numbers, trained from an .npz file."""
    tmp_path = tmp_path_factory.mktemp("numpy")
    x = np.random.default_rng(1).normal(size=(60, 4)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    config = {
        "dataset": {"type": "npz", "path": str(tmp_path / "data.npz")},
        "model": {"type": "fnn", "units": [4]},
        "training": {"epochs": 1},
    }
    return tmp_path, _fit(tmp_path, config)


def test_samples_of_the_wrong_shape_are_refused(numpy_run):
    tmp_path, run = numpy_run
    np.save(tmp_path / "wide.npy", np.zeros((5, 7), dtype=np.float32))
    result = _predict(run, tmp_path / "wide.npy", tmp_path / "out.csv")
    assert result.exit_code == 4
    assert "samples shaped (7,)" in result.output and "the model takes samples shaped (4,)" in (
        result.output
    )


def test_a_folder_of_images_is_read_as_the_run_read_its_images(tmp_path):
    rng = np.random.default_rng(2)
    for label, name in enumerate(["cats", "dogs"]):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 120, (10, 12, 3)) + 120 * label
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "images" / name / f"{i}.png")
    run = _fit(
        tmp_path,
        {
            "dataset": {
                "type": "image_folder",
                "path": str(tmp_path / "images"),
                "image_size": [8, 8],
                "test_split": 0.25,
                "validation_split": 0.0,
            },
            "model": {"type": "fnn", "units": [8]},
            "training": {"epochs": 2},
        },
    )
    new = tmp_path / "new" / "nested"
    new.mkdir(parents=True)
    for i in range(3):  # a different size: resized like the training images
        Image.fromarray(rng.integers(0, 255, (20, 16, 3)).astype(np.uint8)).save(new / f"{i}.png")
    output = tmp_path / "out.csv"
    result = _predict(run, tmp_path / "new", output)
    assert result.exit_code == 0, result.output
    rows = _read(output)
    assert [r["id"] for r in rows] == ["nested/0.png", "nested/1.png", "nested/2.png"]

    import keras

    from trainer.datasets.image_folder import read_images

    model = keras.saving.load_model(run / "model.keras")
    pixels = np.asarray(read_images(sorted(new.glob("*.png")), (8, 8), "rgb"), np.float32) / 255
    expected = np.asarray(model.predict(pixels, verbose=0))[:, 0]
    np.testing.assert_allclose([float(r["probability_dogs"]) for r in rows], expected, atol=1e-6)


def _as_parquet(source: Path, target: Path, **options) -> Path:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    pq.write_table(pcsv.read_csv(source), target, **options)
    return target


def test_csv_gz_parquet_and_a_parquet_folder_get_the_csvs_predictions(csv_run):
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    tmp_path, run = csv_run
    source = tmp_path / "test.csv"
    (tmp_path / "test.csv.gz").write_bytes(gzip.compress(source.read_bytes()))
    _as_parquet(source, tmp_path / "test.parquet", row_group_size=30)
    folder = tmp_path / "parts"
    folder.mkdir()
    table = pcsv.read_csv(source)
    for i, start in enumerate((0, 40, 70)):  # file-name order is row order
        pq.write_table(table.slice(start, {0: 40, 1: 30, 2: 30}[i]), folder / f"p{i}.parquet")
    (folder / "_SUCCESS").write_text("")  # a marker Spark writes: not a data file
    found = {}
    for name in ("test.csv", "test.csv.gz", "test.parquet", "parts"):
        output = tmp_path / f"from-{name}.csv"
        result = _predict(run, tmp_path / name, output)
        assert result.exit_code == 0, (name, result.output)
        assert json.loads(result.stdout)["id_column"] == "id"
        found[name] = _read(output)
    expected = _fit_time_outputs(run)[:, 0]
    for name, rows in found.items():
        assert [r["id"] for r in rows] == [r["id"] for r in found["test.csv"]], name
        assert [r["prediction"] for r in rows] == [r["prediction"] for r in found["test.csv"]]
        got = np.array([float(r["probability_yes"]) for r in rows])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, err_msg=name)


def test_text_in_a_parquet_numeric_column_names_row_group_and_row(csv_run):
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    tmp_path, run = csv_run
    table = pcsv.read_csv(tmp_path / "test.csv")
    charge = [None if v is None else str(v) for v in table.column("charge").to_pylist()]
    charge[37] = "lots"  # row 7 of row group 3 (10 rows a group)
    at = table.schema.get_field_index("charge")
    table = table.set_column(at, "charge", pa.array(charge, pa.string()))
    pq.write_table(table, tmp_path / "typo.parquet", row_group_size=10)
    result = _predict(run, tmp_path / "typo.parquet", tmp_path / "typo-parquet.csv")
    assert result.exit_code == 4, result.output
    assert "typo.parquet, row group 3, row 7, column 'charge': 'lots' is not a number" in (
        " ".join(result.output.split())
    )
    assert not (tmp_path / "typo-parquet.csv").exists()


def test_a_truncated_csv_gz_input_is_a_data_error_naming_the_file(csv_run):
    tmp_path, run = csv_run
    whole = gzip.compress((tmp_path / "test.csv").read_bytes())
    (tmp_path / "cut.csv.gz").write_bytes(whole[: len(whole) // 2])
    result = _predict(run, tmp_path / "cut.csv.gz", tmp_path / "cut-out.csv")
    assert result.exit_code == 4, result.output
    text = " ".join(result.output.split())
    assert "cut.csv.gz" in text and "not a complete gzip file" in text


def test_a_numeric_looking_categorical_column_stays_categorical(csv_run):
    tmp_path, run = csv_run
    with open(tmp_path / "test.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    at = rows[0].index("region")
    for row in rows[1:]:
        row[at] = "7"  # a number, but the run read region as categories
    with open(tmp_path / "numbered-region.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    result = _predict(run, tmp_path / "numbered-region.csv", tmp_path / "numbered-out.csv")
    assert result.exit_code == 0, result.output
    warnings = json.loads(result.stdout)["warnings"]
    assert any("column 'region': 100 row(s)" in w and "'7'" in w for w in warnings), warnings


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "the file is empty"), ("id,tenure,charge,calls,plan,contract,region\n", "no data rows")],
)
def test_an_empty_or_header_only_table_is_refused(csv_run, text, message):
    tmp_path, run = csv_run
    (tmp_path / "hollow.csv").write_text(text)
    result = _predict(run, tmp_path / "hollow.csv", tmp_path / "hollow-out.csv")
    assert result.exit_code == 4 and message in result.output, result.output
