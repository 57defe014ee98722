"""Config validation: every bad config is refused with a message that says where and why.

Nothing here trains or imports TensorFlow (except the activation check at the end, which
needs Keras). Most cases are tables of ``(yaml text, fragments the message must contain)``;
line numbers in the fragments count from the first line of the YAML text.
"""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from trainer.cli.commands import app
from trainer.config.loading import apply_overrides, load_config, parse_yaml
from trainer.core.errors import EXIT_OK, EXIT_USAGE, ConfigError, UsageError
from trainer.datasets import DATASETS
from trainer.models import MODELS, Activation
from trainer.optimizers import OPTIMIZERS
from trainer.settings.vocabulary import CLASSIFICATION_METRICS, REGRESSION_METRICS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.fixture
def write(tmp_path):
    """Write YAML text to a file in a fresh directory and return its path."""

    def _write(text: str, name: str = "cfg.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def problem(write):
    """The single problem reported for a config (and any --set overrides)."""

    def _problem(text: str, *overrides: str) -> str:
        with pytest.raises(ConfigError) as caught:
            load_config(write(text), list(overrides))
        problems = caught.value.problems
        assert len(problems) == 1, problems
        return problems[0]

    return _problem


def assert_fragments(message: str, fragments: tuple[str, ...]) -> None:
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def cases(*rows):
    """pytest.param rows from (id, yaml text, *fragments) tuples."""
    return [pytest.param(text, tuple(fragments), id=name) for name, text, *fragments in rows]


# --- unknown keys: the key path, its line and the nearest valid key ------------------------

UNKNOWN_KEYS = cases(
    ("top-level typo", "dataset: digits\noptimiser: adam\n",
     "optimiser (line 2)", "unknown key 'optimiser'", "did you mean 'optimizer'?"),
    ("top-level no close match", "dataset: digits\nqqq: 3\n",
     "qqq (line 2)", "unknown key 'qqq'", "valid: checkpoint, dataset, deterministic"),
    ("training", "dataset: digits\ntraining:\n  epoch: 3\n",
     "training.epoch (line 3)", "did you mean 'epochs'?", "batch_size", "eval_batch_size"),
    ("dataset", "dataset:\n  type: digits\n  limt: 3\n",
     "dataset.limt (line 3)", "did you mean 'limit'?",
     "valid: augmentation, limit, scaling, test_split, type, validation_split"),
    ("dataset-specific key", "dataset:\n  type: synthetic_linear\n  sample: 10\n",
     "dataset.sample (line 3)", "did you mean 'samples'?"),
    ("optimizer", "dataset: digits\noptimizer:\n  type: adam\n  learning_rat: 0.1\n",
     "optimizer.learning_rat (line 4)", "did you mean 'learning_rate'?", "beta_1"),
    ("optimizer subclass keys", "dataset: digits\noptimizer: {type: adamw, weight_decy: 0.1}\n",
     "optimizer.weight_decy (line 2)", "did you mean 'weight_decay'?"),
    ("key of another optimizer", "dataset: digits\noptimizer:\n  type: sgd\n  momentum: 0.5\n",
     "optimizer.momentum (line 4)", "unknown key 'momentum'",
     "valid: clipnorm, clipvalue, global_clipnorm, learning_rate, schedule, type"),
    ("schedule", "dataset: digits\noptimizer:\n  type: adam\n  schedule:\n"
     "    type: cosine\n    alph: 0.1\n",
     "optimizer.schedule.alph (line 6)", "did you mean 'alpha'?"),
    ("early_stopping", "dataset: digits\nearly_stopping:\n  monitr: loss\n",
     "early_stopping.monitr (line 3)", "did you mean 'monitor'?"),
    ("regularization", "dataset: digits\nregularization:\n  l3: 0.1\n",
     "regularization.l3 (line 3)", "unknown key 'l3'", "valid: dropout, l1, l2"),
    ("model without that hyperparameter", "dataset: digits\nmodel:\n  type: linear\n"
     "  units: [3]\n",
     "model.units (line 4)", "unknown key 'units'", "valid: type"),
    ("model", "dataset: digits\nmodel:\n  type: fnn\n  activations: relu\n",
     "model.activations (line 4)", "did you mean 'activation'?"),
)  # fmt: skip


@pytest.mark.parametrize(("text", "fragments"), UNKNOWN_KEYS)
def test_unknown_key(problem, text, fragments):
    assert_fragments(problem(text), fragments)


# --- unknown or missing component types ------------------------------------------------------

UNKNOWN_TYPES = cases(
    ("dataset shorthand", "dataset: digts\n",
     "dataset.type (line 1)", "unknown dataset type 'digts'", "did you mean 'digits'?",
     "valid: " + ", ".join(DATASETS.names())),
    ("dataset mapping", "seed: 1\ndataset:\n  type: mnst\n",
     "dataset.type (line 3)", "unknown dataset type 'mnst'", "did you mean 'mnist'?"),
    ("model shorthand", "dataset: digits\nmodel: fn\n",
     "model.type (line 2)", "unknown model type 'fn'", "did you mean 'fnn'?",
     "valid: " + ", ".join(MODELS.names())),
    ("model mapping", "dataset: digits\nmodel:\n  type: lineer\n",
     "model.type (line 3)", "unknown model type 'lineer'", "did you mean 'linear'?"),
    ("optimizer shorthand", "dataset: digits\noptimizer: adm\n",
     "optimizer.type (line 2)", "unknown optimizer type 'adm'", "did you mean 'adam'?",
     "valid: " + ", ".join(OPTIMIZERS.names())),
    ("optimizer mapping", "dataset: digits\noptimizer:\n  type: rmsprp\n",
     "optimizer.type (line 3)", "did you mean 'rmsprop'?"),
    ("schedule", "dataset: digits\noptimizer:\n  type: adam\n  schedule:\n    type: cosin\n",
     "optimizer.schedule.type (line 5)", "unknown schedule type 'cosin'",
     "did you mean 'cosine'?", "valid: cosine, exponential, step"),
    ("dataset without type", "dataset:\n  limit: 3\n",
     "dataset (line 1)", "needs a 'type' key naming the dataset"),
    ("schedule without type", "dataset: digits\noptimizer:\n  type: adam\n  schedule:\n"
     "    decay_epochs: 3\n",
     "optimizer.schedule (line 4)", "needs a 'type' key naming the schedule"),
    ("no dataset at all", "seed: 1\n", "dataset: is required but missing"),
)  # fmt: skip


@pytest.mark.parametrize(("text", "fragments"), UNKNOWN_TYPES)
def test_unknown_type(problem, text, fragments):
    assert_fragments(problem(text), fragments)


# --- values of the wrong type ----------------------------------------------------------------

WRONG_TYPES = cases(
    ("int as word", "dataset: digits\ntraining:\n  epochs: ten\n",
     "training.epochs (line 3)", "must be a valid integer", "(got 'ten')"),
    ("fractional int", "dataset: digits\nseed: 1.5\n",
     "seed (line 2)", "fractional part", "(got 1.5)"),
    ("scalar for list", "dataset: digits\nmodel:\n  type: fnn\n  units: 8\n",
     "model.units (line 4)", "must be a valid list", "(got 8)"),
    ("list item", "dataset: digits\nmodel:\n  type: fnn\n  units:\n    - 8\n    - x\n",
     "model.units.1 (line 6)", "must be a valid integer", "(got 'x')"),
    ("bool", "dataset: digits\ndeterministic: maybe\n",
     "deterministic (line 2)", "must be a valid boolean", "(got 'maybe')"),
    ("string for list", "dataset: digits\nmetrics: accuracy\n",
     "metrics (line 2)", "must be a valid list", "(got 'accuracy')"),
    ("scalar for section", "dataset: digits\nregularization: 0.1\n",
     "regularization (line 2)", "must be a valid dictionary", "(got 0.1)"),
    ("number for component", "dataset: 3\n", "dataset (line 1)", "must be a valid dictionary"),
    ("number for name", "dataset: digits\nname: 42\n",
     "name (line 2)", "must be a valid string", "(got 42)"),
    ("activation", "dataset: digits\nmodel:\n  type: fnn\n  activation: rleu\n",
     "model.activation (line 4)", "got 'rleu'", "did you mean 'relu'?"),
    ("device", "dataset: digits\ntraining:\n  device: gpuu\n",
     "training.device (line 3)", "got 'gpuu'", "did you mean 'gpu'?", "valid: auto, cpu, gpu"),
    ("metric name", "dataset: digits\nmetrics: [accuracy, acuracy]\n",
     "metrics.1 (line 2)", "got 'acuracy'", "did you mean 'accuracy'?"),
    ("loss name", "dataset: digits\nloss: mean_squared_eror\n",
     "loss.type (line 2)", "did you mean 'mean_squared_error'?"),
    ("scaling", "dataset:\n  type: digits\n  scaling: standrd\n",
     "dataset.scaling (line 3)", "did you mean 'standard'?"),
    ("bool batch size", "dataset: digits\ntraining:\n  batch_size: true\n",
     "training.batch_size (line 3)", "must be a positive integer or 'full' (got True)"),
)  # fmt: skip


@pytest.mark.parametrize(("text", "fragments"), WRONG_TYPES)
def test_wrong_type(problem, text, fragments):
    assert_fragments(problem(text), fragments)


# --- values out of range ---------------------------------------------------------------------

OUT_OF_RANGE = cases(
    ("negative learning rate", "dataset: digits\noptimizer:\n  type: adam\n"
     "  learning_rate: -0.1\n",
     "optimizer.learning_rate (line 4)", "must be greater than 0", "(got -0.1)"),
    ("zero learning rate", "dataset: digits\noptimizer: {type: sgd, learning_rate: 0}\n",
     "optimizer.learning_rate (line 2)", "must be greater than 0", "(got 0)"),
    ("validation_split 1.5", "dataset:\n  type: digits\n  validation_split: 1.5\n",
     "dataset.validation_split (line 3)", "must be less than 1", "(got 1.5)"),
    ("test_split 0", "dataset: {type: digits, test_split: 0}\n",
     "dataset.test_split (line 1)", "must be greater than 0"),
    ("limit 0", "dataset: {type: digits, limit: 0}\n",
     "dataset.limit (line 1)", "must be greater than or equal to 1"),
    ("zero epochs", "dataset: digits\ntraining:\n  epochs: 0\n",
     "training.epochs (line 3)", "must be greater than or equal to 1", "(got 0)"),
    ("batch_size 0", "dataset: digits\ntraining:\n  batch_size: 0\n",
     "training.batch_size (line 3)", "must be a positive integer or 'full' (got 0)"),
    ("batch_size negative", "dataset: digits\ntraining:\n  batch_size: -8\n",
     "training.batch_size (line 3)", "(got -8)"),
    ("batch_size 'ful'", "dataset: digits\ntraining:\n  batch_size: ful\n",
     "training.batch_size (line 3)", "must be a positive integer or 'full' (got 'ful')"),
    ("dropout 1", "dataset: digits\nregularization:\n  dropout: 1.0\n",
     "regularization.dropout (line 3)", "must be less than 1"),
    ("negative l2", "dataset: digits\nregularization:\n  l2: -0.1\n",
     "regularization.l2 (line 3)", "must be greater than or equal to 0"),
    ("beta_1 of 1", "dataset: digits\noptimizer:\n  type: adam\n  beta_1: 1.0\n",
     "optimizer.beta_1 (line 4)", "must be less than 1"),
    ("negative patience", "dataset: digits\nearly_stopping:\n  patience: -1\n",
     "early_stopping.patience (line 3)", "must be greater than or equal to 0"),
    ("negative seed", "dataset: digits\nseed: -1\n", "seed (line 2)", "(got -1)"),
    ("seed too large", "dataset: digits\nseed: 4294967296\n",
     "seed (line 2)", "must be less than 4294967296"),
    ("empty units", "dataset: digits\nmodel:\n  type: fnn\n  units: []\n",
     "model.units (line 4)", "at least 1 item"),
    ("name with path", "dataset: digits\nname: ../../x\n",
     "name (line 2)", "cannot hold '/'", "got '../../x'"),
    ("name with space", "dataset: digits\nname: my run\n", "name (line 2)", "got 'my run'"),
    ("dataset's own check", "dataset:\n  type: synthetic_classification\n  features: 2\n"
     "  informative: 3\n",
     "dataset (line 1)", "informative (3) exceeds features (2)"),
)  # fmt: skip


@pytest.mark.parametrize(("text", "fragments"), OUT_OF_RANGE)
def test_out_of_range(problem, text, fragments):
    assert_fragments(problem(text), fragments)


# --- rules that span sections ----------------------------------------------------------------

CROSS_CHECKS = cases(
    ("monitor a report-only metric", "dataset: digits\nearly_stopping:\n  monitor: val_f1\n",
     "early_stopping.monitor (line 3)", "'val_f1' is not logged during training",
     "'f1' is computed only in the final report",
     "valid: accuracy, loss, val_accuracy, val_loss"),
    ("monitor val_ without validation", "dataset:\n  type: digits\n  validation_split: 0\n"
     "early_stopping:\n  monitor: val_loss\n",
     "early_stopping.monitor (line 5)", "'val_loss' is not logged during training",
     "dataset.validation_split is 0, so nothing is validated", "did you mean 'loss'?"),
    ("monitor typo", "dataset: digits\nearly_stopping:\n  monitor: val_acuracy\n",
     "early_stopping.monitor (line 3)", "did you mean 'val_accuracy'?"),
    ("monitor a metric not configured", "dataset:\n  type: synthetic_linear\nmetrics: [mse]\n"
     "early_stopping:\n  monitor: val_mae\n",
     "early_stopping.monitor (line 5)", "'val_mae' is not logged",
     "valid: loss, mse, val_loss, val_mse"),
    ("regression metric on classification", "dataset: digits\nmetrics: [accuracy, r2]\n",
     "metrics.1 (line 2)", "'r2' does not apply to the multiclass task of dataset 'digits'",
     "use one of: accuracy, precision, recall, f1, auc"),
    ("classification metric on regression", "dataset:\n  type: synthetic_linear\n"
     "metrics:\n  - mse\n  - accuracy\n",
     "metrics.1 (line 5)", "'accuracy' does not apply to the regression task",
     "use one of: mse, mae, rmse, r2"),
    ("metric twice", "dataset: digits\nmetrics: [accuracy, accuracy]\n",
     "metrics (line 2)", "lists a metric twice"),
    ("regression loss on classification", "dataset: digits\nloss: mean_squared_error\n",
     "loss (line 2)", "'mean_squared_error' does not fit the multiclass task of dataset "
     "'digits'", "use one of: categorical_crossentropy, ", "sparse_categorical_crossentropy",
     "leave loss out"),
    ("multiclass loss on binary", "dataset:\n  type: synthetic_classification\n"
     "loss: sparse_categorical_crossentropy\n",
     "loss (line 3)", "does not fit the binary task",
     "use one of: binary_crossentropy, binary_focal_crossentropy, hinge"),
    ("classification loss on regression", "dataset: synthetic_linear\nloss: hinge\n",
     "loss (line 2)", "does not fit the regression task",
     "use one of: huber, log_cosh, mean_absolute_error, "),
    ("gd with integer batch_size", "dataset: digits\noptimizer: gd\ntraining:\n"
     "  batch_size: 64\n",
     "training.batch_size (line 4)", "optimizer 'gd' is full-batch gradient descent",
     "batch_size is 64", "set batch_size: full, or use optimizer 'sgd'"),
    ("gd with the default batch_size stated", "dataset: digits\noptimizer: gd\n"
     "training: {batch_size: 32}\n",
     "training.batch_size (line 3)", "batch_size is 32"),
    ("dropout on linear", "dataset: digits\nmodel: linear\nregularization:\n  dropout: 0.2\n",
     "regularization.dropout (line 4)", "model 'linear' does not use dropout",
     "this model applies: l1, l2"),
)  # fmt: skip


@pytest.mark.parametrize(("text", "fragments"), CROSS_CHECKS)
def test_cross_section_rule(problem, text, fragments):
    assert_fragments(problem(text), fragments)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("dataset: digits\noptimizer: gd\n", id="gd alone"),
        pytest.param(
            "dataset: digits\noptimizer: gd\ntraining: {batch_size: full}\n", id="gd full batch"
        ),
        pytest.param(
            "dataset: digits\nmodel: linear\nregularization: {l1: 0.1, l2: 0.1}\n",
            id="linear with l1 and l2",
        ),
        pytest.param(
            "dataset: digits\nearly_stopping: {monitor: val_accuracy}\n", id="monitor val_accuracy"
        ),
        pytest.param(
            "dataset: synthetic_classification\nearly_stopping: {monitor: val_auc}\n",
            id="binary monitors val_auc",
        ),
        pytest.param(
            "dataset: {type: digits, validation_split: 0}\nearly_stopping: {monitor: loss}\n",
            id="monitor loss without validation",
        ),
        pytest.param(
            "dataset: synthetic_linear\nmetrics: [r2]\nloss: huber\n",
            id="regression metric and loss",
        ),
        pytest.param("dataset: digits\nearly_stopping:\n", id="early_stopping null"),
    ],
)
def test_valid_combinations_pass(write, text):
    load_config(write(text))


