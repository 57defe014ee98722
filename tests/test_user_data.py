"""The user's own data: CSV, NPZ and image folders, preprocessing, imbalance, folds, inspect.

Every dataset here is a few rows written to ``tmp_path``; nothing imports TensorFlow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from trainer.config.loading import load_config, to_yaml
from trainer.core.errors import ConfigError, DataError, UsageError
from trainer.datasets import DATASETS, load
from trainer.datasets.imbalance import class_weights, missing_class_warnings, resample
from trainer.datasets.inspect import inspect
from trainer.datasets.kfold import kfold_indices

ROOT = Path(__file__).resolve().parents[1]


def params(name: str, **overrides):
    return DATASETS.get(name).params(type=name, **overrides)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def rows(count: int, make) -> str:
    return "".join(make(i) + "\n" for i in range(count))


def data_error(*fragments: str):
    """pytest.raises(DataError) that also checks the message holds every fragment."""

    class _Check:
        def __enter__(self):
            self._ctx = pytest.raises(DataError)
            self.info = self._ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            suppressed = self._ctx.__exit__(*exc)
            message = str(self.info.value)
            for fragment in fragments:
                assert fragment in message, (fragment, message)
            return suppressed

    return _Check()


@pytest.fixture
def churn(tmp_path) -> Path:
    """30 rows: numeric and categorical inputs with gaps, a 'yes'/'no' target (1:2)."""
    lines = ["age,plan,income,churn"]
    for i in range(30):
        age = "" if i in (3, 17) else str(20 + i)
        plan = "NA" if i == 5 else ["basic", "plus", "pro"][i % 3]
        income = "" if i == 8 else f"{1000 + 10 * i}.5"
        lines.append(f"{age},{plan},{income},{'yes' if i % 3 == 0 else 'no'}")
    return write(tmp_path / "churn.csv", "\n".join(lines) + "\n")


def churn_params(path: Path, **overrides):
    defaults = {"target": "churn", "missing": "mean", "validation_split": 0.0, "test_split": 0.2}
    return params("csv", path=path, **{**defaults, **overrides})


# --------------------------------------------------------------------------- CSV: tasks


@pytest.mark.parametrize(
    ("target_values", "task", "names"),
    [
        (lambda i: f"{i * 0.37:.2f}", "regression", ()),  # fractional numbers
        (lambda i: str(i * 3), "regression", ()),  # whole numbers, but 40 distinct
        (lambda i: "yes" if i % 2 else "no", "binary", ("no", "yes")),
        (lambda i: str(i % 2 + 1), "binary", ("1", "2")),  # numeric classes keep their values
        (lambda i: ["cat", "dog", "emu"][i % 3], "multiclass", ("cat", "dog", "emu")),
        (lambda i: str(i % 4), "multiclass", ("0", "1", "2", "3")),
    ],
    ids=["fractional", "many-integers", "yes-no", "one-two", "three-names", "four-integers"],
)
def test_csv_task_is_inferred_from_the_target(tmp_path, target_values, task, names):
    path = write(tmp_path / "d.csv", "x,y\n" + rows(40, lambda i: f"{i},{target_values(i)}"))
    p = params("csv", path=path, target="y")
    assert p.task() == task
    ds = load(p, seed=0)
    assert ds.spec.task == task
    assert ds.spec.class_names == names


def test_csv_task_can_be_stated(tmp_path):
    path = write(tmp_path / "d.csv", "x,y\n" + rows(40, lambda i: f"{i},{i % 2}"))
    p = params("csv", path=path, target="y", task="multiclass")
    assert p.task() == "multiclass" and load(p, seed=0).spec.num_classes == 2
    p = params("csv", path=path, target="y", task="regression")
    assert load(p, seed=0).y_train.dtype == np.float32
    assert p.model_dump(mode="json")["task"] == "regression"  # the YAML key, not task_type


def test_csv_stated_task_must_fit_the_target(tmp_path):
    path = write(tmp_path / "d.csv", "x,y\n" + rows(30, lambda i: f"{i},{'abc'[i % 3]}"))
    with data_error("holds 3 classes, but task is binary", "multiclass"):
        load(params("csv", path=path, target="y", task="binary"), seed=0)
    with data_error(f"{path}, line 2, target column 'y': 'a' is not a number"):
        load(params("csv", path=path, target="y", task="regression"), seed=0)


def test_csv_text_typo_in_a_numeric_target_names_its_line(tmp_path):
    text = "x,y\n" + rows(30, lambda i: f"{i},{'2.5O' if i == 11 else i * 0.5}")
    path = write(tmp_path / "d.csv", text)
    with data_error("line 13, target column 'y': '2.5O' is not a"):  # a data error (exit 4)
        params("csv", path=path, target="y")  # task: auto reads the target while validating


def test_csv_single_valued_target_is_refused_while_validating(tmp_path):
    path = write(tmp_path / "d.csv", "x,y\n" + rows(10, lambda i: f"{i},same"))
    with data_error("holds a single value"):
        params("csv", path=path, target="y")


# --------------------------------------------------------------------------- CSV: columns


def test_csv_column_types_are_inferred_and_overridable(tmp_path):
    text = "id,zip,size,colour,y\n" + rows(
        30, lambda i: f"{i},{1000 + i % 3},{i * 0.5},{'rgb'[i % 3]},{i % 2}"
    )
    path = write(tmp_path / "d.csv", text)
    default = load(params("csv", path=path, target="y", validation_split=0.0), seed=0)
    assert [c["type"] for c in default.preprocessing["columns"]] == [
        "numeric", "numeric", "numeric", "categorical",
    ]  # fmt: skip
    overridden = params(
        "csv", path=path, target="y", validation_split=0.0,
        columns={"id": "ignore", "zip": "categorical"},
    )  # fmt: skip
    ds = load(overridden, seed=0)
    assert ds.preprocessing["features"] == [
        "zip=1000", "zip=1001", "zip=1002", "size", "colour=b", "colour=g", "colour=r",
    ]  # fmt: skip
    assert ds.spec.input_shape == (7,)


def test_csv_onehot_and_integer_encodings(tmp_path):
    path = write(tmp_path / "d.csv", "c,y\n" + rows(30, lambda i: f"{'rgb'[i % 3]},{i % 2}"))
    onehot = load(params("csv", path=path, target="y", validation_split=0.0), seed=0)
    assert onehot.spec.input_shape == (3,)
    assert set(onehot.x_train.sum(axis=1)) == {1.0}  # exactly one category per row
    integer = load(
        params("csv", path=path, target="y", validation_split=0.0, encoding="integer"), seed=0
    )
    assert integer.spec.input_shape == (1,)
    assert set(integer.x_train[:, 0]) == {0.0, 1.0, 2.0}  # b, g, r: sorted, not scaled
    np.testing.assert_array_equal(integer.x_train[:, 0], onehot.x_train.argmax(axis=1))


def test_csv_standard_scaling_applies_to_numeric_columns_only(churn):
    ds = load(churn_params(churn), seed=0)
    age = ds.preprocessing["features"].index("age")
    assert abs(ds.x_train[:, age].mean()) < 1e-5
    assert ds.x_train[:, age].std() == pytest.approx(1.0, abs=1e-5)
    plan = [i for i, f in enumerate(ds.preprocessing["features"]) if f.startswith("plan=")]
    assert set(np.unique(ds.x_train[:, plan])) == {0.0, 1.0}
    assert ds.scaling["method"] == "standard" and len(ds.scaling["mean"]) == 5


def test_csv_categories_unseen_in_training_encode_as_zeros_with_a_warning(tmp_path):
    train = write(tmp_path / "train.csv", "c,y\n" + rows(20, lambda i: f"{'ab'[i % 2]},{i % 2}"))
    test = write(tmp_path / "test.csv", "c,y\nz,0\na,1\n")
    p = params("csv", path=train, test_path=test, target="y", validation_split=0.0)
    ds = load(p, seed=0)
    np.testing.assert_array_equal(ds.x_test, [[0, 0], [1, 0]])
    assert any("categories the training split lacks ('z')" in w for w in ds.warnings)


# --------------------------------------------------------------------------- CSV: errors


def test_csv_file_not_found(tmp_path):
    missing = tmp_path / "nowhere.csv"
    with data_error(f"{missing}: file not found") as info:
        load(params("csv", path=missing, target="y", task="binary"), seed=0)
    assert "current directory" in info.value.hint


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\xff\xfe\x00garbage\x89PNG\x00\x00", "not UTF-8 text"),
        (b"", "the file is empty"),
        (b"x,y\n", "has a header but no data rows"),
        (b"x,x,y\n1,2,3\n", "line 1: column 'x' appears twice"),
        (b"x,,y\n1,2,3\n", "line 1: column 2 of the header has no name"),
        (b'x,y\n1,2\n"3,4\n', "line 3: 1 fields, but the header has 2"),
        (b"x,y\n1,2\n3,4,5\n", "line 3: 3 fields, but the header has 2"),
    ],
    ids=["binary", "empty", "header-only", "duplicate", "unnamed", "open-quote", "extra-field"],
)
def test_csv_unreadable_files(tmp_path, content, fragment):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with data_error(str(path), fragment):
        load(params("csv", path=path, target="y", task="binary"), seed=0)


def test_csv_directory_is_not_a_file(tmp_path):
    with data_error(str(tmp_path), "is a directory, not a regular file"):
        load(params("csv", path=tmp_path, target="y", task="binary"), seed=0)


def test_csv_missing_target_column_suggests_the_nearest(churn):
    with data_error(f"{churn}: no target column 'chrun'", "did you mean 'churn'?"):
        load(churn_params(churn, target="chrun", task="binary"), seed=0)
    with data_error("did you mean 'churn'"):  # while validating
        churn_params(churn, target="chrun")


def test_csv_wrong_delimiter_is_hinted(tmp_path):
    path = write(tmp_path / "d.csv", "x;y\n1;0\n2;1\n3;0\n4;1\n")
    with data_error("no target column 'y'") as info:
        load(params("csv", path=path, target="y", task="binary"), seed=0)
    assert "delimiter" in info.value.hint
    ds = load(params("csv", path=path, target="y", task="binary", delimiter=";",
                     test_split=0.5, validation_split=0.0), seed=0)  # fmt: skip
    assert ds.sizes()["train"] == 2


def test_csv_text_in_a_numeric_column_names_line_and_value(tmp_path):
    text = "x,y\n" + rows(20, lambda i: f"{'1O' if i == 6 else i},{i % 2}")
    path = write(tmp_path / "d.csv", text)
    with data_error(f"{path}, line 8, column 'x': text '1O' in a numeric column",
                    "19 of its 20 values are numbers") as info:  # fmt: skip
        load(params("csv", path=path, target="y"), seed=0)
    assert "columns: {x: categorical}" in info.value.hint


def test_csv_text_in_a_column_declared_numeric(tmp_path):
    path = write(tmp_path / "d.csv", "x,y\n1,0\n2,1\nthree,0\n4,1\n")
    with data_error(f"{path}, line 4, column 'x': 'three' is not a number"):
        load(params("csv", path=path, target="y", columns={"x": "numeric"}), seed=0)


def test_csv_infinite_value_names_its_line(tmp_path):
    path = write(tmp_path / "d.csv", "x,y\n1,0\n-inf,1\n")
    with data_error(f"{path}, line 3, column 'x': '-inf' is not a finite number"):
        load(params("csv", path=path, target="y"), seed=0)


def test_csv_unknown_column_in_overrides(churn):
    with data_error("dataset.columns names 'agee'", "did you mean 'age'?"):
        load(churn_params(churn, columns={"agee": "numeric"}), seed=0)
    with data_error("missing.columns names 'incme'", "did you mean 'income'?"):
        load(churn_params(churn, missing={"strategy": "mean", "columns": {"incme": "median"}}),
             seed=0)  # fmt: skip


def test_csv_id_like_text_column_is_refused(tmp_path):
    path = write(tmp_path / "d.csv", "name,y\n" + rows(1200, lambda i: f"user{i},{i % 2}"))
    with data_error("column 'name' holds text with more than 1000 distinct values") as info:
        load(params("csv", path=path, target="y"), seed=0)
    assert "columns: {name: ignore}" in info.value.hint


def test_csv_single_example_class_under_stratification(tmp_path):
    text = "x,y\n" + rows(20, lambda i: f"{i},{'rare' if i == 4 else 'ab'[i % 2]}")
    path = write(tmp_path / "d.csv", text)
    with data_error("class 'rare' has a single example among 20 samples",
                    "stratified test split"):  # fmt: skip
        load(params("csv", path=path, target="y"), seed=0)


def test_csv_empty_target_cells_are_named_by_line(tmp_path):
    path = write(
        tmp_path / "d.csv", "x,y\n" + rows(10, lambda i: f"{i},{'' if i in (2, 7) else i % 2}")
    )
    with data_error(f"{path}: target column 'y' is empty on line(s) 4, 9"):
        load(params("csv", path=path, target="y", task="binary"), seed=0)
    p = params("csv", path=path, target="y", task="binary", test_split=0.25,
               validation_split=0.0, missing={"columns": {"y": "drop"}})  # fmt: skip
    ds = load(p, seed=0)
    assert sum(ds.sizes().values()) == 8
    assert any("dropped 2 of 10 rows" in w for w in ds.warnings)


# --------------------------------------------------------------------------- missing values


def test_missing_values_without_a_strategy_name_columns_and_counts(churn):
    with data_error("missing values in columns without a strategy",
                    f"{churn}: age (2), plan (1), income (1)") as info:  # fmt: skip
        load(churn_params(churn, missing=None), seed=0)
    assert "dataset.missing" in info.value.hint


def _train_column(churn, **overrides):
    """The training split's raw 'age' and 'plan' next to their transformed values."""
    p = churn_params(churn, scaling="none", test_split=0.2, **overrides)
    ds = load(p, seed=0)
    return ds, ds.preprocessing["columns"]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("mean", "mean"), ("median", "median"), ("most_frequent", "mode"), ("constant", "zero")],
)
def test_each_fill_strategy_uses_training_statistics(churn, strategy, expected):
    ds, columns = _train_column(churn, missing=strategy)
    age = columns[0]
    features = ds.preprocessing["features"]
    raw = np.array([20.0 + i for i in range(30) if i not in (3, 17)])
    train_ages = ds.x_train[:, features.index("age")]
    if expected == "zero":
        assert age["fill"] == 0.0
        assert (train_ages == 0.0).sum() >= 1  # at least one gap lies in the training split
    else:  # computed on the training split only: it holds some but not all of the ages
        present = train_ages[np.isin(train_ages, raw)]
        want = {"mean": present.mean(), "median": np.median(present), "mode": present.min()}
        assert age["fill"] == pytest.approx(float(want[expected]), rel=1e-6)
    plan = columns[1]
    if strategy == "constant":
        assert plan["fill"] == "missing" and "missing" in plan["categories"]
    else:  # mean and median fall back to the most frequent category for text columns
        assert plan["fill"] in ("basic", "plus", "pro") and plan["missing"] == "most_frequent"


