"""Image augmentation: config rules, training batches only, seeded, resumable, previewed."""

import json
import signal

import numpy as np
import pytest
import yaml
from test_faults import model_state, trainer

from trainer.config.loading import parse_yaml, validate
from trainer.core.errors import ConfigError
from trainer.settings.sections import Augmentation
from trainer.training.augmentation import PREVIEW, augment, for_training, preview

EVERYTHING = {"flip": "horizontal", "rotation": 0.1, "translation": 0.1, "zoom": 0.1,
              "contrast": 0.2}  # fmt: skip
CONFIG = {
    "name": "augmented",
    "seed": 5,
    "deterministic": True,
    "dataset": {"type": "digits", "limit": 300, "validation_split": 0.2,
                "augmentation": {"rotation": 0.1, "translation": 0.1, "contrast": 0.2}},
    "model": {"type": "fnn", "units": [16]},
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "training": {"epochs": 2, "batch_size": 32, "steps_per_execution": 1},
    "checkpoint": {"every_steps": 3},
}  # fmt: skip


def config_from(text: str):
    return validate(*parse_yaml(text, "test.yaml"), "test.yaml")


def problems_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        config_from(text)
    return "\n".join(caught.value.problems)


def images(n: int = 8, size: int = 12, seed: int = 0) -> np.ndarray:
    """Images with structure (a bright off-centre block), so that moving them shows."""
    x = np.random.default_rng(seed).uniform(0, 0.2, size=(n, size, size, 1)).astype("float32")
    x[:, 2:6, 3:9] = 1.0
    return x


# --- the config: validated before TensorFlow starts --------------------------------------


def test_augmentation_is_validated_with_the_key_path_and_the_fix():
    text = "dataset: {type: digits, augmentation: {flip: sideways, rotation: 2, zom: 0.1}}"
    found = problems_of(text)
    assert "dataset.augmentation.flip" in found and "horizontal_and_vertical" in found
    assert "dataset.augmentation.rotation" in found and "0.5" in found
    assert "unknown key 'zom'; did you mean 'zoom'?" in found


@pytest.mark.parametrize("dataset", ["synthetic_linear", "synthetic_classification",
                                     "synthetic_sequence"])  # fmt: skip
def test_augmentation_of_data_that_is_not_images_is_refused(dataset):
    found = problems_of(f"dataset: {{type: {dataset}, augmentation: {{zoom: 0.1}}}}")
    assert "dataset.augmentation" in found and f"dataset '{dataset}' gives" in found
    assert "image dataset (digits, fashion_mnist, image_folder, mnist" in found


@pytest.mark.parametrize("family", ["vae", "gan"])
def test_generative_models_refuse_augmentation(family):
    found = problems_of(f"dataset: {{type: digits, augmentation: {{zoom: 0.1}}}}\n"
                        f"model: {{type: {family}}}")  # fmt: skip
    assert f"model '{family}' trains with its own step" in found and "remove it" in found


def test_the_old_model_level_key_says_where_it_moved():
    found = problems_of("dataset: digits\nmodel: {type: cnn, augmentation: {flip: horizontal}}")
    assert "moved to dataset.augmentation" in found


@pytest.mark.parametrize("dataset", ["digits", "mnist", "fashion_mnist"])
def test_image_datasets_take_augmentation(dataset):
    cfg = config_from(f"dataset: {{type: {dataset}, augmentation: {json.dumps(EVERYTHING)}}}")
    assert cfg.dataset.augmentation == Augmentation(**EVERYTHING)


def test_npz_of_vectors_is_refused_once_the_data_is_seen():
    import keras

    cfg = config_from("dataset: {type: npz, path: x.npz, task: multiclass, "
                      "augmentation: {zoom: 0.1}}")  # fmt: skip
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    with pytest.raises(ConfigError, match=r"dataset.augmentation: applies to images"):
        for_training(model, cfg, np.zeros((4, 5), "float32"))


# --- what the layers do -------------------------------------------------------------------


def test_augmentation_changes_training_batches_but_not_evaluation(tmp_path):
    import keras

    cfg = config_from(f"dataset: {{type: digits, augmentation: {json.dumps(EVERYTHING)}}}\n"
                      "model: {type: fnn, units: [8]}")  # fmt: skip
    x = images()
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    trained = for_training(model, cfg, x)
    assert [type(layer).__name__ for layer in trained.layers[1:-1]] == [
        "RandomFlip",
        "RandomRotation",
        "RandomTranslation",
        "RandomZoom",
        "RandomContrast",
    ]
    plain = np.asarray(model(x))
    np.testing.assert_array_equal(np.asarray(trained(x, training=False)), plain)  # validation
    assert not np.allclose(np.asarray(trained(x, training=True)), plain)  # training batches
    assert trained.trainable_variables == model.trainable_variables  # one set of weights


