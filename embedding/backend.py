"""Which runtime and numeric precision run VGG16, decided without importing any of them.

Three runtimes run the same model: OpenVINO and ONNX Runtime (embedding/openvino_embedder.py,
onnx_embedder.py: a graph derived from the Keras weights) and Keras itself (embedding/model.py) on
TensorFlow, JAX or PyTorch. Keras picks its backend once per process, at `import keras`, from
$KERAS_BACKEND, so the choice is made here, from what is installed, the CPU's flags and whether an
NVIDIA GPU is present, and applied before Keras is first imported. Ingesting one poster and a cold
query must stay fast, so nothing heavy is imported to decide (/proc/cpuinfo, importlib.util.find_spec).

- backend "auto": a GPU-capable Keras backend (JAX, then PyTorch, then a GPU build of
  TensorFlow) when one is installed and the machine has an NVIDIA GPU. On a CPU: OpenVINO in bf16
  where the CPU computes bf16 natively (AMX or AVX-512 BF16), else ONNX Runtime in fp32; TensorFlow
  only where neither is installed (its 5-10 s start outweighs its 10 % higher fp32 rate for
  catalogs of less than a few thousand posters: docs/results.md). Queries always run on the CPU
  runtime (`cpu_runtime`), never on Keras.
- precision "auto": bf16 on a GPU that computes in it natively (compute capability 8.0 and up)
  and on a CPU with AMX or AVX-512 BF16 (OpenVINO), else fp32: the same embedding either way
  (embedding/spec.py). $POSTER_SEARCH_PRECISION=fp32 makes "auto" mean fp32 everywhere (ingest and
  every query: ONNX Runtime on a CPU), e.g. to run the suite as on a CPU without bf16. "int8" is
  never chosen by itself: it is another embedding (embedding/quantize.py).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

from ..errors import BadInput, NotInstalled

BACKENDS = ("onnxruntime", "openvino", "tensorflow", "jax", "torch")
GRAPH_RUNTIMES = ("onnxruntime", "openvino")  # run the ONNX graph on the CPU; the others are Keras backends
PRECISIONS = ("fp32", "bf16", "int8")
BACKEND_ENV = "KERAS_BACKEND"
PRECISION_ENV = "POSTER_SEARCH_PRECISION"  # what "auto" precision means: auto (default), fp32 or bf16
# What each backend needs installed, and the extra install that brings it (requirements-gpu.txt).
# What "auto" chooses, in words: `ingest --help` is built from these, so they change with
# resolve_backend and resolve_precision below and the help cannot drift from the code.
AUTO_BACKEND = (
    "a Keras GPU backend (JAX, PyTorch, a GPU build of TensorFlow) when one is installed and an NVIDIA GPU is present, "
    "else OpenVINO on a CPU with bf16 (AMX or AVX-512 BF16), else onnxruntime (env KERAS_BACKEND)"
)
AUTO_PRECISION = "bf16 on a GPU or CPU that computes in it natively (the same embedding), else fp32 (env POSTER_SEARCH_PRECISION)"
_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
# CPU flags (Linux /proc/cpuinfo) of native bf16 arithmetic: Intel AMX tiles; AVX-512 BF16 dot products (Intel, AMD Zen 4 on).
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class Runtime:
    """The resolved choice: what the model runs on, at what precision, in batches of what size."""

    backend: str
    precision: str
    gpu: bool  # an NVIDIA GPU is present and the backend can use it

    def describe(self) -> str:
        return f"{self.backend} on {'GPU' if self.gpu else 'CPU'}, {self.precision}"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's or taskset's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def installed(backend: str) -> bool:
    return importlib.util.find_spec(_MODULES[backend]) is not None


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is not there: not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):  # x86, ARM
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_bf16() -> str | None:
    """The CPU's native bf16 arithmetic (its flag, AMX first), None without any."""
    return next((flag for flag in BF16_FLAGS if flag in cpu_flags()), None)


def requested_precision(requested: str | None) -> str:
    """--precision, with "auto" (or none) read through $POSTER_SEARCH_PRECISION."""
    requested = (requested or "auto").lower()
    if requested != "auto":
        return requested
    forced = (os.environ.get(PRECISION_ENV) or "auto").lower()
    if forced not in ("auto", "fp32", "bf16"):
        raise BadInput(f"{PRECISION_ENV}={forced}: use auto, fp32 or bf16 (int8 is another embedding: ask for it with --precision int8)")
    return forced


