"""Every config key a message, a hint or the README names exists, and every setting the
diagnosis suggests applies to the run it diagnoses (the config with it still validates)."""

import ast
import re
from pathlib import Path

import pytest
import yaml
from test_diagnosis import BASELINE, DIVERGING, OVERFITTING, PLATEAU, UNDERFITTING, rows

from trainer.config.loading import _model_classes, load_config
from trainer.config.schema import Config
from trainer.results.diagnosis import diagnose

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = "dataset|model|optimizer|training|regularization|early_stopping|checkpoint|tracking"
# a dotted key (`optimizer.clipnorm`), or a section set whole (`early_stopping: {...}`)
KEY = re.compile(
    rf"(?<![\w./-])(?:{SECTIONS})(?:\.[a-z_][a-z0-9_]*)+|(?:(?<=: )|^)(?:{SECTIONS})(?=: )"
)
NOT_KEYS = {"model.keras", "model.fit", "model.save", "tracking.json"}  # files, Keras methods
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))

NO_VALIDATION = rows(
    loss=[1.0, 0.6, 0.4, 0.3, 0.25, 0.22], accuracy=[0.5, 0.7, 0.8, 0.85, 0.9, 0.9]
)
STILL_FALLING = rows(
    loss=[1.0, 0.7, 0.5, 0.35, 0.25, 0.17], val_loss=[1.0, 0.75, 0.55, 0.4, 0.3, 0.22]
)
SHAPES = {
    "overfitting": (OVERFITTING, None),
    "diverging": (DIVERGING, None),
    "plateau": (PLATEAU, None),
    "underfitting": (UNDERFITTING, BASELINE),
    "no_validation": (NO_VALIDATION, None),
    "still_falling": (STILL_FALLING, None),
}


def exists(key: str) -> bool:
    """Whether a dotted key is a field of its section in some registered component."""
    classes = [Config]
    for part in key.split("."):
        fields = [c.model_fields[part] for c in classes if part in c.model_fields]
        if not fields:
            return False
        classes = [c for f in fields for c in _model_classes(f.annotation)]
    return True


def named_keys() -> dict[str, str]:
    """Dotted config keys in every string of the package and in the README -> where."""
    found = {}
    for path in sorted((ROOT / "trainer").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for key in KEY.findall(node.value):
                    found.setdefault(key, f"{path.relative_to(ROOT)}:{node.lineno}")
    for number, line in enumerate((ROOT / "README.md").read_text().splitlines(), start=1):
        for key in KEY.findall(line):
            found.setdefault(key, f"README.md:{number}")
    return {k: v for k, v in found.items() if k not in NOT_KEYS}


def test_the_scan_finds_the_keys_hints_name():
    keys = named_keys()
    assert {"regularization.dropout", "optimizer.learning_rate", "dataset.augmentation"} <= set(
        keys
    )
    assert not exists("model.augmentation") and exists("training.distribution.timeout")


def test_every_key_a_message_or_the_readme_names_exists():
    missing = {key: where for key, where in named_keys().items() if not exists(key)}
    assert not missing, f"keys named but not in the schema: {missing}"


def suggested_settings(text: str) -> list[tuple[str, str | None]]:
    """``(key, value)`` for each key a suggestion names; value None for a key named alone."""
    found = []
    for match in KEY.finditer(text):
        rest = text[match.end() :]
        if not rest.startswith(": "):
            found.append((match.group(0), None))
            continue
        rest = rest[2:]
        if rest[:1] in "{[":
            value = _balanced(rest)
        else:
            value = re.match(r"[^,;) ]+", rest).group(0)
        found.append((match.group(0), value))
    return found


def _balanced(text: str) -> str:
    depth = 0
    for end, char in enumerate(text):
        depth += (char in "{[") - (char in "}]")
        if depth == 0:
            return text[: end + 1]
    return text


def test_suggested_settings_are_read_back_whole():
    text = "early stopping: early_stopping: {monitor: val_loss, patience: 3} (it would keep)"
    assert suggested_settings(text) == [("early_stopping", "{monitor: val_loss, patience: 3}")]
    assert suggested_settings("clip: optimizer.clipnorm: 1.0, or model.units") == [
        ("optimizer.clipnorm", "1.0"),
        ("model.units", None),
    ]


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_suggested_setting_applies_to_the_run(config, shape):
    history, metrics = SHAPES[shape]
    cfg = load_config(config)
    result = diagnose(history, metrics, cfg)
    for suggestion in result["suggestions"]:
        for key, value in suggested_settings(suggestion):
            assert exists(key), f"{config.name}: {suggestion!r} names {key}, not a key"
            if value is None:
                continue
            override = f"{key}={value}"
            try:
                load_config(config, [override])
            except Exception as error:  # noqa: BLE001 - the message is the finding
                pytest.fail(f"{config.name} ({shape}): {suggestion!r} -> --set {override}: {error}")


def test_an_image_run_is_offered_augmentation_and_a_table_is_not():
    digits = diagnose(OVERFITTING, None, load_config(ROOT / "configs" / "digits.yaml"))
    table = diagnose(OVERFITTING, None, load_config(ROOT / "configs" / "csv_regression.yaml"))
    assert any("dataset.augmentation: {" in s for s in digits["suggestions"])
    assert not any("augmentation" in s for s in table["suggestions"])
    assert "more training data" in table["suggestions"]


def test_settings_the_run_already_has_are_not_suggested(tmp_path):
    data = yaml.safe_load((ROOT / "configs" / "digits.yaml").read_text())
    data.setdefault("dataset", {})["scaling"] = "standard"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    result = diagnose(DIVERGING, None, load_config(tmp_path / "c.yaml"))
    assert result["suggestions"] and not any("dataset.scaling" in s for s in result["suggestions"])
