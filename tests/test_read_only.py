"""A store on read-only media (a DVD, a read-only NFS export or container volume), and a store path
pointed inside another store (issue 39).

Reading commands answer from a store on a real read-only bind mount (`mount --bind`, then
`remount,bind,ro`: the tests need root, and are skipped with the reason without it); writing
commands say in one line that the store is read-only, and leave it as it was. Qdrant Edge writes
to a shard whenever it opens one (its segment files are opened read-write, journals removed,
edge_config.json rewritten), so a read-only store is read from a private copy of the shard
(store/edge_folder.py), bounded in size."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from poster_search.store.schema import point_id
from tests.conftest import NOTES, generated_catalog, ingest, make_poster, one_line_error, run_cli, serving, write_csv

pytestmark = pytest.mark.e2e  # the CLI and the web server as a user runs them, on a real read-only mount

STORE_ENV = ("QDRANT_PATH", "QDRANT_URL", "QDRANT_API_KEY", "QDRANT_GRPC", "QDRANT_TIMEOUT")
READ_ONLY = r"the store .* is on a read-only file system: reading commands work, this one writes"


@pytest.fixture(scope="module")
def environment(tmp_path_factory) -> Iterator[None]:
    """The tests name their store and cache: nothing of the developer's shell redirects them."""
    with pytest.MonkeyPatch.context() as patch:
        for name in STORE_ENV:
            patch.delenv(name, raising=False)
        patch.setenv("POSTER_SEARCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def make_store(folder: Path, n: int = 4) -> tuple[Path, Path, Path]:
    """n generated posters ingested into folder/store: (catalog, posters, store)."""
    catalog, posters = generated_catalog(folder, n)
    ingest(catalog, posters, folder / "store")
    return catalog, posters, folder / "store"


@contextlib.contextmanager
def read_only_mount(source: Path, target: Path) -> Iterator[Path]:
    """`source` bound read-only at the new folder `target` for the block, unmounted after it.
    Skips the test where it cannot mount (not root, no mount, no bind mounts in this container)."""
    target.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a read-only bind mount needs root (mount --bind, then remount,bind,ro)")
    bound = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True, text=True)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bound.stderr.strip()}")
    try:
        made = subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"cannot make a bind mount read-only here: {made.stderr.strip()}")
        with pytest.raises(OSError):  # the mount really is read-only, for root too
            (target / "probe").write_text("x")
        yield target
    finally:
        if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under `folder`: kind, size, modification time and content digest."""
    entries: dict[str, tuple] = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        name = str(path.relative_to(folder))
        if path.is_symlink():
            entries[name] = ("link", os.readlink(path))
        elif path.is_file():
            entries[name] = ("file", info.st_size, info.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            entries[name] = ("folder", info.st_mode)
    return entries


@pytest.fixture(scope="module")
def ro(tmp_path_factory, environment) -> Iterator[tuple[Path, Path, Path, dict]]:
    """A small store (4 posters), bound read-only: (catalog, posters, the read-only store, its snapshot)."""
    folder = tmp_path_factory.mktemp("ro")
    catalog, posters, store = make_store(folder)
    with read_only_mount(store, folder / "mounted") as mounted:
        yield catalog, posters, mounted, snapshot(store)


def unchanged(store: Path, before: dict) -> None:
    assert snapshot(store) == before
    assert not list(store.rglob("*.tmp")) and not list(store.rglob(".atomicwrite*"))


def succeeded(result) -> str:
    assert result.exit_code == 0, (result.output[-2000:], result.exception)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


# --- 1. reading commands answer from a read-only store -------------------------------------------


def test_search_by_title_id_and_image_on_a_read_only_store(ro):
    _, posters, store, before = ro
    by_title = succeeded(run_cli("search", "--title", "Film 1", "--qdrant-path", store))
    assert "nearest to Film 1 (1953)" in by_title and "Film 3" in by_title
    by_id = succeeded(run_cli("search", "--id", point_id("2.jpg"), "--qdrant-path", store, "-k", "2"))
    assert "nearest to Film 2 (1956)" in by_id and by_id.count("Film ") == 3
    by_image = succeeded(run_cli("search", posters / "2.jpg", "--qdrant-path", store, "--weights", "random"))
    assert "Film 3" in by_image and "Film 2" not in by_image.split("\n", 1)[1]  # the query's own copy left out
    unchanged(store, before)


def test_export_era_timeline_and_duplicates_read_a_read_only_store(ro, tmp_path):
    _, _, store, before = ro
    out = tmp_path / "e.npz"
    succeeded(run_cli("export-embeddings", out, "--qdrant-path", store))
    exported = np.load(out)
    assert exported["embeddings"].shape == (4, 512) and sorted(exported["titles"]) == [f"Film {i}" for i in range(4)]
    assert "1950s" in succeeded(run_cli("era", "--qdrant-path", store, "--timeline", tmp_path / "timeline.png"))
    assert (tmp_path / "timeline.png").stat().st_size > 0
    succeeded(run_cli("duplicates", "--qdrant-path", store))
    unchanged(store, before)


def test_migrate_out_of_a_read_only_store_copies_it(ro, tmp_path):
    _, _, store, before = ro
    succeeded(run_cli("migrate", "--qdrant-path", store, "--to-path", tmp_path / "copy"))
    assert "Film 2" in succeeded(run_cli("search", "--title", "Film 1", "--qdrant-path", tmp_path / "copy"))
    unchanged(store, before)


def _json(url: str, data: bytes | None = None, headers: dict | None = None) -> dict:
    return json.loads(urllib.request.urlopen(urllib.request.Request(url, data, headers or {}), timeout=120).read())


def test_the_web_page_answers_on_a_read_only_store(ro, tmp_path):
    _, posters, store, before = ro
    with serving(store, tmp_path / "serve.log", "--weights", "random") as (url, _, listing):
        assert [(c["name"], c["count"]) for c in listing["collections"]] == [("posters", 4)]
        by_title = _json(f"{url}/api/search/title?title={urllib.parse.quote('Film 1')}")
        assert "Film 3" in [r["title"] for r in by_title["results"]]
        by_id = _json(f"{url}/api/search/id/{point_id('2.jpg')}")
        assert by_id["results"] and "Film 2" not in [r["title"] for r in by_id["results"]]
        boundary = "readonlyboundary"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="2.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
            + (posters / "2.jpg").read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        by_image = _json(f"{url}/api/search/image", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert "Film 3" in [r["title"] for r in by_image["results"]]
        assert _json(f"{url}/api/collections/posters")["count"] == 4
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log and "Error" not in log, log[-3000:]
    unchanged(store, before)


def test_what_a_read_writes_into_a_store_is_skipped_on_a_read_only_one(tmp_path, environment, monkeypatch):
    """A lost marker (written anew on a writable store), a lost collection.json (restored from its
    backup) and a missing payload index (made on open): none is written into a read-only store,
    and search answers."""
    from poster_search.store import edge

    monkeypatch.setattr(edge, "INDEXED_FIELDS", {k: v for k, v in edge.INDEXED_FIELDS.items() if k != "key"})
    _, _, store = make_store(tmp_path)
    monkeypatch.undo()
    assert not [p for p in store.rglob("*") if "-key-" in p.name]  # the shard has no index on `key`
    (store / "poster-search-store.json").unlink()
    (store / "collections" / "posters" / "collection.json").unlink()
    before = snapshot(store)
    with read_only_mount(store, tmp_path / "mounted") as mounted:
        result = run_cli("search", "--title", "Film 1", "--qdrant-path", mounted)
        assert "Film 3" in succeeded(result)
        assert "collection.json was missing or damaged" in result.stderr
        assert "Film 2" in succeeded(run_cli("search", "--title", "Film 1", "--qdrant-path", mounted))
    assert snapshot(store) == before


# --- 2. writing commands are refused in one line -------------------------------------------------


def test_ingest_into_a_read_only_store_is_refused_in_one_line(ro, tmp_path):
    catalog, posters, store, before = ro
    make_poster(tmp_path / "new" / "n.jpg", seed=77)
    shutil.copytree(posters, tmp_path / "new", dirs_exist_ok=True)
    new_catalog = write_csv(tmp_path / "new.csv", ["filename", "title", "release_year"], [["n.jpg", "New Film", 1999]])
    for args in (
        ("--catalog", new_catalog, "--posters", tmp_path / "new"),  # something to add
        ("--catalog", catalog, "--posters", posters),  # nothing to add: still a writing command
        ("--catalog", catalog, "--posters", posters, "--recreate"),
    ):
        result = run_cli("ingest", *args, "--qdrant-path", store, "--weights", "random")
        line = one_line_error(result, READ_ONLY, ignore=NOTES)
        assert str(store) in line
    one_line_error(
        run_cli("ingest", "--posters", posters, "--qdrant-path", store, "--collection", "new", "--weights", "random"),
        READ_ONLY,
        ignore=NOTES,
    )
    unchanged(store, before)


def test_dating_stored_posters_and_migrating_into_a_read_only_store_are_refused(ro, tmp_path):
    from poster_search import BadInput, Posters

    _, _, store, before = ro
    with Posters(store) as posters, pytest.raises(BadInput, match=READ_ONLY):
        posters.date_stored(tmp_path / "no-model")  # refused before the model is even looked for (the CLI looks first)
    one_line_error(run_cli("migrate", "--qdrant-path", store, "--to-path", store, "--to-collection", "other"), READ_ONLY)  # into itself
    other = tmp_path / "other"
    succeeded(run_cli("migrate", "--qdrant-path", store, "--to-path", other))
    one_line_error(run_cli("migrate", "--qdrant-path", other, "--to-path", store, "--to-collection", "other"), READ_ONLY)
    unchanged(store, before)


def test_a_read_only_store_too_large_to_copy_says_how_to_proceed(ro, monkeypatch):
    from poster_search.store import edge_folder

    _, _, store, before = ro
    monkeypatch.setattr(edge_folder, "READ_ONLY_COPY_LIMIT", 64 * 1024)
    line = one_line_error(run_cli("search", "--title", "Film 1", "--qdrant-path", store), r"read-only file system")
    assert "copy the store to a writable disk" in line and "--qdrant-path" in line
    unchanged(store, before)


# --- 3. a store path inside another store --------------------------------------------------------


@pytest.mark.parametrize("inside", ["collections/posters", "collections/posters/new", "collections", "collections/posters/shard"])
def test_a_store_path_inside_another_store_is_refused_naming_it(tmp_path, environment, inside):
    catalog, posters, store = make_store(tmp_path)
    before = snapshot(store)
    path = store / inside
    result = run_cli("ingest", "--catalog", catalog, "--posters", posters, "--qdrant-path", path, "--weights", "random")
    line = one_line_error(result, rf"{path}.* is inside the store {store}")
    assert "--qdrant-path" in line
    one_line_error(run_cli("search", "--title", "Film 1", "--qdrant-path", path), rf"is inside the store {store}")
    assert snapshot(store) == before
