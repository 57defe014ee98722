"""Top-k accuracy (multiclass): the report's value is scikit-learn's definition, Keras logs it
every epoch under the same name, and a task it does not fit is a config error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from trainer.cli.commands import app
from trainer.evaluation.metrics import classification_metrics

runner = CliRunner()


@pytest.mark.parametrize("k", [3, 5])
def test_top_k_accuracy_is_scikit_learns(k):
    from sklearn.metrics import top_k_accuracy_score

    rng = np.random.default_rng(k)
    proba = rng.dirichlet(np.ones(7), size=200)
    y = rng.integers(0, 7, size=200)
    name = f"top_{k}_accuracy"
    got = classification_metrics("multiclass", y, proba, (), ["accuracy", name])["test"][name]
    assert got == pytest.approx(top_k_accuracy_score(y, proba, k=k, labels=list(range(7))))
    assert got > classification_metrics("multiclass", y, proba, (), ["accuracy"])["test"][
        "accuracy"]  # fmt: skip


def test_top_k_is_logged_every_epoch_and_early_stopping_can_watch_it(tmp_path):
    config = {"dataset": {"type": "digits", "limit": 300}, "training": {"epochs": 3},
              "metrics": ["accuracy", "top_3_accuracy"],
              "early_stopping": {"monitor": "val_top_3_accuracy", "patience": 5}}  # fmt: skip
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["fit", str(tmp_path / "c.yaml"), "--run-dir",
                                 str(tmp_path / "run"), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    header = (tmp_path / "run" / "history.csv").read_text().splitlines()[0].split(",")
    assert {"top_3_accuracy", "val_top_3_accuracy"} <= set(header)
    test = json.loads(result.stdout)["test"]
    assert test["accuracy"] <= test["top_3_accuracy"] <= 1.0


def test_top_k_on_a_binary_task_is_a_config_error(tmp_path):
    (tmp_path / "c.yaml").write_text("dataset: synthetic_classification\n"
                                     "metrics: [top_5_accuracy]\n")  # fmt: skip
    result = runner.invoke(app, ["config", "validate", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2
    assert "'top_5_accuracy' does not apply to the binary task" in " ".join(result.output.split())
