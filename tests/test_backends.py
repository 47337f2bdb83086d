"""Backends and precision: the same vectors from TensorFlow, JAX and PyTorch, and bf16 close to fp32.

Keras picks its backend once per process, so every backend other than the test process's own
(TensorFlow) runs in a fresh process of its own. Backends that are not installed skip with the
reason (the default install is TensorFlow only; requirements-gpu.txt adds the others).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from poster_search.embedding.backend import default_batch_size, resolve_backend, resolve_precision, resolve_runtime
from poster_search.embedding.spec import EmbeddingSpec
from poster_search.errors import PosterSearchError
from tests.conftest import ROOT, make_poster

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer

EMBED_SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from poster_search.embedding.model import Embedder
from poster_search.embedding.images import decode_poster
paths, weights, backend, precision, out = sys.argv[1].split(","), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
embedder = Embedder(None if weights == "random" else weights, backend=backend, precision=precision)
vectors = embedder.embed_pixels(np.stack([decode_poster(p).pixels for p in paths]))
import keras
assert keras.backend.backend() == backend, keras.backend.backend()
np.save(out, vectors)
"""


def embed_in_process(paths: list[Path], weights: str, backend: str, precision: str, out: Path) -> np.ndarray:
    """Vectors from a fresh process on `backend` (Keras cannot switch backends within one)."""
    script = EMBED_SCRIPT.format(root=str(ROOT))
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", script, ",".join(map(str, paths)), weights, backend, precision, str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return np.load(out)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def needs(backend: str):
    return pytest.mark.skipif(
        importlib.util.find_spec(backend) is None, reason=f"{backend} is not installed (pip install -r requirements-gpu.txt)"
    )


