"""``trainer report RUN_DIR``: one self-contained HTML page about a run.

The page holds the run's pictures (redrawn by :mod:`trainer.evaluation.plots` from the run's files,
plus the PNGs the run wrote itself, such as ``augmentation.png`` or a VAE's samples) as
base64 ``data:`` URIs, the test metrics beside the naive baseline, the per-class table, the
diagnosis, the resolved config and the environment. It needs no server, no network and no
other file, so it can be mailed or attached to a CI job. A few lines of inline script
count the pictures the browser decoded and say so at the foot of the page (a reader sees a
broken picture named, and the tests read the same line from headless Chromium). No
TensorFlow is imported.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Any

from trainer.core.errors import UsageError
from trainer.evaluation import plots

RUN_PICTURES = {  # PNGs a run writes itself, with what they show
    "augmentation.png": "Augmentation: training images (top row) and augmented copies below",
    "reconstructions.png": "Test images, each row above its reconstructions",
    "samples.png": "Samples drawn from the model",
    "latent_space.png": "The test set's latent codes, coloured by class",
}
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; }
h1 { margin-bottom: .2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.summary { color: #555; } nav a { margin-right: 1rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; } thead th { background: #f4f4f4; }
figure { margin: 1rem 0 2rem; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9rem; }
pre { background: #f7f7f7; padding: .8rem; overflow-x: auto; font-size: .85rem; }
.verdict { font-weight: bold; } #image-check { color: #555; }
#image-check.failed { color: #b00; font-weight: bold; }
"""
# Counts decoded pictures once everything has loaded and writes the result into the page.
CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.querySelectorAll("img.figure");
  var loaded = [], failed = [];
  images.forEach(function (img) {
    (img.complete && img.naturalWidth > 0 ? loaded : failed).push(img.id);
  });
  var check = document.getElementById("image-check");
  check.dataset.loaded = loaded.join(" ");
  check.dataset.failed = failed.join(" ");
  check.textContent = failed.length
    ? failed.length + " of " + images.length + " pictures failed to load: " + failed.join(", ")
    : "";  // nothing to say when every picture loaded (the data attributes still tell)
  if (failed.length) { check.className = "failed"; }
});
"""


def default_output(run_dir: Path) -> Path:
    return run_dir / "report.html"


def write(run_dir: Path, output: Path | None = None) -> Path:
    """Write the page for ``run_dir`` to ``output`` (default: ``RUN_DIR/report.html``)."""
    from trainer.core.files import atomic_write_bytes

    output = output or default_output(run_dir)
    if output.is_dir():
        raise UsageError(f"--output {output} is a folder", hint="name a file, e.g. report.html")
    atomic_write_bytes(output, render(run_dir).encode("utf-8"))
    return output


def render(run_dir: Path) -> str:
    """The HTML page for a run directory written by ``trainer fit``."""
    if not run_dir.is_dir() or not (run_dir / "config.yaml").is_file():
        raise UsageError(
            f"'{run_dir}' is not a run directory (config.yaml is missing)",
            hint="pass a directory written by `trainer fit`",
        )
    run = plots.read_run(run_dir)
    environment = _json(run_dir / "environment.json")
    config_text = (run_dir / "config.yaml").read_text()
    name = run_dir.name
    pictures = [(key, plots.CAPTIONS[key], png) for key, png in plots.draw(run).items()]
    for file, caption in RUN_PICTURES.items():
        if (run_dir / file).is_file():
            pictures.append((file.removesuffix(".png"), caption, (run_dir / file).read_bytes()))
    sections = [
        ("metrics", "Test metrics", _metrics(run.metrics)),
        ("diagnosis", "Diagnosis", _diagnosis(_json(run_dir / "diagnosis.json"))),
        ("per-class", "Per class", _per_class(run.metrics)),
        ("pictures", "Pictures", "".join(_figure(*p) for p in pictures)),
        ("config", "Config", f"<pre>{escape(config_text)}</pre>"),
        ("environment", "Environment", _environment(environment)),
    ]
    sections = [s for s in sections if s[2]]
    nav = "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{escape(title)}</h2>{content}</section>'
                   for key, title, content in sections)  # fmt: skip
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>trainer report: {escape(name)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{escape(name)}</h1><p class="summary">{_summary(run, run_dir)}</p>'
        f"<nav>{nav}</nav>{body}"
        '<footer><p id="image-check" data-loaded="" data-failed="">pictures not checked '
        f"(scripts are off)</p></footer><script>{CHECK_SCRIPT}</script></body></html>\n"
    )


def _summary(run: plots.RunFiles, run_dir: Path) -> str:
    training, metrics = run.training, run.metrics
    facts = [f"task: {metrics.get('task', 'unknown')}"]
    if not (run_dir / "metrics.json").is_file():
        facts.append("incomplete: no metrics.json")
    if training:
        facts.append(f"epochs run: {training.get('epochs_run')}")
        if training.get("best_epoch"):
            facts.append(f"best epoch: {training['best_epoch']}")
        if training.get("stopped_early"):
            facts.append("stopped early")
        if training.get("train_seconds") is not None:
            facts.append(f"training time: {training['train_seconds']:.1f} s")
    return escape(" · ".join(facts))


def _metrics(metrics: dict[str, Any]) -> str:
    test = metrics.get("test", {})
    if not test:
        return ""
    baseline = metrics.get("baseline") or {}
    header = ["metric", "model"] + ([f"baseline: {baseline.get('name')}"] if baseline else [])
    rows = [[name, value] + ([baseline.get("test", {}).get(name)] if baseline else [])
            for name, value in test.items()]  # fmt: skip
    return _table(header, rows)


def _per_class(metrics: dict[str, Any]) -> str:
    per_class = metrics.get("per_class") or {}
    header = ["class", "precision", "recall", "f1", "support"]
    rows = [[name, *(v.get(k) for k in header[1:])] for name, v in per_class.items()]
    return _table(header, rows) if rows else ""


def _diagnosis(diagnosis: dict[str, Any]) -> str:
    if not diagnosis:
        return ""
    verdict = escape(str(diagnosis.get("verdict", "")))
    items = "".join(f"<li>{escape(str(s))}</li>" for s in diagnosis.get("suggestions", []))
    return (f'<p><span class="verdict">{verdict}</span>: {escape(str(diagnosis.get("summary")))}'
            f"</p>{f'<ul>{items}</ul>' if items else ''}")  # fmt: skip


def _environment(environment: dict[str, Any]) -> str:
    if not environment:
        return ""
    facts = {k: environment.get(k) for k in ("backend", "device", "seed", "deterministic",
                                             "platform", "started", "resumed_from")}  # fmt: skip
    facts.update(environment.get("versions", {}))
    rows = [[k, v] for k, v in facts.items() if v is not None]
    full = escape(json.dumps(environment, indent=2))
    return f"{_table(['', 'value'], rows)}<details><summary>all of environment.json</summary>" \
        f"<pre>{full}</pre></details>"  # fmt: skip


def _figure(key: str, caption: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img class="figure" id="figure-{escape(key)}" alt="{escape(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{escape(caption)}</figcaption>'
            "</figure>")  # fmt: skip


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "–" if value is None else escape(str(value))


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
