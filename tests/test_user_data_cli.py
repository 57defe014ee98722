"""Users' CSV data end to end: each missing-value strategy trains, `eval` re-applies the saved
transform, and class weights lift the minority class's recall on the shipped example."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from trainer.cli.commands import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _config(**changes):
    data = yaml.safe_load((ROOT / "configs" / "csv_imbalanced.yaml").read_text())
    data["dataset"]["path"] = str(ROOT / "configs" / "data" / "imbalanced.csv")
    data["training"]["epochs"] = 3
    for key, value in changes.items():
        section, _, name = key.partition(".")
        data[section][name] = value
    return data


def _fit(tmp_path, data, name="run"):
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
    run = tmp_path / name
    result = runner.invoke(app, ["fit", str(tmp_path / f"{name}.yaml"), "--run-dir", str(run),
                                 "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return run, json.loads(result.stdout)


@pytest.mark.parametrize("strategy", ["mean", "median", "most_frequent", "constant", "drop"])
def test_every_missing_strategy_trains_and_eval_reapplies_the_saved_transform(tmp_path, strategy):
    missing = {"strategy": strategy}
    if strategy == "constant":
        missing["fill_value"] = 0
    if strategy in ("mean", "median"):  # categorical columns need a categorical strategy
        missing["columns"] = {"contract": "most_frequent", "region": "most_frequent"}
    run, metrics = _fit(tmp_path, _config(**{"dataset.missing": missing}))
    saved = json.loads((run / "preprocessing.json").read_text())
    assert saved, "the fitted transform is saved beside the model"
    result = runner.invoke(app, ["eval", str(run), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == metrics  # same predictions, to the last bit


def test_eval_uses_the_saved_statistics_not_refitted_ones(tmp_path):
    run, metrics = _fit(tmp_path, _config())
    path = run / "preprocessing.json"
    saved = json.loads(path.read_text())
    numeric = next(c for c in saved["columns"] if c["type"] == "numeric")
    numeric["fill"] = 1e6  # a doctored imputation value must change eval's predictions
    numeric["offset"] = numeric.get("offset", 0.0) + 1e3
    path.write_text(json.dumps(saved))
    result = runner.invoke(app, ["eval", str(run), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["test"] != metrics["test"]


def test_balanced_class_weight_lifts_minority_recall(tmp_path):
    shipped = yaml.safe_load((ROOT / "configs" / "csv_imbalanced_balanced.yaml").read_text())
    plain = _config(**{"training.epochs": shipped["training"]["epochs"]})
    weighted = _config(**{"training.epochs": shipped["training"]["epochs"],
                          "training.class_weight": "balanced"})  # fmt: skip
    _, unweighted_metrics = _fit(tmp_path, plain, "plain")
    _, weighted_metrics = _fit(tmp_path, weighted, "weighted")
    recall = lambda m: m["per_class"]["yes"]["recall"]  # noqa: E731
    assert recall(weighted_metrics) > recall(unweighted_metrics)