def test_constant_fill_value_and_per_column_strategies(churn):
    missing = {"strategy": "constant", "fill_value": -1, "columns": {"plan": "most_frequent"}}
    _, columns = _train_column(churn, missing=missing)
    assert columns[0]["fill"] == -1.0 and columns[2]["fill"] == -1.0
    assert columns[1]["missing"] == "most_frequent" and columns[1]["fill"] != "-1"


def test_constant_text_fill_for_a_numeric_column_is_an_error(churn):
    with data_error("column 'age' is numeric but missing.fill_value is 'unknown'"):
        load(churn_params(churn, missing={"strategy": "constant", "fill_value": "unknown"}),
             seed=0)  # fmt: skip


def test_mean_of_a_categorical_column_is_an_error(churn):
    with data_error("'median' does not apply to the categorical column 'plan'"):
        load(churn_params(churn, missing={"strategy": "mean", "columns": {"plan": "median"}}),
             seed=0)  # fmt: skip


def test_drop_strategy_removes_rows_everywhere(churn):
    ds = load(churn_params(churn, missing="drop"), seed=0)
    assert sum(ds.sizes().values()) == 26  # four rows have a gap
    assert any("dropped 4 of 30 rows with missing values" in w for w in ds.warnings)
    by_column = {"strategy": "mean", "columns": {"age": "drop"}}
    per_column = load(churn_params(churn, missing=by_column), seed=0)
    assert sum(per_column.sizes().values()) == 28


