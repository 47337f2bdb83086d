"""ONNX Runtime beside Keras: the same vectors, a cache that is rebuilt rather than trusted when it
is damaged, int8 as an embedding of its own, and query paths that never import TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from poster_search.embedding.images import decode_poster
from poster_search.embedding.onnx_embedder import OnnxEmbedder
from poster_search.errors import PosterSearchError
from tests.conftest import ROOT, generated_catalog, make_poster, run_cli, serving

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A cache folder of this test's own (the user's ~/.cache is never touched by a test)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("POSTER_SEARCH_CACHE", str(folder))
    return folder


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def test_onnx_runtime_and_keras_agree_on_real_posters(real_weights, era_data, cache):
    """The acceptance figure: per poster, cosine >= 0.99999 for both stored vectors."""
    from poster_search.embedding.model import Embedder

    catalog, posters = era_data
    paths = sorted(posters.glob("*.jpg"))[:: max(1, len(list(posters.glob("*.jpg"))) // 16)][:16]
    pixels = np.stack([decode_poster(p).pixels for p in paths])
    keras_base, keras_style = Embedder(str(real_weights), style=True).embed_both(pixels)
    onnx_embedder = OnnxEmbedder(str(real_weights), style=True)
    onnx_base, onnx_style = onnx_embedder.embed_both(pixels)
    assert cosines(keras_base, onnx_base).min() >= 0.99999
    assert cosines(keras_style, onnx_style).min() >= 0.99999
    assert onnx_embedder.spec == Embedder(str(real_weights)).spec  # the runtime is recorded, not compared
    assert onnx_embedder.spec.backend == "onnxruntime"


def test_seeded_weights_are_the_same_network_in_both_runtimes(random_embedder, tmp_path, cache):
    """Random weights (the tests' own) are drawn once for both; the 7x7 grid the maps use is Keras' block5_pool."""
    from poster_search.embedding.model import import_keras

    pixels = np.stack(
        [make_poster(tmp_path / f"{i}.png", seed=i, size=(150, 220)) and decode_poster(tmp_path / f"{i}.png").pixels for i in range(4)]
    )
    onnx_embedder = OnnxEmbedder(None, style=True)
    base, style = onnx_embedder.embed_both(pixels)
    assert cosines(base, random_embedder.embed_pixels(pixels)).min() >= 0.99999
    keras = import_keras()
    model = random_embedder.model
    grid_model = keras.Model(model.inputs, model.get_layer("block5_pool").output)
    expected = np.asarray(grid_model.predict_on_batch(pixels))
    grids = onnx_embedder.grids(pixels)
    assert grids.shape == (4, 7, 7, 512)
    assert np.allclose(grids, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert np.allclose(grids.mean(axis=(1, 2)) / np.linalg.norm(grids.mean(axis=(1, 2)), axis=1, keepdims=True), base, atol=1e-5)


def _model_folder(cache: Path) -> Path:
    [folder] = [p for p in (cache / "models").iterdir() if p.name.endswith("-fp32")]
    return folder


def test_the_cache_is_built_once_and_rebuilt_when_damaged_or_stale(cache, tmp_path, monkeypatch):
    pixels = decode_poster(make_poster(tmp_path / "p.png", seed=3)).pixels[None]
    reference = OnnxEmbedder(None).embed_pixels(pixels)
    folder = _model_folder(cache)
    record = json.loads((folder / "made.json").read_text())
    assert record["weights"] == "random" and record["variant"] == "fp32" and set(record["files"]) == {"model.onnx", "model.onnx.data"}
    built = (folder / "made.json").stat().st_mtime_ns
    assert np.array_equal(OnnxEmbedder(None).embed_pixels(pixels), reference)
    assert (folder / "made.json").stat().st_mtime_ns == built  # read back, not rebuilt

    def damage_and_reload(damage) -> None:
        damage(folder)
        again = OnnxEmbedder(None).embed_pixels(pixels)  # must not load the damaged files (or fail)
        assert np.allclose(again, reference, atol=1e-6)
        assert json.loads((folder / "made.json").read_text())["files"] == record["files"]  # the same model, rebuilt

    data = folder / "model.onnx.data"
    damage_and_reload(lambda f: data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 2]))  # truncated

    def flip_one_byte(f: Path) -> None:  # same size, other weights: only the digest can tell
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 3] ^= 0xFF
        data.write_bytes(bytes(raw))

    damage_and_reload(flip_one_byte)
    damage_and_reload(lambda f: (f / "made.json").write_text("{ garbage"))
    damage_and_reload(lambda f: (f / "model.onnx").unlink())
    import poster_search.embedding.onnx_cache as onnx_cache

    monkeypatch.setattr(onnx_cache, "EXPORT_VERSION", onnx_cache.EXPORT_VERSION + 1)  # a newer export: never the old file
    OnnxEmbedder(None).load()
    assert {p.name for p in (cache / "models").iterdir() if not p.name.startswith(".")} == {
        folder.name,
        folder.name.replace(f"-v{onnx_cache.EXPORT_VERSION - 1}-", f"-v{onnx_cache.EXPORT_VERSION}-"),
    }


def test_an_unwritable_cache_still_answers(tmp_path, monkeypatch, capfd):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("POSTER_SEARCH_CACHE", str(tmp_path / "file"))
    vector = OnnxEmbedder(None).embed([make_poster(tmp_path / "p.png", seed=1)])
    assert vector.shape == (1, 512)
    assert "cannot cache the ONNX model" in capfd.readouterr().err


def test_the_numpy_head_predicts_what_keras_predicts(tmp_path):
    """The year head without TensorFlow: the saved model.keras evaluated in NumPy, both head kinds."""
    from poster_search.regression.config import HeadConfig
    from poster_search.regression.head import train_head
    from poster_search.regression.head_numpy import NumpyHead

    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(120, 24))).astype(np.float32)
    y = 1940 + rng.integers(0, 80, 120).astype(float)
    for target in ("bins", "regression"):
        model, _ = train_head(x, y, HeadConfig(epochs=2, members=2, target=target, hidden=(32, 8)))
        model.save(tmp_path / f"{target}.keras")
        expected = model.predict(x, verbose=0)
        got = NumpyHead(tmp_path / f"{target}.keras").predict(x)
        assert got.shape == expected.shape == ((120, 3) if target == "bins" else (120, 1))
        assert np.abs(got - expected).max() < 1e-3  # years: float32 rounding at ~2000 is 1e-4
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(PosterSearchError, match="not a readable Keras model file"):
        NumpyHead(tmp_path / "broken.keras")


@pytest.fixture(scope="module")
def small_collection(tmp_path_factory):
    """24 generated posters and their catalog."""
    tmp = tmp_path_factory.mktemp("onnx-store")
    catalog, posters = generated_catalog(tmp, 24, seed=300, size=(120, 180))
    return catalog, posters, tmp


def test_a_store_made_by_either_runtime_is_searched_alike(small_collection, tmp_path, cache):
    catalog, posters, _ = small_collection
    rankings = {}
    for backend in ("tensorflow", "onnxruntime"):
        store = tmp_path / backend
        made = run_cli(
            "ingest",
            "--catalog",
            catalog,
            "--posters",
            posters,
            "--qdrant-path",
            store,
            "--weights",
            "random",
            "--backend",
            backend,
            "--rejects",
            tmp_path / "r.csv",
        )
        assert made.returncode == 0, made.stderr
        assert f"[{backend} on CPU, fp32" in made.stdout
        found = run_cli("search", posters / "4.jpg", "-k", "5", "--json", "--qdrant-path", store, "--weights", "random")
        assert found.returncode == 0, found.stderr
        rankings[backend] = [(n["id"], round(n["score"], 4)) for n in json.loads(found.stdout)["neighbours"]]
    assert rankings["tensorflow"] == rankings["onnxruntime"]


def test_int8_is_an_embedding_of_its_own(small_collection, tmp_path, cache):
    """--precision int8: recorded in the spec with its calibration, never mixed with fp32 vectors, and
    searched with the same int8 model, which is rebuilt from the recorded posters when the cache is gone."""
    catalog, posters, _ = small_collection
    store = tmp_path / "store"
    common = ("--catalog", catalog, "--posters", posters, "--qdrant-path", store, "--weights", "random", "--rejects", tmp_path / "r.csv")
    made = run_cli("ingest", *common, "--precision", "int8")
    assert made.returncode == 0, made.stderr
    from poster_search.embedding.backend import cpu_runtime

    assert f"{cpu_runtime('int8').backend} on CPU, int8" in made.stdout  # OpenVINO where installed: the same int8 model
    collection = json.loads((store / "collections" / "posters" / "collection.json").read_text())["metadata"]
    assert collection["embedding"]["quantization"].startswith("int8-qdq-v1:calibration-")
    assert collection["calibration"]["files"] and len(collection["calibration"]["files"]) == len(collection["calibration"]["sha256"])
    refused = run_cli("ingest", *common, "--precision", "fp32")
    assert refused.returncode == 1 and "differs in quantization" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert run_cli("ingest", *common, "--precision", "int8").returncode == 0  # the same int8 model: resumes

    from poster_search.search.neighbours import PosterSearch, image_embedder
    from poster_search.store.collection import PosterStore
    from poster_search.store.connection import StoreLocation

    def scores() -> list[float]:
        with PosterStore(StoreLocation(path=store)) as db:
            embedder = image_embedder(db, "random")
            assert embedder.runtime.precision == "int8" and embedder.spec == db.stored_spec()
            stored = db.retrieve([p.id for p in db.points(with_vectors=False) if p.payload["file"] == "4.jpg"], with_vectors=True)[0]
            assert stored.vector is not None
            assert float(np.dot(embedder.embed([posters / "4.jpg"])[0], stored.vector)) > 0.99999  # the very model that stored it
            return [n.score for n in PosterSearch(db, embedder).by_image(posters / "4.jpg", k=4)]

    before = scores()
    for folder in (cache / "models").iterdir():  # the int8 model is gone from this machine's cache
        if "int8" in folder.name:
            import shutil

            shutil.rmtree(folder)
    assert np.allclose(scores(), before, atol=1e-6)  # rebuilt from the recorded calibration posters


NO_TENSORFLOW = """
import sys
sys.path.insert(0, {root!r})
{code}
loaded = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow.") or m == "keras")
print("LOADED:" + ",".join(loaded))
"""


def imports_after(code: str) -> list[str]:
    """The TensorFlow and Keras modules a fresh process has imported once `code` has answered."""
    result = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW.format(root=str(ROOT), code=code)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    line = [line for line in result.stdout.splitlines() if line.startswith("LOADED:")][-1]
    return [m for m in line[len("LOADED:") :].split(",") if m]


@pytest.fixture(scope="module")
def served_store(small_collection):
    """The 24 posters ingested with both vectors and a small year model (training imports Keras, in its own process)."""
    catalog, posters, tmp = small_collection
    store = tmp / "served"
    for command in (
        ["ingest", "--catalog", catalog, "--posters", posters, "--style", "--rejects", tmp / "r.csv"],
        ["train-year", "--members", "1", "--epochs", "3", "--knn-k", "2", "--test-size", "0.3", "--model-dir", tmp / "model"],
    ):
        made = run_cli(*command, "--qdrant-path", store, *(["--weights", "random"] if command[0] == "ingest" else []))
        assert made.returncode == 0, made.stderr
    return store, posters, tmp / "model"


def test_query_commands_and_functions_import_no_tensorflow(served_store):
    store, posters, model = served_store
    cli = "from poster_search.cli import app\ntry:\n    app({args!r}, standalone_mode=False)\nexcept SystemExit as e:\n    assert not e.code, e.code"
    image = str(posters / "2.jpg")
    cases = {
        "search IMAGE": cli.format(args=["search", image, "--qdrant-path", str(store), "--weights", "random"]),
        "search IMAGE --vector vgg16_style": cli.format(
            args=["search", image, "--vector", "vgg16_style", "--qdrant-path", str(store), "--weights", "random"]
        ),
        "predict-year": cli.format(args=["predict-year", image, "--model-dir", str(model), "--weights", "random"]),
        "search IMAGE --explain": cli.format(
            args=["search", image, "--explain", str(store.parent / "why.png"), "--qdrant-path", str(store), "--weights", "random"]
        ),
        "map": cli.format(args=["map", "--out", str(store.parent / "map.png"), "--qdrant-path", str(store)]),
        "era --timeline": cli.format(args=["era", "--timeline", str(store.parent / "timeline.png"), "--qdrant-path", str(store)]),
        "duplicates": cli.format(args=["duplicates", "--qdrant-path", str(store)]),
        "nearest()": f"from poster_search.search import nearest\n"
        f"assert len(nearest({image!r}, 3, store={str(store)!r}, weights='random')) == 3",
        "predict_year()": f"from poster_search.regression.model_file import YearModel\nfrom poster_search.regression.predict import model_embedder, predict_year\n"
        f"m = YearModel.load(__import__('pathlib').Path({str(model)!r}))\nassert 1800 < predict_year({image!r}, m, model_embedder(m, 'random')).year < 2100",
    }
    for name, code in cases.items():
        assert imports_after(code) == [], f"{name} imported TensorFlow"
    assert imports_after("import poster_search.embedding.model\nposter_search.embedding.model.import_keras()")  # the check itself can fail


def test_serve_answers_uploads_recommend_and_years_without_tensorflow(served_store, tmp_path):
    """The real server process: after an upload search, a recommendation, a year prediction, the
    upload's similarity maps and the poster map, no TensorFlow library is mapped into it."""
    store, posters, model = served_store
    with serving(store, tmp_path / "serve.log", "--weights", "random", "--model-dir", model) as (url, process, collections):
        assert collections["collections"][0]["count"] == 24
        upload = _multipart(posters / "3.jpg")
        found = json.loads(
            urllib.request.urlopen(urllib.request.Request(url + "/api/search/image", upload[0], upload[1]), timeout=120).read()
        )
        ids = [r["id"] for r in found["results"]]
        body = json.dumps({"positive": ids[:1], "negative": ids[1:2]}).encode()
        recommended = json.loads(
            urllib.request.urlopen(urllib.request.Request(url + "/api/recommend", body, {"Content-Type": "application/json"})).read()
        )
        assert recommended["results"]
        year = json.loads(
            urllib.request.urlopen(urllib.request.Request(url + "/api/predict-year", upload[0], upload[1]), timeout=120).read()
        )
        assert 1800 < year["year"] < 2100
        body = json.dumps({"ids": ids[:2], "query_token": found["query"]["token"]}).encode()
        explained = json.loads(
            urllib.request.urlopen(
                urllib.request.Request(url + "/api/explain", body, {"Content-Type": "application/json"}), timeout=120
            ).read()
        )
        assert len(explained["maps"]) == 2
        import time

        for _ in range(600):  # 202 while the map is computed in the background, then 200 with it
            answer = urllib.request.urlopen(url + "/api/map", timeout=300)
            if answer.status == 200:
                break
            time.sleep(0.2)
        assert json.loads(answer.read())["n"] == 24
        maps = Path(f"/proc/{process.pid}/maps").read_text()
        from poster_search.embedding.backend import cpu_runtime

        assert f"/{cpu_runtime().backend}/" in maps  # the check can fail: the runtime that did answer is mapped
        assert "tensorflow" not in maps.lower()


def _multipart(path: Path) -> tuple[bytes, dict]:
    boundary = "posterboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
