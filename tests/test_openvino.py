"""OpenVINO on the CPU: bf16 gives the fp32 embedding (real posters), `auto` chooses from the CPU's
flags without importing a runtime (and never TensorFlow for a small ingest), $POSTER_SEARCH_PRECISION
forces fp32, int8 on OpenVINO is ONNX Runtime's int8 embedding, and OpenVINO's model cache is
rebuilt rather than trusted or written through a link.

Tests that need bf16 arithmetic skip, with the reason, on a CPU without AMX or AVX-512 BF16 (or
without OpenVINO installed); the rest run everywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import poster_search.embedding.backend as backend
from poster_search.embedding.backend import PRECISION_ENV, cpu_bf16, cpu_runtime, installed, resolve_runtime
from poster_search.embedding.images import decode_poster
from poster_search.embedding.onnx_embedder import OnnxEmbedder
from poster_search.errors import PosterSearchError
from tests.conftest import ROOT, generated_catalog, make_poster, run_cli

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer

HAS_BF16 = bool(cpu_bf16()) and installed("openvino")
needs_bf16 = pytest.mark.skipif(
    not HAS_BF16,
    reason="bf16 on a CPU needs AMX or AVX-512 BF16 and OpenVINO"
    + ("" if cpu_bf16() else ": this CPU has neither flag")
    + ("" if installed("openvino") else ": openvino is not installed"),
)
needs_openvino = pytest.mark.skipif(not installed("openvino"), reason="openvino is not installed (pip install -r requirements.txt)")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A cache folder of this test's own (the user's ~/.cache is never touched by a test)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("POSTER_SEARCH_CACHE", str(folder))
    return folder


def nearest_sets(vectors: np.ndarray, k: int = 10) -> list[set[int]]:
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return [set(row) for row in np.argsort(-sims, axis=1)[:, :k]]


@needs_bf16
def test_bf16_gives_the_fp32_embedding_on_real_posters(real_weights, era_data, cache):
    """The acceptance figure: per poster, cosine >= 0.9999 to ONNX Runtime fp32 for both stored
    vectors, the same 10 nearest neighbours, and a spec that is the same embedding."""
    from poster_search.embedding.openvino_embedder import OpenVinoEmbedder

    _, posters = era_data
    paths = sorted(posters.glob("*.jpg"))[7::150][:24]
    pixels = np.stack([decode_poster(p).pixels for p in paths])
    fp32 = OnnxEmbedder(str(real_weights), style=True)
    bf16 = OpenVinoEmbedder(str(real_weights), style=True)
    assert (bf16.runtime.backend, bf16.runtime.precision) == ("openvino", "bf16")
    ours, theirs = bf16.embed_both(pixels), fp32.embed_both(pixels)
    for mine, reference in zip(ours, theirs):
        assert mine.shape == reference.shape and mine.dtype == np.float32
        assert np.sum(mine * reference, axis=1).min() >= 0.9999
        agreement = np.mean([len(a & b) / 10 for a, b in zip(nearest_sets(mine), nearest_sets(reference))])
        assert agreement >= 0.95, agreement
    assert not np.allclose(ours[0], theirs[0], atol=1e-7)  # the check can fail: bf16 did run, it is not fp32 to the bit
    # recorded, not compared: a collection made in bf16 is the fp32 one (as on a GPU)
    assert bf16.spec == fp32.spec and bf16.style_spec == fp32.style_spec
    assert (bf16.spec.backend, bf16.spec.precision) == ("openvino", "bf16")
    vector, grid = bf16.embed_with_grid(pixels[:2])  # the query path: the grid for similarity maps from the same pass
    assert grid.shape == (2, 7, 7, 512) and np.sum(vector * theirs[0][:2], axis=1).min() >= 0.9999
    assert np.allclose(bf16.grids(pixels[:2]), grid)


def test_auto_chooses_from_the_cpu_flags_and_the_environment(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    if backend.gpu_compute_capability() is not None:
        pytest.skip("this machine has a GPU: auto picks a Keras GPU backend for ingest")
    auto = resolve_runtime()
    expected = ("openvino", "bf16") if HAS_BF16 else ("onnxruntime", "fp32")
    assert (auto.backend, auto.precision, auto.gpu) == (*expected, False)
    assert resolve_runtime("auto", "int8").backend == ("openvino" if installed("openvino") else "onnxruntime")
    assert resolve_runtime("onnxruntime").precision == "fp32"
    assert resolve_runtime(keras_only=True).backend == "tensorflow"  # the Keras model itself: unchanged

    monkeypatch.setenv(PRECISION_ENV, "fp32")  # the fp32 path, as on a CPU without bf16
    assert (resolve_runtime().backend, resolve_runtime().precision) == ("onnxruntime", "fp32")
    assert (cpu_runtime().backend, cpu_runtime().precision) == ("onnxruntime", "fp32")  # queries too
    assert resolve_runtime("auto", "int8").precision == "int8"  # an explicit precision wins
    monkeypatch.setenv(PRECISION_ENV, "int8")
    with pytest.raises(PosterSearchError, match="POSTER_SEARCH_PRECISION=int8: use auto, fp32 or bf16"):
        resolve_runtime()
    monkeypatch.delenv(PRECISION_ENV)

    # a CPU without bf16 (its flags as /proc/cpuinfo would give them): ONNX Runtime fp32, bf16 refused in one line
    monkeypatch.setattr(backend, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_vnni"}))
    assert (resolve_runtime().backend, resolve_runtime().precision) == ("onnxruntime", "fp32")
    with pytest.raises(PosterSearchError, match="needs one with AMX or AVX-512 BF16"):
        resolve_runtime("auto", "bf16")
    if installed("openvino"):
        with pytest.raises(PosterSearchError, match="needs one with AMX or AVX-512 BF16"):
            resolve_runtime("openvino", "bf16")
    with pytest.raises(PosterSearchError, match="needs OpenVINO on a CPU with AMX or AVX-512 BF16"):
        resolve_runtime("onnxruntime", "bf16")
    monkeypatch.setattr(backend, "cpu_flags", lambda: frozenset({"avx512f", "amx_tile", "amx_bf16"}))
    assert backend.cpu_bf16() == "amx_bf16"


IMPORTS_AFTER = """
import sys
sys.path.insert(0, {root!r})
from poster_search.cli import app
try:
    app({args!r}, standalone_mode=False)