def test_column_without_training_values_is_non_finite_after_imputation(tmp_path):
    train = write(tmp_path / "train.csv", "x,z,y\n" + rows(10, lambda i: f"{i},,{i % 2}"))
    test = write(tmp_path / "test.csv", "x,z,y\n1,5,0\n2,6,1\n")
    p = params("csv", path=train, test_path=test, target="y", missing="median",
               validation_split=0.0)  # fmt: skip
    with data_error("column 'z' has no values in the training split", "non-finite") as info:
        load(p, seed=0)
    assert "constant" in info.value.hint


def test_missing_shorthand_and_target_fill_is_refused(churn):
    assert churn_params(churn, missing="median").missing.strategy == "median"
    with pytest.raises(ValidationError, match="can only be dropped"):
        churn_params(churn, missing={"columns": {"churn": "most_frequent"}})


# --------------------------------------------------------------------------- re-application


def test_saved_preprocessing_is_reapplied_as_given(churn):
    fitted = load(churn_params(churn), seed=0)
    saved = json.loads(json.dumps(fitted.preprocessing))  # JSON-able, as a run saves it
    again = load(churn_params(churn), seed=0, preprocessing=saved)
    for attr in ("x_train", "x_test", "y_train", "y_test"):
        np.testing.assert_array_equal(getattr(again, attr), getattr(fitted, attr))

    changed = json.loads(json.dumps(saved))
    age = changed["columns"][0]
    age.update(fill=100.0, offset=10.0, scale=2.0)  # not what this data would give
    changed["columns"][1].update(categories=["basic", "pro"], fill="pro")  # 'plus' is unseen
    reapplied = load(churn_params(churn), seed=0, preprocessing=changed)
    assert reapplied.preprocessing is changed
    assert reapplied.spec.input_shape == (4,)  # age, plan=basic, plan=pro, income
    raw = load(churn_params(churn, scaling="none", missing="constant"), seed=0)
    raw_age = raw.x_train[:, 0]  # gaps filled with 0 here: they become 100 there
    expected = (np.where(raw_age == 0.0, 100.0, raw_age) - 10.0) / 2.0
    np.testing.assert_allclose(reapplied.x_train[:, 0], expected, rtol=1e-6)
    plus = raw.x_train[:, raw.preprocessing["features"].index("plan=plus")] == 1.0
    assert (reapplied.x_train[plus][:, 1:3] == 0).all()  # unseen: all zeros
    assert any("categories the training split lacks ('plus')" in w for w in reapplied.warnings)