def test_every_problem_is_reported_in_line_order(write):
    text = (
        "dataset: digits\n"
        "optimizer:\n"
        "  type: adam\n"
        "  learning_rate: -1\n"
        "epoch: 3\n"
        "training:\n"
        "  epochs: 0\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(text))
    problems = caught.value.problems
    assert [p.split(" (")[0] for p in problems] == [
        "optimizer.learning_rate",
        "epoch",
        "training.epochs",
    ]
    assert "(line 4)" in problems[0] and "(line 5)" in problems[1] and "(line 7)" in problems[2]
    assert "(3 problems)" in str(caught.value)


# --- YAML itself: syntax, duplicates, tags, aliases, shape -----------------------------------

bomb_lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
for level in "bcdefghi":
    previous = chr(ord(level) - 1)
    bomb_lines.append(f"{level}: &{level} [{', '.join(['*' + previous] * 9)}]")
BILLION_LAUGHS = "\n".join(bomb_lines) + "\ndataset: digits\n"

YAML_PROBLEMS = cases(
    ("bad indentation", "dataset: digits\ntraining:\n  epochs: 3\n batch_size: 4\n",
     "YAML syntax error at line 4, column 2", "expected <block end>"),
    ("unclosed flow list", "dataset: digits\nmodel:\n  units: [8, 4\n",
     "YAML syntax error at line 4", "expected ',' or ']'"),
    ("tab indentation", "dataset: digits\n\tseed: 1\n",
     "YAML syntax error at line 2, column 1", "'\\t'"),
    ("two documents", "dataset: digits\n---\nseed: 1\n",
     "YAML syntax error at line 2", "expected a single document"),
    ("undefined alias", "dataset: digits\nseed: *nope\n",
     "YAML syntax error at line 2", "undefined alias 'nope'"),
    ("duplicate top-level key", "dataset: digits\nseed: 1\nseed: 2\n",
     "line 3: duplicate key 'seed' (first defined at line 2)", "keep one of them"),
    ("duplicate nested key", "dataset: digits\ntraining:\n  epochs: 1\n  batch_size: 8\n"
     "  epochs: 2\n",
     "line 5: duplicate key 'epochs' (first defined at line 3)"),
    ("python object tag", "dataset: digits\nseed: !!python/object:os.system {}\n",
     "line 2: unsupported YAML tag !!python/object:os.system",
     "configs hold only plain mappings"),
    ("python apply tag", "dataset: !!python/object/apply:os.system ['echo hacked']\n",
     "line 1: unsupported YAML tag !!python/object/apply:os.system"),
    ("python name tag", "dataset: digits\nmodel: !!python/name:os.system ''\n",
     "line 2: unsupported YAML tag !!python/name:os.system"),
    ("local tag", "dataset: !digits {}\n", "line 1: unsupported YAML tag !digits"),
    ("billion laughs", BILLION_LAUGHS,
     "expands to more than 100000 values through YAML aliases", "alias bomb"),
    ("recursive alias", "dataset: digits\nloop: &loop [1, *loop]\n",
     "line 2: a YAML alias makes this value contain itself", "cannot be recursive"),
    ("deep nesting", "dataset: digits\nx: " + "[" * 2000 + "]" * 2000 + "\n",
     "nests too deeply"),
    ("empty file", "", "is empty; a config needs at least a 'dataset' key"),
    ("only comments", "# nothing here\n\n", "is empty"),
    ("empty document", "---\n", "is empty"),
    ("top-level list", "- dataset: digits\n", "must be a mapping of keys to values, not a list"),
    ("top-level string", "digits\n", "must be a mapping of keys to values, not a str"),
)  # fmt: skip


@pytest.mark.parametrize(("text", "fragments"), YAML_PROBLEMS)
def test_yaml_problem(problem, text, fragments):
    assert_fragments(problem(text), fragments)


def test_parse_yaml_names_the_source():
    with pytest.raises(ConfigError) as caught:
        parse_yaml("dataset: digits\ndataset: mnist\n", "inline.yaml")
    assert str(caught.value).startswith("invalid config inline.yaml (1 problem):")
    assert caught.value.problems == [
        "line 2: duplicate key 'dataset' (first defined at line 1); keep one of them"
    ]


def test_parse_yaml_records_line_numbers():
    data, lines = parse_yaml("# header\ndataset: digits\nmodel:\n  units:\n    - 8\n", "x")
    assert data == {"dataset": "digits", "model": {"units": [8]}}
    assert lines[("dataset",)] == 2
    assert lines[("model", "units")] == 4
    assert lines[("model", "units", 0)] == 5


def test_shared_aliases_below_the_limit_are_fine(write):
    text = "dataset: digits\nmodel: &m {type: fnn, units: [8]}\n"
    assert load_config(write(text)).model.units == [8]


# --- files -----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.source == str(path)
    assert caught.value.problems == ["file not found; check the path"]
    assert str(path) in str(caught.value)


def test_directory(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert caught.value.problems == ["is a directory, not a regular file"]


def test_undecodable_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"dataset: d\xefgits\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert_fragments(caught.value.problems[0], ("line 1, column 11", "0xef", "UTF-8"))


@pytest.mark.parametrize(
    ("filename", "expected"),
    [("digits.yaml", "digits"), ("my config.yaml", "my-config"), (".hidden.yaml", "hidden")],
)
def test_name_defaults_to_a_safe_file_stem(write, filename, expected):
    assert load_config(write("dataset: digits\n", filename)).name == expected


# --- shorthand and defaults ------------------------------------------------------------------


def test_bare_string_shorthand(write):
    cfg = load_config(write("dataset: digits\nmodel: linear\noptimizer: adam\n"))
    assert (cfg.dataset.type, cfg.model.type, cfg.optimizer.type) == ("digits", "linear", "adam")
    assert cfg.optimizer.learning_rate == 0.001
    assert cfg.dataset.validation_split == 0.1


@pytest.mark.parametrize(
    ("dataset", "metrics", "loss"),
    [
        ("digits", list(CLASSIFICATION_METRICS), "sparse_categorical_crossentropy"),
        ("synthetic_classification", list(CLASSIFICATION_METRICS), "binary_crossentropy"),
        ("synthetic_linear", list(REGRESSION_METRICS), "mean_squared_error"),
    ],
)
def test_task_defaults(write, dataset, metrics, loss):
    cfg = load_config(write(f"dataset: {dataset}\n"))
    assert cfg.metrics == metrics
    assert cfg.loss.type == loss
    assert cfg.model.type == "fnn" and cfg.training.epochs == 10


# --- --set overrides -------------------------------------------------------------------------

BAD_OVERRIDES = [
    pytest.param("seed", ("--set 'seed': expected KEY.PATH=VALUE",), id="no equals sign"),
    pytest.param("=3", ("expected KEY.PATH=VALUE",), id="no key"),
    pytest.param(
        "training..epochs=3",
        ("--set 'training..epochs=3'", "KEY.PATH=VALUE"),
        id="empty middle part",
    ),
    pytest.param("training.=3", ("expected KEY.PATH=VALUE",), id="empty last part"),
    pytest.param(".seed=3", ("expected KEY.PATH=VALUE",), id="empty first part"),
    pytest.param(
        "seed.value=3",
        ("--set 'seed.value=3'", "'seed' holds", "not a section with keys"),
        id="into a scalar",
    ),
    pytest.param("model.units.first=3", ("'model.units' holds a list",), id="into a list"),
    pytest.param(
        "model.units=[8, 4",
        ("--set 'model.units=[8, 4'", "YAML syntax error"),
        id="bad YAML value",
    ),
]


@pytest.mark.parametrize(("override", "fragments"), BAD_OVERRIDES)
def test_bad_override(override, fragments):
    data, lines = parse_yaml("dataset: digits\nseed: 1\nmodel:\n  units: [8]\n", "x.yaml")
    with pytest.raises(UsageError) as caught:
        apply_overrides(data, [override], lines)
    assert caught.value.exit_code == EXIT_USAGE
    assert_fragments(str(caught.value), fragments)


def test_bad_override_hint():
    with pytest.raises(UsageError) as caught:
        apply_overrides({}, ["learning_rate"], {})
    assert caught.value.hint == "for example --set optimizer.learning_rate=0.05"


GOOD_OVERRIDES = [
    pytest.param("dataset: digits\n", ["dataset.limit=10"],
                 {"dataset.limit": 10, "dataset.type": "digits"}, id="into bare dataset"),
    pytest.param("dataset: digits\noptimizer: sgd\n", ["optimizer.learning_rate=0.5"],
                 {"optimizer.type": "sgd", "optimizer.learning_rate": 0.5},
                 id="into bare optimizer"),
    pytest.param("dataset: digits\n", ["model.units=[8,4]"],
                 {"model.type": "fnn", "model.units": [8, 4]}, id="list into absent model"),
    pytest.param("dataset: digits\n", ["optimizer.learning_rate=0.05"],
                 {"optimizer.type": "adam", "optimizer.learning_rate": 0.05},
                 id="into absent optimizer"),
    pytest.param("dataset: digits\n", ["optimizer=gd", "training.batch_size=full"],
                 {"optimizer.type": "gd", "training.batch_size": "full"}, id="replace section"),
    pytest.param("dataset: digits\n", ["dataset=synthetic_linear"],
                 {"dataset.type": "synthetic_linear", "metrics": list(REGRESSION_METRICS)},
                 id="change dataset"),
    pytest.param("dataset: digits\nseed: 1\n", [" seed = 5 "], {"seed": 5}, id="spaces"),
    pytest.param("dataset: digits\n", ["metrics=[accuracy, f1]"],
                 {"metrics": ["accuracy", "f1"]}, id="list of strings"),
    pytest.param("dataset: digits\nearly_stopping:\n", ["early_stopping.patience=5"],
                 {"early_stopping.patience": 5, "early_stopping.monitor": "val_loss"},
                 id="into null section"),
    pytest.param("dataset: digits\n", ["optimizer.schedule.type=cosine"],
                 {"optimizer.schedule.type": "cosine"}, id="creates nested sections"),
    pytest.param("dataset: digits\nname: a\n", ["name=b", "name=c"], {"name": "c"},
                 id="last one wins"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "overrides", "expected"), GOOD_OVERRIDES)
def test_good_override(write, text, overrides, expected):
    cfg = load_config(write(text), overrides)
    for dotted, value in expected.items():
        actual = cfg
        for part in dotted.split("."):
            actual = getattr(actual, part)
        assert actual == value, dotted


OVERRIDE_PROBLEMS = [
    pytest.param(["optimizer.learning_rate=-1"],
                 ("optimizer.learning_rate (--set)", "must be greater than 0"), id="range"),
    pytest.param(["training.epohcs=3"],
                 ("training.epohcs (--set)", "did you mean 'epochs'?"), id="unknown key"),
    pytest.param(["dataset.limt=3"],
                 ("dataset.limt (--set)", "did you mean 'limit'?"), id="unknown dataset key"),
    pytest.param(["optimizer=adm"],
                 ("optimizer.type (--set)", "did you mean 'adam'?"), id="unknown type"),
    pytest.param(["optimizer=gd", "training.batch_size=64"],
                 ("training.batch_size (--set)", "optimizer 'gd' is full-batch"), id="gd"),
    pytest.param(["early_stopping.monitor=val_f1"],
                 ("early_stopping.monitor (--set)", "'val_f1' is not logged"), id="monitor"),
    pytest.param(["metrics=[r2]"], ("metrics.0 (--set)", "'r2' does not apply"), id="metric"),
    pytest.param(["name=../../x"], ("name (--set)", "got '../../x'"), id="name"),
    pytest.param(["training.epochs.x=3"], ("training.epochs (--set)", "valid integer"),
                 id="below a scalar field"),
    pytest.param(["dataset.type=digts"], ("dataset.type (--set)", "did you mean 'digits'?"),
                 id="type of file's section"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "fragments"), OVERRIDE_PROBLEMS)
def test_overridden_key_is_located_at_set(problem, overrides, fragments):
    message = problem("dataset: digits\nseed: 1\n", *overrides)
    assert_fragments(message, fragments)
    assert "(line " not in message


def test_override_keeps_file_lines_for_other_keys(problem):
    message = problem("dataset: digits\ntraining:\n  epochs: 0\n", "training.batch_size=8")
    assert_fragments(message, ("training.epochs (line 3)",))


def test_override_without_dataset_still_needs_a_type(problem):
    message = problem("seed: 1\n", "dataset.limit=3")
    assert_fragments(message, ("dataset (--set)", "needs a 'type' key naming the dataset"))


# --- the CLI: config validate / show / schema ------------------------------------------------

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_cli_validate_ok(write):
    path = write("dataset: digits\n")
    result = invoke("config", "validate", path)
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout == f"ok  {path}\n"
    assert result.stderr == ""


def test_cli_validate_reports_every_file(write, tmp_path):
    good = write("dataset: digits\n", "good.yaml")
    bad = write("dataset: digits\ntraining:\n  epoch: 3\n", "bad.yaml")
    result = invoke("config", "validate", bad, tmp_path / "missing.yaml", good)
    assert result.exit_code == EXIT_USAGE
    assert result.stdout == f"ok  {good}\n"
    assert_fragments(result.stderr, (
        f"error: invalid config {bad} (1 problem)",
        "training.epoch (line 3): unknown key 'epoch'; did you mean 'epochs'?",
        f"invalid config {tmp_path / 'missing.yaml'}", "file not found",
    ))  # fmt: skip
    assert "Traceback" not in result.output


def test_cli_validate_applies_overrides(write):
    path = write("dataset: digits\n")
    result = invoke("config", "validate", path, "--set", "training.epochs=0")
    assert result.exit_code == EXIT_USAGE
    assert_fragments(result.stderr, ("training.epochs (--set)", "greater than or equal to 1"))


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        pytest.param(("--set", "epochs"), ("--set 'epochs': expected KEY.PATH=VALUE",
                                           "hint: for example"), id="no equals"),
        pytest.param(("--set", "seed.x=1"), ("'seed' holds",), id="into scalar"),
        pytest.param(("--set", "model=fn"), ("model.type (--set)", "did you mean 'fnn'?"),
                     id="bad type"),
    ],
)  # fmt: skip
def test_cli_show_bad_override(write, args, fragments):
    result = invoke("config", "show", write("dataset: digits\nseed: 1\n"), *args)
    assert result.exit_code == EXIT_USAGE
    assert result.stdout == ""
    assert_fragments(result.stderr, ("error: ", *fragments))


