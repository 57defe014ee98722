"""Matplotlib for files, not windows: figures without pyplot, PNGs written atomically.

Imported only by code that draws (matplotlib takes about a second to import), never at
command-line start-up.
"""

from __future__ import annotations

import os
from pathlib import Path


def figure(width: float = 7.0, height: float = 4.5):
    """A new (figure, axes), drawn off-screen by Agg (a bare Figure never opens a window)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def save(fig, path: Path) -> None:
    """Write ``fig`` as a PNG through a temporary file and a rename."""
    from trainer.errors import StorageError

    temporary = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    try:
        fig.savefig(temporary, format="png")
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise StorageError(f"cannot write {path} ({error.strerror or error})") from error
