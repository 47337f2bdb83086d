"""A store, a cache or a model folder from somewhere else (a tarball, a shared disk, /tmp): nothing
in it is followed, trusted or believed (issue 29). Each test fails on the commit before its fix.

The CLI runs in-process (tests/conftest.py's run_cli) where a hang or a runaway read cannot happen, and in a
subprocess with a timeout and a memory limit where it could (a FIFO, a link to /dev/zero)."""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path
from uuid import UUID

import numpy as np
import pytest

from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from tests.conftest import NOTES, ROOT, make_poster, tmpfs, write_csv
from tests.conftest import one_line_error as strict_one_line_error
from tests.conftest import run_cli as cli

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer


def one_line_error(result, pattern: str) -> str:
    return strict_one_line_error(result, pattern, ignore=NOTES)


STORE_ENV = ("QDRANT_PATH", "QDRANT_URL", "QDRANT_API_KEY", "QDRANT_GRPC", "QDRANT_TIMEOUT")
VICTIM_TEXT = "the user's own file\n"


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One cache for the tests that do not test the cache: the ONNX graph is built once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def own_environment(monkeypatch, shared_cache):
    """The tests name their store and their cache: nothing of the developer's shell redirects them."""
    for name in STORE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POSTER_SEARCH_CACHE", str(shared_cache))