except SystemExit as e:
    assert not e.code, e.code
print("LOADED:" + ",".join(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "onnxruntime", "openvino"))))
"""


def loaded_after(args: list[str], env: dict[str, str]) -> set[str]:
    """The top-level runtime modules a fresh CLI process has imported once `args` has run."""
    code = IMPORTS_AFTER.format(root=str(ROOT), args=[str(a) for a in args])
    environment = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}  # set in this process once Keras was imported
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**environment, **env})
    assert result.returncode == 0, result.stderr[-2000:]
    line = [line for line in result.stdout.splitlines() if line.startswith("LOADED:")][-1]
    return {m.split(".")[0] for m in line[len("LOADED:") :].split(",") if m}


def test_ingesting_one_poster_and_searching_start_no_tensorflow(tmp_path, cache):
    """auto on a CPU: a one-poster ingest runs the ONNX graph (no TensorFlow start), and so does a
    search; POSTER_SEARCH_PRECISION=fp32 puts both on ONNX Runtime."""
    catalog, posters = generated_catalog(tmp_path, 3, seed=40)
    store = tmp_path / "store"
    env = {"POSTER_SEARCH_CACHE": str(cache), "KERAS_BACKEND": "auto", PRECISION_ENV: "auto"}  # auto, whatever this process has set
    fast = "openvino" if HAS_BF16 else "onnxruntime"
    common = ["--qdrant-path", store, "--weights", "random"]
    ingest = ["ingest", "--catalog", catalog, "--posters", posters, "--limit", "1", "--rejects", tmp_path / "r.csv", *common]
    assert loaded_after(ingest, env) == {fast}
    assert loaded_after(["search", posters / "2.jpg", *common], env) == {fast}
    fp32 = {**env, PRECISION_ENV: "fp32"}
    assert loaded_after([*ingest[:5], "--limit", "2", *ingest[7:]], fp32) == {"onnxruntime"}
    assert loaded_after(["search", posters / "2.jpg", *common], fp32) == {"onnxruntime"}
    made = run_cli(*ingest[:5], "--qdrant-path", store, "--weights", "random", "--rejects", tmp_path / "r.csv", env=env)
    assert made.returncode == 0, made.stderr
    assert f"[{fast} on CPU, {'bf16' if HAS_BF16 else 'fp32'}, batch 32" in made.stdout  # the third poster, on the fast runtime


@needs_bf16
def test_collections_made_in_bf16_and_fp32_mix(tmp_path, cache):
    """A store begun on ONNX Runtime fp32 is resumed in bf16 and the reverse, and searched either
    way with the same ranking; the store records the runtime that made it."""
    catalog, posters = generated_catalog(tmp_path, 12, seed=60)
    common = ("--catalog", catalog, "--posters", posters, "--weights", "random", "--rejects", tmp_path / "r.csv")
    for first, second in (("onnxruntime", "openvino"), ("openvino", "onnxruntime")):
        store = tmp_path / f"from-{first}"
        made = run_cli("ingest", *common, "--qdrant-path", store, "--backend", first, "--limit", "6", env={PRECISION_ENV: "auto"})
        assert made.returncode == 0, made.stderr
        resumed = run_cli("ingest", *common, "--qdrant-path", store, "--backend", second, env={PRECISION_ENV: "auto"})
        assert resumed.returncode == 0, resumed.stderr
        assert "ingested 6, already stored 6" in resumed.stdout and f"[{second} on CPU" in resumed.stdout
        record = json.loads((store / "collections" / "posters" / "collection.json").read_text())["metadata"]["embedding"]
        assert (record["backend"], record["precision"]) == ((first, "fp32") if first == "onnxruntime" else (first, "bf16"))
        rankings = []
        for precision in ("fp32", "auto"):
            found = run_cli(
                "search",
                posters / "3.jpg",
                "-k",
                "5",
                "--json",
                "--qdrant-path",
                store,
                "--weights",
                "random",
                env={PRECISION_ENV: precision},
            )
            assert found.returncode == 0, found.stderr
            rankings.append([n["id"] for n in json.loads(found.stdout)["neighbours"]])
        assert rankings[0] == rankings[1] and len(rankings[0]) == 5


@needs_openvino
def test_int8_on_openvino_is_onnx_runtimes_int8_embedding(real_weights, era_data, cache):
    """The same int8 graph (recipe and calibration) on either runtime: the same spec, the same vectors."""
    from poster_search.embedding.openvino_embedder import OpenVinoEmbedder
    from poster_search.embedding.quantize import choose_calibration

    _, posters = era_data
    files = sorted(p.name for p in posters.glob("*.jpg"))
    calibration = choose_calibration(files[::2], posters, 8)
    pixels = np.stack([decode_poster(posters / f).pixels for f in files[1::300][:8]])
    ort = OnnxEmbedder(str(real_weights), style=True, precision="int8", calibration=calibration, posters_dir=posters)
    ov = OpenVinoEmbedder(str(real_weights), style=True, precision="int8", calibration=calibration, posters_dir=posters)
    assert ov.spec == ort.spec and ov.spec.quantization == calibration.quantization and ov.spec.backend == "openvino"
    for mine, reference in zip(ov.embed_both(pixels), ort.embed_both(pixels)):
        assert np.sum(mine * reference, axis=1).min() >= 0.9995
    fp32 = OnnxEmbedder(str(real_weights)).embed_pixels(pixels)
    assert np.sum(ov.embed_pixels(pixels) * fp32, axis=1).min() < 0.99999  # the check can fail: int8 is not fp32


def _ov_folders(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "openvino").iterdir() if not p.name.startswith("."))


@needs_openvino
def test_the_openvino_cache_is_rebuilt_when_damaged_and_never_written_through_a_link(tmp_path, cache, capfd):
    """Damaged, altered, replaced by a link or holding one: compiled afresh into a private folder,
    renamed into place. A cache whose folder cannot be made: compiled in each process, said once."""
    import shutil

    from poster_search.embedding.openvino_embedder import OpenVinoEmbedder

    precision = "bf16" if HAS_BF16 else "fp32"
    pixels = decode_poster(make_poster(tmp_path / "p.png", seed=5)).pixels[None]
    reference = OpenVinoEmbedder(None, precision=precision).embed_pixels(pixels)
    [folder] = _ov_folders(cache)
    record = json.loads((folder / "made.json").read_text())
    [blob] = [folder / name for name in record["files"]]
    assert blob.is_file() and record["files"][blob.name][0] == blob.stat().st_size > 1_000_000
    built = (folder / "made.json").stat().st_ino
    assert np.array_equal(OpenVinoEmbedder(None, precision=precision).embed_pixels(pixels), reference)
    assert (folder / "made.json").stat().st_ino == built  # read back, not rebuilt

    def damage_and_reload(damage) -> None:
        damage()
        again = OpenVinoEmbedder(None, precision=precision).embed_pixels(pixels)  # must not load the damaged blob (or fail)
        assert np.allclose(again, reference, atol=1e-6)
        [rebuilt] = _ov_folders(cache)
        assert rebuilt.is_dir() and not rebuilt.is_symlink()
        assert json.loads((rebuilt / "made.json").read_text())["files"].keys() == record["files"].keys()

    def flip_one_byte() -> None:  # same size: only the digest can tell
        raw = bytearray(blob.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        blob.chmod(0o600)
        blob.write_bytes(bytes(raw))

    damage_and_reload(flip_one_byte)
    damage_and_reload(lambda: blob.unlink())
    damage_and_reload(lambda: (folder / "made.json").write_text("{ garbage"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def planted_link() -> None:  # the folder replaced by a link to someone else's: never written into
        shutil.rmtree(folder)
        folder.symlink_to(elsewhere, target_is_directory=True)

    damage_and_reload(planted_link)
    assert list(elsewhere.iterdir()) == []

    def link_inside() -> None:
        blob.unlink()
        blob.symlink_to(tmp_path / "p.png")

    damage_and_reload(link_inside)
    assert (tmp_path / "p.png").stat().st_size < 100_000  # the link's target untouched

    shutil.rmtree(cache / "openvino")
    (cache / "openvino").write_text("not a folder")  # OpenVINO's cache cannot be made: still answers, says why
    assert np.allclose(OpenVinoEmbedder(None, precision=precision).embed_pixels(pixels), reference, atol=1e-6)
    assert "cannot use OpenVINO's model cache" in capfd.readouterr().err


CTRL_C_AFTER_EMBEDDERS = """
import gc, os, signal, sys, time
import numpy as np
from poster_search.embedding.openvino_embedder import OpenVinoEmbedder
pixels = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
first = OpenVinoEmbedder(None, precision=sys.argv[1])
first.embed_pixels(pixels)
second = OpenVinoEmbedder(None, style=True, precision=sys.argv[1])
second.embed_both(pixels)
del first  # dropped in the order they were made, not the reverse
gc.collect()
del second
gc.collect()
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)
except KeyboardInterrupt:
    print("stopped")
"""


@needs_openvino
def test_ctrl_c_after_embedders_were_made_and_dropped_in_any_order_stops_the_process_cleanly(cache):
    """Each OpenVINO Core loads a CPU plugin that puts the thread's signal stack on memory of its
    own and gives the previous one back when it goes: two Cores dropped first-made-first left a
    freed stack, and the next Ctrl-C (or any Python signal handler) was a segfault, not
    KeyboardInterrupt. One Core per process leaves nothing to give back out of order."""
    precision = "bf16" if cpu_bf16() else "fp32"
    done = subprocess.run([sys.executable, "-c", CTRL_C_AFTER_EMBEDDERS, precision], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "stopped", f"exit {done.returncode}: {done.stderr[-1500:]}"
