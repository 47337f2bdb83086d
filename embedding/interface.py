"""What an embedder is to the rest of poster search: the small interface every runtime implements
(OpenVINO, ONNX Runtime, Keras) and that a caller's own embedder implements to be used instead
(`Posters(embedder=...)`). Pixels are decoded posters, (n, 224, 224, 3) uint8 (embedding/images.py)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from .spec import EmbeddingSpec


@runtime_checkable
class Embedder(Protocol):
    """Turns decoded posters into unit vectors of one embedding (`spec`), and of the style
    embedding (`style_spec`) when it makes them too."""

    spec: EmbeddingSpec
    style_spec: EmbeddingSpec | None

    def load(self) -> None:
        """Build or load the model now (else on first use): its errors come before any long work."""

    def embed_both(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(n, spec.dim) unit vectors, and (n, style_spec.dim) style vectors or None, from one pass."""
        ...


@runtime_checkable
class GridEmbedder(Embedder, Protocol):
    """An embedder whose vector is the normalised mean of a 7x7 grid of cells: similarity maps
    split a score over those cells (search/explain.py)."""

    def embed_with_grid(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, dim) unit vectors and their (n, 7, 7, dim) grids, from one pass."""
        ...

    def grids(self, pixels: np.ndarray) -> np.ndarray:
        """(n, 7, 7, dim) grids alone."""
        ...