def test_saved_class_names_fix_the_label_order(tmp_path):
    path = write(tmp_path / "d.csv", "x,y\n" + rows(20, lambda i: f"{i},{'ab'[i % 2]}"))
    p = params("csv", path=path, target="y", validation_split=0.0)
    fitted = load(p, seed=0)
    saved = {**fitted.preprocessing, "class_names": ["b", "a"]}
    swapped = load(p, seed=0, preprocessing=saved)
    np.testing.assert_array_equal(swapped.y_test, 1 - fitted.y_test)
    assert swapped.spec.class_names == ("b", "a")
    with data_error("the data holds class 'a', which the preprocessing given"):
        load(p, seed=0, preprocessing={**fitted.preprocessing, "class_names": ["b", "c"]})


def test_saved_preprocessing_must_fit_the_data(churn, tmp_path):
    fitted = load(churn_params(churn), seed=0)
    other = write(tmp_path / "o.csv", "age,plan,churn\n" + rows(20, lambda i: f"{i},a,{i % 2}"))
    with data_error("does not fit this data", "the data lacks column(s) income"):
        load(params("csv", path=other, target="churn", validation_split=0.0), seed=0,
             preprocessing=fitted.preprocessing)  # fmt: skip
    with data_error("is for a 'table' dataset, not an array one"):
        load(params("digits", limit=100), seed=0, preprocessing=fitted.preprocessing)