def test_no_augmentation_trains_the_model_itself():
    import keras

    cfg = config_from("dataset: digits")
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten()])
    assert for_training(model, cfg, np.zeros((2, 4, 4, 1), "float32")) is model


SINGLE = [{"flip": "horizontal"}, {"rotation": 0.2}, {"translation": 0.2}, {"zoom": 0.3},
          {"contrast": 0.5}]  # fmt: skip


@pytest.mark.parametrize("setting", SINGLE)
def test_each_transformation_changes_images_the_same_way_for_the_same_seed(setting):
    x, augmentation = images(), Augmentation(**setting)
    once, again = augment(x, augmentation, seed=1), augment(x, augmentation, seed=1)
    np.testing.assert_array_equal(once, again)
    assert once.shape == x.shape and not np.allclose(once, x)
    assert not np.array_equal(once, augment(x, augmentation, seed=2))


def test_preview_shows_originals_then_augmented_copies():
    x = images(n=4, size=8)
    picture = preview(x, Augmentation(**EVERYTHING), seed=0)
    rows = picture.reshape(-1)  # 4 rows of tiles: originals, then 3 augmented rows
    assert picture.ndim == 2 and picture.dtype == np.uint8 and rows.std() > 0
    tile = picture.shape[0] // 4
    top, below = picture[:tile], [picture[i * tile : (i + 1) * tile] for i in range(1, 4)]
    assert all(not np.array_equal(top, row) for row in below)


def test_colour_images_keep_their_channels_and_preview_in_colour():
    x = np.random.default_rng(0).uniform(0, 255, size=(4, 10, 10, 3)).astype("float32")
    x[:, :, :5, 0] = 255.0  # a red left half, which a flip moves
    flipped = augment(x, Augmentation(flip="horizontal", contrast=0.3), seed=0)
    assert flipped.shape == x.shape and flipped.min() >= 0 and flipped.max() <= 255
    picture = preview(x, Augmentation(flip="horizontal", contrast=0.3), seed=0)
    assert picture.ndim == 3 and picture.shape[2] == 3


def test_image_folders_take_augmentation(tmp_path):
    cfg = config_from(f"dataset: {{type: image_folder, path: {tmp_path}, task: binary, "
                      "augmentation: {flip: horizontal}}")  # fmt: skip
    assert cfg.dataset.augmentation.flip == "horizontal"


# --- a real run: only training batches, seeded, resumable --------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("augmentation")
    (root / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    for name in ("first", "second"):
        done = trainer("fit", "config.yaml", "--run-dir", name, cwd=root)
        assert done.returncode == 0, done.stderr
    return root


def test_a_run_writes_the_preview_and_saves_no_augmentation_layers(runs):
    import keras
    from PIL import Image

    with Image.open(runs / "first" / PREVIEW) as picture:
        pixels = np.asarray(picture)
    tile = pixels.shape[0] // 4
    assert not np.array_equal(pixels[:tile], pixels[tile : 2 * tile])
    model = keras.saving.load_model(runs / "first" / "model.keras", safe_mode=True)
    assert not [layer for layer in model.layers if type(layer).__name__.startswith("Random")]


def test_eval_sees_the_test_images_as_they_are(runs):
    done = trainer("eval", "first", "--json", cwd=runs)
    assert done.returncode == 0, done.stderr
    saved = json.loads((runs / "first" / "metrics.json").read_text())
    assert json.loads(done.stdout) == saved


def test_the_same_seed_draws_the_same_augmentation(runs):
    first, second = model_state(runs / "first"), model_state(runs / "second")
    assert any("seed_generator" in key for key in first)  # the layers' random state is saved
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    assert (runs / "first" / "history.csv").read_text() == (
        runs / "second" / "history.csv").read_text()  # fmt: skip


def test_augmentation_matters_to_the_result(runs, tmp_path):
    plain = {**CONFIG, "dataset": {k: v for k, v in CONFIG["dataset"].items()
                                   if k != "augmentation"}}  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(plain))
    done = trainer("fit", "config.yaml", "--run-dir", "plain", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "plain" / PREVIEW).exists()
    assert (tmp_path / "plain" / "history.csv").read_text() != (
        runs / "first" / "history.csv").read_text()  # fmt: skip


def test_a_killed_run_resumes_with_the_same_augmentation(runs):
    killed = trainer("fit", "config.yaml", "--run-dir", "killed", cwd=runs, fault="sigkill@10")
    assert killed.returncode == -signal.SIGKILL
    resumed = trainer("fit", "--resume", "killed", cwd=runs)
    assert resumed.returncode == 0, resumed.stderr
    reference, state = model_state(runs / "first"), model_state(runs / "killed")
    for key in reference:
        np.testing.assert_array_equal(reference[key], state[key], err_msg=key)
    assert (runs / "first" / "history.csv").read_text() == (
        runs / "killed" / "history.csv").read_text()  # fmt: skip
