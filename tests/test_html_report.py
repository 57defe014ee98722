"""`trainer report`: one self-contained HTML page, checked as a browser renders it.

The rendering tests run Debian's headless Chromium (installed by `make install`): the page's
own inline script records which pictures decoded (read back with --dump-dom), and a
screenshot must show the page drawn. Without Chromium they are skipped, saying why.
"""

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from test_plots import fake_run
from typer.testing import CliRunner

from trainer.cli.commands import app
from trainer.core.errors import EXIT_USAGE
from trainer.results import html_report

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make install adds it)"
)
FIGURES = ["learning_curves", "confusion_matrix", "roc", "precision_recall"]


def chromium(page: Path, *args: str, profile: Path) -> str:
    """Run headless Chromium on a local page; its stdout."""
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args,
               page.resolve().as_uri()]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def image_check(page: Path, profile: Path) -> dict[str, list[str]]:
    """What the page's script found: the ids of the pictures that decoded and that failed."""
    dom = chromium(page, "--dump-dom", profile=profile)
    found = re.search(r'<p id="image-check" data-loaded="([^"]*)" data-failed="([^"]*)"', dom)
    assert found, "the page's check did not run (no data attributes in the DOM)"
    return {"loaded": found.group(1).split(), "failed": found.group(2).split()}


# --- the page ------------------------------------------------------------------------------


def test_the_page_holds_pictures_metrics_config_and_environment(tmp_path):
    run = fake_run(tmp_path)
    page = html_report.render(run)
    ids = re.findall(r'<img class="figure" id="figure-([a-z_]+)"', page)
    assert ids == FIGURES
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        assert base64.b64decode(data).startswith(b"\x89PNG")
    assert "<td>accuracy</td>" in page and "baseline: majority class" in page
    assert "<td>bird</td>" in page  # the per-class table
    assert "name: &lt;multiclass&gt; &amp; co" in page  # the config, escaped
    assert "3.15.1" in page and "best epoch: 3" in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere


def test_run_pictures_and_the_diagnosis_are_included(tmp_path):
    run = fake_run(tmp_path, "regression")
    Image.new("L", (20, 10), 128).save(run / "augmentation.png")
    (run / "diagnosis.json").write_text(json.dumps(
        {"verdict": "overfitting", "summary": "validation loss rose from epoch 3",
         "suggestions": ["regularization.dropout: 0.2"]}))  # fmt: skip
    page = html_report.render(run)
    ids = re.findall(r'<img class="figure" id="figure-([a-z_]+)"', page)
    assert ids == ["learning_curves", "predicted_vs_true", "residuals", "augmentation"]
    assert "overfitting" in page and "regularization.dropout: 0.2" in page


def test_cli_writes_the_page_and_prints_its_path(tmp_path):
    run = fake_run(tmp_path, "binary")
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(run / "report.html")
    other = tmp_path / "elsewhere.html"
    result = CliRunner().invoke(app, ["report", str(run), "--output", str(other)])
    assert result.exit_code == 0 and other.read_text().startswith("<!doctype html>")


def test_cli_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == EXIT_USAGE
    assert "is not a run directory (config.yaml is missing)" in result.output
    assert not (tmp_path / "report.html").exists()


def test_report_does_not_import_tensorflow(tmp_path):
    run = fake_run(tmp_path)
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom trainer.cli.commands import app\n"
        f"result = CliRunner().invoke(app, ['report', {str(run)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- as Chromium renders it ----------------------------------------------------------------


@needs_chromium
def test_chromium_decodes_every_picture_and_draws_the_page(tmp_path):
    page = html_report.write(fake_run(tmp_path))
    check = image_check(page, tmp_path / "profile")
    assert check == {"loaded": [f"figure-{name}" for name in FIGURES], "failed": []}
    shot = tmp_path / "page.png"
    chromium(page, f"--screenshot={shot}", "--window-size=1200,2400", profile=tmp_path / "profile")
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    assert pixels.shape[:2] == (2400, 1200)
    assert pixels.std() > 20  # not a blank page
    saturated = (pixels.max(axis=2) - pixels.min(axis=2)) > 80  # coloured: plots, not text
    assert saturated.mean() > 0.005


@needs_chromium
def test_chromium_check_names_a_picture_that_does_not_decode(tmp_path):
    page = html_report.write(fake_run(tmp_path))
    text = page.read_text()
    broken = re.sub(r'(id="figure-roc" alt="[^"]*" src="data:image/png;base64,)[^"]+',
                    r"\1bm90IGEgcG5n", text)  # fmt: skip
    page.write_text(broken)
    check = image_check(page, tmp_path / "profile")
    assert check["failed"] == ["figure-roc"] and len(check["loaded"]) == len(FIGURES) - 1


# --- end to end on a real run --------------------------------------------------------------


def test_fit_writes_pictures_and_predictions_that_the_report_uses(tmp_path):
    config = {"name": "pictures", "seed": 2, "dataset": {"type": "digits", "limit": 200},
              "model": {"type": "fnn", "units": [8]},
              "early_stopping": {"monitor": "val_loss", "patience": 1},
              "training": {"epochs": 3, "batch_size": 32}}  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "trainer", "fit", "config.yaml", "--run-dir",
                           "run"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "plots").iterdir()) == sorted(f"{n}.png" for n in FIGURES)
    with np.load(run / "predictions.npz") as saved:
        y_true, y_pred = saved["y_true"], saved["y_pred"]
    metrics = json.loads((run / "metrics.json").read_text())
    accuracy = float((y_pred.argmax(axis=1) == y_true).mean())
    assert accuracy == pytest.approx(metrics["test"]["accuracy"])  # the test split's outputs
    assert np.asarray(metrics["confusion_matrix"]).sum() == len(y_true)
    page = html_report.write(run)
    assert re.findall(r'id="figure-([a-z_]+)"', page.read_text()) == FIGURES
    if CHROMIUM:
        assert image_check(page, tmp_path / "profile")["failed"] == []
