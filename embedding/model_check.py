"""What a cached model computes, checked against what it computed when it was built.

A cache record's sizes and digests say that the files are the ones recorded, not that the record
is honest: a cache altered and its record recomputed (a copied home, a sync tool, someone's edit)
passed every check and answered searches with every similarity 0.000, or with wrong neighbours
(issue 39). So each cached model also records its answer to a test image made here in code
(`probe_pixels`): when the model is built, the freshly built model embeds it; whenever the cached
model is loaded, the loaded model embeds it again and must give the same vectors. A model that does
not is rebuilt, with a note, like any other bad cache entry.

The test image is 64x64 (the graph takes any size: embedding/onnx_graph.py): every weight of the
13 convolutions is used on it, for 1/12 of a poster's arithmetic. On a 2-core AMD EPYC Zen 4 it
adds about 0.02 s to a cold search on OpenVINO bf16 (its first inference takes 0.035 s, of which the
query's own then saves 0.015 s) and under 0.01 s on ONNX Runtime fp32 (bench/cold_start.py). Its
"vectors" are each graph output the model computes, averaged over the image where it is a grid and
L2-normalised: the `vgg16` vector, the style statistics, the grids.

What it cannot see: damage to weights that no unit of the small image reaches. One weight of the
ImageNet model with its exponent byte randomised moved 8 real posters' vectors (cosine < 0.9999)
in 47 of 120 tries; this check caught 37 of those 47. So the files' sha256 stay checked as well
(0.07 s of a cold search): they catch any damage that does not come with a recomputed record, this
check the damage that does.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable, Sequence

import numpy as np

PROBE_SIZE = 64
# Tolerances: the smallest cosine, over the outputs, between the recorded vectors and the same ones
# computed again. Measured with the ImageNet weights on a 2-core AMD EPYC Zen 4 (AVX-512 BF16):
# - a model of the same precision gives the same vectors across processes and thread counts (1, 2):
#   1 - cosine < 1e-15 for ONNX Runtime fp32 and int8, OpenVINO bf16, f32 and int8; and across the
#   two runtimes: OpenVINO f32 against ONNX Runtime fp32 1 - 3.5e-13, int8 against int8 1 - 1.7e-12.
#   So the kind of a model is its precision, whichever runtime computes it;
# - the closest two kinds are bf16 and fp32: 1 - 9.4e-6 at the worst output (block5_conv3's
#   statistics; 1 - 8e-6 on the `vgg16` vector); int8 and fp32: 1 - 1.4e-3;
# - damage: 4 MB of random bytes anywhere in the ONNX weights gives 0 (NaN or overflow), anywhere
#   in OpenVINO's blob 0.07-0.79 (or OpenVINO notices and compiles it again: then it is right).
# SAME_KIND sits 9x inside the bf16-fp32 gap, so that a model of another precision never passes for
# the recorded one, and leaves 1e-6 for another CPU's rounding of a copied cache (more than that:
# the cache is rebuilt there, once, with a note).
SAME_KIND = 0.999999
# A model compiled in bf16 by OpenVINO from a cached fp32 graph, against the graph's record: 11x
# the bf16-fp32 gap.
ACROSS_PRECISIONS = 0.9999

Runner = Callable[[np.ndarray, Sequence[str]], Sequence[np.ndarray]]  # (pixels, output names) -> outputs


def probe_pixels(size: int = PROBE_SIZE) -> np.ndarray:
    """The test image, (1, size, size, 3) uint8, the same on every machine: computed with integer
    arithmetic and numpy's elementary functions only (no random generator whose stream could change
    between numpy versions). Its four quadrants differ (gradients and stripes, a disc on a
    checkerboard, blocks of scattered colours at two scales), so that most channels of every layer
    see something."""
    half = size // 2
    y, x = np.mgrid[0:half, 0:half].astype(np.float64) / (half - 1)
    smooth = np.stack([255 * x, 255 * (0.5 + 0.5 * np.sin(2 * np.pi * (3 * x + 2 * y))), 255 * y * (1 - x)], axis=-1)
    rows, cols = np.mgrid[0:half, 0:half]
    disc = (np.hypot(x - 0.4, y - 0.6) < 0.3) ^ ((rows // 4 + cols // 4) % 2 == 1)
    shapes = np.stack([disc * 230.0, (1 - disc) * 200.0 + 20, 120 + 100 * np.cos(6 * x)], axis=-1)
    image = np.zeros((size, size, 3), np.float64)
    image[:half, :half] = smooth
    image[:half, half:] = _scattered(half, 4, 1)
    image[half:, :half] = shapes
    image[half:, half:] = _scattered(half, 2, 2)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)[None]


def _scattered(side: int, block: int, seed: int) -> np.ndarray:
    """(side, side, 3) blocks of block x block pixels, each of a colour hashed from its place."""
    rows, cols = np.mgrid[0:side, 0:side].astype(np.uint32) // np.uint32(block)
    channels = np.arange(3, dtype=np.uint32)[None, None, :]
    h = (
        rows[..., None] * np.uint32(374761393)
        + cols[..., None] * np.uint32(668265263)
        + (channels + np.uint32(seed)) * np.uint32(2246822519)
    )
    h = (h ^ (h >> np.uint32(13))) * np.uint32(1274126177)
    return ((h ^ (h >> np.uint32(16))) & np.uint32(255)).astype(np.float64)


def probe(run: Runner, outputs: Sequence[str]) -> dict[str, np.ndarray]:
    """Each output's vector for the test image: a grid (n, h, w, c) averaged over h and w, then
    L2-normalised (float64; a zero vector stays zero, NaN stays NaN)."""
    found = run(probe_pixels(), list(outputs))
    vectors = {}
    for name, value in zip(outputs, found):
        array = np.asarray(value, np.float64)
        vector = array.mean(axis=(1, 2))[0] if array.ndim == 4 else array.reshape(len(array), -1)[0]
        with np.errstate(all="ignore"):
            norm = np.linalg.norm(vector)
            vectors[name] = vector / norm if norm > 0 else vector
    return vectors


def usable(vectors: dict[str, np.ndarray]) -> bool:
    """Whether a freshly built model's answer can be recorded: finite and not all zero."""
    return all(np.all(np.isfinite(v)) and np.any(v != 0) for v in vectors.values())


