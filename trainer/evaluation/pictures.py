"""PNG pictures of images and latent codes, for the run directories of generative models.

Grids tile images in [0, 1] with a thin border, enlarged with nearest-neighbour so an 8x8
digit is as readable as a 28x28 one. Pictures are written with Pillow through a temporary
file and ``os.replace``, like every other file of a run. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

TILE = 56  # target tile size in pixels: 28x28 images at 2x, 8x8 digits at 7x
PALETTE = [  # ten well-separated colours (Tableau 10), one per class
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip


def grid(images: np.ndarray, columns: int, border: int = 2) -> np.ndarray:
    """Tile ``(n, height, width, channels)`` images in [0, 1] into one uint8 picture."""
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
    n, height, width, channels = images.shape
    scale = max(1, TILE // max(height, width))
    images = images.repeat(scale, axis=1).repeat(scale, axis=2)
    height, width = height * scale, width * scale
    rows = -(-n // columns)
    canvas = np.ones((rows * (height + border) + border, columns * (width + border) + border,
                      channels), dtype=np.float32)  # fmt: skip
    for i, image in enumerate(images):
        top = border + (i // columns) * (height + border)
        left = border + (i % columns) * (width + border)
        canvas[top : top + height, left : left + width] = image
    canvas = np.round(canvas * 255).astype(np.uint8)
    return canvas[..., 0] if channels == 1 else canvas


def interleave(originals: np.ndarray, reconstructions: np.ndarray, columns: int) -> np.ndarray:
    """Rows of originals, each followed by the row of their reconstructions."""
    pairs = []
    for start in range(0, len(originals), columns):
        pairs += [originals[start : start + columns], reconstructions[start : start + columns]]
    return np.concatenate(pairs)


def scatter(points: np.ndarray, labels: np.ndarray, class_names, size: int = 512) -> np.ndarray:
    """A picture of 2-d points coloured by class, with a legend (the VAE's latent space)."""
    from PIL import Image, ImageDraw

    margin, legend = 16, 120
    image = Image.new("RGB", (size + legend, size), "white")
    draw = ImageDraw.Draw(image)
    points = np.asarray(points, dtype=np.float64)
    low, high = np.percentile(points, 0.5, axis=0), np.percentile(points, 99.5, axis=0)
    span = np.where(high > low, high - low, 1.0)
    pixels = margin + (points - low) / span * (size - 2 * margin)
    pixels[:, 1] = size - pixels[:, 1]  # y grows upwards, as on a plot
    draw.rectangle([margin // 2, margin // 2, size - margin // 2, size - margin // 2],
                   outline=(200, 200, 200))  # fmt: skip
    radius = 3.0 if len(points) < 1000 else 1.5  # a few points can be bigger
    for (x, y), label in zip(pixels, np.asarray(labels).ravel(), strict=True):
        colour = PALETTE[int(label) % len(PALETTE)]
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    for i, name in enumerate(class_names):
        top = margin + i * 18
        draw.rectangle([size + 8, top, size + 18, top + 10], fill=PALETTE[i % len(PALETTE)])
        draw.text((size + 24, top - 1), str(name)[:14], fill="black")
    return np.asarray(image)


def save_png(path: Path, picture: np.ndarray) -> Path:
    """Write a uint8 picture (grey or RGB) as PNG, atomically."""
    from PIL import Image

    temporary = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(temporary, format="PNG")
        os.replace(temporary, path)
    except OSError as error:
        from trainer.core.errors import StorageError

        temporary.unlink(missing_ok=True)
        raise StorageError(f"cannot write {path} ({error.strerror or error})") from error
    return path