def test_cli_show_fills_defaults(write):
    result = invoke("config", "show", write("dataset: digits\n", "quick.yaml"))
    assert result.exit_code == EXIT_OK, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["name"] == "quick"
    assert shown["seed"] == 42
    assert shown["training"]["epochs"] == 10
    assert shown["training"]["batch_size"] == 32
    assert shown["metrics"] == list(CLASSIFICATION_METRICS)
    assert shown["loss"] == {"type": "sparse_categorical_crossentropy"}
    assert shown["dataset"] == {
        "type": "digits", "validation_split": 0.1, "test_split": 0.2, "limit": None,
        "scaling": "default", "augmentation": None,
    }  # fmt: skip
    assert shown["model"]["type"] == "fnn" and shown["model"]["units"] == [128, 64]
    assert list(shown["optimizer"])[0] == "type" and shown["optimizer"]["type"] == "adam"
    assert shown["early_stopping"] is None


def test_cli_show_regression_defaults_and_overrides(write):
    path = write("dataset: synthetic_linear\n")
    result = invoke("config", "show", path, "--set", "model.units=[8,4]",
                    "--set", "training.epochs=3")  # fmt: skip
    assert result.exit_code == EXIT_OK, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["metrics"] == list(REGRESSION_METRICS)
    assert shown["loss"] == {"type": "mean_squared_error"}
    assert shown["model"]["units"] == [8, 4]
    assert shown["training"]["epochs"] == 3


