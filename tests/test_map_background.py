"""The poster map computed in the background (issue 38): GET /api/map answers 202 with its progress,
then 200 with the map; searches answer while it is computed, its reading of the store included
(issue 36: the store takes one call at a time, and no lock is held around the whole reading);
one computation per collection and vector; errors keep their kinds; a collection changed
meanwhile is mapped again; large collections are sampled and placed.

Real Edge stores in temporary folders, generated posters, the small seeded embedder
(tests/small_embedder.py). A computation is held inside t-SNE by a gate (an Event waited on in
its progress report), so "while it is computed" is a state the test controls, not a race.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from poster_search.search import poster_map as poster_map_module
from poster_search.store.schema import point_id
from tests.conftest import generated_catalog
from tests.small_embedder import SmallEmbedder

N = 40


def settled(client, timeout: float = 120, **params):
    """GET /api/map until it answers other than 202 (being computed), as the page polls it."""
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get("/api/map", params=params)
        if answer.status_code != 202 or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def ready_map(client, timeout: float = 120, **params) -> dict:
    """The map, once computed (200)."""
    answer = settled(client, timeout, **params)
    assert answer.status_code == 200, answer.text
    return answer.json()


class Gate:
    """Holds a map's computation inside t-SNE (at its first progress report) until opened; counts layouts."""

    def __init__(self, monkeypatch) -> None:
        self.inside, self.open, self.layouts = threading.Event(), threading.Event(), 0
        real = poster_map_module.layout

        def held(vectors, seed=0, report=poster_map_module._quiet):
            self.layouts += 1

            def waiting(stage, done, total):
                report(stage, done, total)
                if stage == "t-SNE":
                    self.inside.set()
                    assert self.open.wait(60), "the gate was never opened"

            return real(vectors, seed, waiting)

        monkeypatch.setattr(poster_map_module, "layout", held)


@pytest.fixture
def site(tmp_path, monkeypatch):
    """N generated posters (ingested 30 first: `more()` adds the other 10), a 4-poster collection
    'few', the app over them; a map cache of its own."""
    from fastapi.testclient import TestClient

    from poster_search import Posters
    from poster_search.web.app import create_app

    monkeypatch.setenv("POSTER_SEARCH_CACHE", str(tmp_path / "cache"))
    catalog, posters_dir = generated_catalog(tmp_path, N)
    with Posters(tmp_path / "store", embedder=SmallEmbedder()) as posters:
        posters.ingest(posters_dir, catalog, limit=30, workers=0, progress=False)
        posters.using("few").ingest(posters_dir, catalog, limit=4, workers=0, progress=False)
        gate = Gate(monkeypatch)
        try:
            with TestClient(create_app(posters), raise_server_exceptions=False, base_url="http://localhost") as client:
                client.posters, client.gate = posters, gate
                client.more = lambda: posters.ingest(posters_dir, catalog, workers=0, progress=False)
                yield client
        finally:
            gate.open.set()  # never leave a computation waiting: it holds the one-map-at-a-time lock


def map_threads() -> int:
    return sum(t.name.startswith("poster map") and t.is_alive() for t in threading.enumerate())


def test_the_map_is_computed_in_the_background_and_searches_answer_meanwhile(site):
    first = site.get("/api/map")
    assert first.status_code == 202, first.text
    assert site.gate.inside.wait(30)
    progress = site.get("/api/map").json()
    assert progress["status"] == "computing" and progress["collection"] == "posters" and progress["vector"] == "vgg16"
    assert (progress["stage"], progress["total"]) == ("t-SNE", 750) and 0 < progress["done"] < 750 and progress["seconds"] >= 0
    assert site.get("/api/map/0").status_code == 202  # a hover before the map: how far it is, not an error
    # the computation holds no lock now: searches and other reads of the store answer at once
    started = time.perf_counter()
    found = site.get(f"/api/search/id/{point_id('3.jpg')}", params={"k": 5})
    assert found.status_code == 200 and len(found.json()["results"]) == 5
    assert site.get("/api/collections/posters").json()["count"] == 30
    assert time.perf_counter() - started < 10
    assert map_threads() == 1 and site.get("/api/map").status_code == 202 and map_threads() == 1  # asking again joins it
    site.gate.open.set()
    data = ready_map(site)
    assert data["status"] == "ready" and data["n"] == data["total"] == 30 and data["computed_seconds"] > 0
    assert sorted(data["ids"]) == sorted(point_id(f"{i}.jpg") for i in range(30))
    assert len(data["x"]) == len(data["y"]) == len(data["year"]) == 30 and all(0 <= v <= 10_000 for v in data["x"] + data["y"])
    assert [d["decade"] for d in data["decades"]] == sorted(d["decade"] for d in data["decades"])
    assert site.gate.layouts == 1
    again = site.get("/api/map")  # kept: at once, the same map
    assert again.status_code == 200 and again.json()["x"] == data["x"] and site.gate.layouts == 1
    hover = site.get("/api/map/0").json()
    assert hover["id"] == data["ids"][0] and hover["poster_url"].endswith(data["ids"][0])


