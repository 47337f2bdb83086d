"""The embedder on ONNX Runtime: the same vectors as the Keras model, without TensorFlow.

Queries (search by image, predict-year, the web page, `nearest` in a notebook) run here, so a
process that answers them imports ONNX Runtime (0.2 s) instead of TensorFlow (5 s). Ingest can
run here too (`--backend onnxruntime`, the CPU default), and `--precision int8` runs the quantised
graph (embedding/quantize.py). The graph comes from the cache (embedding/onnx_cache.py), made from
the Keras weights on first use, and is checked by what it computes before it is used
(embedding/model_check.py). Every vector leaves through `_unit`: one that is not finite or is zero
is an error, never a result.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import BadInput, Damaged
from .backend import Runtime
from .images import ImageSource, decode_poster
from .model_check import Runner, agreement, as_record, mismatch, note_rebuilt, probe, tolerance, usable
from .onnx_cache import RECORD, CachedModel
from .onnx_graph import GRID, INPUT, POOLED, stats_output
from .quantize import Calibration
from .spec import STYLE_LAYERS, EmbeddingSpec, resolve_weights, spec_for_weights, style_spec_for_weights
from .vectors import NotAVector, as_uint8, style_vectors, unit_vectors


class OnnxEmbedder:
    """VGG16 on ONNX Runtime; the interface of embedding.model.Embedder (spec, style_spec, load,
    embed_both, embed_pixels, embed), plus `grids` for the similarity maps.

    `precision` "int8" needs `calibration` (embedding.quantize.Calibration) and, if the model is not
    cached yet, the folder its posters are in. embedding/openvino_embedder.py runs the same graph on
    OpenVINO (a subclass: only how a forward pass is run differs).
    """

    BACKEND = "onnxruntime"
    PRECISIONS: tuple[str, ...] = ("fp32", "int8")

    def __init__(
        self,
        weights: str | None = "imagenet",
        style: bool = False,
        precision: str = "fp32",
        augmented: bool = False,
        calibration: Calibration | None = None,
        posters_dir: Path | None = None,
        threads: int | None = None,
        long_lived: bool = False,
    ):
        if precision not in self.PRECISIONS:
            raise BadInput(
                f"ONNX Runtime runs VGG16 in fp32 or int8 on a CPU, not {precision}: use --precision fp32 or int8"
                + (" (bf16: --backend openvino, on a CPU with AMX or AVX-512 BF16)" if precision == "bf16" else "")
            )
        self.weights = resolve_weights(weights) if weights is not None else None
        self.runtime = Runtime(self.BACKEND, precision, False)
        self.augmented = augmented
        self.threads = threads
        self.long_lived = long_lived  # many runs (a server, an ingest): keep activation memory between them
        self._style = style
        self.calibration = calibration
        self.posters_dir = posters_dir
        self._session = None
        self._graph: CachedModel | None = None  # the ONNX model found for this embedder (the cache's entry, once looked up)
        self._set_specs()

    def _set_specs(self) -> None:
        quantization = self.calibration.quantization if self.calibration else ""
        args = (self.weights, self.runtime.backend, self.runtime.precision, self.augmented)
        self.spec: EmbeddingSpec = spec_for_weights(*args, quantization=quantization)
        self.style_spec: EmbeddingSpec | None = style_spec_for_weights(*args, quantization=quantization) if self._style else None

    @property
    def needs_calibration(self) -> bool:
        return self.runtime.precision == "int8" and self.calibration is None

    def calibrate_with(self, calibration: Calibration, posters_dir: Path) -> None:
        """Fix the int8 calibration (before load): it is part of the embedding, so the specs change with it."""
        self.calibration, self.posters_dir = calibration, posters_dir
        self._session = None
        self._graph = None
        self._set_specs()

    @property
    def kind(self) -> str:
        """Who computes the vectors, as a cache record names it: runtime-precision."""
        return f"{self.runtime.backend}-{self.runtime.precision}"

    @property
    def session(self):
        if self._session is None:
            self._session = self._checked_session()
        return self._session

    def _checked_session(self):
        """An inference session on the cached graph, which must give the test image the vectors it
        gave when it was built; otherwise the graph is built again from the weights, with a note."""
        graph = self._cached()
        if graph.fresh:  # built from the weights by this process, its record made from it just now
            return _session(graph.source, self.threads, self.long_lived)
        needed = tolerance(graph.probe, self.kind)
        try:
            session = _session(graph.source, self.threads, self.long_lived)
            agree = agreement(graph.probe, probe(_session_runner(session), [o.name for o in session.get_outputs()]))
            if agree >= needed:
                return session
            why = mismatch(agree, needed)
        except BadInput:  # the graph itself altered (model.onnx) past its record
            why = "cannot be loaded"
        note_rebuilt(f"the VGG16 graph cached in {graph.folder}", why, "built again from the weights")
        return _session(self._cached(rebuild=True).source, self.threads, self.long_lived)

    def load(self) -> None:
        """Read (or build and cache) the graph and start an inference session."""
        _ = self.session

    def _model(self) -> str | bytes:
        """The ONNX model to run: a cached file's path (embedding/onnx_cache.py), or its bytes."""
        return self._cached().source

    def _cached(self, rebuild: bool = False) -> CachedModel:
        """The ONNX model and what the cache recorded of it; `rebuild`: built again from the weights
        (a cached one that does not compute what it recorded)."""
        if self._graph is None or rebuild:
            self._graph = self._find_model(rebuild)
        return self._graph

    def _find_model(self, rebuild: bool) -> CachedModel:
        from .onnx_cache import cached_model

        weights_id = self.spec.weights

        def fp32():
            from .onnx_graph import vgg16_graph
            from .weights import conv_layers

            return vgg16_graph(conv_layers(self.weights))

        if self.runtime.precision != "int8":  # bf16 (OpenVINO) is the fp32 graph computed in bf16
            return cached_model(weights_id, "fp32", fp32, self._recorder("fp32"), rebuild)
        if self.calibration is None:
            raise BadInput("an int8 embedder needs its calibration posters (ingest chooses them)")
        calibration = self.calibration

        def int8():
            from .quantize import quantize

            # Quantised from the graph built from the weights here, not from the fp32 one in the
            # cache: a model is only ever made from what this process has checked.
            return quantize(fp32(), calibration.pixels(self.posters_dir), INPUT)

        return cached_model(weights_id, calibration.quantization, int8, self._recorder("int8"), rebuild)

    def _recorder(self, precision: str):
        """What a freshly built graph records: its vectors for the test image, computed in its own
        precision by this embedder's runtime; Damaged where they are not usable (weights that give
        NaN or nothing)."""

        def record(path: str) -> dict:
            found = self._graph_probe(path)
            if not usable(found):
                raise Damaged(f"VGG16 made from {self._weights_named()} gives a test image NaN or zero vectors: check the weights")
            return as_record(found, f"{self.runtime.backend}-{precision}")

        return record

    def _graph_probe(self, path: str) -> dict[str, np.ndarray]:
        """The test image's vectors, every output, from the graph just written at `path`."""
        session = _session(path, self.threads, False)
        return probe(_session_runner(session), [o.name for o in session.get_outputs()])

    def _weights_named(self) -> str:
        return {None: "the seeded random weights", "imagenet": "Keras' ImageNet weights"}.get(self.weights, f"the weights {self.weights}")

    def _unit(self, raw: np.ndarray) -> np.ndarray:
        """The base vectors that leave this embedder: every vector of a query or a poster passes here."""
        try:
            return unit_vectors(raw)
        except NotAVector as e:
            raise self._refused(e) from None

    def _style_unit(self, stats: list[np.ndarray]) -> np.ndarray:
        """The style vectors that leave this embedder, from each style layer's statistics."""
        try:
            return style_vectors(stats)
        except NotAVector as e:
            raise self._refused(e) from None

    def _refused(self, e: NotAVector) -> Damaged:
        """One line for a vector that is not finite or is zero. The cached model that made it had
        passed its check, so it is discarded (its record removed): the next start builds it again
        from the weights, and says "check the weights" if the fresh one does the same."""
        folders = self._cache_folders()
        for folder in folders:
            try:
                os.unlink(folder / RECORD)  # both caches name their record made.json; unlink never follows a link
            except OSError:
                pass
        if folders:
            return Damaged(
                f"{e}: its cached model is discarded and built again at the next start; if this happens again, check the weights"
            )
        return Damaged(f"{e}, with a model just built from {self._weights_named()}: check the weights")

    def _cache_folders(self) -> list[Path]:
        """The cache entries of what this embedder runs, read back rather than built here."""
        graph = self._graph
        return [graph.folder] if graph is not None and graph.folder is not None and not graph.fresh else []

    def outputs(self, pixels: np.ndarray, names: Sequence[str]) -> list[np.ndarray]:
        """Raw graph outputs (embedding/onnx_graph.py) for a uint8 batch."""
        if len(pixels) == 0:
            return [np.zeros((0,), np.float32) for _ in names]
        return self.session.run(list(names), {INPUT: as_uint8(pixels)})

    def embed_both(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The base vectors and, with style=True, the style vectors (else None), from one forward pass."""
        style_dim = self.style_spec.dim if self.style_spec else 0
        if len(pixels) == 0:
            return np.zeros((0, self.spec.dim), np.float32), np.zeros((0, style_dim), np.float32) if style_dim else None
        if not self.style_spec:
            return self._unit(self.outputs(pixels, [POOLED])[0]), None
        base, *stats = self.outputs(pixels, [POOLED, *map(stats_output, STYLE_LAYERS)])
        return self._unit(base), self._style_unit(stats)

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return self.embed_both(pixels)[0]

    def embed(self, images: Sequence[ImageSource] | Iterable[ImageSource]) -> np.ndarray:
        pixels = [decode_poster(image).pixels for image in images]
        if not pixels:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        return self.embed_pixels(np.stack(pixels))

    def embed_with_grid(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The `vgg16` vectors and their block5_pool grids, from one forward pass (a query that
        may ask for its similarity maps next)."""
        pooled, grid = self.outputs(pixels, [POOLED, GRID])
        return self._unit(pooled), grid

    def grids(self, pixels: np.ndarray) -> np.ndarray:
        """(n, 7, 7, 512) block5_pool features: the grid the stored `vgg16` vector averages."""
        grid = self.outputs(pixels, [GRID])[0]
        if not np.isfinite(grid).all():  # what a similarity map is drawn from, as a vector is
            raise self._refused(NotAVector(f"VGG16 gave {len(grid)} image{'s' if len(grid) > 1 else ''} a grid that is not finite"))
        return grid


def _session_runner(session) -> Runner:
    return lambda pixels, names: session.run(list(names), {INPUT: pixels})


def _session(model: str | bytes, threads: int | None, long_lived: bool):
    import onnxruntime as ort

    from .backend import usable_cores

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or usable_cores()
    options.inter_op_num_threads = 1
    # The memory arena keeps the activations' buffers from one run to the next: 20 ms less per
    # single poster here (150 against 170 ms), for memory a one-query process has no use for.
    options.enable_cpu_mem_arena = long_lived
    options.log_severity_level = 3  # warnings about unused initialisers etc. are not the user's concern
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # a cache verified intact cannot fail here; a build bug would
        raise BadInput(f"ONNX Runtime cannot load the VGG16 graph: {str(e).splitlines()[0][:200]}") from None
