"""The embedder on OpenVINO: the project's ONNX graph computed in bf16 on a CPU that has it.

On a CPU with AMX or AVX-512 BF16, OpenVINO runs VGG16's convolutions on bf16 tiles or dot
products with fp32 accumulation: several times ONNX Runtime's fp32 rate (docs/results.md), and
the same vectors (cosine >= 0.9999 to fp32 on real posters, tests/test_openvino.py), so bf16 is
recorded in the spec, not compared, as on a GPU: collections made either way mix. It also runs
the int8 graph (embedding/quantize.py: the same model, the same embedding as ONNX Runtime's int8)
and fp32 (no faster than ONNX Runtime: only when asked for).

Keras stays the model's source and the ONNX graph the exchange format: OpenVINO reads the cached
graph (embedding/onnx_cache.py), and its compiled form is cached beside it (embedding/openvino_cache.py);
both are checked by what they compute (embedding/model_check.py).
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInput
from .model_check import Runner, note_rebuilt, probe
from .onnx_cache import CachedModel
from .onnx_embedder import OnnxEmbedder
from .onnx_graph import GRID, INPUT, POOLED, stats_output
from .spec import STYLE_LAYERS
from .vectors import as_uint8

# OpenVINO's name for each precision; int8 graphs keep their non-quantised parts in fp32, as ONNX Runtime does.
_HINTS = {"bf16": "bf16", "fp32": "f32", "int8": "f32"}


class OpenVinoEmbedder(OnnxEmbedder):
    """VGG16 on OpenVINO's CPU plugin; OnnxEmbedder's interface (embed_both, embed_with_grid, grids, ...)."""

    BACKEND = "openvino"
    PRECISIONS = ("bf16", "fp32", "int8")

    def __init__(self, weights: str | None = "imagenet", style: bool = False, precision: str = "bf16", **options):
        super().__init__(weights, style=style, precision=precision, **options)
        self._compiled: dict[tuple[str, ...], tuple[Any, Any]] = {}  # by outputs: (compiled model, infer request)
        self._compiled_from: list[Path] = []  # the compiled-model cache folders read back (not compiled here)

    @property
    def _outputs(self) -> tuple[str, ...]:
        """What a forward pass computes: the `vgg16` vector, the grid similarity maps need (nearly
        free), and the style statistics when the style vector is wanted. Other outputs (block4_pool)
        are compiled on demand."""
        return (POOLED, GRID, *(map(stats_output, STYLE_LAYERS) if self._style else ()))

    @property
    def session(self):
        return self._compile(self._outputs)[0]

    def _compile(self, outputs: tuple[str, ...]) -> tuple[Any, Any]:
        if outputs not in self._compiled:
            compiled = self._checked_compile(outputs)
            self._compiled[outputs] = (compiled, compiled.create_infer_request())
        return self._compiled[outputs]

    def _checked_compile(self, outputs: tuple[str, ...]):
        """The compiled model for `outputs`, checked by what it computes (embedding/openvino_cache.py);
        a cached graph it disagrees with is built again from the weights, and compiled again."""
        from .openvino_cache import GraphDisagrees

        graph = self._cached()
        try:
            compiled, folder = _compile(graph, outputs, self.runtime.precision, self.threads)
        except GraphDisagrees as e:
            note_rebuilt(f"the VGG16 graph cached in {graph.folder}", str(e), "built again from the weights")
            compiled, folder = _compile(self._cached(rebuild=True), outputs, self.runtime.precision, self.threads)
        if folder is not None and folder not in self._compiled_from:
            self._compiled_from.append(folder)
        return compiled

    def _graph_probe(self, path: str) -> dict[str, np.ndarray]:
        """The test image's vectors from the graph just written at `path`, every output, in the
        graph's own precision (f32; an int8 graph's quantised operations are int8 whatever the hint):
        what ONNX Runtime computes to 1e-12, without importing it."""
        from .backend import usable_cores

        core = openvino_core()
        graph = core.read_model(path)
        compiled = core.compile_model(
            graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": self.threads or usable_cores()}
        )
        return probe(_runner(compiled), [output.get_any_name() for output in graph.outputs])

    def _cache_folders(self) -> list[Path]:
        # What runs is the compiled model; its graph too, as the source a rebuild would compile from.
        return [*super()._cache_folders(), *self._compiled_from]

    def calibrate_with(self, calibration, posters_dir: Path) -> None:
        super().calibrate_with(calibration, posters_dir)
        self._compiled = {}
        self._compiled_from = []

    def outputs(self, pixels: np.ndarray, names: Sequence[str]) -> list[np.ndarray]:
        if len(pixels) == 0:
            return [np.zeros((0,), np.float32) for _ in names]
        wanted = self._outputs if set(names) <= set(self._outputs) else tuple(names)
        compiled, request = self._compile(wanted)
        result = request.infer({INPUT: as_uint8(pixels)})  # copies out: the request's buffers are reused
        return [result[compiled.output(name)] for name in names]


def import_openvino():
    """`import openvino`, without the model-conversion tool its package imports last (openvino.tools.ovc,
    with its telemetry: 60-80 % of the import's time, 0.15-0.9 s). The graph is read with
    Core.read_model, which never needs it; the tool imports as usual afterwards if asked for."""
    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    blocked = "openvino.tools.ovc"
    sys.modules[blocked] = None  # the package's `from openvino.tools.ovc import ...` is in a try/except ImportError
    try:
        import openvino
    finally:
        if sys.modules.get(blocked, 0) is None:
            del sys.modules[blocked]
    return openvino


_core: Any = None
_core_made = threading.Lock()


def openvino_core() -> Any:
    """The process's one OpenVINO Core (OpenVINO's own advice: one per application). Each Core
    loads a CPU plugin of its own, which points the thread's signal stack at memory it allocates and,
    when it goes, points it back at the one it found: Cores dropped other than last-made-first left
    the stack on freed memory, and the next signal Python handles (Ctrl-C) was a segfault."""
    global _core
    with _core_made:  # two threads asking first would make two
        if _core is None:
            _core = import_openvino().Core()
        return _core


def _compile(graph: CachedModel, outputs: tuple[str, ...], precision: str, threads: int | None) -> tuple[Any, Path | None]:
    """The graph (a cached file, or bytes) pruned to `outputs` and compiled for this CPU, and the
    compiled-model cache folder it was read back from (None: compiled here)."""
    ov = import_openvino()

    from .backend import usable_cores
    from .openvino_cache import GraphDisagrees, compiled_with_cache

    core = openvino_core()
    try:
        read = core.read_model(graph.source)
        pruned = ov.Model([read.output(name) for name in outputs], read.get_parameters(), "vgg16_embedder")
    except Exception as e:
        if not graph.fresh:  # a cached graph altered past its record: built again, like one that computes wrongly
            raise GraphDisagrees("cannot be read") from None
        raise BadInput(f"OpenVINO cannot read the VGG16 graph: {str(e).splitlines()[0][:200]}") from None
    config = {
        "INFERENCE_PRECISION_HINT": _HINTS[precision],
        "PERFORMANCE_HINT": "LATENCY",  # one stream, every core on each batch: what a query and a batch loop both want
        "INFERENCE_NUM_THREADS": threads or usable_cores(),
    }

    def compile_model(cache: str | None):
        return core.compile_model(pruned, "CPU", {**config, **({"CACHE_DIR": cache} if cache else {})})

    if isinstance(graph.source, bytes):  # the ONNX cache could not be written: neither can this one
        return compile_model(None), None
    # One folder per compiled variant (OpenVINO keys its blobs by the model and the config alike).
    variant = hashlib.sha256(repr((outputs, sorted(config.items()))).encode()).hexdigest()[:12]
    key = f"{Path(graph.source).parent.name}-ov{ov.__version__.split('-')[0]}-{precision}-{variant}"
    reference = None if graph.fresh else graph.probe  # a graph built here is what the weights compute
    return compiled_with_cache(key, compile_model, lambda compiled: probe(_runner(compiled), outputs), f"openvino-{precision}", reference)


def _runner(compiled) -> Runner:
    def run(pixels: np.ndarray, names: Sequence[str]) -> list[np.ndarray]:
        result = compiled.create_infer_request().infer({INPUT: pixels})
        return [result[compiled.output(name)] for name in names]

    return run
