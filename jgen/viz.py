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
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = images[i]
    return (np.clip(grid, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def grid_cells(grid: np.ndarray, cell_shape: tuple[int, int], pad: int = 1) -> np.ndarray:
    """The inverse of `image_grid`: a uint8 grid [H', W'(, C)] of cells `cell_shape` = (h, w) -> float32 images
    [rows * cols, h, w, C] in [0, 1], row-major (blank cells of a last, partly filled row included)."""
    g = np.asarray(grid)
    g = g[..., None] if g.ndim == 2 else g
    h, w = cell_shape
    rows, rem_r = divmod(g.shape[0] - pad, h + pad)
    cols, rem_c = divmod(g.shape[1] - pad, w + pad)
    if rows < 1 or cols < 1 or rem_r or rem_c:
        raise ValueError(f"a grid of shape {g.shape[:2]} is not made of {h}x{w} cells with {pad}-pixel padding")
    cells = [
        g[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w]
        for r in range(rows)
        for c in range(cols)
    ]
    return np.stack(cells).astype(np.float32) / 255.0


def read_png(path: str) -> np.ndarray:
    """A PNG file as uint8 [h, w] (grey) or [h, w, 3|4]."""
    with Image.open(path) as im:
        return np.asarray(im)


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