def test_cli_show_output_is_a_valid_config(write, tmp_path):
    first = invoke("config", "show", write("dataset: digits\noptimizer: sgd\n"))
    again = tmp_path / "resolved.yaml"
    again.write_text(first.stdout, encoding="utf-8")
    second = invoke("config", "show", again)
    assert second.exit_code == EXIT_OK, second.output
    assert second.stdout == first.stdout


def test_cli_show_bad_config(write):
    result = invoke("config", "show", write("dataset: digts\n"))
    assert result.exit_code == EXIT_USAGE
    assert "dataset.type (line 1): unknown dataset type 'digts'" in result.stderr
    assert "did you mean 'digits'?" in result.stderr


def test_cli_schema():
    result = invoke("config", "schema")
    assert result.exit_code == EXIT_OK, result.output
    schema = json.loads(result.stdout)
    assert schema["title"] == "trainer config"
    assert schema["required"] == ["dataset"]
    assert {"dataset", "model", "optimizer", "training", "early_stopping"} <= set(
        schema["properties"]
    )
    assert schema["additionalProperties"] is False
    text = json.dumps(schema)
    for name in ("digits", "synthetic_linear", "fnn", "linear", "adam", "gd", "cosine"):
        assert f'"{name}"' in text


def test_schema_accepts_the_shorthand_too():
    schema = json.loads(invoke("config", "schema").stdout)
    for key, example in (("dataset", "digits"), ("model", "fnn"), ("optimizer", "adam")):
        strings = [s for s in schema["properties"][key]["anyOf"] if s.get("type") == "string"]
        assert len(strings) == 1 and example in strings[0]["enum"], key


