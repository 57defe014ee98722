"""The exported JSON Schema and the config validator give the same verdict on the same document.

Each case is read with the trainer's own YAML reader, then checked twice: by a real JSON Schema
validator (``jsonschema``'s draft 2020-12, as editors and check-jsonschema use the schema) and
by ``load_config``, what ``trainer config validate`` runs. The schema may accept what only code
can refuse (rules between sections, files on disk): those cases are listed as semantic, and
only that direction is allowed; the schema must never refuse a config the validator accepts.
A strictness test walks the whole schema for keywords and formats outside draft 2020-12, which
is what ajv's default strict mode refuses.
"""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from test_bad_inputs import CONFIG_CASES
from test_config import CROSS_CHECKS, OUT_OF_RANGE, UNKNOWN_KEYS, UNKNOWN_TYPES, WRONG_TYPES
from typer.testing import CliRunner

from trainer.cli.commands import app
from trainer.config.loading import load_config, parse_yaml
from trainer.config.schema import json_schema
from trainer.core.errors import EXIT_OK, ConfigError, TrainerError
from trainer.datasets import DATASETS
from trainer.models import MODELS
from trainer.optimizers import OPTIMIZERS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def schema_validator():
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture
def verdicts(schema_validator, tmp_path, monkeypatch):
    """(schema accepts, validator accepts) for a YAML text; relative data paths start from the
    repository root, as the shipped configs' do."""
    monkeypatch.chdir(ROOT)

    def _verdicts(text: str) -> tuple[bool, bool]:
        data, _ = parse_yaml(text, "case")
        path = tmp_path / "case.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_config(path)
            accepted = True
        except TrainerError:
            accepted = False
        return schema_validator.is_valid(data), accepted

    return _verdicts


def same_verdict(verdicts, text: str, expected: bool) -> None:
    schema, validator = verdicts(text)
    assert (schema, validator) == (expected, expected), f"schema: {schema}, validator: {validator}"


# --- the shipped configs --------------------------------------------------------------------


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config(verdicts, path):
    same_verdict(verdicts, path.read_text(encoding="utf-8"), True)


