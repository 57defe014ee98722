"""Checkpoints that survive crashes: atomic, verified and complete.

A checkpoint is a directory ``checkpoints/step-000001234/`` holding ``state.npz`` (every
model variable, including dropout and other random-generator states, every optimizer
variable, including its step count and so the learning-rate schedule's position, and the
metric accumulators of the epoch in progress), ``meta.json`` (epoch, step in the epoch,
early-stopping state, history length) and ``manifest.json`` (size and SHA-256 of both).
It is written into a temporary directory beside the final one, fsynced, renamed into place
with ``os.replace``, and only then named by the ``latest`` pointer. A damaged newest
checkpoint (one whose bytes fail the manifest, or whose weights or optimizer variables hold
NaN or Inf) is skipped, with a warning, for the previous valid one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainer.core.errors import RunError, StorageError
from trainer.core.files import atomic_write_bytes, fsync_dir
from trainer.training import finite

STATE, META, MANIFEST, LATEST = "state.npz", "meta.json", "manifest.json", "latest"


@dataclass
class Restored:
    path: Path
    meta: dict[str, Any]
    skipped: list[str] = field(default_factory=list)  # damaged checkpoints passed over


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Checkpoints:
    """The ``checkpoints/`` directory of one run."""

    def __init__(self, root: Path, keep: int = 3, fault=None) -> None:
        self.root, self.keep, self._fault = root, keep, fault

    def save(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"step-{meta['global_step']:09d}"
        temporary = self.root / f".tmp-{final.name}-{os.getpid()}"
        shutil.rmtree(temporary, ignore_errors=True)
        try:
            temporary.mkdir()
            with open(temporary / STATE, "wb") as handle:
                np.savez(handle, **arrays)
                handle.flush()
                os.fsync(handle.fileno())
            if self._fault is not None:
                self._fault.in_checkpoint(meta["global_step"])
            (temporary / META).write_text(json.dumps(meta, indent=2))
            manifest = {
                name: {"bytes": (temporary / name).stat().st_size,
                       "sha256": _sha256(temporary / name)}
                for name in (STATE, META)
            }  # fmt: skip
            atomic_write_bytes(temporary / MANIFEST, json.dumps(manifest, indent=2).encode())
            fsync_dir(temporary)
            if final.exists():
                shutil.rmtree(final)
            os.replace(temporary, final)
            fsync_dir(self.root)
            atomic_write_bytes(self.root / LATEST, final.name.encode())
        except OSError as error:
            shutil.rmtree(temporary, ignore_errors=True)
            raise StorageError(
                f"cannot write checkpoint {final} ({error.strerror or error}); "
                "the previous checkpoint is intact",
                hint="free disk space or point --run-dir at a writable disk, then resume",
            ) from error
        self._prune()
        return final

    def _prune(self) -> None:
        for old in self.valid_names()[: -self.keep]:
            shutil.rmtree(self.root / old, ignore_errors=True)

    def valid_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.name.startswith("step-"))

    def clean_temporaries(self) -> None:
        """Remove what a crash during a save left behind."""
        if self.root.is_dir():
            for leftover in self.root.glob(".tmp-*"):
                shutil.rmtree(leftover, ignore_errors=True)

    def verify(self, path: Path) -> str | None:
        """None if the checkpoint is intact, else what is wrong with it."""
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError) as error:
            return f"unreadable manifest ({error})"
        for name in (STATE, META):
            expected = manifest.get(name, {})
            try:
                size = (path / name).stat().st_size
            except OSError:
                return f"{name} is missing"
            if size != expected.get("bytes"):
                return f"{name} has {size} bytes, the manifest says {expected.get('bytes')}"
            if _sha256(path / name) != expected.get("sha256"):
                return f"{name} fails its SHA-256 check"
        try:
            found = finite.checkpoint_problems(self.load_arrays(path))
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:  # not an archive
            return f"{STATE} cannot be read ({error})"
        if found:
            return f"{STATE} holds non-finite values: {finite.summary(found)}"
        return None

    def latest(self) -> Restored | None:
        """The newest intact checkpoint (the ``latest`` pointer first), or None."""
        names = self.valid_names()
        pointer = self.root / LATEST
        if pointer.is_file():
            named = pointer.read_text().strip()
            if named in names:  # the pointer may lag a crash between rename and pointer
                names.remove(named)
                names.append(named)
        skipped = []
        for name in reversed(names):
            problem = self.verify(self.root / name)
            if problem is None:
                meta = json.loads((self.root / name / META).read_text())
                return Restored(self.root / name, meta, skipped)
            skipped.append(f"{name}: {problem}")
        if skipped:
            raise RunError(
                "no intact checkpoint to resume from: " + "; ".join(skipped),
                hint="start the run again in a new directory",
            )
        return None

    @staticmethod
    def load_arrays(path: Path) -> dict[str, np.ndarray]:
        with np.load(path / STATE, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}


# The temporary names the run's files are written under before their rename: ``.NAME.tmpPID``
# (trainer.core.files), ``.STEM.tmpPID.SUFFIX`` (model.keras, the plots), ``.history.csv.tmp``.
TEMPORARY = re.compile(r"\..+\.tmp\d*(\.[A-Za-z0-9]+)?")


def remove_leftovers(run_dir: Path) -> list[str]:
    """Remove the temporaries a process killed while saving left in ``run_dir``; their names.

    Each file of a run is written under a temporary name and renamed into place, so a SIGKILL
    in between (during the final save of ``model.keras``, say) leaves the temporary behind,
    named after a process that is gone: no later process writes or removes that name. Call it
    with the run's lock held (nobody else is writing there): the run directory, ``plots/`` and
    ``checkpoints/`` (half-written checkpoints too) are swept.
    """
    removed = []
    checkpoints = run_dir / "checkpoints"
    for folder in (run_dir, run_dir / "plots", checkpoints):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if folder == checkpoints and path.name.startswith(".tmp-") and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)  # a half-written checkpoint
            elif TEMPORARY.fullmatch(path.name) and not path.is_dir():
                path.unlink(missing_ok=True)
            else:
                continue
            removed.append(str(path.relative_to(run_dir)))
    return removed


def capture(model, optimizers: list) -> dict[str, np.ndarray]:
    """Every variable the run's future depends on, by position and name."""
    arrays = {}
    for group, variables in _groups(model, optimizers):
        for i, variable in enumerate(variables):
            arrays[f"{group}/{i:05d}/{variable.path}"] = np.asarray(variable.numpy())
    return arrays


def restore(model, optimizers: list, arrays: dict[str, np.ndarray], skip=()) -> None:
    """Assign saved values back; names and shapes must match the freshly built model."""
    expected = {key for key in arrays}
    for group, variables in _groups(model, optimizers):
        for i, variable in enumerate(variables):
            key = f"{group}/{i:05d}/{variable.path}"
            if key not in arrays:
                raise RunError(f"checkpoint does not match the model: {key} is missing",
                               hint="the model or config changed since the checkpoint")  # fmt: skip
            expected.discard(key)
            if any(part in variable.path for part in skip):
                continue
            value = arrays[key]
            if tuple(value.shape) != tuple(variable.shape):
                raise RunError(
                    f"checkpoint does not match the model: {key} has shape {value.shape}, "
                    f"the model expects {tuple(variable.shape)}"
                )
            variable.assign(value)
    if expected:
        raise RunError(f"checkpoint holds {len(expected)} variables the model lacks")


def _groups(model, optimizers: list):
    yield "model", model.variables
    yield "metrics", model.metrics_variables
    for index, optimizer in enumerate(optimizers):
        yield f"optimizer{index}", optimizer.variables
