"""Nothing lost, nothing silent (issue 20): each case here lost data, crashed or answered wrongly on
the commit before, and each test fails if that comes back. Through the CLI and the HTTP API, with
real stores, real files and, for the full disk, a small file system of the test's own."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from tests import conftest
from tests.conftest import NOTES, ROOT, free_port, ingest_args, make_poster, payloads, run_cli, run_process, serving, tmpfs
from tests.conftest import generated_catalog as catalog_of

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer


def one_line_error(result, pattern: str, code: int = 1) -> str:
    """One `Error:` line (the embedder's notes allowed beside it), exit code `code`."""
    return conftest.one_line_error(result, pattern, code, ignore=NOTES)


def ingest(catalog: Path, posters: Path, store: Path, *extra, run=run_cli):
    """`ingest` with random weights and the rejects beside the catalog; not checked (the tests do)."""
    return run(*ingest_args(catalog, posters, store, "--rejects", catalog.parent / "rejects.csv", *extra))


# --- data lost, stale or corrupted ----------------------------------------------------------


def test_migrate_into_a_collection_of_another_posters_folder_is_refused(tmp_path):
    first = catalog_of(tmp_path / "a", 3)
    second = catalog_of(tmp_path / "b", 4, seed=50)
    assert ingest(*first, tmp_path / "one").returncode == 0
    assert ingest(*second, tmp_path / "two").returncode == 0
    before = payloads(tmp_path / "two")
    result = run_cli("migrate", "--qdrant-path", tmp_path / "one", "--to-path", tmp_path / "two")
    one_line_error(result, "holds posters from .*/b/posters, the source's are from .*/a/posters: use another --to-collection")
    assert payloads(tmp_path / "two") == before  # nothing overwritten
    with PosterStore(StoreLocation(path=tmp_path / "two")) as s:
        assert s.posters_dir() == (tmp_path / "b" / "posters").resolve()


def test_an_unclosed_quote_is_a_reject_and_the_next_film_is_kept(tmp_path):
    catalog, posters = catalog_of(tmp_path, 3)
    assert ingest(catalog, posters, tmp_path / "store").returncode == 0
    before = payloads(tmp_path / "store")
    catalog.write_text('filename,title,release_year\n0.jpg,"Film 0,1950\n1.jpg,Film 1,1953\n2.jpg,Film 2,1956\n')
    result = ingest(catalog, posters, tmp_path / "store")
    assert result.returncode == 0, result.stderr
    assert "rejected 1 of 3 catalog rows" in result.stdout and "no longer in the catalog" not in result.stdout
    rejects = (tmp_path / "rejects.csv").read_text().splitlines()
    assert len(rejects) == 2 and rejects[1].startswith("2,0.jpg") and "quoted field is not closed" in rejects[1]
    assert payloads(tmp_path / "store") == before  # the broken row changed nothing; films 1 and 2 read as themselves


def test_a_lost_collection_json_is_restored_or_rebuilt_never_deleted(tmp_path):
    catalog, posters = catalog_of(tmp_path, 4)
    store = tmp_path / "store"
    assert ingest(catalog, posters, store).returncode == 0
    folder = store / "collections" / "posters"
    (folder / "collection.json").unlink()
    found = run_cli("search", "--title", "Film 1", "--qdrant-path", store)
    assert found.returncode == 0 and "restored it from collection.backup.json" in found.stderr, found.stderr
    assert (folder / "collection.json").is_file()

    (folder / "collection.json").unlink()
    (folder / "collection.backup.json").write_text("{ garbage")
    one_line_error(
        run_cli("search", "--title", "Film 1", "--qdrant-path", store), "collection 'posters' .* is damaged: .*nothing was deleted"
    )
    shard_files = sorted(p.relative_to(folder) for p in (folder / "shard").rglob("*") if p.is_file())
    again = ingest(catalog, posters, store)  # before: deleted the shard and embedded every poster again
    assert again.returncode == 0, again.stderr
    assert "rebuilt the lost metadata of collection 'posters' from its shard" in again.stdout
    assert "ingested 0, already stored 4" in again.stdout
    assert set(shard_files) <= {p.relative_to(folder) for p in (folder / "shard").rglob("*") if p.is_file()}
    assert run_cli("search", "--title", "Film 1", "--qdrant-path", store).returncode == 0

    # when the stored vectors are not what this embedding makes of the posters, nothing is written
    (folder / "collection.json").unlink()
    (folder / "collection.backup.json").unlink()
    for i in range(4):
        make_poster(posters / f"{i}.jpg", seed=1000 + i)  # other images under the same names
    refused = ingest(catalog, posters, store)
    one_line_error(refused, "cannot be rebuilt: stored vectors differ from this embedding")
    assert not (folder / "collection.json").exists() and (folder / "shard").is_dir()


def test_damaged_store_files_are_one_line_naming_the_file(tmp_path):
    catalog, posters = catalog_of(tmp_path, 3)
    store = tmp_path / "store"
    assert ingest(catalog, posters, store).returncode == 0
    pristine = tmp_path / "pristine"
    shutil.copytree(store, pristine)
    folder = Path("collections") / "posters"

    def damaged(damage, pattern: str) -> None:
        shutil.rmtree(store)
        shutil.copytree(pristine, store)
        damage(store)
        one_line_error(run_cli("search", "--title", "Film 1", "--qdrant-path", store), pattern)

    def garbage_metadata(s: Path) -> None:
        for name in ("collection.json", "collection.backup.json"):
            (s / folder / name).write_text('{"vectors": ')

    damaged(garbage_metadata, r"collection\.json and its backup are missing or unreadable")

    def truncated_vectors(s: Path) -> None:
        [chunk] = (s / folder / "shard").rglob("vector_storage-vgg16/vectors/chunk_0.mmap")
        os.truncate(chunk, 1000)  # shorter than the three vectors it holds

    damaged(truncated_vectors, r"Qdrant Edge failed reading collection 'posters' .*out of bounds.* may be damaged")

    def zeroed_payloads(s: Path) -> None:
        [page] = (s / folder / "shard").rglob("payload_storage/page_0.dat")
        with open(page, "r+b") as f:
            f.write(b"\0" * 4096)

    damaged(zeroed_payloads, r"Qdrant Edge failed reading collection 'posters' .* may be damaged")
    damaged(lambda s: (s / "poster-search-store.json").write_text("{garbage"), r"poster-search-store.json is damaged .*delete it")
    damaged(lambda s: (s / "poster-search-store.json").write_text('{"format": 99}'), r"format 99, made by a newer poster search")

    def collections_a_file(s: Path) -> None:
        shutil.rmtree(s / "collections")
        (s / "collections").write_text("x")

    damaged(collections_a_file, r"store/collections is not a folder")  # before: "no collection", and ingest "Unexpected error"


def test_a_damaged_collection_is_a_503_with_one_line_on_the_web(tmp_path):
    from fastapi.testclient import TestClient

    from poster_search import Posters
    from poster_search.web.app import create_app

    catalog, posters = catalog_of(tmp_path, 3)
    store = tmp_path / "store"
    assert ingest(catalog, posters, store).returncode == 0
    second = catalog_of(tmp_path / "second", 2, seed=40)
    assert ingest(*second, store, "--collection", "other").returncode == 0
    for name in ("collection.json", "collection.backup.json"):
        (store / "collections" / "other" / name).write_text("{")
    with Posters(store, weights="random") as posters:
        app = create_app(posters, era_sample=10)
        # raise_server_exceptions: a handled damage raises nothing; an unhandled one (a 500, and a
        # traceback in the server log) would raise here
        with TestClient(app, raise_server_exceptions=True, base_url="http://localhost") as client:
            listing = client.get("/api/collections").json()
            assert [c["name"] for c in listing["collections"]] == ["posters"]
            assert listing["damaged"][0]["name"] == "other" and "damaged" in listing["damaged"][0]["problem"]
            response = client.get("/api/search/title", params={"title": "Film 1", "collection": "other"})
            assert response.status_code == 503 and "\n" not in response.json()["detail"] and "is damaged" in response.json()["detail"]
            assert client.get("/api/search/title", params={"title": "Film 1"}).status_code == 200  # the rest still answers


def test_serve_with_a_damaged_default_collection_serves_the_others_and_stops_only_when_none_is_left(tmp_path):
    import urllib.error
    import urllib.request

    catalog, posters = catalog_of(tmp_path, 3)
    store = tmp_path / "store"
    assert ingest(catalog, posters, store).returncode == 0
    assert ingest(*catalog_of(tmp_path / "second", 2, seed=40), store, "--collection", "other").returncode == 0
    for name in ("collection.json", "collection.backup.json"):
        (store / "collections" / "posters" / name).write_text("{")
    # before: serve stopped with the damaged collection's line, the healthy one unserved
    with serving(store, tmp_path / "serve.log", "--weights", "random") as (url, _, listing):
        assert [c["name"] for c in listing["collections"]] == ["other"] and listing["damaged"][0]["name"] == "posters"
        with pytest.raises(urllib.error.HTTPError) as damaged:
            urllib.request.urlopen(f"{url}/api/search/title?title=Film%201", timeout=10)
        assert damaged.value.code == 503 and "is damaged" in json.loads(damaged.value.read())["detail"]
        assert "Warning: collection 'posters'" in (tmp_path / "serve.log").read_text()
    shutil.rmtree(store / "collections" / "other")
    one_line_error(
        run_cli("serve", "--qdrant-path", store, "--port", str(free_port()), "--weights", "random", timeout=60),
        "collection 'posters' .* is damaged",
    )


def test_a_killed_decode_worker_is_replaced_and_nothing_is_lost(tmp_path):
    catalog, posters = catalog_of(tmp_path, 40)  # over 32 (MAX_CHUNK): two workers, five batches of 8, the kill lands mid-run
    store = tmp_path / "store"
    command = [
        sys.executable,
        str(ROOT / "cli.py"),
        "ingest",
        "--catalog",
        str(catalog),
        "--posters",
        str(posters),
        "--qdrant-path",
        str(store),
        "--weights",
        "random",
        "--workers",
        "2",
        "--batch-size",
        "8",
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, killed = time.monotonic() + 60, None
    while killed is None and time.monotonic() < deadline and process.poll() is None:
        servers = [pid for pid in _children(process.pid) if "forkserver" in _cmdline(pid)]
        workers = [worker for server in servers for worker in _children(server)]  # forked by the server
        if workers:
            os.kill(workers[0], signal.SIGKILL)  # as the kernel's OOM killer does
            killed = workers[0]
        time.sleep(0.05)
    out, err = process.communicate(timeout=300)
    assert killed, "no decode worker was seen to kill"
    assert process.returncode == 0, err[-2000:]
    assert "a poster-decoding worker process was killed" in err and "Traceback" not in err and "Unexpected" not in err
    assert "ingested 40, already stored 0, rejected 0" in out, out
    assert len(payloads(store)) == 40  # every poster, once


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# --- a full disk -------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 400 MB tmpfs of this test's own (root only), unmounted afterwards: on tmpfs a new
    collection needs the whole size of the files Edge maps (about 200 MB), as each page it touches
    is allocated then."""
    with tmpfs(tmp_path / "disk", "400m") as mount:
        yield mount


def fill(disk: Path, leave: int) -> Path:
    """Fill the file system until `leave` bytes are free."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    with open(filler, "ab") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def test_a_full_disk_is_one_line_never_a_crash_and_keeps_what_was_stored(small_disk, tmp_path):
    catalog, posters = catalog_of(tmp_path, 12)
    store = small_disk / "store"
    fill(small_disk, 1 * 2**20)  # too little for a new collection's first files
    result = ingest(catalog, posters, store, run=run_process)  # a fresh process: a SIGBUS would kill pytest
    assert result.returncode not in (135, -signal.SIGBUS), "killed by SIGBUS"
    one_line_error(
        result,
        r"not enough free space for creating collection .posters.: .*disk/store has \d+ [KM]B free and Qdrant Edge needs about \d+ MB",
    )
    (small_disk / "filler").unlink()

    assert ingest(catalog, posters, store).returncode == 0  # with room: all 12
    stored = payloads(store)
    more = catalog_of(tmp_path / "more", 30, seed=500)
    catalog.write_text(catalog.read_text() + "".join(f"m{i}.jpg,More {i},1990\n" for i in range(30)))
    for i in range(30):
        shutil.copy(more[1] / f"{i}.jpg", posters / f"m{i}.jpg")
    sparse = small_disk / "sparse"  # as a copy (a restored backup) holds it: every zero page a hole again
    subprocess.run(["cp", "-r", "--sparse=always", str(store), str(sparse)], check=True)
    shutil.rmtree(store)
    sparse.rename(store)
    vector_holes = sum(max(0, f.stat().st_size - f.stat().st_blocks * 512) for f in store.rglob("chunk_*.mmap"))
    fill(small_disk, vector_holes + 5 * 2**20)  # room for the vector files' holes, not for every mapped file's: the sweep's SIGBUS
    result = ingest(catalog, posters, store, run=run_process)  # a fresh process: a SIGBUS would kill pytest
    assert result.returncode not in (135, -signal.SIGBUS), "killed by SIGBUS"
    assert result.returncode == 0 or "not enough free space" in result.stderr, result.stderr
    (small_disk / "filler").unlink()
    fill(small_disk, 3 * 2**20)  # less than Edge's next chunk of vectors
    result = ingest(catalog, posters, store, run=run_process)  # a fresh process: a SIGBUS would kill pytest
    assert result.returncode not in (135, -signal.SIGBUS), "killed by SIGBUS"
    one_line_error(result, r"not enough free space for (opening|writing to) collection 'posters': .* needs about \d+ MB")
    found = run_process("search", "--title", "Film 1", "--qdrant-path", store)  # reading needs no room, or says how much
    assert found.returncode == 0 or "not enough free space for opening" in found.stderr, found.stderr
    (small_disk / "filler").unlink()
    after = payloads(store)
    assert {k: after[k] for k in stored} == stored  # the 12 kept, whatever the stopped run managed
    assert ingest(catalog, posters, store).returncode == 0 and len(payloads(store)) == 42  # and it resumes


def test_export_to_a_full_disk_is_one_line_and_leaves_no_partial_file(small_disk, tmp_path):
    catalog, posters = catalog_of(tmp_path, 40)
    store = tmp_path / "store"  # the store on the big disk, the export on the full one
    assert ingest(catalog, posters, store, "--style").returncode == 0
    fill(small_disk, 16 * 1024)
    exported = run_cli("export-embeddings", small_disk / "e.npz", "--qdrant-path", store)
    one_line_error(exported, "cannot write .*e.npz: (No space left on device|not enough free space)")
    assert not (small_disk / "e.npz").exists() and not (small_disk / ".e.npz.partial").exists()
    sheet = run_cli("search", "--title", "Film 1", "--qdrant-path", store, "--sheet", small_disk / "sheet.png")
    one_line_error(sheet, "cannot write .*sheet.png: No space left on device")  # before: "Unexpected error: OSError"


# --- the year model's files ---------------------------------------------------------------------


TRAIN = ("train-year", "--members", "1", "--epochs", "3", "--knn-k", "2", "--test-size", "0.3")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path]:
    """24 generated posters ingested and a small year model trained on them with the CLI, once for
    the module (the tests only read the store; a test that damages the model copies it); (store, posters, model)."""
    tmp = tmp_path_factory.mktemp("trained")
    catalog, posters = catalog_of(tmp, 24)
    store = tmp / "store"
    assert ingest(catalog, posters, store).returncode == 0
    made = run_cli(*TRAIN, "--qdrant-path", store, "--model-dir", tmp / "model")
    assert made.returncode == 0, made.stderr
    return store, posters, tmp / "model"


def test_train_year_checks_its_model_dir_before_training_and_broken_models_are_one_line(trained, tmp_path):
    store, posters, model = trained
    (tmp_path / "a_file").write_text("x")
    train = (*TRAIN, "--qdrant-path", store)
    result = run_cli(*train, "--model-dir", tmp_path / "a_file")
    one_line_error(result, "--model-dir .*a_file is a file, not a folder")
    assert "test set" not in result.stdout  # refused before training, not after it
    one_line_error(run_cli(*train, "--model-dir", "/proc/year_model"), "cannot write the year model to /proc/year_model")

    image = posters / "3.jpg"
    meta = json.loads((model / "model.json").read_text())
    broken = tmp_path / "broken"
    for _case, damage, pattern in [
        ("vector", lambda m: (m / "model.json").write_text(json.dumps({**meta, "vector_names": ["clip"]})), "reads vector.* clip"),
        ("keras", lambda m: (m / "model.keras").write_bytes(b"PK not a zip"), "model.keras is not a readable Keras model file"),
        ("json", lambda m: (m / "model.json").write_text("{ garbage"), "model.json is not a readable year model file"),
        # fields of the wrong type, at the top and inside: before, "Unexpected error: AttributeError" and the like
        (
            "types",
            lambda m: (m / "model.json").write_text(json.dumps({**meta, "uncertainty": "x", "collections": 5})),
            "model.json's collections, uncertainty are not of the type",
        ),
        (
            "inner",
            lambda m: (m / "model.json").write_text(json.dumps({**meta, "uncertainty": {**meta["uncertainty"], "correction": "x"}})),
            "model.json's uncertainty cannot be read",
        ),
        (
            "spec",
            lambda m: (m / "model.json").write_text(
                json.dumps({**meta, "embeddings": {"vgg16": {**meta["embeddings"]["vgg16"], "dim": "512"}}})
            ),
            "model.json's embeddings are damaged .*dim is '512', not of type int",
        ),
    ]:
        shutil.rmtree(broken, ignore_errors=True)
        shutil.copytree(model, broken)
        damage(broken)
        one_line_error(run_cli("predict-year", image, "--model-dir", broken, "--weights", "random"), pattern)
        one_line_error(run_cli("evaluate-year", "--model-dir", broken, "--qdrant-path", store), pattern)


def test_a_broken_model_breaks_only_the_year_prediction_on_the_web(trained, tmp_path):
    from fastapi.testclient import TestClient

    from poster_search import Posters
    from poster_search.web.app import create_app

    store, posters, model = trained
    shutil.copytree(model, tmp_path / "model")  # the module's model stays whole
    (tmp_path / "model" / "model.keras").write_bytes(b"junk")
    with Posters(store, weights="random", model_dir=tmp_path / "model") as library:
        app = create_app(library, era_sample=10)
        with TestClient(app, raise_server_exceptions=True, base_url="http://localhost") as client:
            data = (posters / "2.jpg").read_bytes()
            response = client.post("/api/predict-year", files={"file": ("p.jpg", data, "image/jpeg")})
            assert response.status_code == 503 and "not a readable Keras model file" in response.json()["detail"]  # damaged: a 503
            era = client.get("/api/era", params={"k": 2})
            assert era.status_code == 200 and era.json()["coherence"]["posters"] == 10


# --- the web server on localhost -------------------------------------------------------------


@pytest.fixture(scope="module")
def escaping_store(tmp_path_factory) -> Path:
    """Six generated posters, and a point whose payload names a real image outside the posters folder."""
    tmp = tmp_path_factory.mktemp("hostile-web")
    catalog, posters = catalog_of(tmp, 6)
    store = tmp / "store"
    assert ingest(catalog, posters, store).returncode == 0
    with PosterStore(StoreLocation(path=store)) as db:
        db.upsert(
            ["00000000-0000-0000-0000-00000000beef"],
            np.full((1, 512), 1 / np.sqrt(512), np.float32),
            [{"key": "escaping", "title": "Escaping", "year": 2001, "file": "../secret.png", "sha256": "s"}],
        )
    Image.new("RGB", (60, 90), (255, 0, 0)).save(tmp / "secret.png")
    return store


@pytest.fixture
def web(escaping_store):
    from fastapi.testclient import TestClient

    from poster_search import Posters
    from poster_search.web.app import create_app

    with Posters(escaping_store, weights="random") as posters:
        app = create_app(posters, allowed_hosts=("localhost", "127.0.0.1", "::1", "poster.lan"), era_sample=10)
        with TestClient(app, raise_server_exceptions=False, base_url="http://localhost") as client:
            yield client


def test_only_the_servers_own_host_names_are_answered(web):
    """DNS rebinding: another site's name pointed at 127.0.0.1 reaches the server, but with its own Host header."""
    for host in ("localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST.", "poster.lan"):
        assert web.get("/api/collections", headers={"host": host}).status_code == 200, host
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "", "localhost.evil.example"):
        response = web.get("/api/collections", headers={"host": host})
        assert response.status_code == 400 and "this server answers requests for" in response.json()["detail"], host
    assert web.get("/", headers={"host": "evil.example"}).status_code == 400  # the page too, and the posters