def test_shipped_configs_through_the_cli(schema_validator, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, ["config", "validate", *map(str, CONFIGS)])
    assert result.exit_code == EXIT_OK, result.output
    for path in CONFIGS:
        errors = [e.message for e in schema_validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert not errors, (path.name, errors)


# --- every shorthand a `mode="before"` validator accepts ------------------------------------

TYPED = {"dataset": DATASETS, "model": MODELS, "optimizer": OPTIMIZERS}
NEEDS_KEYS = {"csv", "npz", "image_folder", "keras_file"}  # a file to read: the name is not enough
IMAGES_FOR = {"cnn", "rnn", "vae", "gan"}

SHORTHANDS = [
    ("tensorboard off", "tracking:\n  tensorboard: false\n"),
    ("tensorboard on", "tracking:\n  tensorboard: true\n"),
    ("mlflow by uri", "tracking:\n  mlflow: sqlite:///mlflow.db\n"),
    ("mlflow null", "tracking:\n  mlflow: null\n"),
    ("distribution mirrored", "training:\n  distribution: mirrored\n"),
    ("distribution none", "training:\n  distribution: none\n"),
    ("distribution multi_host", "training:\n  backend: jax\n  distribution: multi_host\n"),
    ("gan optimizers by name", "model:\n  type: gan\n  generator_optimizer: adam\n"
     "  discriminator_optimizer: sgd\n"),
    ("gan optimizer mapping and null", "model:\n  type: gan\n  generator_optimizer:\n"
     "    type: adam\n    beta_1: 0.5\n  discriminator_optimizer: null\n"),
    ("batch_size full", "optimizer: gd\ntraining:\n  batch_size: full\n"),
    ("batch_size 1", "training:\n  batch_size: 1\n"),
    ("batch_size at its ceiling", "training:\n  batch_size: 2147483647\n"),
    ("steps_per_execution auto", "training:\n  steps_per_execution: auto\n"),
    ("steps_per_execution 8", "training:\n  steps_per_execution: 8\n"),
    ("eval_batch_size auto", "training:\n  eval_batch_size: auto\n"),
    ("eval_batch_size 256", "training:\n  eval_batch_size: 256\n"),
    ("class_weight balanced", "training:\n  class_weight: balanced\n"),
    ("class_weight by index", "training:\n  class_weight: {0: 1.0, 3: 2.5}\n"),
    ("jit_compile auto", "training:\n  jit_compile: auto\n"),
    ("jit_compile false", "training:\n  jit_compile: false\n"),
    ("class_weight by name", "dataset:\n  type: csv\n  path: configs/data/imbalanced.csv\n"
     "  target: churn\n  task: binary\n  missing: {strategy: median}\n"
     "training:\n  class_weight: {'no': 1.0, 'yes': 9.0}\n"),
]  # fmt: skip
BARE_NAMES = [
    (f"{key}: {name}", name not in NEEDS_KEYS, key, name)
    for key, registry in TYPED.items()
    for name in registry.names()
]


def with_dataset(text: str) -> str:
    """A fragment with the dataset every other key can use (images, classes)."""
    return text if text.startswith("dataset") else f"dataset: digits\n{text}"


@pytest.mark.parametrize("text", [pytest.param(t, id=i) for i, t in SHORTHANDS])
def test_shorthand(verdicts, text):
    same_verdict(verdicts, with_dataset(text), True)


@pytest.mark.parametrize(
    ("key", "name", "valid"), [pytest.param(k, n, v, id=i) for i, v, k, n in BARE_NAMES]
)
def test_bare_component_name(verdicts, key, name, valid):
    """`optimizer: adam` for every registered name; `dataset: csv` alone lacks its path."""
    text = f"{key}: {name}\n" if key == "dataset" else with_dataset(f"{key}: {name}\n")
    same_verdict(verdicts, text, valid)


def test_csv_missing_shorthand(verdicts):
    text = (
        "dataset:\n  type: csv\n  path: configs/data/regression.csv\n  target: price_k\n"
        "  task: regression\n  missing: median\n"
    )
    same_verdict(verdicts, text, True)


# --- the bad-input corpus: both refuse ------------------------------------------------------

# Semantic only: rules a JSON Schema cannot state, so the schema accepts what code refuses.
SEMANTIC = [
    *[(f"cross-section: {p.id}", p.values[0]) for p in CROSS_CHECKS],  # trainer/config/checks.py
    ("informative > features (a dataset's own rule between keys)",
     "dataset:\n  type: synthetic_classification\n  features: 2\n  informative: 3\n"),
    ("csv file that does not exist (task: auto reads its labels)",
     "dataset: {type: csv, path: configs/data/nowhere.csv, target: y}\n"),
    ("csv target also in columns",
     "dataset: {type: csv, path: configs/data/regression.csv, target: price_k, "
     "task: regression, columns: {price_k: numeric}}\n"),
    ("validation_path and validation_split both given",
     "dataset: {type: csv, path: configs/data/regression.csv, target: price_k, "
     "task: regression, validation_path: configs/data/regression.csv, validation_split: 0.3}\n"),
    ("devices without mirrored",
     "dataset: digits\ntraining:\n  distribution: {type: none, devices: ['gpu:0']}\n"),
    # JSON has no NaN, and NaN compares false with every bound
    ("learning_rate .nan", "dataset: digits\noptimizer: {type: adam, learning_rate: .nan}\n"),
    # JSON Schema's integers include 32.0; the validator wants a whole number written as one
    ("batch_size 32.0", "dataset: digits\ntraining:\n  batch_size: 32.0\n"),
    # JSON object keys are strings; YAML reads an unquoted yes/no key as a boolean
    ("class_weight with boolean keys", "dataset: digits\ntraining:\n"
     "  class_weight: {yes: 9.0, no: 1.0}\n"),
    ("csv columns with a number key",
     "dataset: {type: csv, path: configs/data/regression.csv, target: price_k, "
     "task: regression, columns: {1: ignore}}\n"),
]  # fmt: skip

SEMANTIC_BAD_INPUTS = {  # tests/test_bad_inputs.py's cases that are rules between sections
    "monitor not logged", "monitor without validation", "metric for the wrong task",
    "loss for the wrong task", "gd with mini-batches", "dropout on linear",
}  # fmt: skip
SEMANTIC_CONFIG = {"dataset's own check"}  # tests/test_config.py's OUT_OF_RANGE


def _is_document(text: str) -> bool:
    """Whether the YAML reader lets the text through to validation at all (no duplicate
    keys, tags, alias bombs, empty or non-mapping files)."""
    try:
        parse_yaml(text, "case")
    except ConfigError:
        return False
    return True


BAD = [
    *[
        (f"test_config {table}: {p.id}", p.values[0])
        for table, rows in (("unknown key", UNKNOWN_KEYS), ("unknown type", UNKNOWN_TYPES),
                            ("wrong type", WRONG_TYPES), ("out of range", OUT_OF_RANGE))
        for p in rows
        if p.id not in SEMANTIC_CONFIG
    ],
    *[
        (f"test_bad_inputs: {name}", text)
        for name, text, args, code, _ in CONFIG_CASES
        if isinstance(text, str) and not args and code == 2 and _is_document(text)
        and name not in SEMANTIC_BAD_INPUTS
    ],
    ("csv without target", "dataset: {type: csv, path: configs/data/regression.csv}\n"),
    ("component mapping without type, matching one variant only",
     "dataset: digits\noptimizer: {weight_decay: 0.1}\n"),
    ("dataset mapping without type", "dataset: {path: configs/data/regression.csv, "
     "target: price_k}\n"),
    ("schedule by bare name", "dataset: digits\noptimizer: {type: adam, schedule: cosine}\n"),
    ("unknown schedule", "dataset: digits\noptimizer: {type: adam, schedule: {type: linear}}\n"),
    ("tensorboard as a number", "dataset: digits\ntracking: {tensorboard: 1}\n"),
    ("tensorboard as a word", "dataset: digits\ntracking: {tensorboard: off_please}\n"),
    ("tensorboard unknown key", "dataset: digits\ntracking: {tensorboard: {enable: false}}\n"),
    ("mlflow as a number", "dataset: digits\ntracking: {mlflow: 5000}\n"),
    ("mlflow as a boolean", "dataset: digits\ntracking: {mlflow: true}\n"),
    ("unknown distribution", "dataset: digits\ntraining: {distribution: mirorred}\n"),
    ("distribution as a number", "dataset: digits\ntraining: {distribution: 2}\n"),
    ("distribution device pattern", "dataset: digits\ntraining:\n"
     "  distribution: {type: mirrored, devices: [cuda0]}\n"),
    ("gan optimizer unknown", "dataset: digits\nmodel: {type: gan, generator_optimizer: adm}\n"),
    ("gan optimizer as a number", "dataset: digits\nmodel: {type: gan, generator_optimizer: 1}\n"),
    ("batch_size above the ceiling", "dataset: digits\ntraining:\n  batch_size: 2147483648\n"),
    ("steps_per_execution 0", "dataset: digits\ntraining:\n  steps_per_execution: 0\n"),
    ("steps_per_execution true", "dataset: digits\ntraining:\n  steps_per_execution: true\n"),
    ("eval_batch_size full", "dataset: digits\ntraining:\n  eval_batch_size: full\n"),
    ("eval_batch_size negative", "dataset: digits\ntraining:\n  eval_batch_size: -1\n"),
    ("class_weight word", "dataset: digits\ntraining:\n  class_weight: balance\n"),
    ("class_weight zero", "dataset: digits\ntraining:\n  class_weight: {0: 0}\n"),
    ("class_weight negative", "dataset: digits\ntraining:\n  class_weight: {0: -1.5}\n"),
    ("class_weight as text", "dataset: digits\ntraining:\n  class_weight: {0: heavy}\n"),
    ("class_weight as a boolean", "dataset: digits\ntraining:\n  class_weight: {0: true}\n"),
    ("learning_rate .inf", "dataset: digits\noptimizer: {type: adam, learning_rate: .inf}\n"),
    ("l2 beyond float32", "dataset: digits\nregularization: {l2: 1.0e+39}\n"),
    ("min_delta beyond float32", "dataset: digits\nearly_stopping: {min_delta: 4.0e+38}\n"),
    ("noise beyond float32", "dataset: {type: synthetic_linear, noise: 1.0e+300}\n"),
    ("cnn's moved augmentation", "dataset: digits\nmodel: {type: cnn, augmentation: {}}\n"),
    ("unknown csv column type", "dataset: {type: csv, path: configs/data/regression.csv, "
     "target: price_k, task: regression, columns: {rooms: text}}\n"),
    ("unknown missing strategy", "dataset: {type: csv, path: configs/data/regression.csv, "
     "target: price_k, task: regression, missing: {strategy: average}}\n"),
    ("metrics not a list", "dataset: digits\nmetrics: {accuracy: true}\n"),
    ("seed as text", "dataset: digits\nseed: forty-two\n"),
]  # fmt: skip


@pytest.mark.parametrize("text", [pytest.param(t, id=i) for i, t in BAD])
def test_bad_input(verdicts, text):
    same_verdict(verdicts, text, False)


@pytest.mark.parametrize("text", [pytest.param(t, id=i) for i, t in SEMANTIC])
def test_semantic_only(verdicts, text):
    """The schema accepts it (it cannot state the rule) and the validator refuses it."""
    assert verdicts(text) == (True, False)


def test_the_corpus_is_reused():
    """The tables of the other test files feed this one; an empty filter would hide that."""
    assert sum(name.startswith("test_bad_inputs") for name, _ in BAD) >= 10
    assert sum(name.startswith("test_config") for name, _ in BAD) >= 40


# YAML's types as written: the validator, like the schema (and JSON), keeps them apart where
# pydantic would convert ('10' for 10, true for 1, 1 for true); `1e-3` is a number to both, as
# to YAML 1.2 and every editor (PyYAML alone, a YAML 1.1 reader, would leave it a string).
TYPED_AS_WRITTEN = [
    ("epochs as a quoted number", "dataset: digits\ntraining:\n  epochs: '10'\n", False),
    ("learning_rate 1e-3", "dataset: digits\noptimizer: {type: adam, learning_rate: 1e-3}\n", True),
    ("learning_rate 1E-4 quoted",
     "dataset: digits\noptimizer: {type: adam, learning_rate: '1E-4'}\n", False),
    ("deterministic: 1", "dataset: digits\ndeterministic: 1\n", False),
    ("deterministic: 'true'", "dataset: digits\ndeterministic: 'true'\n", False),
    ("epochs: true", "dataset: digits\ntraining:\n  epochs: true\n", False),
    ("units with a quoted width",
     "dataset: digits\nmodel: {type: fnn, units: [32, '16']}\n", False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "valid"), [pytest.param(t, v, id=i) for i, t, v in TYPED_AS_WRITTEN]
)
def test_yaml_types_as_written(verdicts, text, valid):
    same_verdict(verdicts, text, valid)


def test_a_converted_scalar_is_named_with_its_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: digits\ntraining:\n  epochs: '10'\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "training.epochs (line 3)" in message and "remove the quotes" in message


# --- the README's examples ------------------------------------------------------------------

MINIMAL = {"dataset": "digits"}


def _merged(base: dict, fragment: dict) -> dict:
    merged = dict(base)
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = _merged(merged[key], value)
        merged[key] = value
    return merged


def readme_configs() -> list:
    """The README's YAML blocks: whole configs as they are, fragments (no `dataset`) merged
    onto a minimal config; search spaces (dotted keys, `trainer tune --space`) are not
    configs."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"```ya?ml\n(.*?)```", text, re.S):
        line = text.count("\n", 0, match.start()) + 1
        block = yaml.safe_load(match.group(1))
        if any("." in key for key in block):
            continue
        config = block if "dataset" in block else _merged(MINIMAL, block)
        found.append(pytest.param(yaml.safe_dump(config), id=f"README line {line}"))
    return found


README_CONFIGS = readme_configs()


@pytest.mark.parametrize("text", README_CONFIGS)
def test_readme_example(verdicts, text):
    same_verdict(verdicts, text, True)


def test_the_readme_has_examples():
    assert len(README_CONFIGS) >= 3


# --- plain draft 2020-12, as ajv's strict mode reads it -------------------------------------

# Every keyword of the draft 2020-12 vocabularies (core, applicator, unevaluated, validation,
# meta-data, format-annotation, content).
KEYWORDS = {
    "$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary",
    "$comment", "$defs",
    "prefixItems", "items", "contains", "additionalProperties", "properties",
    "patternProperties", "dependentSchemas", "propertyNames", "if", "then", "else", "allOf",
    "anyOf", "oneOf", "not",
    "unevaluatedItems", "unevaluatedProperties",
    "type", "const", "enum", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
    "uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties", "required",
    "dependentRequired",
    "title", "description", "default", "deprecated", "readOnly", "writeOnly", "examples",
    "format",
    "contentEncoding", "contentMediaType", "contentSchema",
}  # fmt: skip
FORMATS = {
    "date-time", "date", "time", "duration", "email", "idn-email", "hostname", "idn-hostname",
    "ipv4", "ipv6", "uri", "uri-reference", "iri", "iri-reference", "uuid", "uri-template",
    "json-pointer", "relative-json-pointer", "regex",
}  # fmt: skip
MAPS_OF_SCHEMAS = {"$defs", "properties", "patternProperties", "dependentSchemas"}
LISTS_OF_SCHEMAS = {"allOf", "anyOf", "oneOf", "prefixItems"}
SCHEMAS = {"items", "additionalProperties", "propertyNames", "contains", "not", "if", "then",
           "else", "unevaluatedItems", "unevaluatedProperties", "contentSchema"}  # fmt: skip


def _walk(schema, where: str = "#"):
    """(location, keyword, value) for every keyword of every schema object."""
    if isinstance(schema, bool):
        return
    assert isinstance(schema, dict), f"{where}: a schema is an object or a boolean"
    for keyword, value in schema.items():
        yield where, keyword, value
        if keyword in MAPS_OF_SCHEMAS:
            for name, child in value.items():
                yield from _walk(child, f"{where}/{keyword}/{name}")
        elif keyword in LISTS_OF_SCHEMAS:
            for i, child in enumerate(value):
                yield from _walk(child, f"{where}/{keyword}/{i}")
        elif keyword in SCHEMAS:
            yield from _walk(value, f"{where}/{keyword}")


def test_schema_is_plain_draft_2020_12():
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    found = list(_walk(schema))
    assert len(found) > 500  # the walk reached the components
    unknown = sorted(
        {f"{where}: {keyword}" for where, keyword, _ in found if keyword not in KEYWORDS}
    )
    assert not unknown, unknown
    formats = sorted({f"{w}: {v}" for w, k, v in found if k == "format" and v not in FORMATS})
    assert not formats, formats
    refs = {value for _, keyword, value in found if keyword == "$ref"}
    assert all(ref.removeprefix("#/$defs/") in schema["$defs"] for ref in refs), refs


def test_every_component_variant_requires_its_type():
    """Without the OpenAPI discriminator, each variant's required `type` constant is what picks
    exactly one of a `oneOf`."""
    schema = json_schema()
    unions = [v for _, k, v in _walk(schema) if k == "oneOf"]
    assert len(unions) >= 4  # dataset, model, optimizer, schedule
    for union in unions:
        for ref in union:
            variant = schema["$defs"][ref["$ref"].removeprefix("#/$defs/")]
            assert "type" in variant["required"] and "const" in variant["properties"]["type"]
