"""The generative families (vae, gan): the Fréchet distance, pictures, save/reload with fixed
noise, deterministic evaluation, the CLI end to end on tiny data, and the configs they refuse."""

import importlib
import json
import sys

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from trainer.cli.commands import app
from trainer.config.schema import Config
from trainer.datasets import Dataset, DataSpec
from trainer.evaluation import pictures
from trainer.models import MODELS, generative, hook

runner = CliRunner()
GENERATIVE = [e.name for e in MODELS.entries() if "evaluate" in e.info]
SPEC = DataSpec((8, 8, 1), "multiclass", 3, 1, ("a", "b", "c"))
SMALL = {  # tiny networks for 8x8 images
    "vae": {"type": "vae", "architecture": "conv", "filters": [8], "units": [16],
            "latent_dim": 2},
    "gan": {"type": "gan", "architecture": "dcgan", "filters": [16, 8], "kernel_size": 3,
            "latent_dim": 8},
}  # fmt: skip
TEST_KEYS = {
    "vae": {"loss", "elbo", "reconstruction_loss", "kl_loss", "reconstruction_mse",
            "frechet_distance"},
    "gan": {"d_loss", "g_loss", "discriminator_accuracy", "frechet_distance"},
}  # fmt: skip
PICTURES = {"vae": ["reconstructions.png", "samples.png", "latent_space.png"],
            "gan": ["samples.png"]}  # fmt: skip


def test_every_generative_family_is_covered_here():
    assert set(GENERATIVE) == set(SMALL)


# --- the Fréchet distance and the pictures --------------------------------------------------


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_a_shift():
    features = np.random.default_rng(0).normal(size=(500, 6))
    assert generative.frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)
    distances = [generative.frechet_distance(features, features + s) for s in (0.5, 1.0, 2.0)]
    assert distances == sorted(distances) and distances[0] > 0
    assert distances[1] == pytest.approx(6 * 1.0**2)  # a pure shift adds ||shift||^2


def test_frechet_distance_matches_the_textbook_formula():
    from scipy import linalg

    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 4)) @ rng.normal(size=(4, 4))
    b = rng.normal(size=(300, 4)) * [1, 2, 3, 4] + 1
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root)
    assert generative.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_grid_tiles_enlarges_and_interleaves():
    images = np.zeros((12, 8, 8, 1), dtype=np.float32)
    images[1] = 1.0
    picture = pictures.grid(images, columns=5)
    tile = 8 * (pictures.TILE // 8) + 2  # enlarged 7x, plus the border
    assert picture.shape == (3 * tile + 2, 5 * tile + 2) and picture.dtype == np.uint8
    assert picture[2 + 10, tile + 2 + 10] == 255 and picture[12, 12] == 0  # image 1 is white
    originals, copies = np.arange(4)[:, None], np.arange(4)[:, None] + 10
    order = pictures.interleave(originals, copies, columns=2).ravel().tolist()
    assert order == [0, 1, 10, 11, 2, 3, 12, 13]


# --- build, train, save, reload -------------------------------------------------------------


def _config(family: str, **model) -> Config:
    return Config.model_validate({
        "dataset": {"type": "digits"}, "model": {**SMALL[family], **model},
        "training": {"epochs": 2, "batch_size": 8},
    })  # fmt: skip


def _tiny_data(n: int = 24) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(n, *SPEC.input_shape)).astype("float32")
    y = (np.arange(n) % SPEC.num_classes).astype("int32")
    return Dataset(SPEC, x, y, x[:12], y[:12])


def _trained(family: str, cfg: Config, data: Dataset, callbacks=()):
    import keras

    from trainer import optimizers
    from trainer.training import engine

    keras.utils.set_random_seed(0)
    model = engine.build_model(cfg, SPEC)
    make_optimizer = lambda params: optimizers.build(params, 3, 2)  # noqa: E731
    # eager steps: six of them cost less than tracing the step (the CLI tests trace it)
    hook("compile", family)(model, cfg, make_optimizer, run_eagerly=True)
    model.fit(data.x_train, data.y_train, batch_size=8, epochs=2, callbacks=list(callbacks),
              verbose=0)  # fmt: skip
    return model