def test_the_real_server_refuses_other_hosts_and_stops_reading_a_chunked_upload_at_the_limit(escaping_store, tmp_path):
    import socket

    served = tmp_path / "served"
    shutil.copytree(escaping_store, served)
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "serve", "--qdrant-path", str(served), "--port", str(port), "--weights", "random"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def request(raw: bytes, body_chunks: int = 0) -> tuple[bytes, int]:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
                conn.sendall(raw)
                sent = 0
                try:
                    for _ in range(body_chunks):  # 1 MB chunks, chunked framing: no Content-Length to refuse by
                        conn.sendall(b"100000\r\n" + b"\xff" * 2**20 + b"\r\n")
                        sent += 1
                    if body_chunks:
                        # The chunked body's end, only after one: sent after a GET, it is a second,
                        # malformed request, and a server still answering the GET when it arrives
                        # rightly answers 400 (docs/testing.md).
                        conn.sendall(b"0\r\n\r\n")
                except OSError:
                    pass  # the server answered and closed: it stopped reading
                answer = b""
                try:
                    while chunk := conn.recv(65536):
                        answer += chunk
                except OSError:
                    pass
                return answer, sent

        deadline = time.monotonic() + 60
        while True:
            try:
                answer, _ = request(b"GET /api/collections HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port)
                if answer:
                    break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.3)
        assert answer.startswith(b"HTTP/1.1 200")
        rebound, _ = request(b"GET /api/collections HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n")
        assert rebound.startswith(b"HTTP/1.1 400") and b"this server answers requests for" in rebound
        twice, _ = request(b"GET /api/collections HTTP/1.1\r\nHost: localhost\r\nHost: attacker.example\r\nConnection: close\r\n\r\n")
        assert twice.startswith(b"HTTP/1.1 400"), twice[:200]  # before: the first was checked, a proxy may read the second
        head = (
            b"POST /api/search/image HTTP/1.1\r\nHost: localhost:%d\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nConnection: close\r\n\r\n"
        ) % port
        part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        answer, sent = request(head + b"%x\r\n" % len(part) + part + b"\r\n", body_chunks=200)
        assert answer.startswith(b"HTTP/1.1 413") and b"over the 20 MB limit" in answer, answer[:300]
        assert sent < 200  # the server stopped reading near the limit; before, it spooled all 200 MB
        spooled = sum(f.stat().st_size for f in Path("/tmp").glob("tmp*") if f.is_file() and f.stat().st_mtime > time.time() - 60)
        assert spooled < 40 * 2**20
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_the_sheet_never_draws_a_file_outside_the_posters_folder(escaping_store, tmp_path):
    out = tmp_path / "sheet.png"
    result = run_cli("search", "--title", "Film 1", "-k", "7", "--sheet", out, "--qdrant-path", escaping_store)
    assert result.returncode == 0, result.stderr
    from poster_search.search.sheet import GAP, TILE

    ranks = [line.split()[0] for line in result.stdout.splitlines()[2:] if line.strip().endswith("Escaping")]
    assert ranks, result.stdout  # the escaping point is among the neighbours drawn
    sheet = np.asarray(Image.open(out).convert("RGB"))
    x = GAP + int(ranks[0]) * (TILE[0] + GAP)
    tile = sheet[GAP + 10 : GAP + TILE[1] - 10, x + 5 : x + TILE[0] - 5].reshape(-1, 3)
    assert not np.all(tile == (255, 0, 0), axis=1).any()  # the red image outside the folder is not drawn
    assert np.all(tile == (200, 200, 200), axis=1).mean() > 0.9  # its tile is the grey "poster not found"