@lru_cache(maxsize=1)
def gpu_compute_capability() -> float | None:
    """The compute capability of the first NVIDIA GPU, 0.0 when present but unknown, None when there is none."""
    if not (glob.glob("/dev/nvidia[0-9]*") or glob.glob("/proc/driver/nvidia/gpus/*")):
        return None
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0.0
    try:
        out = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
        return float(out.stdout.split()[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return 0.0


def _tensorflow_has_gpu_build() -> bool:
    # tensorflow-cpu (the default install) never sees a GPU; the full `tensorflow` wheel may.
    from importlib.metadata import PackageNotFoundError, version

    try:
        version("tensorflow")
        return True
    except PackageNotFoundError:
        return False


def cpu_runtime(precision: str | None = None) -> Runtime:
    """The fastest CPU runtime of the ONNX graph for `precision` ("auto": bf16 where the CPU has it).

    OpenVINO for bf16 (bf16 tiles or dot products: 2-4x ONNX Runtime's fp32) and int8 (faster than
    ONNX Runtime's int8 on the same graph); ONNX Runtime for fp32, where OpenVINO is no faster and
    starts slower. Each falls back to the other where only one is installed."""
    precision = requested_precision(precision)
    openvino, onnxruntime = installed("openvino"), installed("onnxruntime")
    if precision == "auto":
        precision = "bf16" if openvino and cpu_bf16() else "fp32"
    if precision not in PRECISIONS:
        raise BadInput(f"unknown precision '{precision}': use auto, fp32, bf16 or int8")
    if precision == "bf16":
        if not cpu_bf16():
            raise BadInput(
                "--precision bf16 on a CPU needs one with AMX or AVX-512 BF16 (this one has neither): use fp32, or int8 for speed"
            )
        if not openvino:
            raise BadInput("--precision bf16 on a CPU runs on OpenVINO, which is not installed: pip install -r requirements.txt")
        return Runtime("openvino", "bf16", False)
    if not (openvino or onnxruntime):
        raise BadInput("neither ONNX Runtime nor OpenVINO is installed: pip install -r requirements.txt")
    if precision == "int8":
        return Runtime("openvino" if openvino else "onnxruntime", "int8", False)
    return Runtime("onnxruntime" if onnxruntime else "openvino", "fp32", False)


def resolve_backend(requested: str | None = None, keras_only: bool = False) -> str:
    """--backend (or $KERAS_BACKEND when not given) -> an installed backend name; BadInput otherwise.

    `keras_only`: for the Keras model itself (embedding/model.py): "auto" then means TensorFlow on a CPU."""
    requested = _requested_backend(requested)
    if requested == "auto":
        gpu = _gpu_backend()
        if gpu:
            return gpu
        if keras_only or not (installed("openvino") or installed("onnxruntime")):
            return "tensorflow"
        return cpu_runtime().backend
    if keras_only and requested in GRAPH_RUNTIMES:
        raise BadInput(f"the Keras model runs on tensorflow, jax or torch; {requested} runs the ONNX graph (embedding/embedders.py)")
    if requested not in BACKENDS:
        raise BadInput(f"unknown backend '{requested}': use auto, onnxruntime, openvino, tensorflow, jax or torch")
    if not installed(requested):
        if requested == "tensorflow":
            from .keras_import import TRAIN_EXTRA

            raise NotInstalled(f"backend 'tensorflow' is not installed: {TRAIN_EXTRA}")
        extra = "requirements.txt" if requested in GRAPH_RUNTIMES else "requirements-gpu.txt"
        raise NotInstalled(
            f"backend '{requested}' is not installed: pip install -r {extra} (see docs/ingest.md#the-pipeline-runtimes-and-precision)"
        )
    return requested


def _requested_backend(requested: str | None) -> str:
    requested = (requested or os.environ.get(BACKEND_ENV) or "auto").lower()
    return {"pytorch": "torch", "onnx": "onnxruntime", "ort": "onnxruntime", "ov": "openvino"}.get(requested, requested)


def _gpu_backend() -> str | None:
    """The Keras backend that would use this machine's NVIDIA GPU, None without one (or without such a backend)."""
    if gpu_compute_capability() is None:
        return None
    for name in ("jax", "torch"):
        if installed(name):
            return name
    if installed("tensorflow") and _tensorflow_has_gpu_build():
        return "tensorflow"
    return None


def backend_sees_gpu(backend: str) -> bool:
    """Whether this backend would run on the GPU (cheap guess: a GPU is present and the build can use it)."""
    if gpu_compute_capability() is None or backend in GRAPH_RUNTIMES:  # their CPU builds
        return False
    return backend != "tensorflow" or _tensorflow_has_gpu_build()


def resolve_precision(requested: str | None, backend: str) -> str:
    requested = requested_precision(requested)
    if requested == "auto":
        if backend in GRAPH_RUNTIMES:
            return "bf16" if backend == "openvino" and cpu_bf16() else "fp32"
        capability = gpu_compute_capability()
        return "bf16" if backend_sees_gpu(backend) and capability is not None and capability >= 8.0 else "fp32"
    if requested not in PRECISIONS:
        raise BadInput(f"unknown precision '{requested}': use auto, fp32, bf16 or int8")
    if requested == "int8" and backend not in GRAPH_RUNTIMES:
        raise BadInput(f"--precision int8 runs on ONNX Runtime or OpenVINO, not {backend}: use --backend auto (on a CPU)")
    if requested == "bf16" and backend == "onnxruntime":
        raise BadInput("--precision bf16 needs OpenVINO on a CPU with AMX or AVX-512 BF16 (--backend openvino), or a GPU backend")
    if requested == "bf16" and backend == "openvino" and not cpu_bf16():
        raise BadInput("--precision bf16 on a CPU needs one with AMX or AVX-512 BF16 (this one has neither): use fp32, or int8 for speed")
    return requested


def resolve_runtime(backend: str | None = None, precision: str | None = None, keras_only: bool = False) -> Runtime:
    """The runtime --backend and --precision ask for. "auto" on a machine without a usable GPU is
    `cpu_runtime` (for ingest as for queries); with one, a Keras GPU backend."""
    wanted = requested_precision(precision)
    if not keras_only and wanted == "int8" and (backend or "auto").lower() == "auto":
        return cpu_runtime(wanted)  # only the graph runtimes have it, GPU or not, whatever $KERAS_BACKEND says
    if not keras_only and _requested_backend(backend) == "auto":
        if _gpu_backend() is None and (installed("openvino") or installed("onnxruntime")):
            return cpu_runtime(wanted)
    name = resolve_backend(backend, keras_only)
    return Runtime(name, resolve_precision(precision, name), backend_sees_gpu(name))


def default_batch_size(runtime: Runtime) -> int:
    """Batch size for the device when none is given: small on a CPU (no gain beyond), large on a GPU."""
    return 256 if runtime.gpu else 32
