"""A small, seeded embedder for the unit layer (tests/test_posters.py): the embedder interface
(poster_search.embedding.interface) implemented by a real, cheap computation instead of VGG16, so
the front object's wiring is tested in milliseconds per poster and without any model runtime.

Its vector is what VGG16's is, in miniature: the normalised mean of a 7x7 grid of non-negative
cells (each 32x32 block's colour statistics through a seeded random projection, then ReLU), so
similar images get similar vectors and similarity maps split a score over the cells exactly."""

from __future__ import annotations

import numpy as np

from poster_search.embedding.spec import EmbeddingSpec

CELLS = 7
BLOCK = 32  # 224 / 7


class SmallEmbedder:
    def __init__(self, seed: int = 0, dim: int = 512, style: bool = False) -> None:
        self.spec = EmbeddingSpec(model="small-seeded", layer="cells7x7", weights=f"seed:{seed}", dim=dim, backend="numpy")
        self.style_spec = (
            EmbeddingSpec(model="small-seeded-style", layer="cells7x7", weights=f"seed:{seed}", dim=dim, backend="numpy") if style else None
        )
        rng = np.random.default_rng(seed)
        self._projection = rng.normal(size=(12, dim)).astype(np.float32)  # per cell: means, stds, min, max of R, G, B
        self.calls = 0

    def load(self) -> None:
        """Nothing to load."""

    def grids(self, pixels: np.ndarray) -> np.ndarray:
        x = np.asarray(pixels, np.float32).reshape(len(pixels), CELLS, BLOCK, CELLS, BLOCK, 3) / 255.0
        stats = [x.mean(axis=(2, 4)), x.std(axis=(2, 4)), x.min(axis=(2, 4)), x.max(axis=(2, 4))]
        return np.maximum(np.concatenate(stats, axis=-1) @ self._projection, 0.0)  # (n, 7, 7, dim), >= 0

    def embed_with_grid(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        grid = self.grids(pixels)
        return _unit(grid.mean(axis=(1, 2))), grid

    def embed_both(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        self.calls += len(pixels)
        vectors, grid = self.embed_with_grid(pixels)
        style = _unit(grid.std(axis=(1, 2))) if self.style_spec is not None else None
        return vectors, style


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)
