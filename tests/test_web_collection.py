"""The collection before any search (GET /api/collections/{name}/overview) and predicted years in
the API's answers, with FastAPI's test client over a small real store of generated posters.

The store holds 20 posters: 16 with a catalog year in the 1940s, 1950s and 1960s, and 4 whose
year was taken out of the payload and a predicted year written in, as `predict-year --stored`
writes it (one of them malformed, as anyone writing payloads straight into Qdrant could make it).
"""

from __future__ import annotations

import numpy as np
import pytest

from poster_search.ingest.catalog import read_catalog
from poster_search.ingest.pipeline import ingest
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.schema import point_id
from tests.conftest import make_poster, write_csv

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer

YEARS = [1941, 1943, 1945, 1947, 1949, 1950, 1952, 1954, 1956, 1958, 1959, 1961, 1963, 1965, 1967, 1969]
UNDATED = {"u0.jpg": 1962, "u1.jpg": 1975, "u2.jpg": 1948}  # file -> the predicted year written into its payload
MALFORMED = "u3.jpg"  # predicted_year "1962" (a string): not shown as a year


@pytest.fixture(scope="module")
def embedder():
    from poster_search.embedding.onnx_embedder import OnnxEmbedder

    made = OnnxEmbedder(None)  # seeded random VGG16 weights on ONNX Runtime: real, and fast to build
    made.load()
    return made


@pytest.fixture(scope="module")
def client(tmp_path_factory, embedder):
    from fastapi.testclient import TestClient

    from poster_search import Posters
    from poster_search.web.app import create_app

    tmp = tmp_path_factory.mktemp("web_collection")
    rows = []
    for i, year in enumerate(YEARS):
        make_poster(tmp / "posters" / f"{i}.jpg", seed=700 + i)
        rows.append([f"{i}.jpg", f"Film {i}", year])
    for j, name in enumerate([*UNDATED, MALFORMED]):
        make_poster(tmp / "posters" / name, seed=800 + j)
        rows.append([name, f"Undated {j}", 2000])  # the year is taken out below
    catalog = write_csv(tmp / "movies.csv", ["filename", "title", "release_year"], rows)
    location = StoreLocation(path=tmp / "store")
    with PosterStore(location) as store:
        ingest(read_catalog(catalog, tmp / "posters"), tmp / "posters", store, embedder, progress=False)
        undated = []
        for name in [*UNDATED, MALFORMED]:
            [point] = store.retrieve([point_id(name)])
            payload = {k: v for k, v in point.payload.items() if k != "year"}
            if name == MALFORMED:
                payload.update(predicted_year="1962", predicted_low=1950, predicted_high=1970, predicted_by="year-model:abc")
            else:
                year = UNDATED[name]
                payload.update(predicted_year=year, predicted_low=year - 8, predicted_high=year + 9, predicted_by="year-model:abc")
            undated.append((point.id, payload))
        store.overwrite_payloads(undated)
    with Posters(location, weights="random", embedder=embedder) as posters:
        app = create_app(posters)
        with TestClient(app, raise_server_exceptions=False, base_url="http://localhost") as test_client:
            test_client.posters = posters
            test_client.store = posters.store
            yield test_client


