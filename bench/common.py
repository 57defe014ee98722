"""What the bench/ scripts share: running a child measured from outside, and RESULTS.md."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
KEPT = "<!-- sections below are written by other bench/ scripts; bench/run.py keeps them -->"


def run(command: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float, int]:
    """Run a child; return it, its wall time, and its peak RSS in KiB (ru_maxrss via wait4)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(command, code, out.read().decode(), err.read().decode())
    return done, wall, usage.ru_maxrss


def write_section(title: str, report: str) -> None:
    """A script's own section (``report``, starting with ``title``) of bench/RESULTS.md,
    after the marker bench/run.py keeps: replaced when it is there, else appended."""
    text = RESULTS.read_text() if RESULTS.is_file() else "# Benchmark results\n"
    if KEPT not in text:
        text = text.rstrip("\n") + "\n\n" + KEPT + "\n"
    if title in text:
        start = text.index(title)
        end = text.find("\n## ", start + len(title))
        text = text[:start] + report + ("" if end < 0 else "\n" + text[end + 1 :])
    else:
        text = text.rstrip("\n") + "\n\n" + report
    RESULTS.write_text(text)