def limited_python(*args, timeout: float = 120, memory: int | None = 6 * 1024**3, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python ARGS` in a fresh process that can neither hang the suite nor (unless `memory` is None)
    take the machine's memory; `env` is added to this process's environment."""

    def limit() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
    )


def limited_cli(*args, timeout: float = 120, memory: int = 6 * 1024**3, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python cli.py ARGS`, as limited_python runs it."""
    return limited_python(ROOT / "cli.py", *args, timeout=timeout, memory=memory, env=env)


def make_store(folder: Path, n: int = 4, posters_dir: Path | None = None) -> tuple[Path, Path, Path]:
    """n generated posters ingested into folder/store: (catalog, posters, store)."""
    posters = posters_dir or folder / "posters"
    rows = []
    for i in range(n):
        make_poster(posters / f"{i}.jpg", seed=i)
        rows.append([f"{i}.jpg", f"Film {i}", 1950 + 3 * i])
    catalog = write_csv(folder / "movies.csv", ["filename", "title", "release_year"], rows)
    store = folder / "store"
    result = cli("ingest", "--catalog", catalog, "--posters", posters, "--qdrant-path", store, "--weights", "random")
    assert result.exit_code == 0, (result.output, result.exception)
    return catalog, posters, store


def victim(folder: Path) -> Path:
    path = folder / "important.txt"
    path.write_text(VICTIM_TEXT)
    return path


def count(store: Path) -> int:
    with PosterStore(StoreLocation(path=store)) as db:
        return db.count()


# --- 1. writes never follow links ------------------------------------------------------------


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_kept(tmp_path):
    _, _, store = make_store(tmp_path)
    target = victim(tmp_path)
    (store / ".lock").unlink()
    (store / ".lock").symlink_to(target)
    one_line_error(cli("search", "--title", "Film 1", "--qdrant-path", store), r"lock file .*\.lock is a symbolic link: not followed")
    assert target.read_text() == VICTIM_TEXT


def test_a_hard_linked_lock_file_is_locked_but_never_written(tmp_path):
    _, _, store = make_store(tmp_path)
    target = victim(tmp_path)
    (store / ".lock").unlink()
    os.link(target, store / ".lock")  # another name of the user's file: not the store's to change
    assert cli("search", "--title", "Film 1", "--qdrant-path", store).exit_code == 0
    assert target.read_text() == VICTIM_TEXT


def test_collection_metadata_is_never_written_through_a_planted_link(tmp_path):
    _, _, store = make_store(tmp_path)
    folder = store / "collections" / "posters"
    target = victim(tmp_path)
    (folder / "collection.json").unlink()  # restored from its backup by the next command, through...
    (folder / "collection.tmp").symlink_to(target)  # ...the temp name the old code used
    assert cli("search", "--title", "Film 1", "--qdrant-path", store).exit_code == 0
    assert target.read_text() == VICTIM_TEXT
    assert (folder / "collection.json").is_file() and not (folder / "collection.json").is_symlink()


def test_export_never_writes_through_a_link_planted_beside_it(tmp_path):
    _, _, store = make_store(tmp_path)
    target = victim(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".e.npz.partial").symlink_to(target)
    result = cli("export-embeddings", out / "e.npz", "--qdrant-path", store)
    assert result.exit_code == 0, (result.output, result.exception)
    assert target.read_text() == VICTIM_TEXT
    assert np.load(out / "e.npz")["embeddings"].shape == (4, 512)


def test_rejects_sheets_and_map_json_replace_a_link_at_their_path_never_write_through_it(tmp_path):
    catalog, posters, store = make_store(tmp_path)
    with open(catalog, "a") as f:
        f.write("missing.jpg,Missing,1960\n")
    target = victim(tmp_path)
    rejects, sheet = tmp_path / "rejects.csv", tmp_path / "sheet.png"
    rejects.symlink_to(target)
    sheet.symlink_to(target)
    result = cli("ingest", "--catalog", catalog, "--posters", posters, "--qdrant-path", store, "--weights", "random", "--rejects", rejects)
    assert result.exit_code == 0, (result.output, result.exception)
    result = cli("search", "--title", "Film 1", "--qdrant-path", store, "--sheet", sheet, "-k", "2")
    assert result.exit_code == 0, (result.output, result.exception)
    assert target.read_text() == VICTIM_TEXT
    assert not rejects.is_symlink() and "missing.jpg" in rejects.read_text()
    assert not sheet.is_symlink() and sheet.read_bytes().startswith(b"\x89PNG")


def test_output_checks_never_open_the_output_itself(tmp_path):
    """The check before a long command used to open the output (O_CREAT, following links): a FIFO
    or a device there is refused in one line, and a link's target is not created."""
    _, _, store = make_store(tmp_path)
    os.mkfifo(tmp_path / "fifo.png")
    one_line_error(cli("search", "--title", "Film 1", "--qdrant-path", store, "--sheet", tmp_path / "fifo.png"), "not a regular file")
    dangling = tmp_path / "made-elsewhere.png"
    (tmp_path / "link.png").symlink_to(dangling)
    one_line_error(cli("search", "--title", "No such film", "--qdrant-path", store, "--sheet", tmp_path / "link.png"), "no film titled")
    assert not dangling.exists()  # the check made no file through the link


# --- 2. the lock locks the real collection ---------------------------------------------------


def test_a_store_linked_into_a_held_store_is_refused_and_recreate_deletes_nothing(tmp_path):
    catalog, posters, held = make_store(tmp_path)
    alias = tmp_path / "alias"
    alias.mkdir()
    (alias / "collections").symlink_to(held / "collections")
    with PosterStore(StoreLocation(path=held)) as db:  # as a running `serve` holds it
        assert db.count() == 4
        ingest = ["ingest", "--catalog", catalog, "--posters", posters, "--qdrant-path", alias, "--weights", "random"]
        line = one_line_error(cli(*ingest), "collection 'posters' .* is in use by another process")
        assert "--recreate" not in line
        one_line_error(cli(*ingest, "--recreate"), "is in use by another process")
        one_line_error(cli("search", "--title", "Film 1", "--qdrant-path", alias), "is in use by another process")
        assert db.count() == 4
    assert count(held) == 4


def test_a_collection_folder_linked_into_a_held_store_is_refused(tmp_path):
    _, _, held = make_store(tmp_path)
    alias = tmp_path / "alias"
    (alias / "collections").mkdir(parents=True)
    (alias / "collections" / "posters").symlink_to(held / "collections" / "posters")
    with PosterStore(StoreLocation(path=held)) as db:
        assert db.count() == 4
        one_line_error(cli("export-embeddings", tmp_path / "e.npz", "--qdrant-path", alias), "is in use by another process")
    assert count(held) == 4


# --- 3. metadata files that are not files ------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "sparse"])
def test_collection_metadata_that_is_not_a_regular_file_is_never_read(tmp_path, kind):
    _, _, store = make_store(tmp_path)
    config = store / "collections" / "posters" / "collection.json"
    config.unlink()
    if kind == "fifo":
        os.mkfifo(config)
    elif kind == "dev-zero":
        config.symlink_to("/dev/zero")
    else:
        with open(config, "wb") as f:
            f.truncate(3 * 1024**3)  # 3 GB, all of it a hole
    result = limited_cli("search", "--title", "Film 1", "--qdrant-path", store, "-k", "2", timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]  # restored from the backup
    assert "restored it from collection.backup.json" in result.stderr
    assert config.is_file() and not config.is_symlink() and config.stat().st_size < 100_000


def test_metadata_and_its_backup_both_fifos_is_one_line_not_a_hang(tmp_path):
    _, _, store = make_store(tmp_path)
    folder = store / "collections" / "posters"
    for name in ("collection.json", "collection.backup.json"):
        (folder / name).unlink()
        os.mkfifo(folder / name)
    result = limited_cli("search", "--title", "Film 1", "--qdrant-path", store, timeout=90)
    assert result.returncode == 1 and result.stderr.startswith("Error: ") and "damaged" in result.stderr, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_marker_linked_to_dev_zero_is_not_read(tmp_path):
    _, _, store = make_store(tmp_path)
    (store / "poster-search-store.json").unlink()
    (store / "poster-search-store.json").symlink_to("/dev/zero")
    result = limited_cli("search", "--title", "Film 1", "--qdrant-path", store, "-k", "2", timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]


# --- 4. the ONNX cache on a full disk --------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A 20 MB tmpfs (root only), unmounted afterwards: too small for the 58 MB graph."""
    with tmpfs(tmp_path / "disk", "20m") as mount:
        yield mount


def test_the_onnx_model_is_built_in_memory_when_the_cache_disk_is_full(tiny_disk, monkeypatch, capsys):
    from poster_search.embedding.onnx_embedder import OnnxEmbedder

    monkeypatch.setenv("POSTER_SEARCH_CACHE", str(tiny_disk / "cache"))
    vectors = OnnxEmbedder(weights=None).embed_pixels(np.zeros((1, 224, 224, 3), np.uint8))
    assert vectors.shape == (1, 512) and np.isfinite(vectors).all()
    assert "cannot cache the ONNX model" in capsys.readouterr().err
    assert not any(p.is_file() for p in (tiny_disk / "cache").rglob("*"))  # nothing half-written left


# --- 5. caches are never trusted -------------------------------------------------------------


def _cached_onnx_folder(cache: Path) -> Path:
    from poster_search.embedding.onnx_embedder import OnnxEmbedder

    OnnxEmbedder(weights=None).load()
    [folder] = (cache / "models").iterdir()
    return folder


def test_a_cached_model_file_linked_to_dev_zero_is_rebuilt_not_hashed_forever(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("POSTER_SEARCH_CACHE", str(cache))
    folder = _cached_onnx_folder(cache)
    (folder / "model.onnx.data").unlink()
    (folder / "model.onnx.data").symlink_to("/dev/zero")
    code = "from poster_search.embedding.onnx_embedder import OnnxEmbedder; import numpy as np; print(OnnxEmbedder(weights=None).embed_pixels(np.zeros((1, 224, 224, 3), np.uint8)).shape)"
    result = limited_python("-c", code, env={"POSTER_SEARCH_CACHE": str(cache)}, timeout=120, memory=None)
    assert result.returncode == 0 and "(1, 512)" in result.stdout, result.stderr[-2000:]
    assert (folder / "model.onnx.data").is_file() and not (folder / "model.onnx.data").is_symlink()


def test_a_digest_cache_linked_to_dev_zero_is_not_read(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "digests.json").symlink_to("/dev/zero")
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"not really weights")
    code = f"from poster_search.embedding.spec import weights_id; print(weights_id({str(weights)!r}))"
    result = limited_python("-c", code, env={"POSTER_SEARCH_CACHE": str(cache)}, timeout=60, memory=4 * 1024**3)
    assert result.returncode == 0 and result.stdout.startswith("sha256:"), result.stderr[-2000:]


def test_a_map_cache_with_arrays_of_the_wrong_length_is_computed_again(tmp_path, monkeypatch):
    from poster_search.search.poster_map import poster_map

    monkeypatch.setenv("POSTER_SEARCH_CACHE", str(tmp_path / "cache"))
    _, _, store = make_store(tmp_path, n=12)
    with PosterStore(StoreLocation(path=store)) as db:
        first = poster_map(db)
    [cached] = (tmp_path / "cache" / "maps").rglob("*.npz")
    with np.load(cached) as data:
        arrays = dict(data)
    arrays["xy"] = arrays["xy"][:3]  # the fingerprint still matches
    with open(cached, "wb") as f:
        np.savez(f, **arrays)
    result = cli("map", "--out", tmp_path / "m.png", "--json-out", tmp_path / "m.json", "--qdrant-path", store)
    assert result.exit_code == 0, (result.output, result.exception)
    assert len(json.loads((tmp_path / "m.json").read_text())["posters"]) == 12 == len(first.ids)
    cached.unlink()
    cached.symlink_to("/dev/zero")
    with PosterStore(StoreLocation(path=store)) as db:
        assert len(poster_map(db).ids) == 12
    assert not cached.is_symlink()


# --- 6. a year model from elsewhere ----------------------------------------------------------


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory, shared_cache):
    """A small year model (one member, 3 epochs) on 24 generated posters: (folder, store, posters)."""
    folder = tmp_path_factory.mktemp("model")
    posters = folder / "posters"
    rows = []
    for i in range(24):
        make_poster(posters / f"{i}.jpg", seed=i)
        rows.append([f"{i}.jpg", f"Film {i}", 1940 + 3 * i])
    catalog = write_csv(folder / "movies.csv", ["filename", "title", "release_year"], rows)
    store = folder / "store"
    os.environ["POSTER_SEARCH_CACHE"] = str(shared_cache)  # before the function-scoped fixtures set it
    assert cli("ingest", "--catalog", catalog, "--posters", posters, "--qdrant-path", store, "--weights", "random").exit_code == 0
    model = folder / "year_model"
    model.mkdir()
    victims = {}
    for name in ("model.json", "model.keras", "trained_on.txt"):
        (folder / "v" / name).mkdir(parents=True)
        victims[name] = victim(folder / "v" / name)
        (model / name).symlink_to(victims[name])
    train = [
        "train-year",
        "--members",
        "1",
        "--epochs",
        "3",
        "--knn-k",
        "2",
        "--test-size",
        "0.3",
        "--qdrant-path",
        store,
        "--model-dir",
        model,
    ]
    result = cli(*train)
    assert result.exit_code == 0, (result.output, result.exception)
    return model, store, posters, victims


