"""The model's input and output conventions, shared by both runtimes (Keras and ONNX Runtime), so
they cannot drift: uint8 pixels in, unit vectors out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def as_uint8(pixels: np.ndarray) -> np.ndarray:
    """The model's input type: RGB bytes (floats 0..255, as older callers pass, are rounded)."""
    array = np.asarray(pixels)
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def normalise(vectors: np.ndarray) -> np.ndarray:
    # Qdrant normalises cosine vectors on insert; doing it here makes local and server stores
    # hold exactly the same numbers, and makes dot product equal cosine similarity.
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def style_vectors(stats: Sequence[np.ndarray]) -> np.ndarray:
    """The style vector from each style layer's (n, 2 * channels) statistics: each layer L2-normalised
    on its own, so that the 64 colour-and-grain channels of block 1 weigh as much as the 512 of
    block 5 (raw block-1 statistics would be drowned out), then the whole."""
    return normalise(np.concatenate([normalise(layer) for layer in stats], axis=1))
