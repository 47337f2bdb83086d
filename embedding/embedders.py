"""Which embedder runs VGG16: ONNX Runtime or Keras, for ingest; ONNX Runtime for every query.

Both make the same vectors (cosine >= 0.99999, tests/test_onnx.py), so a collection made by one is
searched with the other: the runtime is recorded in the spec, not compared. An int8 collection
is the exception that proves the rule: its vectors come from another model, so its queries run
the same int8 model (its calibration is recorded with the collection).
"""

from __future__ import annotations

from pathlib import Path

from embedding.backend import resolve_runtime
from embedding.spec import EmbeddingSpec
from errors import UserError


def make_embedder(
    weights: str | None, style: bool = False, backend: str | None = None, precision: str | None = None, augmented: bool = False
):
    """The embedder `--backend` and `--precision` ask for (auto: ONNX Runtime on a CPU, a Keras GPU backend on a GPU)."""
    runtime = resolve_runtime(backend, precision)
    if runtime.backend == "onnxruntime":
        from embedding.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(weights, style=style, precision=runtime.precision, augmented=augmented, long_lived=True)
    from embedding.model import Embedder

    return Embedder(weights, style=style, backend=runtime.backend, precision=runtime.precision, augmented=augmented)


def query_embedder(
    weights: str | None,
    style: bool = False,
    stored: EmbeddingSpec | None = None,
    calibration: dict | None = None,
    posters_dir: Path | None = None,
    long_lived: bool = False,
):
    """The embedder for queries against vectors of the `stored` spec: ONNX Runtime, in int8 when
    those vectors are (with the collection's recorded `calibration`), else fp32. No TensorFlow.
    `long_lived`: for many queries (a server), faster each, for more memory held."""
    from embedding.onnx_embedder import OnnxEmbedder
    from embedding.quantize import Calibration

    if stored is None or not stored.quantization:
        return OnnxEmbedder(weights, style=style, long_lived=long_lived)
    if not calibration:
        raise UserError(f"the vectors were made by an int8 model ({stored.quantization}) whose calibration is not recorded: ingest again")
    folder = posters_dir or (Path(calibration["posters_dir"]) if calibration.get("posters_dir") else None)
    return OnnxEmbedder(
        weights, style=style, precision="int8", calibration=Calibration.from_dict(calibration), posters_dir=folder, long_lived=long_lived
    )
