"""Which embedder runs VGG16: OpenVINO, ONNX Runtime or Keras for ingest; a CPU runtime for every query.

They make the same vectors (fp32 runtimes: cosine >= 0.99999, tests/test_onnx.py; bf16 on a CPU
or GPU: >= 0.9999, tests/test_openvino.py), so a collection made by one is searched with
another: the runtime and precision are recorded in the spec, not compared. An int8 collection is
the exception that proves the rule: its vectors come from another model, so its queries run the
same int8 model (its calibration is recorded with the collection), on OpenVINO or ONNX Runtime alike.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BadInput
from .backend import Runtime, cpu_runtime, resolve_runtime
from .spec import EmbeddingSpec


def make_embedder(
    weights: str | None, style: bool = False, backend: str | None = None, precision: str | None = None, augmented: bool = False
):
    """The embedder `--backend` and `--precision` ask for (auto: OpenVINO bf16 on a CPU that has
    bf16, else ONNX Runtime fp32; a Keras GPU backend on a GPU). Nothing heavy is imported here."""
    runtime = resolve_runtime(backend, precision)
    if runtime.backend in ("onnxruntime", "openvino"):
        return graph_embedder(runtime, weights, style=style, augmented=augmented, long_lived=True)
    from .model import Embedder

    return Embedder(weights, style=style, backend=runtime.backend, precision=runtime.precision, augmented=augmented)


def graph_embedder(runtime: Runtime, weights: str | None, style: bool = False, **options):
    """The ONNX graph's embedder on `runtime` (onnxruntime or openvino); `options` as OnnxEmbedder's."""
    if runtime.backend == "openvino":
        from .openvino_embedder import OpenVinoEmbedder

        return OpenVinoEmbedder(weights, style=style, precision=runtime.precision, **options)
    from .onnx_embedder import OnnxEmbedder

    return OnnxEmbedder(weights, style=style, precision=runtime.precision, **options)


def query_embedder(
    weights: str | None,
    style: bool = False,
    stored: EmbeddingSpec | None = None,
    calibration: dict | None = None,
    posters_dir: Path | None = None,
    long_lived: bool = False,
):
    """The embedder for queries against vectors of the `stored` spec, on the CPU's fastest runtime
    (embedding.backend.cpu_runtime: OpenVINO bf16 where the CPU has bf16, else ONNX Runtime fp32);
    in int8 when those vectors are (with the collection's recorded `calibration`). No TensorFlow.
    `long_lived`: for many queries (a server), faster each, for more memory held."""
    if stored is None or not stored.quantization:
        return graph_embedder(cpu_runtime(), weights, style=style, long_lived=long_lived)
    if not calibration:
        raise BadInput(f"the vectors were made by an int8 model ({stored.quantization}) whose calibration is not recorded: ingest again")
    from .quantize import Calibration

    folder = posters_dir or (Path(calibration["posters_dir"]) if calibration.get("posters_dir") else None)
    return graph_embedder(
        cpu_runtime("int8"),
        weights,
        style=style,
        calibration=Calibration.from_dict(calibration),
        posters_dir=folder,
        long_lived=long_lived,
    )