def test_train_year_replaces_links_in_the_model_folder_never_writes_through_them(trained_model):
    model, _, _, victims = trained_model
    assert all(v.read_text() == VICTIM_TEXT for v in victims.values())
    assert not any((model / name).is_symlink() for name in victims)


def _copy_model(model: Path, to: Path) -> Path:
    shutil.copytree(model, to)
    return to


def _with_nan_weights(keras_file: Path) -> None:
    import h5py

    with zipfile.ZipFile(keras_file) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    weights = io.BytesIO(members["model.weights.h5"])
    with h5py.File(weights, "r+") as h5:
        datasets = []
        h5.visititems(lambda name, item: datasets.append(item) if isinstance(item, h5py.Dataset) and item.dtype.kind == "f" else None)
        for dataset in datasets:
            dataset[...] = np.nan
    members["model.weights.h5"] = weights.getvalue()
    with zipfile.ZipFile(keras_file, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_a_model_with_nan_weights_is_one_line_on_the_cli_and_a_message_on_the_web(trained_model, tmp_path):
    from fastapi.testclient import TestClient

    from poster_search import Posters
    from poster_search.web.app import create_app

    model, store, posters, _ = trained_model
    broken = _copy_model(model, tmp_path / "broken_model")
    _with_nan_weights(broken / "model.keras")
    result = cli("predict-year", posters / "2.jpg", "--model-dir", broken, "--weights", "random")
    one_line_error(result, "not finite .*damaged")
    assert "predicted year" not in result.output
    with Posters(store, weights="random", model_dir=broken) as library:
        client = TestClient(create_app(library), raise_server_exceptions=False, base_url="http://localhost")
        response = client.post("/api/predict-year", files={"file": ("p.jpg", (posters / "2.jpg").read_bytes(), "image/jpeg")})
    assert 400 <= response.status_code < 600 and "damaged" in response.json()["detail"], response.text


@pytest.mark.parametrize("field,value", [("correction", 1e308), ("coverage", 7.0), ("training_mean", -1e300), ("mae", 1e308)])
def test_model_json_numbers_out_of_range_are_one_line(trained_model, tmp_path, field, value):
    model, _, posters, _ = trained_model
    broken = _copy_model(model, tmp_path / "bad_model")
    data = json.loads((broken / "model.json").read_text())
    if field == "training_mean":
        data["training_mean"] = value
    elif field == "mae":
        data["test"]["Keras head"]["mae"] = value
    else:
        data["uncertainty"][field] = value
    (broken / "model.json").write_text(json.dumps(data))
    one_line_error(cli("predict-year", posters / "2.jpg", "--model-dir", broken, "--weights", "random"), "out of range")


# --- 8. damage that keeps the count ----------------------------------------------------------


def _damage(store: Path, what: str, ids: list[str]) -> None:
    """What a damaged segment looks like from Qdrant: vectors flagged deleted, payloads gone."""
    from qdrant_edge import EdgeShard, UpdateOperation

    shard = EdgeShard.load(str(store / "collections" / "posters" / "shard"))
    try:
        if what == "vectors":
            shard.update(UpdateOperation.delete_vectors(list[str | int | UUID](ids), ["vgg16"]))
        else:
            shard.update(UpdateOperation.clear_payload(list[str | int | UUID](ids)))
        shard.flush()
    finally:
        shard.close()


@pytest.mark.parametrize("what", ["vectors", "payloads"])
def test_damage_that_keeps_the_count_is_named_by_search_export_and_migrate(tmp_path, what):
    from poster_search.store.schema import point_id

    _, _, store = make_store(tmp_path)
    ids = [point_id("1.jpg"), point_id("2.jpg")]
    _damage(store, what, ids)
    named = rf"collection 'posters' is damaged: 2 of its 4 points have lost their {'.vgg16. vector' if what == 'vectors' else 'payload'}"
    one_line_error(cli("search", "--title", "Film 1", "--qdrant-path", store), named)
    one_line_error(cli("search", "--id", ids[0], "--qdrant-path", store), named)
    one_line_error(cli("export-embeddings", tmp_path / "e.npz", "--qdrant-path", store), named)
    one_line_error(cli("migrate", "--qdrant-path", store, "--to-path", tmp_path / "copy"), named)
    assert not (tmp_path / "e.npz").exists()
    assert count(store) == 4


# --- 9. the web: other sites, CDN docs ---------------------------------------------------------


@pytest.fixture
def web_client(tmp_path):
    from fastapi.testclient import TestClient

    from poster_search import Posters
    from poster_search.web.app import create_app

    _, posters, store = make_store(tmp_path)
    with Posters(store, weights="random") as library:
        client = TestClient(create_app(library), raise_server_exceptions=False, base_url="http://localhost:8000")
        yield client, posters


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://evil.example"},  # an older browser: no Sec-Fetch-Site
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},  # a sandboxed frame or a file:// page
        {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"},  # another port is another origin
    ],
)
def test_cross_site_requests_to_the_api_are_refused(web_client, headers):
    client, posters = web_client
    upload = client.post("/api/search/image", files={"file": ("p.jpg", (posters / "1.jpg").read_bytes(), "image/jpeg")}, headers=headers)
    assert upload.status_code == 403 and "another site" in upload.json()["detail"] or "origin" in upload.json()["detail"], upload.text
    assert client.get("/api/map", headers=headers).status_code == 403
    assert client.post("/api/recommend", json={"positive": ["x"]}, headers=headers).status_code == 403