def _outputs(model, data: Dataset) -> dict[str, np.ndarray]:
    """Decoder/generator outputs for fixed noise, and (VAE) the encoder's means."""
    z = generative.noise(3, 6, model.latent_dim)
    labels = generative.sample_labels(6, SPEC.num_classes)
    both = model.conditional
    network = model.decoder if hasattr(model, "decoder") else model.generator
    outputs = {"images": generative.predict(network, [z, labels] if both else z, 64)}
    if hasattr(model, "encoder"):
        x, y = data.x_test, data.y_test
        outputs["means"] = generative.predict(model.encoder, [x, y] if both else x, 64)[0]
    return outputs


@pytest.mark.parametrize("conditional", [False, True], ids=["plain", "conditional"])
@pytest.mark.parametrize("family", sorted(SMALL))
def test_save_reload_gives_identical_outputs_and_metrics(family, conditional, tmp_path):
    import keras

    cfg, data = _config(family, conditional=conditional), _tiny_data()
    model = _trained(family, cfg, data)
    before = _outputs(model, data)
    assert before["images"].shape == (6, *SPEC.input_shape)
    assert 0 <= before["images"].min() and before["images"].max() <= 1
    metrics = hook("evaluate", family)(model, cfg, data, tmp_path)
    assert set(metrics["test"]) == TEST_KEYS[family]

    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    after = _outputs(reloaded, data)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)
    assert hook("evaluate", family)(reloaded, cfg, data, None) == metrics
    for name in ("optimizer", "discriminator_optimizer"):  # optimizer state comes back too
        if hasattr(model, name):
            saved, restored = getattr(model, name), getattr(reloaded, name)
            assert int(restored.iterations) == int(saved.iterations) == 6
            for a, b in zip(saved.variables, restored.variables, strict=True):
                np.testing.assert_array_equal(a.numpy(), b.numpy())
    for name in PICTURES[family]:
        assert Image.open(tmp_path / name).format == "PNG"


def test_gan_sample_every_writes_a_grid_per_epoch(tmp_path):
    cfg, data = _config("gan", sample_every=1), _tiny_data()
    assert hook("callbacks", "fnn")(None, cfg, data, tmp_path) == []
    callbacks = hook("callbacks", "gan")(None, cfg, data, tmp_path)
    _trained("gan", cfg, data, callbacks)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "epoch_001.png", "epoch_002.png"
    ]  # fmt: skip


def test_custom_objects_module_registers_the_saved_classes():
    import keras

    modules = {e.name: e.info["custom_objects_module"] for e in MODELS.entries()
               if "custom_objects_module" in e.info}  # fmt: skip
    assert set(modules) == set(GENERATIVE)
    for module in modules.values():
        importlib.import_module(module)
    for name in ("trainer>VAE", "trainer>Sampling", "trainer>GAN"):
        assert keras.saving.get_registered_object(name) is not None, name


def forget_custom_classes(monkeypatch) -> None:
    """Make this process look fresh: the families' Keras classes unregistered, their modules
    unimported, as in a new `trainer eval` process (restored after the test)."""
    import keras

    registered = keras.saving.get_custom_objects()
    for name in [n for n in registered if n.startswith("trainer>")]:
        monkeypatch.delitem(registered, name)
    for entry in MODELS.entries():
        module = entry.info.get("custom_objects_module")
        if module in sys.modules:
            monkeypatch.delitem(sys.modules, module)


# --- the command line end to end ------------------------------------------------------------


def _write(tmp_path, data: dict):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _tiny_config(family: str, **model) -> dict:
    return {
        "name": f"tiny-{family}", "seed": 3,
        "dataset": {"type": "digits", "limit": 150, "validation_split": 0.2},
        "model": {**SMALL[family], **model},
        "optimizer": {"type": "adam", "learning_rate": 0.003},
        "training": {"epochs": 2, "batch_size": 32},
    }  # fmt: skip


