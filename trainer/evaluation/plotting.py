"""Matplotlib for files, not windows: figures without pyplot, PNGs written atomically.

Imported only by code that draws (matplotlib takes about a second to import), never at
command-line start-up. Every picture of the project (run plots, lr-find, the search) is made
and written here.
"""

from __future__ import annotations

import io
from pathlib import Path


def grid(width: float, height: float, rows: int, cols: int):
    """A new figure drawn off-screen by Agg (a bare Figure never opens a window) and its
    ``rows * cols`` axes as a flat list."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, list(fig.subplots(rows, cols, squeeze=False).ravel())


def figure(width: float = 7.0, height: float = 4.5):
    """A new (figure, axes) with one plot."""
    fig, (axes,) = grid(width, height, 1, 1)
    return fig, axes


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def save(fig, path: Path) -> None:
    """Write ``fig`` as a PNG through a temporary file and a rename."""
    from trainer.core.files import atomic_write_bytes

    atomic_write_bytes(path, png(fig))