def overview(client, **params):
    response = client.get(f"/api/collections/{client.store.collection}/overview", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_overview_shows_each_decade_by_its_most_typical_posters_then_the_undated(client):
    data = overview(client)
    assert data["count"] == len(YEARS) + len(UNDATED) + 1 and data["undated"] == len(UNDATED) + 1
    assert [g["label"] for g in data["groups"]] == ["1940s", "1950s", "1960s", "undated"]
    assert [g["count"] for g in data["groups"]] == [5, 6, 5, 4]
    # the most typical first: the nearest to the decade's centre, computed here from the stored vectors
    vectors = {p.id: p.vector for p in client.store.points(with_vectors=True, fields=["year"])}
    for group in data["groups"][:3]:
        members = [point_id(f"{i}.jpg") for i, y in enumerate(YEARS) if y // 10 * 10 == group["decade"]]
        unit = np.stack([vectors[m] / np.linalg.norm(vectors[m]) for m in members])
        centre = unit.mean(axis=0) / np.linalg.norm(unit.mean(axis=0))
        expected = [members[i] for i in np.argsort(-(unit @ centre))]
        assert [p["id"] for p in group["posters"]] == expected  # every member shown (a decade of at most 8), in that order
        assert all(p["year"] // 10 * 10 == group["decade"] and p["predicted_year"] is None for p in group["posters"])
        assert all(p["poster_url"] == f"/api/posters/posters/{p['id']}" for p in group["posters"])
    # a catalog year alone places a poster in a decade; the undated keep their predicted years apart
    undated = data["groups"][-1]
    assert undated["decade"] is None
    shown = {p["title"]: p for p in undated["posters"]}
    assert sorted(shown) == ["Undated 0", "Undated 1", "Undated 2", "Undated 3"]
    assert all(p["year"] is None for p in shown.values())
    assert shown["Undated 0"]["predicted_year"] == 1962 and shown["Undated 0"]["predicted_low"] == 1954
    assert shown["Undated 0"]["predicted_high"] == 1971 and shown["Undated 0"]["predicted_by"] == "year-model:abc"
    assert shown["Undated 3"]["predicted_year"] is None and shown["Undated 3"]["predicted_by"] is None  # "1962" is not a year


def test_the_overview_is_computed_once_per_collection_state_and_reads_payloads_fresh(client):
    first = overview(client)
    assert overview(client)["computed_seconds"] == first["computed_seconds"]  # the kept answer, not a new computation
    [target] = [p for p in first["groups"][-1]["posters"] if p["title"] == "Undated 1"]
    [point] = client.store.retrieve([target["id"]])
    client.store.overwrite_payloads([(point.id, {**point.payload, "predicted_year": 1977, "predicted_low": 1970, "predicted_high": 1985})])
    try:
        again = overview(client)  # the collection changed (its state token): chosen again, and read fresh
        [changed] = [p for p in again["groups"][-1]["posters"] if p["id"] == target["id"]]
        assert (changed["predicted_year"], changed["predicted_low"], changed["predicted_high"]) == (1977, 1970, 1985)
    finally:
        client.store.overwrite_payloads([(point.id, point.payload)])


def test_the_overview_of_an_unknown_collection_or_vector_is_a_one_line_error(client):
    response = client.get("/api/collections/nope/overview")
    assert response.status_code == 404 and "no poster collection 'nope'" in response.json()["detail"]
    response = client.get(f"/api/collections/{client.store.collection}/overview", params={"vector": "vgg16_style"})
    assert response.status_code == 404 and "has no vector 'vgg16_style'" in response.json()["detail"]  # a named thing that is not there
    response = client.get(f"/api/collections/{client.store.collection}/overview", params={"vector": "pixels"})
    assert response.status_code == 422 and "\n" not in response.json()["detail"]


def test_searches_show_the_query_and_carry_predicted_years_apart_from_the_catalog_year(client):
    undated = point_id("u0.jpg")
    data = client.get(f"/api/search/id/{undated}", params={"k": 19}).json()
    query = data["query"]
    assert query["kind"] == "id" and query["id"] == undated and query["title"] == "Undated 0"
    assert query["year"] is None and query["predicted_year"] == 1962 and query["poster_url"].endswith(undated)
    results = {r["title"]: r for r in data["results"]}
    assert len(results) == 19 and "Undated 0" not in results  # the query itself is left out
    assert results["Undated 1"]["year"] is None and results["Undated 1"]["predicted_year"] == 1975
    assert results["Film 0"]["year"] == 1941 and results["Film 0"]["predicted_year"] is None
    assert results["Undated 3"]["predicted_year"] is None  # malformed: no year rather than a wrong one

    titled = client.get("/api/search/title", params={"title": "Film 3", "k": 3}).json()
    assert titled["query"]["title"] == "Film 3" and titled["query"]["year"] == 1947 and titled["query"]["predicted_year"] is None
    assert titled["query"]["poster_url"] == f"/api/posters/posters/{point_id('3.jpg')}"

    refined = client.post("/api/recommend", json={"positive": [undated], "k": 19}).json()
    assert {r["title"]: r["predicted_year"] for r in refined["results"]}["Undated 2"] == 1948


def test_the_year_filters_read_catalog_years_only(client):
    """A predicted year is not a catalog year: a year filter leaves the undated out, predicted or not."""
    data = client.get(f"/api/search/id/{point_id('0.jpg')}", params={"k": 50, "year_min": 1900}).json()
    assert len(data["results"]) == len(YEARS) - 1
    assert all(r["year"] is not None for r in data["results"])


def test_a_decade_shows_only_its_most_typical_and_the_undated_are_picked_to_differ(client):
    from poster_search.search.landing import start_groups

    groups = start_groups(client.store, per_decade=2, undated_shown=2)
    full = {g["label"]: [p["id"] for p in g["posters"]] for g in overview(client)["groups"]}
    for group in groups[:3]:
        assert group.ids == full[group.label][:2] and group.similarity[0] >= group.similarity[1]
    undated = groups[-1]
    assert undated.label == "undated" and undated.count == 4 and len(undated.ids) == 2
    # the first is the most typical undated poster, the second the one least like it
    vectors = {p.id: p.vector / np.linalg.norm(p.vector) for p in client.store.retrieve(full["undated"], with_vectors=True)}
    centre = np.mean(list(vectors.values()), axis=0)
    assert undated.ids[0] == max(vectors, key=lambda i: float(vectors[i] @ centre))
    assert undated.ids[1] == min((i for i in vectors if i != undated.ids[0]), key=lambda i: float(vectors[i] @ vectors[undated.ids[0]]))


def test_a_map_hover_carries_the_predicted_year_too(client):
    from tests.test_map_background import ready_map

    n = ready_map(client)["n"]
    hovers = {p["title"]: p for p in (client.get(f"/api/map/{i}").json() for i in range(n))}
    assert len(hovers) == n == len(YEARS) + len(UNDATED) + 1
    assert hovers["Undated 1"]["year"] is None and hovers["Undated 1"]["predicted_year"] == 1975
    assert hovers["Undated 1"]["predicted_low"] == 1967 and hovers["Undated 1"]["predicted_high"] == 1984
    assert hovers["Film 2"]["year"] == 1945 and hovers["Film 2"]["predicted_year"] is None