def test_errors_never_echo_a_huge_input_and_name_the_apis_own_parameters(web):
    huge = "x" * 1_000_000
    response = web.post("/api/recommend", json={"positive": [huge]})
    assert response.status_code == 422 and len(response.content) < 2000
    response = web.get("/api/collections/" + "y" * 5000)
    assert response.status_code == 404 and len(response.content) < 1000
    response = web.get("/api/search/title", params={"title": "Film 1", "year_min": 2000, "year_max": 1990})
    assert response.status_code == 400 and "year_min 2000 is after year_max 1990" in response.json()["detail"]
    assert "--" not in response.json()["detail"]


# --- minor ---------------------------------------------------------------------------------------


def test_migrate_onto_itself_or_into_itself_is_refused(tmp_path):
    catalog, posters = catalog_of(tmp_path, 2)
    store = tmp_path / "store"
    assert ingest(catalog, posters, store).returncode == 0
    os.symlink(store, tmp_path / "alias")
    one_line_error(
        run_cli("migrate", "--qdrant-path", store, "--to-path", f"{tmp_path}/./alias/"), "source and destination are the same collection"
    )
    one_line_error(run_cli("migrate", "--qdrant-path", store, "--to-path", store / "inner"), "one inside the other")
    assert not (store / "inner").exists()


