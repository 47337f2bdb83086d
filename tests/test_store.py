"""The store's contract, on every engine (tests/conftest.py `any_location`): schema, embedding guard, clear errors."""

import multiprocessing
import threading
import time

import numpy as np
import pytest

from poster_search.embedding.spec import EmbeddingSpec, resolve_weights, spec_for_weights
from poster_search.errors import PosterSearchError
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation, location_from_options
from poster_search.store.engine import VectorConfig
from poster_search.store.schema import VECTOR_NAME, point_id
from tests.conftest import without_derived

SPEC = EmbeddingSpec(weights="random")


def unit_vectors(n, dim=512, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_collection_records_its_embedding_and_schema(any_location):
    location = any_location
    with PosterStore(location) as store:
        store.prepare(SPEC)
        ids = [point_id(k) for k in ("a", "b")]
        store.upsert(ids, unit_vectors(2), [{"title": "A", "year": 1990}, {"title": "B"}])
        assert store.vectors() == {VECTOR_NAME: 512}
        assert store.metadata()["embedding"] == SPEC.as_dict()
        # cosine distance: a vector and its double are the same direction
        [[hit]] = store.nearest([2 * unit_vectors(2)[0]], 1)
        assert hit.id == ids[0] and hit.score == pytest.approx(1.0, abs=1e-5)
    with PosterStore(location, must_exist=True) as store:  # reopened from disk
        assert store.stored_spec() == SPEC
        assert store.count() == 2
        assert {p.id for p in store.retrieve([point_id("a"), point_id("zzz")])} == {point_id("a")}
        points = {p.payload["title"]: p for p in store.points()}
        assert points["A"].payload["year"] == 1990 and "year" not in points["B"].payload
        assert np.allclose(points["A"].vector, unit_vectors(2)[0], atol=1e-6)


def test_upsert_is_idempotent_and_the_last_write_wins(any_location):
    """The same ids written twice: one point each, holding exactly the second write (vectors and payload)."""
    location = any_location
    with PosterStore(location) as store:
        store.prepare(SPEC)
        ids = [point_id(str(i)) for i in range(5)]
        store.upsert(ids, unit_vectors(5), [{"title": str(i)} for i in range(5)])
        second = unit_vectors(5, seed=1)
        store.upsert(ids, second, [{"title": f"again {i}", "year": 1990 + i} for i in range(5)])
        assert store.count() == 5
        stored = {p.id: p for p in store.points()}
        for i, pid in enumerate(ids):
            assert without_derived(stored[pid].payload) == {"title": f"again {i}", "year": 1990 + i}
            assert np.allclose(stored[pid].vector, second[i], atol=1e-6)


def test_another_embedding_is_refused_and_nothing_is_lost(any_location):
    location = any_location
    with PosterStore(location) as store:
        store.prepare(SPEC)
        store.upsert([point_id("a")], unit_vectors(1), [{"title": "A"}])
        with pytest.raises(PosterSearchError, match=r"another embedding: differs in weights \(stored random, now imagenet\)"):
            store.prepare(EmbeddingSpec(weights="imagenet"))
        with pytest.raises(PosterSearchError, match="holds 512-d vectors, this embedding makes 256-d"):
            store.check_spec(EmbeddingSpec(weights="random", dim=256))
        assert store.count() == 1
        store.prepare(EmbeddingSpec(weights="imagenet"), recreate=True)  # explicit start over
        assert store.count() == 0 and store.stored_spec().weights == "imagenet"


def test_foreign_collections_are_refused(any_location):
    with PosterStore(any_location) as store:
        store.create([VectorConfig("other", 512)], {})
        with pytest.raises(PosterSearchError, match="no 'vgg16' vector"):
            store.prepare(SPEC)
        store.delete_collection()
        store.create([VectorConfig(VECTOR_NAME, 128)], {})
        with pytest.raises(PosterSearchError, match="records no embedding"):
            store.prepare(SPEC)
        store.update_metadata({"embedding": SPEC.as_dict()})
        with pytest.raises(PosterSearchError, match="holds 128-d vectors but records a 512-d embedding"):
            store.prepare(SPEC)


def _hold_store(path, ready, release):
    with PosterStore(StoreLocation(path=path)):
        ready.set()
        release.wait(30)


def test_a_store_locked_by_another_process_is_a_clear_error(location):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_store, args=(location.path, ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(PosterSearchError, match="in use by another process"):
            PosterStore(location)
    finally:
        release.set()
        holder.join(30)
    with PosterStore(location) as store:  # free again once the other process is done
        assert store.count() == 0


def test_missing_store_and_missing_collection(location, tmp_path):
    with pytest.raises(PosterSearchError, match="no store at"):
        PosterStore(location, must_exist=True)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(PosterSearchError, match="is a file"):
        PosterStore(StoreLocation(path=tmp_path / "afile"))
    with PosterStore(location) as store:
        with pytest.raises(PosterSearchError, match="no collection 'posters'"):
            store.stored_spec()


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(PosterSearchError, match="cannot reach Qdrant at http://127.0.0.1:9"):
        PosterStore(StoreLocation(url="http://127.0.0.1:9", timeout=2))


def test_options_win_over_environment(monkeypatch):
    monkeypatch.setenv("QDRANT_URL", "http://env:6333")
    monkeypatch.setenv("QDRANT_API_KEY", "k")
    assert location_from_options(None, None, None).url == "http://env:6333"
    assert location_from_options(None, "http://opt:6333", None).url == "http://opt:6333"
    assert location_from_options(None, None, None).api_key == "k"
    monkeypatch.delenv("QDRANT_URL")
    assert location_from_options("somewhere", None, None).is_local


def test_weights_option_and_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("VGG16_WEIGHTS", raising=False)
    assert resolve_weights(None) == "imagenet"
    assert resolve_weights("random") is None
    with pytest.raises(PosterSearchError, match="weights file not found"):
        resolve_weights(str(tmp_path / "none.h5"))
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"some weights")
    monkeypatch.setenv("VGG16_WEIGHTS", str(weights))
    assert resolve_weights(None) == str(weights)
    assert spec_for_weights(str(weights)).weights.startswith("sha256:")
    assert spec_for_weights(None).weights == "random"
    assert EmbeddingSpec.from_dict({**SPEC.as_dict(), "unknown_future_field": 1}) == SPEC


def run_together(*targets) -> None:
    """Each target in a thread of its own, all at once; back when all are done (at most 2 minutes)."""
    threads = [threading.Thread(target=target) for target in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"


def test_every_write_changes_the_collection_state_and_reads_do_not(any_location):
    """store.state(), what caches of whole-collection views key on, is read without reading a point:
    each kind of write changes it (a token in the collection metadata, plus the count), a read never."""
    with PosterStore(any_location) as store:
        store.prepare(SPEC)
        ids = [point_id(str(i)) for i in range(4)]
        states = [store.state()]

        def changed() -> bool:
            states.append(store.state())
            return states[-1] != states[-2]

        store.upsert(ids, unit_vectors(4), [{"title": str(i), "year": 1990 + i} for i in range(4)])
        assert changed()
        list(store.points()), store.retrieve(ids), store.nearest([unit_vectors(1)[0]], 2), store.facet("year")
        assert not changed()
        store.set_payloads([(ids[0], {"predicted_year": 1991})])
        assert changed()
        store.overwrite_payloads([(ids[1], {"title": "corrected", "year": 1950})])
        assert changed()
        store.set_vectors([ids[2]], VECTOR_NAME, unit_vectors(1, seed=5))
        assert changed()
        store.delete([ids[3]])
        assert changed() and len(set(states)) == 6
        token = store.metadata()["state"]  # in the collection metadata: a user's cache can key on it too
    with PosterStore(any_location, must_exist=True) as store:  # kept across opens
        assert store.metadata()["state"] == token and store.state() == states[-1]


def test_one_store_is_safe_to_share_between_threads(location):
    """Searches, reads and writes from several threads at once on one embedded store: the engine
    takes one call at a time, so each thread gets whole answers and nothing is lost."""
    with PosterStore(location) as store:
        store.prepare(SPEC)
        vectors = unit_vectors(400, seed=3)
        store.upsert([point_id(str(i)) for i in range(200)], vectors[:200], [{"title": str(i)} for i in range(200)])
        errors: list[BaseException] = []

        def searching() -> None:
            try:
                for i in range(30):
                    [[hit]] = store.nearest([vectors[i]], 1)
                    assert hit.id == point_id(str(i))
                    assert len(list(store.points(with_vectors=False, batch=50))) >= 200
            except BaseException as e:
                errors.append(e)

        def writing() -> None:
            try:
                for start in range(200, 400, 20):
                    store.upsert([point_id(str(i)) for i in range(start, start + 20)], vectors[start : start + 20], [{"title": "w"}] * 20)
            except BaseException as e:
                errors.append(e)

        run_together(searching, searching, searching, writing)
        assert not errors, errors
        assert store.count() == 400 and len({p.id for p in store.points(with_vectors=False)}) == 400


def test_the_store_takes_calls_in_the_order_they_come():
    """TurnLock, which serialises an embedded store's calls: a thread asking while another holds it
    goes next, even when the holder asks again at once (as a long read does, call by call); and a
    thread may take it again inside its own call."""
    from poster_search.store.engine import TurnLock

    lock, order, asked = TurnLock(), [], threading.Event()

    def reader() -> None:
        for call in range(20):
            with lock:
                with lock:  # reentrant
                    order.append(f"read {call}")
                    if call == 3:
                        asked.set()
                    time.sleep(0.01)

    arrived = []

    def searcher() -> None:
        asked.wait(10)
        time.sleep(0.003)  # inside the reader's fourth call, or the one after on a busy machine
        arrived.append(len(order))
        with lock:
            order.append("search")

    run_together(reader, searcher)
    assert order.index("search") == arrived[0] < 20 and len(order) == 21  # straight after the call it arrived in


def test_long_work_gives_way_to_a_search_call_by_call():
    """Calls made giving_way() (a poster map's reading, an overview) wait while another thread is
    calling: a search's calls, a few in a row, run one after another, not each behind one of the
    long work's; and under nonstop calls the long work still moves on."""
    from poster_search.store.engine import TurnLock, giving_way

    lock, order, started = TurnLock(), [], threading.Event()

    def long_work() -> None:
        with giving_way():
            for _ in range(30):
                with lock:
                    order.append("long")
                    started.set()
                    time.sleep(0.01)

    def search() -> None:
        started.wait(10)
        time.sleep(0.025)
        for _ in range(5):  # a search's calls, one after another
            with lock:
                order.append("search")

    run_together(long_work, search)
    first = order.index("search")
    assert order[first : first + 5] == ["search"] * 5 and order.count("long") == 30
