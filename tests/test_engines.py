"""Congruence: the same data and the same questions on every engine give the same answers.

Like qdrant-client's own congruence tests (local mode against the server): Qdrant Edge (the
embedded default) and qdrant-client (here a local-mode folder; a real server too when QDRANT_URL
is set) are filled identically, asked identically, and compared with each other and with numpy.
"""

import numpy as np
import pytest

from poster_search.embedding.spec import EmbeddingSpec
from poster_search.errors import PosterSearchError
from poster_search.search.neighbours import Filters, PosterSearch
from poster_search.search.titles import find_film
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.engine import PointFilter
from poster_search.store.schema import STYLE_VECTOR_NAME, point_id
from poster_search.store.sort_keys import title_order
from tests.conftest import local_mode_folder, run_cli, without_derived

N = 240
SPEC = EmbeddingSpec(weights="random")
STYLE = EmbeddingSpec(weights="random", layer="style", pooling="style", dim=64)
TITLES = ["Gone with the Wind", "The Wild North", "Equinox", "Fletch Lives", "Amélie", "Wind River"]


def dataset():
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(N, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    style = rng.normal(size=(N, 64)).astype(np.float32)
    style /= np.linalg.norm(style, axis=1, keepdims=True)
    payloads = []
    for i in range(N):
        payload = {"key": f"{i}.jpg", "title": f"{TITLES[i % len(TITLES)]} {i}", "file": f"{i}.jpg", "sha256": f"h{i % 200}"}
        if i % 10:
            payload["year"] = 1930 + i % 90
        payload["genres"] = ["Drama"] if i % 3 == 0 else ["Comedy", "Romance"]
        payloads.append(payload)
    return [point_id(f"{i}.jpg") for i in range(N)], vectors, style, payloads


def fill(location):
    ids, vectors, style, payloads = dataset()
    with PosterStore(location) as store:
        store.prepare(SPEC, style_spec=STYLE)
        store.upsert(ids[:200], vectors[:200], payloads[:200], style[:200])
        store.upsert(ids[200:], vectors[200:], payloads[200:])  # the last 40 lack the style vector
    return location


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    return {"edge": fill(StoreLocation(path=root / "edge")), "local-mode": fill(local_mode_folder(root / "local"))}


def ask_everything(location) -> dict:
    ids, vectors, style, payloads = dataset()
    with PosterStore(location, must_exist=True) as store:
        filters = [
            PointFilter(),
            PointFilter(year_min=1950, year_max=1969),
            PointFilter(genre="Romance"),
            PointFilter(year_min=2000, genre="Drama", exclude_ids=(ids[0], ids[3])),
            PointFilter(exclude_sha256="h5"),
        ]
        answers = {"count": store.count(), "collections": store.collections()}
        for n, f in enumerate(filters):
            hits = store.nearest(vectors[:5], 7, f, exact=True)
            answers[f"nearest {n}"] = [[h.id for h in found] for found in hits]
            answers[f"scores {n}"] = np.round([[h.score for h in found] for found in hits], 4).tolist()
            answers[f"count {n}"] = store.count(f)
        # the store leaves a file's copies out of a graph search itself (PosterStore.nearest): the same answer as Qdrant's must_not
        queries, unlike_h5 = [vectors[5], vectors[205], vectors[0]], PointFilter(exclude_sha256="h5", year_min=1950)
        answers["copies left out"] = [[h.id for h in found] for found in store.nearest(queries, 7, unlike_h5)]
        answers["copies left out, exact"] = [[h.id for h in found] for found in store.nearest(queries, 7, unlike_h5, exact=True)]
        answers["copies"] = store.count(PointFilter(sha256="h5"))
        answers["style"] = [h.id for h in store.nearest([style[1]], 5, vector_name=STYLE_VECTOR_NAME, exact=True)[0]]
        answers["recommend"] = [
            h.id for h in store.recommend([vectors[1], vectors[2]], [vectors[3]], 6, PointFilter(exclude_ids=tuple(ids[1:4])))
        ]
        answers["words"] = sorted(p.id for p in store.with_title_words("wind"))
        answers["words2"] = sorted(p.id for p in store.with_title_words("GONE wind 132"))
        answers["without style"] = sorted(store.ids_without(STYLE_VECTOR_NAME))
        # browsing's means: an ordered scroll (on `added`, unique), ranges, absent fields, facet counts
        newest = store.scroll_ordered(PointFilter(year_min=1990, missing=("predicted_year",)), "added", True, None, 9, ["added"])
        answers["ordered"] = [r.id for r in newest]
        answers["ordered from"] = [r.id for r in store.scroll_ordered(PointFilter(), "added", False, newest[4].payload["added"], 3, [])]
        answers["undated"] = store.count(PointFilter(missing=("year",)))
        answers["facets"] = sorted(store.facet("genres"))
        answers["retrieve"] = [(p.id, without_derived(p.payload)) for p in store.retrieve([ids[5], point_id("nope"), "not-a-uuid"])]
        answers["all"] = sorted(p.id for p in store.points(with_vectors=False, fields=["key"], batch=64))
    return answers


def test_engines_give_the_same_answers_as_each_other_and_as_numpy(engines):
    edge, local = ask_everything(engines["edge"]), ask_everything(engines["local-mode"])
    assert edge == local
    ids, vectors, _, payloads = dataset()
    # exact nearest neighbours with a filter, by numpy: Drama from 2000 on, not points 0 and 3
    keep = np.array([p.get("year", 0) >= 2000 and p["genres"] == ["Drama"] for p in payloads])
    keep[[0, 3]] = False
    order = np.argsort(-(vectors[keep] @ vectors[0]))[:7]
    assert edge["nearest 3"][0] == [np.array(ids)[keep][i] for i in order]
    assert edge["count 1"] == sum(1950 <= p.get("year", 0) <= 1969 for p in payloads)
    assert edge["count 4"] == N - sum(p["sha256"] == "h5" for p in payloads)
    assert edge["copies"] == 2 and edge["copies left out"] == edge["copies left out, exact"]
    assert all(len(found) == 7 and not {ids[5], ids[205]} & set(found) for found in edge["copies left out"])
    assert len(edge["words"]) == 2 * N // len(TITLES)  # "Gone with the Wind" and "Wind River"
    assert edge["words2"] == [ids[132]]
    assert edge["without style"] == sorted(ids[200:])
    assert edge["retrieve"] == [(ids[5], payloads[5])]
    assert edge["all"] == sorted(ids)


def test_payload_overwrite_and_delete_agree(tmp_path):
    results = []
    for location in (fill(StoreLocation(path=tmp_path / "edge")), fill(local_mode_folder(tmp_path / "local"))):
        ids, vectors, _, _ = dataset()
        with PosterStore(location) as store:
            store.overwrite_payloads([(ids[0], {"key": "0.jpg", "title": "Corrected", "year": 1999})])
            store.delete([ids[1], ids[2]])
            [point] = store.retrieve([ids[0]], with_vectors=True)
            assert without_derived(point.payload) == {"key": "0.jpg", "title": "Corrected", "year": 1999}
            assert point.poster.title_order == title_order("Corrected")  # the sort key follows the title
            assert np.allclose(point.vector, vectors[0], atol=1e-6)  # the vector stays
            results.append((store.count(), [h.id for h in store.nearest([vectors[1]], 3, exact=True)[0]]))
    assert results[0] == results[1] and results[0][0] == N - 2


def test_search_recommend_and_titles_through_the_library(engines):
    ids, vectors, style, payloads = dataset()
    with PosterStore(engines["edge"], must_exist=True) as store:
        search = PosterSearch(store)
        film = find_film(store, title="gone with the wind 6")  # case-insensitive, by the full-text index
        assert film.id == ids[6]
        near = search.by_point(film, k=5, filters=Filters(year_min=1940))
        assert len(near) == 5 and ids[6] not in [n.id for n in near] and all(n.poster.year >= 1940 for n in near)
        by_style = search.by_point(film, k=3, vector_name=STYLE_VECTOR_NAME)
        assert [n.id for n in by_style] == [
            h.id for h in store.nearest([style[6]], 4, PointFilter(exclude_ids=(ids[6],)), STYLE_VECTOR_NAME, exact=True)[0]
        ][:3]
        liked = search.recommend([ids[1], ids[2]], [ids[3]], k=4)
        assert len(liked) == 4 and not {ids[1], ids[2], ids[3]} & {n.id for n in liked}
        with pytest.raises(PosterSearchError, match="no film with id"):
            search.recommend([point_id("missing")], k=3)
        with pytest.raises(PosterSearchError, match="--year-min 1990 is after --year-max 1980"):
            search.by_point(film, k=3, filters=Filters(year_min=1990, year_max=1980))
        with pytest.raises(PosterSearchError, match="has no 'vgg16_style' vector yet"):
            search.by_point(store.retrieve([ids[230]])[0], k=3, vector_name=STYLE_VECTOR_NAME)


def test_payload_indexes_are_made_on_every_open(tmp_path):
    location = fill(StoreLocation(path=tmp_path / "edge"))
    with PosterStore(location) as store:
        assert store.payload_indexes() == {"year", "genres", "sha256", "key", "title", "title_order", "added", "predicted_year"}


def test_a_store_made_by_an_earlier_version_keeps_working_and_converts(tmp_path):
    legacy = fill(local_mode_folder(tmp_path / "old"))
    before = ask_everything(legacy)
    searched = run_cli("search", "--title", "Equinox 2", "-k", "2", "--qdrant-path", legacy.path)
    assert searched.returncode == 0 and "earlier version" in searched.stderr and "migrate" in searched.stderr
    result = run_cli("migrate", "--qdrant-path", legacy.path, "--to-path", tmp_path / "new")
    assert result.returncode == 0, result.stderr
    after = ask_everything(StoreLocation(path=tmp_path / "new"))
    assert after == before
    with PosterStore(StoreLocation(path=tmp_path / "new")) as store:
        assert type(store.engine).__name__ == "EdgeEngine" and store.metadata()["embedding"] == SPEC.as_dict()


@pytest.mark.parametrize("name", ["", "a/b", "..", ".hidden", "x" * 300])
def test_collection_names_that_cannot_be_a_folder_are_refused(tmp_path, name):
    with pytest.raises(PosterSearchError, match="invalid collection name"):
        PosterStore(StoreLocation(path=tmp_path / "edge"), name)
    assert not (tmp_path / "edge").exists()  # refused before anything is created