def test_schema_name_pattern_rejects_paths():
    import re

    schema = json.loads(invoke("config", "schema").stdout)
    pattern = next(s["pattern"] for s in schema["properties"]["name"]["anyOf"] if "pattern" in s)
    assert re.fullmatch(pattern, "digits-mlp_2.v1")
    for bad in ("../../x", "/etc/passwd", "a/b", ".hidden", "-flag", "", "a" * 101):
        assert not re.search(pattern, bad), bad


def test_cli_missing_argument_is_usage_error():
    result = invoke("config", "validate")
    assert result.exit_code == EXIT_USAGE
    assert "Missing argument" in result.output


# --- the shipped configs, and what the schema promises -------------------------------------


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.name
    result = invoke("config", "validate", path)
    assert result.exit_code == EXIT_OK, result.output


def test_there_are_shipped_configs():
    assert {"digits.yaml", "smoke.yaml", "linear.yaml"} <= {p.name for p in CONFIGS}


def test_config_commands_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from trainer.cli.commands import app\n"
        "r = CliRunner().invoke(app, ['config', 'validate', *sys.argv[1:]])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['config', 'schema'])\n"
        "assert r.exit_code == 0, r.output\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code, *map(str, CONFIGS)], check=True, cwd=ROOT)


@pytest.mark.parametrize("name", typing.get_args(Activation))
def test_activation_is_known_to_keras(name):
    import keras

    assert callable(keras.activations.get(name))