def test_the_page_itself_and_same_origin_requests_are_answered(web_client):
    client, posters = web_client
    same = {"Origin": "http://localhost:8000", "Sec-Fetch-Site": "same-origin"}
    upload = client.post("/api/search/image", files={"file": ("p.jpg", (posters / "1.jpg").read_bytes(), "image/jpeg")}, headers=same)
    assert upload.status_code == 200, upload.text
    assert client.get("/", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}).status_code == 200  # a link to the page
    assert client.get("/api/collections").status_code == 200  # curl and scripts send neither header


def test_no_interactive_docs_from_a_cdn_and_the_openapi_description_stays(web_client):
    client, _ = web_client
    for path in ("/docs", "/redoc"):
        response = client.get(path)
        assert response.status_code == 404 and "cdn" not in response.text.lower()
    assert client.get("/openapi.json").json()["info"]["title"] == "poster search"


# --- 10. catalogs ------------------------------------------------------------------------------


def test_a_huge_catalog_line_costs_a_bounded_amount_of_memory(tmp_path):
    from poster_search.ingest.catalog import read_catalog

    posters = tmp_path / "posters"
    for i in range(3):
        make_poster(posters / f"{i}.jpg", seed=i)
    catalog = tmp_path / "movies.csv"
    with open(catalog, "w") as f:
        f.write("filename,title,release_year\n0.jpg,Before,1950\n1.jpg,")
        chunk = "T" * (1 << 20)
        for _ in range(120):  # a 120 MB title on one line
            f.write(chunk)
        f.write(",1951\n2.jpg,After,1952\n")
    tracemalloc.start()
    try:
        result = read_catalog(catalog, posters)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [f.key for f in result.films] == ["0.jpg", "2.jpg"]
    assert [(r.row, r.reason[:12]) for r in result.rejects] == [(3, "the line is ")]
    assert "125,829,131 characters" in result.rejects[0].reason
    assert peak < 80 * 1024**2, f"{peak / 1e6:.0f} MB"


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_separated_catalogs_are_read(tmp_path, delimiter):
    posters = tmp_path / "posters"
    lines = [delimiter.join(["filename", "title", "release_year"])]
    for i in range(3):
        make_poster(posters / f"{i}.jpg", seed=i)
        lines.append(delimiter.join([f"{i}.jpg", f"Film, part {i}", str(1950 + i)]))
    catalog = tmp_path / "movies.csv"
    catalog.write_text("\n".join(lines) + "\n")
    result = cli("ingest", "--catalog", catalog, "--posters", posters, "--qdrant-path", tmp_path / "store", "--weights", "random")
    assert result.exit_code == 0, (result.output, result.exception)
    with PosterStore(StoreLocation(path=tmp_path / "store")) as db:
        titles = sorted(p.payload["title"] for p in db.points(with_vectors=False))
    assert titles == ["Film, part 0", "Film, part 1", "Film, part 2"]