def test_searches_answer_while_the_map_reads_the_store(site, monkeypatch):
    """Held between two batches of the map's reading (8 posters a batch here), a search and the
    collection's figures answer at once: nothing the map does holds the store between calls."""
    from poster_search.search import map_jobs

    monkeypatch.setattr(poster_map_module, "READ_BATCH", 8)
    inside, release, report = threading.Event(), threading.Event(), map_jobs.MapJob.report

    def held(job, stage, done, total):
        report(job, stage, done, total)
        if stage == "reading" and done == 8:
            inside.set()
            assert release.wait(60), "the reading was never let go on"

    monkeypatch.setattr(map_jobs.MapJob, "report", held)
    site.gate.open.set()
    try:
        assert site.get("/api/map").status_code == 202 and inside.wait(30)
        answers: list = []
        asking = threading.Thread(
            target=lambda: answers.extend(
                [site.get(f"/api/search/id/{point_id('3.jpg')}", params={"k": 5}), site.get("/api/collections/posters")]
            )
        )
        asking.start()
        asking.join(20)
        assert not asking.is_alive(), "a search waited for the map's reading"
        assert [a.status_code for a in answers] == [200, 200] and len(answers[0].json()["results"]) == 5
        assert site.get("/api/map").json()["stage"] == "reading"
    finally:
        release.set()
    assert ready_map(site)["n"] == 30


def test_the_library_waits_for_the_same_computation(site):
    assert isinstance(site.posters.map_status(), dict)  # started, not waited for
    assert site.gate.inside.wait(30)
    waited = []
    waiting = threading.Thread(target=lambda: waited.append(site.posters.poster_map()))
    waiting.start()
    time.sleep(0.3)
    assert waiting.is_alive() and map_threads() == 1  # the synchronous call joined the running computation
    site.gate.open.set()
    waiting.join(60)
    assert len(waited[0].ids) == 30 and site.gate.layouts == 1
    assert site.posters.map_status() is waited[0]


def test_a_collection_changed_while_it_is_mapped_is_mapped_again(site):
    assert site.get("/api/map").status_code == 202 and site.gate.inside.wait(30)
    site.more()  # ingest writes while t-SNE runs: the lock is free
    site.gate.open.set()
    data = ready_map(site)
    assert data["n"] == data["total"] == N and site.gate.layouts == 2


def test_errors_keep_their_kind_and_a_later_ask_tries_again(site):
    site.gate.open.set()
    for _ in range(2):  # the error is said, then asked again: computed again, said again
        answer = settled(site, collection="few")  # at once, or on a slow machine after a 202
        assert answer.status_code == 400 and answer.json()["detail"] == (
            "the poster map needs at least 10 posters; collection 'few' has 4"
        ), answer.text
    assert site.get("/api/map", params={"vector": "vgg16_style"}).status_code == 404  # no such vector in the collection
    assert site.get("/api/map", params={"collection": "nowhere"}).status_code == 404
    assert map_threads() == 0


def test_a_large_collection_is_sampled_and_placed_near_its_likes(site, monkeypatch):
    site.gate.open.set()
    monkeypatch.setattr(poster_map_module, "MAX_POINTS", 25)
    data = ready_map(site)
    assert (data["n"], data["total"]) == (25, 30) and len(set(data["ids"])) == 25
    assert set(data["ids"]) <= {point_id(f"{i}.jpg") for i in range(30)}
    # t-SNE on a sample, the rest placed among their most similar: clusters stay together
    monkeypatch.setattr(poster_map_module, "LAYOUT_SAMPLE", 150)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 64))
    labels = np.repeat(np.arange(6), 100)
    vectors = centres[labels] + 0.15 * rng.normal(size=(600, 64))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    stages = []
    xy = poster_map_module.place(vectors.astype(np.float32), report=lambda stage, done, total: stages.append(stage))
    assert xy.shape == (600, 2) and (0 <= xy).all() and (xy <= 1).all() and "placing" in stages
    distances = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert (labels[distances.argmin(axis=1)] == labels).mean() > 0.95
