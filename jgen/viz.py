"""Image grids, PNG files and the plotting backend (the only place images are turned into pixels on disk)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def image_grid(images, ncol: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile images [N, H, W, C] in [0, 1] into one uint8 picture [rows*(H+pad)+pad, ncol*(W+pad)+pad, C]."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"image_grid wants [N, H, W, C]; got shape {images.shape}")
    n, h, w, c = images.shape
    ncol = ncol or int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    grid = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), np.float32)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = images[i]
    return (np.clip(grid, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_png(path: str, array: np.ndarray) -> None:
    """Write a uint8 [h, w], [h, w, 1] or [h, w, 3] array as PNG, creating the directory."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(array).save(path)


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (figures are saved, never shown; works without a display)."""
    import matplotlib  # local: heavy, and the backend must be chosen before pyplot is imported

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # local: see above

    return plt
