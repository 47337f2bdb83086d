"""Scale-out: migration between real stores, connection options, retries through injected failures."""

import os
import uuid

import httpx
import numpy as np
import pytest
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from poster_search.embedding.spec import EmbeddingSpec
from poster_search.errors import PosterSearchError
from poster_search.ingest.catalog import read_catalog
from poster_search.ingest.pipeline import ingest
from poster_search.store.collection import PosterStore, Sharding
from poster_search.store.connection import StoreLocation, location_from_options
from poster_search.store.migrate import migrate
from poster_search.store.retry import is_transient
from poster_search.store.schema import point_id
from tests.conftest import local_mode_folder, run_cli

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer

SPEC = EmbeddingSpec(weights="random")


def fill(location, n, start=0, collection="posters", posters=None):
    rng = np.random.default_rng(start)
    vectors = rng.normal(size=(n, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with PosterStore(location, collection) as store:
        store.prepare(SPEC)
        store.upsert(
            [point_id(str(i)) for i in range(start, start + n)],
            vectors,
            [{"key": str(i), "title": f"Film {i}", "year": 1950 + i % 70, "genres": ["Drama"]} for i in range(start, start + n)],
        )
        store.remember_posters_dir(posters or location.path)


def snapshot(location, collection="posters"):
    """Every point's id -> (payload, vector), and the collection's metadata."""
    with PosterStore(location, collection) as store:
        points = {p.id: (p.payload, p.vector) for p in store.points()}
        return points, store.metadata()


def assert_same(a, b):
    (points_a, meta_a), (points_b, meta_b) = a, b
    meta_a, meta_b = ({k: v for k, v in m.items() if k != "state"} for m in (meta_a, meta_b))  # each collection's own changes
    assert meta_a == meta_b
    assert set(points_a) == set(points_b)
    for pid, (payload, vector) in points_a.items():
        assert points_b[pid][0] == payload
        assert np.allclose(points_b[pid][1], vector, atol=1e-6)


def test_migration_copies_ids_vectors_payloads_and_metadata(tmp_path):
    source, target = StoreLocation(path=tmp_path / "a"), StoreLocation(path=tmp_path / "b")
    fill(source, 700)  # more than one scroll batch
    with PosterStore(source) as s, PosterStore(target) as t:
        report = migrate(s, t, batch_size=256, progress=False)
        assert t.stored_spec() == SPEC
    assert (report.copied, report.source_count, report.target_count) == (700, 700, 700)
    assert_same(snapshot(source), snapshot(target))


def test_migration_is_safe_to_rerun_and_never_deletes_the_destination(tmp_path):
    source, target = StoreLocation(path=tmp_path / "a"), StoreLocation(path=tmp_path / "b")
    fill(source, 50)
    with PosterStore(source) as s, PosterStore(target) as t:
        migrate(s, t, progress=False)
        migrate(s, t, progress=False)  # again: nothing duplicated
        assert t.count() == 50
    fill(target, 1, start=1000, posters=source.path)  # something only the destination has (posters from the same folder)
    fill(source, 10, start=50)  # and new posters in the source since the first copy
    with PosterStore(source) as s, PosterStore(target) as t:
        report = migrate(s, t, progress=False)
    assert (report.source_count, report.target_count) == (60, 61)
    points, _ = snapshot(target)
    assert point_id("1000") in points and all(point_id(str(i)) in points for i in range(60))


def test_migration_refuses_another_embedding_and_the_same_collection(tmp_path):
    source, target = StoreLocation(path=tmp_path / "a"), StoreLocation(path=tmp_path / "b")
    fill(source, 5)
    with PosterStore(target) as t:
        t.prepare(EmbeddingSpec(weights="imagenet"))
    with PosterStore(source) as s, PosterStore(target) as t, pytest.raises(PosterSearchError, match="another embedding"):
        migrate(s, t, progress=False)
    with PosterStore(source) as s, pytest.raises(PosterSearchError, match="same collection"):
        migrate(s, s, progress=False)
    with PosterStore(source) as s:  # another collection of the same store is fine
        assert migrate(s, s.other_collection("copy"), progress=False).target_count == 5


def test_sharding_is_refused_on_the_embedded_store(tmp_path):
    with PosterStore(StoreLocation(path=tmp_path / "a")) as store:
        with pytest.raises(PosterSearchError, match="need a Qdrant server or cluster"):
            store.prepare(SPEC, sharding=Sharding(shards=3))
        store.prepare(SPEC, sharding=Sharding())  # the defaults are fine everywhere
    fill(StoreLocation(path=tmp_path / "b"), 3)
    result = run_cli("migrate", "--to-path", tmp_path / "c", "--replicas", "2", "--qdrant-path", tmp_path / "b")
    assert result.returncode == 1 and "need a Qdrant server or cluster" in result.stderr


def test_migrate_cli_and_option_validation(tmp_path):
    fill(StoreLocation(path=tmp_path / "a"), 20)
    result = run_cli("migrate", "--to-path", tmp_path / "b", "--qdrant-path", tmp_path / "a")
    assert result.returncode == 0, result.stderr
    assert "copied 20 points" in result.stdout and "destination holds 20" in result.stdout
    for args, message in [
        (["migrate", "--qdrant-path", tmp_path / "a"], "give the destination"),
        (["migrate", "--to-path", tmp_path / "a", "--qdrant-path", tmp_path / "a"], "same collection"),
        (["migrate", "--to-url", "localhost:6333", "--qdrant-path", tmp_path / "a"], "must start with http"),
        (["migrate", "--to-url", "http://127.0.0.1:9", "--qdrant-path", tmp_path / "a", "--qdrant-timeout", "2"], "cannot reach Qdrant"),
        (["search", "--title", "Film 1", "--grpc", "--qdrant-path", tmp_path / "a"], "--grpc needs a Qdrant server"),
        (["search", "--title", "Film 1", "--qdrant-timeout", "0", "--qdrant-path", tmp_path / "a"], "timeout must be positive"),
    ]:
        result = run_cli(*args)
        assert result.returncode == 1 and "Traceback" not in result.stderr and message in result.stderr, (args, result.stderr)


def test_environment_supplies_connection_options(monkeypatch):
    monkeypatch.setenv("QDRANT_URL", "https://cluster.example:6333")
    monkeypatch.setenv("QDRANT_GRPC", "1")
    monkeypatch.setenv("QDRANT_TIMEOUT", "7.5")
    location = location_from_options(None, None, None)
    assert (location.url, location.prefer_grpc, location.timeout) == ("https://cluster.example:6333", True, 7.5)
    monkeypatch.setenv("QDRANT_TIMEOUT", "soon")
    with pytest.raises(PosterSearchError, match="QDRANT_TIMEOUT must be a number"):
        location_from_options(None, None, None)


# --- retries: transient failures injected around a real qdrant-client store -------------------
# (a local-mode folder, which goes through the same ServerEngine as a server does)


class FlakyClient:
    """The real QdrantClient, except that the next `failures` upserts fail as a network does.

    With `lands=True` the write reaches the store and only the answer is lost (a read timeout):
    the retry then writes the same points a second time.
    """

    def __init__(self, client, failures, error, lands=False):
        self.client, self.failures, self.error, self.lands, self.upserts = client, failures, error, lands, 0

    def upsert(self, *args, **kwargs):
        self.upserts += 1
        if self.failures:
            self.failures -= 1
            if self.lands:
                self.client.upsert(*args, **kwargs)
            raise self.error
        return self.client.upsert(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


READ_TIMEOUT = ResponseHandlingException(httpx.ReadTimeout("timed out"))
UNAVAILABLE = UnexpectedResponse(503, "Service Unavailable", b"", httpx.Headers())
BAD_REQUEST = UnexpectedResponse(400, "Bad Request", b"wrong vector name", httpx.Headers())


def test_transient_and_permanent_errors_are_told_apart():
    assert is_transient(READ_TIMEOUT) and is_transient(UNAVAILABLE) and is_transient(ConnectionResetError())
    assert not is_transient(BAD_REQUEST) and not is_transient(ValueError("bad input"))


@pytest.mark.parametrize(
    "error,lands", [(READ_TIMEOUT, True), (UNAVAILABLE, False), (ResponseHandlingException(httpx.ConnectError("reset")), False)]
)
def test_ingest_retries_transient_failures_without_duplicates(poster_set, tmp_path, random_embedder, error, lands):
    catalog, posters = poster_set(6)
    with PosterStore(local_mode_folder(tmp_path / "store")) as store:
        store.engine.retry_wait = 0  # no backoff sleeps in tests
        store.engine.client = FlakyClient(store.engine.client, failures=2, error=error, lands=lands)
        report = ingest(read_catalog(catalog, posters), posters, store, random_embedder, batch_size=2, progress=False)
        assert store.engine.client.upserts == 3 + 2  # three batches, the first one tried three times
        assert report.ingested == 6 and store.count() == 6
        assert {p.id for p in store.retrieve([point_id(f"{i}.jpg") for i in range(6)])} == {point_id(f"{i}.jpg") for i in range(6)}


def test_persistent_failure_is_a_clear_error_and_keeps_earlier_batches(poster_set, tmp_path, random_embedder):
    catalog, posters = poster_set(6)
    with PosterStore(local_mode_folder(tmp_path / "store")) as store:
        store.engine.retry_wait = 0
        flaky = FlakyClient(store.engine.client, failures=0, error=READ_TIMEOUT)
        store.engine.client = flaky
        films = read_catalog(catalog, posters)
        ingest(films, posters, store, random_embedder, batch_size=2, limit=2, progress=False)
        flaky.failures = 99
        with pytest.raises(PosterSearchError, match="an upsert on local store .* failed 5 times"):
            ingest(films, posters, store, random_embedder, batch_size=2, progress=False)
        assert store.count() == 2
        flaky.error, flaky.failures, flaky.upserts = BAD_REQUEST, 1, 0
        with pytest.raises(UnexpectedResponse):  # not transient: not retried
            ingest(films, posters, store, random_embedder, batch_size=2, progress=False)
        assert flaky.upserts == 1


# --- against a real Qdrant server: run when QDRANT_URL is set (docker compose up -d) ------------

server = pytest.mark.skipif(not os.environ.get("QDRANT_URL"), reason="needs a Qdrant server: set QDRANT_URL (docker compose up -d)")


@server
def test_migrate_to_a_server_and_back(tmp_path):
    name = f"posters_test_{uuid.uuid4().hex[:8]}"
    local, remote = StoreLocation(path=tmp_path / "a"), location_from_options(None, None, None)
    fill(local, 300)
    try:
        with PosterStore(local) as s, PosterStore(remote, name) as t:
            assert migrate(s, t, batch_size=128, progress=False).target_count == 300
            assert t.payload_indexes() >= {"year", "genres", "sha256", "key", "title"}
        with PosterStore(remote, name) as s, PosterStore(StoreLocation(path=tmp_path / "back")) as t:
            migrate(s, t, progress=False)
        assert_same(snapshot(local), snapshot(StoreLocation(path=tmp_path / "back")))
    finally:
        with PosterStore(remote, name) as t:
            t.delete_collection()