def as_record(vectors: dict[str, np.ndarray], by: str) -> dict:
    """What a cache record keeps: who computed the vectors (runtime-precision), the image's size,
    each vector as base64 little-endian float32 (exact, a quarter of the size of decimal text)."""
    encoded = {name: base64.b64encode(np.asarray(v, "<f4").tobytes()).decode("ascii") for name, v in vectors.items()}
    return {"by": by, "size": PROBE_SIZE, "vectors": encoded}


def agreement(record: object, vectors: dict[str, np.ndarray]) -> float:
    """The smallest cosine between the recorded vectors and these, over every output computed now;
    0.0 where the record lacks one of them, is of another test image or is not well formed."""
    try:
        if not isinstance(record, dict) or record.get("size") != PROBE_SIZE:
            return 0.0
        recorded = record["vectors"]
        worst = 1.0
        for name, vector in vectors.items():
            saved = np.frombuffer(base64.b64decode(recorded[name], validate=True), "<f4").astype(np.float64)
            if saved.shape != vector.shape:
                return 0.0
            if not np.any(saved) and not np.any(vector):  # an output that is zero on this image, as it was
                continue
            with np.errstate(all="ignore"):
                cosine = float(np.dot(saved, vector))
            worst = min(worst, cosine if np.isfinite(cosine) else 0.0)
        return worst
    except (KeyError, TypeError, ValueError):
        return 0.0


def tolerance(record: object, by: str) -> float:
    """The cosine that vectors computed by `by` (runtime-precision) must reach against `record`."""
    recorded = record.get("by") if isinstance(record, dict) else None
    same = isinstance(recorded, str) and recorded.rsplit("-", 1)[-1] == by.rsplit("-", 1)[-1]
    return SAME_KIND if same else ACROSS_PRECISIONS


def mismatch(agree: float, needed: float) -> str:
    """Why a cached model is rebuilt, in words."""
    return f"does not compute what its record says (cosine {agree:.4f} on the test image, at least {needed} expected)"


def note_rebuilt(what: str, why: str, done: str) -> None:
    """The note for a cached model that does not check out by what it computes (stderr, one line)."""
    print(f"Note: {what} {why}: {done}", file=sys.stderr)