@pytest.mark.timeout(120)  # a FIFO catalog that is opened for reading would hang: a failure, not a hung suite
def test_catalog_encodings_nul_bytes_and_paths_that_are_not_files(tmp_path):
    catalog, posters = catalog_of(tmp_path, 3)
    text = "filename,title,release_year\n0.jpg,Amélie,1950\n1.jpg,Film 1,1953\n"
    (tmp_path / "utf16.csv").write_text(text, encoding="utf-16")  # with its byte-order mark: read as it is
    result = ingest(tmp_path / "utf16.csv", posters, tmp_path / "s1")
    assert result.returncode == 0 and "ingested 2" in result.stdout, result.stderr
    assert payloads(tmp_path / "s1")["0.jpg"]["title"] == "Amélie"
    (tmp_path / "bare.csv").write_bytes(text.encode("utf-16-le"))  # no mark: a hint, not garbage
    one_line_error(ingest(tmp_path / "bare.csv", posters, tmp_path / "s2"), "looks like UTF-16 .*--encoding utf-16")
    (tmp_path / "nul.csv").write_text("filename,title,release_year\n0.jpg,Bad\x00Title,1950\n1.jpg,Film 1,1953\n")
    result = ingest(tmp_path / "nul.csv", posters, tmp_path / "s3")
    assert result.returncode == 0 and "rejected 1" in result.stdout
    assert all("\x00" not in p["title"] for p in payloads(tmp_path / "s3").values())
    os.mkfifo(tmp_path / "fifo.csv")
    one_line_error(ingest(tmp_path / "fifo.csv", posters, tmp_path / "s4"), "catalog .*fifo.csv is not a regular file")
    one_line_error(ingest(tmp_path, posters, tmp_path / "s4"), "catalog .* is a folder, not a file")
    one_line_error(
        run_cli("ingest", "--catalog", catalog, "--posters", posters, "--weights", "/dev/zero", "--qdrant-path", tmp_path / "s4"),
        "VGG16 weights file /dev/zero is not a regular file",
    )
    one_line_error(ingest(catalog, catalog, tmp_path / "s4"), "posters folder is a file, not a folder")