def test_array_scaling_is_reapplied_as_given(tmp_path):
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.normal(5.0, 2.0, size=(40, 3)), y=np.arange(40) % 2)
    p = params("npz", path=path, scaling="standard", validation_split=0.0)
    fitted = load(p, seed=0)
    assert fitted.preprocessing["kind"] == "array"
    assert fitted.preprocessing["scaling"]["method"] == "standard"
    changed = json.loads(json.dumps(fitted.preprocessing))
    changed["scaling"].update(mean=[1.0, 2.0, 3.0], std=[2.0, 2.0, 2.0])
    reapplied = load(p, seed=0, preprocessing=changed)
    raw = load(params("npz", path=path, scaling="none", validation_split=0.0), seed=0)
    np.testing.assert_allclose(reapplied.x_test, (raw.x_test - [1, 2, 3]) / 2, rtol=1e-6)
    assert reapplied.scaling["mean"] == [1.0, 2.0, 3.0]
    changed["scaling"]["mean"] = [0.0, 0.0]
    with data_error("scales samples shaped (2,)"):
        load(p, seed=0, preprocessing=changed)


# --------------------------------------------------------------------------- named files


def test_csv_named_split_files(tmp_path):
    header = "x,c,y\n"
    train = write(tmp_path / "train.csv", header + rows(20, lambda i: f"{i},{'pq'[i % 2]},{i % 2}"))
    val = write(tmp_path / "val.csv", header + rows(6, lambda i: f"{i},p,{i % 2}"))
    test = write(tmp_path / "test.csv", "y,c,x\n" + rows(4, lambda i: f"{i % 2},q,{i}"))
    p = params("csv", path=train, validation_path=val, test_path=test, target="y")
    ds = load(p, seed=0)
    assert ds.sizes() == {"train": 20, "validation": 6, "test": 4}
    np.testing.assert_array_equal(ds.y_test, [0, 1, 0, 1])  # read in file order
    np.testing.assert_array_equal(ds.x_test[:, 1:], [[0, 1]] * 4)  # columns matched by name


def test_csv_split_files_must_share_columns(tmp_path):
    train = write(tmp_path / "train.csv", "x,z,y\n" + rows(10, lambda i: f"{i},{i},{i % 2}"))
    test = write(tmp_path / "test.csv", "x,w,y\n1,2,0\n")
    with data_error(f"{test}: its columns differ", "it lacks z", "it adds w"):
        load(params("csv", path=train, test_path=test, target="y", validation_split=0), seed=0)


def test_csv_split_file_option_conflicts(churn):
    with pytest.raises(ValidationError, match="give validation_path or validation_split"):
        churn_params(churn, validation_path=churn, validation_split=0.3)


def test_a_class_missing_from_a_split_is_a_warning(tmp_path):
    train = write(tmp_path / "train.csv", "x,y\n" + rows(12, lambda i: f"{i},{'abc'[i % 3]}"))
    test = write(tmp_path / "test.csv", "x,y\n1,a\n2,b\n")
    ds = load(params("csv", path=train, test_path=test, target="y", validation_split=0), seed=0)
    assert ds.warnings == ["the test split has no example of class 'c'"]
    assert missing_class_warnings({"train": np.array([0, 0]), "validation": None}, ["a", "b"]) == [
        "the train split has no example of class 'b'"
    ]


# --------------------------------------------------------------------------- NPZ


def npz(tmp_path: Path, name: str = "d.npz", **arrays) -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.fixture
def xy():
    rng = np.random.default_rng(1)
    return {"x": rng.normal(size=(40, 4)).astype(np.float32), "y": np.arange(40) % 3}


def test_npz_loads_by_key_with_inferred_task(tmp_path, xy):
    ds = load(params("npz", path=npz(tmp_path, **xy)), seed=0)
    assert ds.spec.task == "multiclass" and ds.spec.class_names == ("0", "1", "2")
    assert ds.spec.input_shape == (4,) and sum(ds.sizes().values()) == 40
    assert ds.scaling == {"method": "none"}
    regression = npz(tmp_path, "r.npz", features=xy["x"], target=xy["x"][:, 0] * 1.5)
    p = params("npz", path=regression, x="features", y="target")
    assert p.task() == "regression" and load(p, seed=0).y_train.shape[1] == 1
    text = npz(tmp_path, "t.npz", x=xy["x"], y=np.array(["cat", "dog"] * 20))
    assert load(params("npz", path=text), seed=0).spec.class_names == ("cat", "dog")
    sparse = npz(tmp_path, "s.npz", x=xy["x"], y=(np.arange(40) % 2) * 5)  # labels 0 and 5
    assert params("npz", path=sparse).task() == "multiclass"