# graph-mode training of both kinds (the round trips above train eagerly)
@pytest.mark.parametrize(("family", "conditional"), [("vae", False), ("gan", True)])
def test_fit_then_eval_through_the_cli(family, conditional, tmp_path, monkeypatch):
    run = tmp_path / "run"
    config = _write(tmp_path, _tiny_config(family, conditional=conditional))
    result = runner.invoke(app, ["fit", str(config), "--run-dir", str(run), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert json.loads(result.stdout) == metrics
    assert metrics["task"] == "generative" and set(metrics["test"]) == TEST_KEYS[family]
    assert all(np.isfinite(v) for v in metrics["test"].values())
    assert metrics["frechet"]["real_frechet_distance"] >= 0
    header = (run / "history.csv").read_text().splitlines()[0].split(",")
    for name in hook("logged", family)(_config(family)):
        assert name in header and f"val_{name}" in header, (name, header)
    for name in PICTURES[family]:
        with Image.open(run / name) as picture:
            assert picture.format == "PNG"
            assert 100 <= min(picture.size) and max(picture.size) <= 2000, picture.size
            assert np.asarray(picture).std() > 0  # not a blank canvas

    forget_custom_classes(monkeypatch)  # eval must register them itself
    result = runner.invoke(app, ["eval", str(run), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == metrics
    result = runner.invoke(app, ["eval", str(run), "--json", "--fail-over",
                                 "frechet_distance=0"])  # fmt: skip
    assert result.exit_code == 3 and "frechet_distance" in result.stderr


# --- what they refuse -------------------------------------------------------------------------

REFUSED_AT_VALIDATION = [
    ("gan", {"dataset": {"type": "synthetic_linear"}}, "cannot learn the regression task"),
    ("vae", {"dataset": {"type": "digits", "scaling": "standard"}}, "needs pixels in [0, 1]"),
    ("gan", {"metrics": ["accuracy"]}, "remove `metrics`"),
    ("vae", {"loss": "hinge"}, "remove `loss`"),
    (
        "gan",
        {"early_stopping": {"monitor": "val_loss"}},
        "(valid: d_loss, g_loss, val_d_loss, val_g_loss)",
    ),
    ("vae", {"model": {"type": "vae", "latent_dim": 0}}, "model.latent_dim"),
    ("gan", {"model": {"type": "gan", "generator_optimizer": "adma"}}, "generator_optimizer"),
]


@pytest.mark.parametrize(("family", "change", "fragment"), REFUSED_AT_VALIDATION)
def test_bad_configs_are_refused_before_tensorflow(tmp_path, family, change, fragment):
    config = _write(tmp_path, {**_tiny_config(family), **change})
    result = runner.invoke(app, ["config", "validate", str(config)])
    assert result.exit_code == 2
    assert fragment in result.stderr, result.stderr


REFUSED_AT_BUILD = [
    ("vae", {"dataset": {"type": "synthetic_classification", "samples": 60}},
     "generates images of shape (height, width, channels)"),
    ("gan", {"dataset": {"type": "synthetic_classification", "samples": 60}},
     "shape (2,)"),
    ("vae", {"model": {**SMALL["vae"], "filters": [4, 4, 4, 4]}},
     "model.filters: 4 stride-2 layers need height and width divisible by 16"),
    ("gan", {"model": {**SMALL["gan"], "filters": [8, 8, 8, 8]}}, "use at most 3 entries"),
]  # fmt: skip


@pytest.mark.parametrize(("family", "change", "fragment"), REFUSED_AT_BUILD)
def test_data_the_family_cannot_take_is_a_config_error(tmp_path, family, change, fragment):
    run = tmp_path / "run"
    config = _write(tmp_path, {**_tiny_config(family), **change})
    result = runner.invoke(app, ["fit", str(config), "--run-dir", str(run)])
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not run.exists()