def test_a_lost_store_marker_is_written_anew_by_any_command(tmp_path):
    catalog, posters = catalog_of(tmp_path, 2)
    assert ingest(catalog, posters, tmp_path / "store").returncode == 0
    (tmp_path / "store" / "poster-search-store.json").unlink()
    found = run_cli("search", "--title", "Film 1", "--qdrant-path", tmp_path / "store")  # before: "no store at ..."
    assert found.returncode == 0 and "Film 1" in found.stdout, found.stderr
    assert (tmp_path / "store" / "poster-search-store.json").is_file()
    one_line_error(run_cli("search", "--title", "Film 1", "--qdrant-path", tmp_path / "nothing"), "no store at")


def test_search_by_title_and_id_together_is_refused(tmp_path):
    catalog, posters = catalog_of(tmp_path, 2)
    assert ingest(catalog, posters, tmp_path / "store").returncode == 0
    from poster_search.store.schema import point_id

    pid = point_id("0.jpg")
    one_line_error(
        run_cli("search", "--title", "Film 1", "--id", pid, "--qdrant-path", tmp_path / "store"), "give one of --title and --id, not both"
    )


# --- found by attacking the fixes above (the sweep in docs/robustness.md) ---------------------


def test_a_collection_interrupted_before_its_metadata_is_made_anew(tmp_path):
    """Ctrl-C or kill -9 in the first second of a first ingest leaves a shard with no point and no
    collection.json (written last); before, every later ingest refused it as damaged."""
    catalog, posters = catalog_of(tmp_path, 3)
    store = tmp_path / "store"
    empty = tmp_path / "empty.csv"
    empty.write_text("filename,title,release_year\n")
    assert ingest(empty, posters, store).returncode == 0  # a collection with an empty shard
    folder = store / "collections" / "posters"
    for name in ("collection.json", "collection.backup.json"):
        (folder / name).unlink()
    assert (folder / "shard").is_dir()
    one_line_error(run_cli("search", "--title", "Film 1", "--qdrant-path", store), "no collection 'posters'")
    again = ingest(catalog, posters, store)
    assert again.returncode == 0 and "ingested 3, already stored 0" in again.stdout, again.stderr
    assert sorted(payloads(store)) == ["0.jpg", "1.jpg", "2.jpg"]