# --- found by the sweep after the fixes -------------------------------------------------------


def test_a_shard_holding_a_fifo_or_a_link_is_refused_before_edge_reads_it(tmp_path):
    _, _, store = make_store(tmp_path)
    config = store / "collections" / "posters" / "shard" / "edge_config.json"
    config.unlink()
    os.mkfifo(config)  # Qdrant Edge itself would wait on it forever
    result = limited_cli("search", "--title", "Film 1", "--qdrant-path", store, timeout=90)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]
    assert "edge_config.json is not a regular file" in result.stderr


def test_the_web_sends_a_recorded_poster_file_only_if_it_is_an_image(tmp_path):
    from fastapi.testclient import TestClient

    from poster_search import Posters
    from poster_search.web.app import create_app

    _, _, store = make_store(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the network\n")
    with Posters(store, weights="random") as posters:
        db = posters.store
        db.update_metadata({"posters_dir": str(tmp_path)})  # what a store from elsewhere may record
        point = next(iter(db.points(with_vectors=False)))
        db.overwrite_payloads([(point.id, {**point.payload, "file": "secret.txt"})])
        client = TestClient(create_app(posters), raise_server_exceptions=False, base_url="http://localhost")
        response = client.get(f"/api/posters/posters/{point.id}")
    assert response.status_code == 404 and "not an image" in response.json()["detail"]
    assert "not for the network" not in response.text