def test_npz_test_arrays_and_split_files(tmp_path, xy):
    path = npz(tmp_path, x=xy["x"], y=xy["y"], xt=xy["x"][:9], yt=xy["y"][:9])
    ds = load(params("npz", path=path, x_test="xt", y_test="yt", validation_split=0.0), seed=0)
    assert ds.sizes() == {"train": 40, "validation": 0, "test": 9}
    val = npz(tmp_path, "v.npz", x=xy["x"][:6], y=xy["y"][:6])
    ds = load(params("npz", path=path, validation_path=val, test_path=val), seed=0)
    assert ds.sizes() == {"train": 40, "validation": 6, "test": 6}
    with pytest.raises(ValidationError, match="give both x_test and y_test"):
        params("npz", path=path, x_test="xt")


def test_npz_missing_key_lists_the_available_ones(tmp_path, xy):
    path = npz(tmp_path, features=xy["x"], labels=xy["y"])
    with data_error(f"{path}: no array 'x'", "holds features, labels"):
        load(params("npz", path=path, task="multiclass"), seed=0)
    with data_error("no array 'label'", "did you mean 'labels'?"):
        load(params("npz", path=path, x="features", y="label", task="multiclass"), seed=0)


def test_npz_object_array_is_refused(tmp_path, xy):
    path = tmp_path / "o.npz"
    np.savez(path, x=xy["x"], y=np.array([{"label": 1}] * 40, dtype=object))
    with data_error(f"{path}: array 'y' holds Python objects"):
        load(params("npz", path=path, task="binary"), seed=0)


def test_npz_length_mismatch(tmp_path, xy):
    path = npz(tmp_path, x=xy["x"], y=xy["y"][:39])
    with data_error(f"{path}: 'x' has 40 samples but its labels have 39"):
        load(params("npz", path=path), seed=0)


def test_npz_non_finite_features(tmp_path, xy):
    xy["x"][7, 2] = np.nan
    xy["x"][9, 0] = np.inf
    path = npz(tmp_path, **xy)
    with data_error(f"{path}: 'x' holds non-finite values", "2 sample(s)", "index 7"):
        load(params("npz", path=path), seed=0)


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        (np.array([-1, 1] * 20), "holds label -1 at index 0"),
        (np.array([0.0, 1.0, 2.5, 1.0] * 10), "holds label 2.5 at index 2"),
    ],
    ids=["negative", "fractional"],
)
def test_npz_classification_labels_must_be_class_indices(tmp_path, xy, labels, fragment):
    path = npz(tmp_path, x=xy["x"], y=labels)
    with data_error(fragment, "non-negative whole numbers"):
        load(params("npz", path=path, task="multiclass"), seed=0)


def test_npz_unreadable(tmp_path):
    path = write(tmp_path / "d.npz", "not a zip")
    with data_error(f"{path}: not a readable .npz archive"):
        load(params("npz", path=path, task="binary"), seed=0)
    with data_error("file not found"):
        load(params("npz", path=tmp_path / "none.npz", task="binary"), seed=0)


# --------------------------------------------------------------------------- image folders


def image_folder(tmp_path: Path, classes=("dogs", "cats"), count=6, size=(10, 8)) -> Path:
    from PIL import Image

    root = tmp_path / "images"
    rng = np.random.default_rng(2)
    for c, name in enumerate(classes):
        folder = root / name / "nested"
        folder.mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
            pixels[..., 0] = 200 * c  # the class shows in the red channel
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_image_folder_follows_keras_conventions(tmp_path):
    root = image_folder(tmp_path)
    (root / "cats" / "notes.txt").write_text("not an image")  # ignored, as Keras does
    (root / ".ipynb_checkpoints").mkdir()  # hidden: not a class
    p = params("image_folder", path=root, image_size=[4, 5], validation_split=0.0,
               test_split=0.25, scaling="none")  # fmt: skip
    assert p.task() == "binary"
    ds = load(p, seed=0)
    assert ds.spec.class_names == ("cats", "dogs")  # sorted
    assert ds.spec.input_shape == (4, 5, 3) and sum(ds.sizes().values()) == 12
    red = ds.x_train[..., 0].mean(axis=(1, 2))
    np.testing.assert_allclose(red, np.where(ds.y_train == 0, 200.0, 0.0), atol=1.0)  # cats
    grey = load(params("image_folder", path=root, image_size=[4, 5], color_mode="grayscale"),
                seed=0)  # fmt: skip
    assert grey.spec.input_shape == (4, 5, 1) and grey.x_train.max() <= 1.0  # unit scaling


