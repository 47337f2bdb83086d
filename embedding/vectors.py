"""The model's input and output conventions, shared by both runtimes (Keras and ONNX Runtime), so
they cannot drift: uint8 pixels in, unit vectors out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import Damaged


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


class NotAVector(Damaged):
    """A model output that no image gives: not finite (NaN, infinite) or zero. The embedder that
    made it says what to do (embedding/onnx_embedder.py, model.py)."""


def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    """normalise(), for what leaves an embedder as a query's or a poster's vector: NotAVector for a
    row that is not finite or is zero, which would otherwise be searched (every similarity 0.000)
    or stored. The row norms are what normalise() computes anyway: the check costs a comparison."""
    vectors = np.asarray(vectors, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    fine = np.isfinite(norms[:, 0]) & (norms[:, 0] > 1e-12)  # a NaN or infinite entry makes its norm one
    if not fine.all():
        bad, n = int((~fine).sum()), len(vectors)
        zero = int((np.isfinite(norms[:, 0]) & ~fine).sum())
        what = "a zero vector" if zero == bad else "a vector that is not finite (NaN or infinite)"
        raise NotAVector(f"VGG16 gave {bad} of {n} image{'s' if n > 1 else ''} {what}")
    return vectors / norms


def style_vectors(stats: Sequence[np.ndarray]) -> np.ndarray:
    """The style vector from each style layer's (n, 2 * channels) statistics: each layer L2-normalised
    on its own, so that the 64 colour-and-grain channels of block 1 weigh as much as the 512 of
    block 5 (raw block-1 statistics would be drowned out), then the whole."""
    with np.errstate(invalid="ignore"):  # a NaN layer: refused below, as a whole
        layers = [normalise(layer) for layer in stats]
    return unit_vectors(np.concatenate(layers, axis=1))
