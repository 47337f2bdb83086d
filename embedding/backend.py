"""Which runtime and numeric precision run VGG16, decided without importing any of them.

Two runtimes run the same model: ONNX Runtime (embedding/onnx_embedder.py, a graph derived from
the Keras weights) and Keras itself (embedding/model.py) on TensorFlow, JAX or PyTorch. Keras
picks its backend once per process, at `import keras`, from $KERAS_BACKEND, so the choice is made
here, from what is installed and whether an NVIDIA GPU is present, and applied before Keras is
first imported. A no-op ingest rerun must stay fast, so nothing heavy is imported to decide.

- backend "auto": a GPU-capable Keras backend (JAX, then PyTorch, then a GPU build of
  TensorFlow) when one is installed and the machine has an NVIDIA GPU; else TensorFlow, the
  fastest CPU runtime for fp32 measured here (docs/performance.md), and ONNX Runtime where
  TensorFlow is missing. Queries always run on ONNX Runtime (embedding/embedders.py).
- precision "auto": bf16 on a GPU that computes in it natively (compute capability 8.0 and up:
  A100, H100, L4, RTX 30xx and later), else fp32. "int8" (ONNX Runtime on a CPU) is never chosen
  by itself: it is another embedding (embedding/quantize.py).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

from errors import UserError

BACKENDS = ("onnxruntime", "tensorflow", "jax", "torch")
PRECISIONS = ("fp32", "bf16", "int8")
BACKEND_ENV = "KERAS_BACKEND"
# What each backend needs installed, and the extra install that brings it (requirements-gpu.txt).
_MODULES = {"onnxruntime": "onnxruntime", "tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
# What "auto" chooses, in words: `ingest --help` is built from these, so they change with
# resolve_backend and resolve_precision below and the help cannot drift from the code.
AUTO_BACKEND = (
    "a Keras GPU backend (JAX, PyTorch, a GPU build of TensorFlow) when one is installed and an NVIDIA GPU is present, "
    "else TensorFlow on the CPU (onnxruntime where TensorFlow is not installed)"
)
AUTO_PRECISION = "bf16 on a GPU that computes in it natively, else fp32"


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


def resolve_backend(requested: str | None = None, keras_only: bool = False) -> str:
    """--backend (or $KERAS_BACKEND when not given) -> an installed backend name; UserError otherwise.

    `keras_only`: for the Keras model itself (embedding/model.py): "auto" then means TensorFlow on a CPU."""
    requested = (requested or os.environ.get(BACKEND_ENV) or "auto").lower()
    if requested == "pytorch":
        requested = "torch"
    if requested in ("onnx", "ort"):
        requested = "onnxruntime"
    if requested == "auto":
        if gpu_compute_capability() is not None:
            for name in ("jax", "torch"):
                if installed(name):
                    return name
            if installed("tensorflow") and _tensorflow_has_gpu_build():
                return "tensorflow"
        # On a CPU, TensorFlow runs VGG16 about 10 % faster than ONNX Runtime in fp32 (bench/runtimes.py:
        # 7.1 against 6.3 posters/s here), which outweighs its 4 s longer start for any catalog of more
        # than a few hundred posters; ONNX Runtime where TensorFlow is not installed.
        return "tensorflow" if installed("tensorflow") or keras_only else "onnxruntime"
    if keras_only and requested == "onnxruntime":
        raise UserError("the Keras model runs on tensorflow, jax or torch; ONNX Runtime is embedding.onnx_embedder.OnnxEmbedder")
    if requested not in BACKENDS:
        raise UserError(f"unknown backend '{requested}': use auto, onnxruntime, tensorflow, jax or torch")
    if not installed(requested):
        raise UserError(
            f"backend '{requested}' is not installed: pip install -r requirements-gpu.txt (see docs/ingest.md#the-pipeline-runtimes-and-precision)"
        )
    return requested


def backend_sees_gpu(backend: str) -> bool:
    """Whether this backend would run on the GPU (cheap guess: a GPU is present and the build can use it)."""
    if gpu_compute_capability() is None or backend == "onnxruntime":  # the CPU build of ONNX Runtime
        return False
    return backend != "tensorflow" or _tensorflow_has_gpu_build()


def resolve_precision(requested: str | None, backend: str) -> str:
    requested = (requested or "auto").lower()
    if requested == "auto":
        capability = gpu_compute_capability()
        return "bf16" if backend_sees_gpu(backend) and capability is not None and capability >= 8.0 else "fp32"
    if requested not in PRECISIONS:
        raise UserError(f"unknown precision '{requested}': use auto, fp32, bf16 or int8")
    if requested == "int8" and backend != "onnxruntime":
        raise UserError(f"--precision int8 runs on ONNX Runtime, not {backend}: use --backend onnxruntime (or auto on a CPU)")
    if requested == "bf16" and backend == "onnxruntime":
        raise UserError("--precision bf16 needs a GPU backend (--backend jax or torch); on a CPU use fp32, or int8 for speed")
    return requested


def resolve_runtime(backend: str | None = None, precision: str | None = None, keras_only: bool = False) -> Runtime:
    if (precision or "").lower() == "int8" and (backend or "auto").lower() == "auto" and not keras_only:
        backend = "onnxruntime"  # the one runtime that has it
    name = resolve_backend(backend, keras_only)
    return Runtime(name, resolve_precision(precision, name), backend_sees_gpu(name))


def default_batch_size(runtime: Runtime) -> int:
    """Batch size for the device when none is given: small on a CPU (no gain beyond), large on a GPU."""
    return 256 if runtime.gpu else 32