def test_image_folder_errors(tmp_path):
    root = image_folder(tmp_path, count=2)
    bad = root / "cats" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with data_error(f"{bad}: not a readable image"):
        load(params("image_folder", path=root, image_size=[4, 4]), seed=0)
    bad.unlink()
    (root / "emus").mkdir()
    with data_error(f"{root / 'emus'}: class folder holds no images"):
        load(params("image_folder", path=root, image_size=[4, 4]), seed=0)
    with data_error("found only 'a'"):
        (tmp_path / "one" / "a").mkdir(parents=True)
        params("image_folder", path=tmp_path / "one")
    with pytest.raises(ValidationError, match="not regression"):
        params("image_folder", path=root, task="regression")


# --------------------------------------------------------------------------- imbalance


@pytest.fixture
def imbalanced(tmp_path) -> Path:
    return write(tmp_path / "i.csv", "x,y\n" + rows(100, lambda i: f"{i},{int(i % 10 == 0)}"))


@pytest.mark.parametrize("method", ["oversample", "undersample"])
def test_resampling_changes_only_the_training_split(imbalanced, method):
    base = {"path": imbalanced, "target": "y", "test_split": 0.2, "validation_split": 0.2}
    plain = load(params("csv", **base), seed=0)
    balanced = load(params("csv", resample=method, **base), seed=0)
    counts = np.bincount(plain.y_train)
    assert list(np.bincount(balanced.y_train)) == [counts.max() if method == "oversample"
                                                   else counts.min()] * 2  # fmt: skip
    for attr in ("x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(balanced, attr), getattr(plain, attr))
    again = load(params("csv", resample=method, **base), seed=0)
    np.testing.assert_array_equal(again.x_train, balanced.x_train)
    rows_of_plain = {tuple(r) for r in plain.x_train}
    assert {tuple(r) for r in balanced.x_train} <= rows_of_plain


def test_resample_function_is_seeded():
    x, y = np.arange(10)[:, None], np.array([0] * 8 + [1] * 2)
    same = resample(x, y, "none", 0)
    assert same[0] is x and same[1] is y
    first, again = resample(x, y, "oversample", 1), resample(x, y, "oversample", 1)
    np.testing.assert_array_equal(first[0], again[0])
    assert np.bincount(first[1]).tolist() == [8, 8]


def test_class_weights():
    y = np.array([0] * 90 + [1] * 10)
    assert class_weights(y, "none") is None
    balanced = class_weights(y, "balanced", ["no", "yes"])
    assert balanced == pytest.approx({0: 100 / 180, 1: 100 / 20})
    assert class_weights(y, {"yes": 9.0}, ["no", "yes"]) == {0: 1.0, 1: 9.0}
    assert class_weights(y, {1: 4.0}, ["no", "yes"]) == {0: 1.0, 1: 4.0}
    assert class_weights(np.array([0, 0, 2]), "balanced", ["a", "b", "c"]) == pytest.approx(
        {0: 0.75, 1: 1.0, 2: 1.5}
    )  # every index gets a weight; an absent class weighs 1
    with pytest.raises(UsageError, match="no class 'yse'; did you mean 'yes'"):
        class_weights(y, {"yse": 2.0}, ["no", "yes"])


def test_class_weight_and_resample_in_the_config(tmp_path, imbalanced):
    def config(text: str):
        return load_config(write(tmp_path / "c.yaml", text))

    base = f"dataset:\n  type: csv\n  path: {imbalanced}\n  target: y\n"
    cfg = config(base + "  resample: oversample\ntraining:\n  class_weight: {'1': 9.0}\n")
    assert cfg.training.class_weight == {"1": 9.0} and cfg.task == "binary"
    assert "  task: auto\n" in to_yaml(cfg)  # saved under the key the user writes
    assert config(base + "training: {class_weight: balanced}\n").training.class_weight == "balanced"
    with pytest.raises(ConfigError, match="YAML reads yes, no, true and false as booleans"):
        config(base + "training:\n  class_weight: {yes: 9.0}\n")
    regression = base.replace("target: y", "target: x") + "  task: regression\n"
    with pytest.raises(ConfigError) as info:
        config(regression + "  resample: undersample\ntraining: {class_weight: balanced}\n")
    assert "dataset.resample (line 6): applies to classification" in str(info.value)
    assert "training.class_weight (line 7): applies to classification" in str(info.value)


def test_config_reports_an_unreadable_csv_at_the_dataset_key(tmp_path):
    text = f"dataset:\n  type: csv\n  path: {tmp_path / 'none.csv'}\n  target: y\n"
    with pytest.raises(DataError, match=r"c.yaml: dataset \(line 1\): cannot infer the task: "
                                        ".*file not found"):  # fmt: skip
        load_config(write(tmp_path / "c.yaml", text))


# --------------------------------------------------------------------------- k-fold


def test_kfold_indices_cover_every_sample_and_stratify():
    y = np.array([0] * 30 + [1] * 10)
    folds = kfold_indices(y, 5, seed=3)
    assert len(folds) == 5
    validation = np.concatenate([v for _, v in folds])
    assert sorted(validation.tolist()) == list(range(40))
    for train, val in folds:
        assert not set(train) & set(val)
        assert np.bincount(y[val]).tolist() == [6, 2]
    again = kfold_indices(y, 5, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    other = kfold_indices(y, 5, seed=4)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))
    plain = kfold_indices(np.linspace(0, 1, 10), 3, seed=0)  # regression: plain folds
    assert sorted(len(v) for _, v in plain) == [3, 3, 4]