def test_weights_that_do_not_load_leave_no_collection_behind(tmp_path):
    catalog, posters = catalog_of(tmp_path, 2)
    store = tmp_path / "store"
    result = run_cli("ingest", "--catalog", catalog, "--posters", posters, "--qdrant-path", store, "--weights", catalog)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert not (store / "collections" / "posters").exists()  # before: a collection recording the CSV as its weights
    assert ingest(catalog, posters, store).returncode == 0


def test_prune_refuses_to_delete_every_stored_film(tmp_path):
    catalog, posters = catalog_of(tmp_path, 3)
    store = tmp_path / "store"
    assert ingest(catalog, posters, store).returncode == 0
    before = payloads(store)
    header_only = tmp_path / "header.csv"
    header_only.write_text("filename,title,release_year\n")
    all_rejected = tmp_path / "missing.csv"
    all_rejected.write_text("filename,title,release_year\nnot-there.jpg,Gone,1950\n")
    for bad in (header_only, all_rejected):
        one_line_error(ingest(bad, posters, store, "--prune"), r"--prune would delete every stored film \(3\).*nothing was deleted")
        assert payloads(store) == before


def test_export_never_replaces_a_device_and_writes_through_a_symlink(tmp_path):
    import stat

    catalog, posters = catalog_of(tmp_path, 2)
    store = tmp_path / "store"
    assert ingest(catalog, posters, store).returncode == 0
    device = tmp_path / "null"
    try:  # a /dev/null of the test's own: if the guard breaks, only this one is replaced
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    one_line_error(run_cli("export-embeddings", device, "--qdrant-path", store), "not a regular file")
    assert device.is_char_device()  # before: renamed over, it became a regular file (as /dev/null would)
    target, link = tmp_path / "target.npz", tmp_path / "link.npz"
    link.symlink_to(target)
    assert run_cli("export-embeddings", link, "--qdrant-path", store).returncode == 0
    assert link.is_symlink() and np.load(target)["embeddings"].shape == (2, 512)


