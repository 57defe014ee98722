"""``trainer fit``: a new run, or the continuation of an interrupted one.

A run directory given by ``--resume`` (or a ``--run-dir`` that already holds a run) is
resumed from its newest checkpoint once its saved config and the given one agree (or
``--allow-config-change``); a complete run is reported as it is, untouched. Otherwise a new
run directory is made from the config's name and the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.config.loading import load_config
from trainer.config.schema import Config
from trainer.core.errors import UsageError
from trainer.core.files import read_run_json
from trainer.results.runs import config_changes, is_run, new_run_dir
from trainer.training import saved


@dataclass
class Outcome:
    cfg: Config
    run_dir: Path
    metrics: dict[str, Any]
    diagnosis: dict[str, Any] | None
    complete_before: bool = False  # a finished run, left as it was


def fit_or_resume(config: Path | None, overrides: list[str], run_dir: Path | None,
                  resume: Path | None, allow_config_change: bool, runs_root: Path,
                  progress, check=lambda cfg: None) -> Outcome:  # fmt: skip
    """Train a new run, or continue (or report) the run in ``resume`` / ``run_dir``.

    ``check(cfg)`` runs once the config is known, before anything is trained or written
    (the command line's own checks against it, such as metric gates).
    """
    if resume is not None and run_dir is not None and resume != run_dir:
        raise UsageError("give either --resume RUN_DIR or --run-dir PATH, not both")
    target = resume or run_dir
    if target is None or (resume is None and not is_run(target)):
        if config is None:
            raise UsageError("missing CONFIG", hint="trainer fit configs/digits.yaml")
        cfg = load_config(config, overrides)
        check(cfg)
        from trainer.training import engine

        result = engine.fit(cfg, new_run_dir(cfg, runs_root, run_dir), progress)
        return Outcome(cfg, result.run_dir, result.metrics, result.diagnosis)
    if not is_run(target):
        raise UsageError(f"'{target}' is not a run directory (no config.yaml)",
                         hint="pass a directory written by `trainer fit`")  # fmt: skip
    started_with = load_config(target / "config.yaml")
    cfg = load_config(config or target / "config.yaml", overrides)
    check(cfg)
    changes = config_changes(started_with, cfg)
    if changes and not allow_config_change:
        raise UsageError(
            f"the config differs from the one run '{target}' was started with:\n"
            + "\n".join(f"  {line}" for line in changes),
            hint="resume with the saved config, or pass --allow-config-change",
        )
    if saved.is_complete(target):
        diagnosis = target / "diagnosis.json"
        return Outcome(cfg, target, read_run_json(target / "metrics.json"),
                       read_run_json(diagnosis) if diagnosis.is_file() else None,
                       complete_before=True)  # fmt: skip
    from trainer.training import engine

    result = engine.fit(cfg, target, progress, resume=True, keep_learning_rate=bool(changes))
    return Outcome(cfg, target, result.metrics, result.diagnosis)