def test_kfold_errors():
    with data_error("class 1 has 2 example(s), fewer than the 3 folds"):
        kfold_indices(np.array([0] * 10 + [1] * 2), 3, seed=0)
    assert len(kfold_indices(np.array([0] * 10 + [1] * 2), 3, seed=0, stratified=False)) == 3
    with data_error("k-fold needs k >= 2"):
        kfold_indices(np.zeros(5), 1, seed=0)
    with data_error("cannot make 6 folds from 5 samples"):
        kfold_indices(np.zeros(5), 6, seed=0)


# --------------------------------------------------------------------------- inspect


def test_inspect_csv_reports_columns_missing_values_and_problems(churn):
    report = inspect(churn_params(churn, missing=None, validation_split=0.2), seed=0)
    json.dumps(report)  # JSON-able
    assert report["rows"] == 30 and report["task"] == "binary"
    assert [(c["name"], c["role"], c["type"]) for c in report["columns"]] == [
        ("age", "feature", "numeric"), ("plan", "feature", "categorical"),
        ("income", "feature", "numeric"), ("churn", "target", "binary"),
    ]  # fmt: skip
    assert report["missing"] == {"age": 2, "plan": 1, "income": 1}
    assert report["classes"] == {"no": 20, "yes": 10}
    assert report["splits"] is None
    assert len(report["problems"]) == 1 and "without a strategy" in report["problems"][0]

    fixed = inspect(churn_params(churn, validation_split=0.2), seed=0)
    assert fixed["problems"] == [] and fixed["splits"] == {"train": 19, "validation": 5, "test": 6}
    assert fixed["class_balance"]["test"] == {"no": 4, "yes": 2}
    assert fixed["features"] == ["age", "plan=basic", "plan=plus", "plan=pro", "income"]
    assert fixed["input_shape"] == [5]


def test_inspect_other_datasets(tmp_path, xy):
    report = inspect(params("npz", path=npz(tmp_path, **xy), validation_split=0.0), seed=0)
    assert report["rows"] == 40 and report["classes"] == {"0": 14, "1": 13, "2": 13}
    assert report["splits"] == {"train": 32, "validation": 0, "test": 8}
    assert report["files"] == {"train": {"path": str(tmp_path / "d.npz")}}
    regression = inspect(params("synthetic_linear", samples=20), seed=0)
    assert set(regression["target_summary"]) == {"min", "max", "mean", "std"}
    broken = inspect(params("npz", path=write(tmp_path / "b.npz", "x"), task="binary"))
    assert "not a readable .npz archive" in broken["problems"][0]


# --------------------------------------------------------------------------- shipped examples


def test_shipped_example_data_is_what_the_script_makes(tmp_path):
    script = ROOT / "configs" / "data" / "make_examples.py"
    namespace: dict = {"__name__": "make_examples", "__file__": str(script)}
    exec(compile(script.read_text(), str(script), "exec"), namespace)
    for name, make in (("imbalanced.csv", "imbalanced"), ("regression.csv", "regression")):
        namespace["write"](tmp_path / name, namespace[make]())
        shipped = ROOT / "configs" / "data" / name
        assert (tmp_path / name).read_bytes() == shipped.read_bytes(), name
        assert shipped.stat().st_size < 20_000  # a few KB


def test_shipped_imbalanced_example(monkeypatch):
    monkeypatch.chdir(ROOT)  # the configs name their data relative to the repository root
    cfg = load_config("configs/csv_imbalanced.yaml")
    report = inspect(cfg.dataset, seed=cfg.seed)
    assert report["problems"] == [] and report["classes"] == {"no": 360, "yes": 40}
    assert set(report["missing"]) == {"tenure", "charge", "contract", "region"}
    balanced = load_config("configs/csv_imbalanced_balanced.yaml")
    assert balanced.training.class_weight == "balanced"
    assert balanced.dataset == cfg.dataset
    regression = load_config("configs/csv_regression.yaml")
    assert regression.task == "regression" and inspect(regression.dataset)["problems"] == []


def test_user_data_loading_does_not_import_tensorflow(churn):
    # named test file and no validation split: no scikit-learn split either, so this is quick
    code = (
        "import sys\n"
        "from trainer.datasets import DATASETS, load\n"
        "from trainer.datasets.inspect import inspect\n"
        f"p = DATASETS.get('csv').params(type='csv', path={str(churn)!r}, target='churn',"
        f" test_path={str(churn)!r}, validation_split=0.0, missing='mean')\n"
        "load(p, 0)\n"
        "assert not inspect(p)['problems']\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