def test_escape_sequences_in_titles_never_reach_the_terminal(tmp_path):
    catalog, posters = catalog_of(tmp_path, 3)
    title = "\x1b]0;pwned\x07Esc \x1b[31mRed"
    catalog.write_text(f"filename,title,release_year\n0.jpg,{title},1950\n1.jpg,Film 1,1953\n2.jpg,Film 2,1956\n")
    store = tmp_path / "store"
    assert ingest(catalog, posters, store).returncode == 0
    found = run_cli(
        "search",
        "--id",
        __import__("poster_search.store.schema", fromlist=["point_id"]).point_id("1.jpg"),
        "--qdrant-path",
        store,
        "-k",
        "2",
    )
    assert found.returncode == 0, found.stderr
    assert "\\x1b]0;pwned\\x07Esc \\x1b[31mRed" in found.stdout and "\x1b" not in found.stdout and "\x07" not in found.stdout
    missing = run_cli("search", "--title", "Esc Red\x1b]0;x\x07", "--qdrant-path", store)
    assert missing.returncode == 1 and "\x1b" not in missing.stderr and "\x07" not in missing.stderr, missing.stderr


def test_points_lost_from_the_shard_are_noticed(tmp_path):
    """Edge opens what is left of a shard whose segment files were deleted or truncated, without a
    word: each write records the count, and an open that finds fewer says so."""
    catalog, posters = catalog_of(tmp_path, 4)
    store = tmp_path / "store"
    assert ingest(catalog, posters, store).returncode == 0
    folder = store / "collections" / "posters"
    configs = [json.loads((folder / name).read_text()) for name in ("collection.json", "collection.backup.json")]
    assert [c["points_at_close"] for c in configs] == [4, 4]
    quiet = run_cli("search", "--title", "Film 1", "--qdrant-path", store)
    assert quiet.returncode == 0 and "may be lost or damaged" not in quiet.stderr
    for name, config in zip(("collection.json", "collection.backup.json"), configs):
        (folder / name).write_text(json.dumps({**config, "points_at_close": 20}))  # as if 16 points' files were lost
    noticed = run_cli("search", "--title", "Film 1", "--qdrant-path", store)
    assert noticed.returncode == 0 and "holds 4 points, 20 when it was last written" in noticed.stderr, noticed.stderr