def test_backend_and_precision_choices(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert resolve_backend("tensorflow") == "tensorflow"
    assert resolve_backend("TensorFlow") == "tensorflow"
    assert resolve_backend("onnx") == resolve_backend("onnxruntime") == "onnxruntime"
    with pytest.raises(PosterSearchError, match="unknown backend 'mxnet': use auto, onnxruntime, openvino, tensorflow, jax or torch"):
        resolve_backend("mxnet")
    with pytest.raises(PosterSearchError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", "tensorflow")
    with pytest.raises(PosterSearchError, match="--precision int8 runs on ONNX Runtime or OpenVINO, not tensorflow"):
        resolve_precision("int8", "tensorflow")
    with pytest.raises(PosterSearchError, match="--precision bf16 needs OpenVINO on a CPU with AMX or AVX-512 BF16"):
        resolve_precision("bf16", "onnxruntime")
    assert resolve_runtime("auto", "int8").backend in ("onnxruntime", "openvino")  # the runtimes that have it
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert resolve_backend(None) == "tensorflow"  # the Keras variable is honoured
    assert resolve_precision("bf16", "tensorflow") == "bf16"  # asked for: also on a CPU


@pytest.mark.skipif(Path("/dev/nvidia0").exists(), reason="this machine has a GPU: auto picks it")
def test_auto_on_a_machine_without_a_gpu_is_the_cpu_runtime(monkeypatch):
    """No TensorFlow start for ingest: OpenVINO bf16 where the CPU has bf16, else ONNX Runtime fp32
    (tests/test_openvino.py covers the choice in full)."""
    from poster_search.embedding.backend import PRECISION_ENV, cpu_bf16, installed

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    runtime = resolve_runtime("auto", "auto")
    expected = ("openvino", "bf16") if cpu_bf16() and installed("openvino") else ("onnxruntime", "fp32")
    assert (runtime.backend, runtime.precision, runtime.gpu) == (*expected, False)
    assert default_batch_size(runtime) == 32
    assert resolve_runtime("auto", "int8").precision == "int8"
    assert resolve_runtime("tensorflow").backend == "tensorflow"  # still there when asked for


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_backend_that_is_not_installed_is_a_clear_error(backend):
    if importlib.util.find_spec(backend) is not None:
        pytest.skip(f"{backend} is installed here")
    with pytest.raises(PosterSearchError, match=f"backend '{backend}' is not installed: pip install -r requirements-gpu.txt"):
        resolve_backend(backend)


def test_spec_records_backend_and_precision_but_compares_what_changes_vectors():
    fp32 = EmbeddingSpec(weights="random", backend="tensorflow", precision="fp32")
    bf16 = EmbeddingSpec(weights="random", backend="jax", precision="bf16")
    assert fp32 == bf16  # interchangeable vectors: a GPU-made store can be resumed on a CPU
    assert fp32.as_dict()["backend"] == "tensorflow" and bf16.as_dict()["precision"] == "bf16"
    assert EmbeddingSpec.from_dict(bf16.as_dict()).backend == "jax"
    assert fp32 != EmbeddingSpec(weights="random", decode="pillow,lanczos")  # another decode is another embedding
    assert "backend" not in fp32.compared() and "decode" in fp32.compared()
    assert fp32 != EmbeddingSpec(weights="random", quantization="int8-qdq-v1:calibration-0123")  # int8 is another embedding
    # a collection made before these fields existed reads as the same embedding
    old = {k: v for k, v in fp32.as_dict().items() if k not in ("decode", "backend", "precision")}
    assert EmbeddingSpec.from_dict(old) == fp32


def test_the_in_model_preprocessing_matches_keras_preprocess_input(random_embedder, tmp_path):
    """The uint8 model (preprocessing as its first layer) gives what VGG16 + preprocess_input gives."""
    from poster_search.embedding.images import decode_poster
    from poster_search.embedding.model import import_keras
    from poster_search.embedding.vectors import normalise

    keras = import_keras()
    pixels = np.stack([decode_poster(make_poster(tmp_path / f"{i}.jpg", seed=i)).pixels for i in range(4)])
    ours = random_embedder.embed_pixels(pixels)
    reference = keras.applications.VGG16(include_top=False, weights=None, input_shape=(224, 224, 3), pooling="avg")
    conv = [layer for layer in random_embedder.model.layers if layer.weights]
    for target, source in zip([layer for layer in reference.layers if layer.weights], conv):
        target.set_weights(source.get_weights())
    theirs = normalise(reference.predict_on_batch(keras.applications.vgg16.preprocess_input(pixels.astype(np.float32))))
    assert cosines(ours, theirs).min() >= 0.99999
    assert np.allclose(random_embedder.embed_pixels(pixels.astype(np.float32)), ours, atol=1e-6)  # floats 0..255 accepted


def _real_sample(era_data, n: int) -> list[Path]:
    _, posters = era_data
    return sorted(posters.iterdir())[:: 3748 // n][:n]


def test_bf16_vectors_stay_interchangeable_with_fp32_on_real_posters(era_data, real_weights):
    from poster_search.embedding.images import decode_poster
    from poster_search.embedding.model import Embedder

    paths = _real_sample(era_data, 12)
    pixels = np.stack([decode_poster(p).pixels for p in paths])
    fp32 = Embedder(str(real_weights), precision="fp32").embed_pixels(pixels)
    bf16 = Embedder(str(real_weights), precision="bf16")
    assert bf16.spec == Embedder(str(real_weights)).spec and bf16.spec.precision == "bf16"
    assert cosines(bf16.embed_pixels(pixels), fp32).min() >= 0.999


@pytest.mark.parametrize("backend", [pytest.param("jax", marks=needs("jax")), pytest.param("torch", marks=needs("torch"))])
def test_other_backends_agree_with_tensorflow_fp32(backend, tmp_path, random_embedder):
    """Seeded random weights are NumPy-drawn, so they are the same on every backend."""
    from poster_search.embedding.images import decode_poster

    paths = [make_poster(tmp_path / f"{i}.jpg", seed=i, size=(160, 240)) for i in range(5)]  # 5: JAX pads to 8
    reference = random_embedder.embed_pixels(np.stack([decode_poster(p).pixels for p in paths]))
    vectors = embed_in_process(paths, "random", backend, "fp32", tmp_path / "v.npy")
    assert cosines(vectors, reference).min() >= 0.9999


@pytest.mark.slow  # a minute per backend on 2 cores; the random-weights test above runs by default
@pytest.mark.parametrize("backend", [pytest.param("jax", marks=needs("jax")), pytest.param("torch", marks=needs("torch"))])
def test_other_backends_agree_with_tensorflow_on_real_posters(backend, era_data, real_weights, tmp_path):
    """The same weights file serves every backend; fp32 vectors agree per poster (cosine >= 0.9999)."""
    from poster_search.embedding.images import decode_poster
    from poster_search.embedding.model import Embedder

    paths = _real_sample(era_data, 8)
    reference = Embedder(str(real_weights)).embed_pixels(np.stack([decode_poster(p).pixels for p in paths]))
    vectors = embed_in_process(paths, str(real_weights), backend, "fp32", tmp_path / "v.npy")
    assert cosines(vectors, reference).min() >= 0.9999


def test_cli_refuses_an_unknown_backend_or_precision_in_one_line(poster_set, tmp_path):
    from tests.conftest import run_cli

    catalog, posters = poster_set(2)
    common = ["ingest", "--catalog", catalog, "--posters", posters, "--qdrant-path", tmp_path / "store", "--weights", "random"]
    result = run_cli(*common, "--backend", "mxnet")  # refused by the parser, which lists the choices (as --help does)
    assert result.returncode == 2 and result.stderr.strip() == (
        "Error: Invalid value for '--backend': 'mxnet' is not one of 'auto', 'onnxruntime', 'openvino', 'tensorflow', 'jax', 'torch'. "
        "(see `python cli.py ingest --help`)"
    )
    result = run_cli(*common, "--precision", "fp8")
    assert result.returncode == 2 and result.stderr.strip().startswith("Error: Invalid value for '--precision': 'fp8' is not one of 'auto'")
    result = run_cli(*common, "--backend", "tensorflow", "--precision", "int8")  # valid words, an impossible pair
    assert (
        result.returncode == 1
        and result.stderr.strip()
        == "Error: --precision int8 runs on ONNX Runtime or OpenVINO, not tensorflow: use --backend auto (on a CPU)"
    )
    assert not (tmp_path / "store").exists()  # refused before anything was created
