"""The web API with FastAPI's test client over a small real store: every endpoint, every bad input.

The store holds 24 generated posters (with genres, the style vector, and one point whose recorded
file escapes the poster folder), a second collection, and a small year model trained on it.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from poster_search.ingest.catalog import read_catalog
from poster_search.ingest.pipeline import ingest
from poster_search.search.neighbours import PosterSearch
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.schema import point_id
from tests.conftest import make_poster, run_cli, write_csv

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer

GENRES = ["Drama", "Comedy|Drama", "Horror", "Comedy", "Western", "Horror|Comedy"]
N = 24
ESCAPING = point_id("escaping")  # a point whose payload names a file outside the poster folder
DISGUISED = point_id("disguised")  # a point whose poster is a PNG named .html
STORED = N + 2


@pytest.fixture(scope="session")
def style_embedder():
    """The seeded random VGG16 with the style vector too, on ONNX Runtime, as the server runs it
    (the same vectors as random_embedder: tests/test_onnx.py)."""
    from poster_search.embedding.onnx_embedder import OnnxEmbedder

    embedder = OnnxEmbedder(None, style=True)
    embedder.load()
    return embedder


@pytest.fixture(scope="module")
def web_store(tmp_path_factory, style_embedder):
    tmp = tmp_path_factory.mktemp("web")
    rows = []
    for i in range(N):
        make_poster(tmp / "posters" / f"{i}.jpg", seed=300 + i)
        rows.append([f"{i}.jpg", "Twin Title" if i in (0, 9) else f"Film {i}", 1940 + 3 * i, GENRES[i % len(GENRES)]])
    catalog = write_csv(tmp / "movies.csv", ["filename", "title", "release_year", "genre"], rows)
    (tmp / "secret.txt").write_text("not a poster")
    location = StoreLocation(path=tmp / "store")
    with PosterStore(location) as store:
        ingest(read_catalog(catalog, tmp / "posters"), tmp / "posters", store, style_embedder, progress=False)
        # the escaping point has real vectors: it is found by searches like any other point
        base, style = style_embedder.embed_both(np.zeros((1, 224, 224, 3), np.float32) + 127)
        store.upsert(
            [ESCAPING], base, [{"key": "escaping", "title": "Escaping", "year": 2001, "file": "../secret.txt", "sha256": "x"}], style
        )
        Image.open(tmp / "posters" / "5.jpg").save(tmp / "posters" / "disguised.html", "PNG")
        store.upsert(
            [DISGUISED], base, [{"key": "disguised", "title": "Disguised", "year": 2002, "file": "disguised.html", "sha256": "y"}], style
        )
        second = store.other_collection("second")
        for i in range(4):
            make_poster(tmp / "second" / f"s{i}.jpg", seed=900 + i)
        second_catalog = write_csv(
            tmp / "second.csv", ["filename", "title", "release_year"], [[f"s{i}.jpg", f"Second {i}", 2000 + i] for i in range(4)]
        )
        ingest(read_catalog(second_catalog, tmp / "second"), tmp / "second", second, style_embedder, progress=False)
    # a small year model, made the way users make one
    trained = run_cli(
        "train-year",
        "--members",
        "1",
        "--epochs",
        "5",
        "--knn-k",
        "3",
        "--test-size",
        "0.4",
        "--qdrant-path",
        location.path,
        "--model-dir",
        tmp / "model",
    )
    assert trained.returncode == 0, trained.stderr
    return tmp, location


@pytest.fixture(scope="module")
def client(web_store, style_embedder):
    from fastapi.testclient import TestClient

    from poster_search import Posters
    from poster_search.web.app import create_app

    tmp, location = web_store
    with Posters(location, weights="random", model_dir=tmp / "model", embedder=style_embedder) as posters:
        app = create_app(posters, era_sample=20)
        with TestClient(app, raise_server_exceptions=False, base_url="http://localhost") as test_client:
            test_client.tmp = tmp
            test_client.posters = posters
            test_client.store = posters.store
            yield test_client


def poster_bytes(client, i: int) -> bytes:
    return (client.tmp / "posters" / f"{i}.jpg").read_bytes()


def upload(client, data: bytes, name: str = "query.jpg", path: str = "/api/search/image", **params):
    return client.post(path, params=params, files={"file": (name, data, "image/jpeg")})


def assert_one_line_error(response, status: int, *fragments: str):
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail, detail
    for fragment in fragments:
        assert fragment in detail, detail


# --- the page -----------------------------------------------------------------------------


def test_page_and_its_static_files_and_the_openapi_document(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="/static/app.js"' in page.text and 'id="drop"' in page.text
    for asset, kind in [("/static/app.js", "javascript"), ("/static/style.css", "text/css")]:
        response = client.get(asset)
        assert response.status_code == 200 and kind in response.headers["content-type"] and len(response.content) > 500
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/collections",
        "/api/collections/{name}",
        "/api/search/image",
        "/api/search/id/{point_id}",
        "/api/search/title",
        "/api/recommend",
        "/api/predict-year",
        "/api/era",
        "/api/posters/{collection}/{point_id}",
    } <= set(paths)
    # the page calls nothing outside the API
    script = client.get("/static/app.js").text
    assert "http://" not in script.replace("http://www.w3.org/2000/svg", "") and "https://" not in script


# --- collections --------------------------------------------------------------------------


def test_collections_list_counts_vectors_genres_and_years(client):
    data = client.get("/api/collections").json()
    assert data["default"] == "posters"
    by_name = {c["name"]: c for c in data["collections"]}
    assert set(by_name) == {"posters", "second"}
    posters = by_name["posters"]
    assert posters["count"] == STORED and posters["posters"] is True
    assert set(posters["vectors"]) == {"vgg16", "vgg16_style"}
    assert posters["vectors"]["vgg16"]["weights"] == "random" and posters["vectors"]["vgg16"]["dim"] == 512
    assert posters["genres"] == ["Comedy", "Drama", "Horror", "Western"]
    assert posters["years"] == [1940, 1940 + 3 * (N - 1)]
    assert client.get("/api/collections/posters").json() == posters
    assert_one_line_error(client.get("/api/collections/nothing"), 404, "no poster collection 'nothing'")


def test_another_collection_of_the_store_is_searchable(client):
    second = client.get("/api/collections/second").json()
    assert second["count"] == 4 and second["years"] == [2000, 2003]
    results = client.get(f"/api/search/id/{point_id('s0.jpg')}", params={"collection": "second", "k": 10}).json()["results"]
    assert {r["title"] for r in results} == {"Second 1", "Second 2", "Second 3"}
    assert all(r["poster_url"].startswith("/api/posters/second/") for r in results)
    assert client.get(results[0]["poster_url"]).status_code == 200


# --- searches -----------------------------------------------------------------------------


def test_image_search_matches_the_library_and_excludes_the_query_itself(client, style_embedder):
    response = upload(client, poster_bytes(client, 3), k=5)
    assert response.status_code == 200, response.text
    data = response.json()
    expected = PosterSearch(client.store, style_embedder).by_image(client.tmp / "posters" / "3.jpg", k=5)
    assert [r["id"] for r in data["results"]] == [n.id for n in expected]
    assert np.allclose([r["score"] for r in data["results"]], [n.score for n in expected], atol=1e-5)
    assert point_id("3.jpg") not in [r["id"] for r in data["results"]]  # the same bytes: the query itself
    assert [r["rank"] for r in data["results"]] == [1, 2, 3, 4, 5]
    import hashlib

    token = hashlib.sha256(poster_bytes(client, 3)).hexdigest()  # names the upload for its similarity maps
    assert data["query"] == {"kind": "image", "name": "query.jpg", "token": token} and data["k"] == 5 and data["collection"] == "posters"
    first = data["results"][0]
    assert first["poster_url"] == f"/api/posters/posters/{first['id']}" and {"title", "year", "score", "file"} <= set(first)


def test_a_similar_image_finds_its_poster_first(client, tmp_path):
    ImageEnhance.Brightness(Image.open(client.tmp / "posters" / "7.jpg")).enhance(1.1).save(tmp_path / "brighter.png")
    response = upload(client, (tmp_path / "brighter.png").read_bytes(), name="brighter.png", k=1)
    assert response.json()["results"][0]["id"] == point_id("7.jpg")


def test_filters_apply_to_every_search(client):
    params = {"k": 30, "year_min": 1950, "year_max": 1990, "genre": "Comedy"}
    for response in [
        upload(client, poster_bytes(client, 2), **params),
        client.get(f"/api/search/id/{point_id('2.jpg')}", params=params),
        client.get("/api/search/title", params={"title": "Film 2", **params}),
        client.post("/api/recommend", json={"positive": [point_id("2.jpg")], **params}),
    ]:
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        stored = {p.id: p.payload for p in client.store.retrieve([r["id"] for r in results])}
        expected = {
            point_id(f"{i}.jpg") for i in range(N) if 1950 <= 1940 + 3 * i <= 1990 and "Comedy" in GENRES[i % len(GENRES)] and i != 2
        }
        assert {r["id"] for r in results} == expected, response.request.url
        assert all("Comedy" in stored[r["id"]]["genres"] for r in results)


def test_search_by_stored_id_is_more_like_this_without_the_model(client):
    target = point_id("5.jpg")
    data = client.get(f"/api/search/id/{target}", params={"k": 4}).json()
    assert data["query"]["id"] == target and data["query"]["title"] == "Film 5" and data["query"]["year"] == 1955
    assert data["query"]["poster_url"] == f"/api/posters/posters/{target}"
    [point] = client.store.retrieve([target])
    expected = PosterSearch(client.store).by_point(point, 4)
    assert [r["id"] for r in data["results"]] == [n.id for n in expected] and target not in [r["id"] for r in data["results"]]
    assert_one_line_error(client.get("/api/search/id/not-a-uuid"), 404, "no film with id not-a-uuid")
    assert_one_line_error(client.get(f"/api/search/id/{point_id('nope')}"), 404, "no film with id")


def test_search_by_title_with_unknown_and_ambiguous_titles(client):
    data = client.get("/api/search/title", params={"title": "film 4", "k": 3}).json()  # case-insensitive, like the CLI
    assert data["query"]["title"] == "Film 4" and len(data["results"]) == 3
    twin = client.get("/api/search/title", params={"title": "Twin Title", "year": 1967}).json()
    assert twin["query"]["id"] == point_id("9.jpg")
    assert_one_line_error(client.get("/api/search/title", params={"title": "Twin Title"}), 400, "2 films are titled")
    assert_one_line_error(client.get("/api/search/title", params={"title": "Flim 4"}), 404, "no film titled", "close matches")
    assert_one_line_error(client.get("/api/search/title", params={"title": ""}), 422, "title")


def test_style_vector_search(client):
    response = client.get(f"/api/search/id/{point_id('4.jpg')}", params={"vector": "vgg16_style", "k": 3})
    assert response.status_code == 200, response.text
    style_ids = [r["id"] for r in response.json()["results"]]
    [point] = client.store.retrieve([point_id("4.jpg")])
    assert style_ids == [n.id for n in PosterSearch(client.store).by_point(point, 3, vector_name="vgg16_style")]
    assert style_ids != [n.id for n in PosterSearch(client.store).by_point(point, 3)]  # another vector, another ranking
    assert upload(client, poster_bytes(client, 4), vector="vgg16_style", k=3).json()["results"][0]["id"] in style_ids


def test_recommend_with_liked_and_disliked_posters(client):
    liked, disliked = [point_id("1.jpg"), point_id("6.jpg")], [point_id("11.jpg")]
    response = client.post("/api/recommend", json={"positive": liked, "negative": disliked, "k": 5})
    assert response.status_code == 200, response.text
    data = response.json()
    ids = [r["id"] for r in data["results"]]
    assert len(ids) == 5 and not set(ids) & {*liked, *disliked}
    assert all(a["score"] >= b["score"] for a, b in zip(data["results"], data["results"][1:]))
    assert data["query"] == {"kind": "recommend", "positive": liked, "negative": disliked}
    assert ids == [n.id for n in PosterSearch(client.store).recommend(liked, disliked, 5)]
    for body, status, message in [
        ({"positive": [], "negative": disliked}, 400, "at least one liked"),
        ({"positive": liked, "negative": liked[:1]}, 400, "both liked and disliked"),
        ({"positive": [point_id("nope")]}, 404, "no film with id"),
        ({"positive": liked, "k": 0}, 422, "k"),
        ({"negative": disliked}, 422, "positive"),
        ({"positive": liked, "collection": "nothing"}, 404, "no poster collection"),
    ]:
        assert_one_line_error(client.post("/api/recommend", json=body), status, message)
    assert_one_line_error(client.post("/api/recommend", content=b"{not json", headers={"content-type": "application/json"}), 422)


def test_predict_year_matches_the_library(client, style_embedder, tmp_path):
    from poster_search.regression.model_file import YearModel
    from poster_search.regression.predict import predict_year

    make_poster(tmp_path / "new.png", seed=4242)
    response = upload(client, (tmp_path / "new.png").read_bytes(), name="new.png", path="/api/predict-year")
    assert response.status_code == 200, response.text
    data = response.json()
    expected = predict_year(tmp_path / "new.png", YearModel.load(client.tmp / "model"), style_embedder)
    assert data["year"] == pytest.approx(expected.year, abs=1e-3)
    assert (data["low"], data["high"]) == pytest.approx((expected.low, expected.high), abs=1e-3)
    meta = json.loads((client.tmp / "model" / "model.json").read_text())
    assert data["coverage"] == 0.8 and data["vector"] == "+".join(meta["vector_names"]) and data["name"] == "new.png"
    assert data["shipped"] is False  # a model of the user's own, said as such on the page


def test_predict_year_without_a_model_is_a_clear_404(client, style_embedder, tmp_path):
    from fastapi.testclient import TestClient

    from poster_search.web.app import create_app

    app = create_app(client.posters.using(model_dir=tmp_path / "none"), era_sample=20)
    with TestClient(app, raise_server_exceptions=False, base_url="http://localhost") as other:
        assert_one_line_error(upload(other, poster_bytes(client, 1), path="/api/predict-year"), 404, "no year model in")
        assert other.get("/api/era", params={"k": 2}).json()["year_model"] is None


def test_era_figures_and_the_models_errors_by_decade(client):
    response = client.get("/api/era", params={"k": 2})
    assert response.status_code == 200, response.text
    data = response.json()
    coherence = data["coherence"]
    assert coherence["k"] == 2 and coherence["posters"] == 20  # the server's era sample
    assert coherence["neighbour_mean"] > 0 and coherence["random_mean"] > 0
    assert sum(d["posters"] for d in coherence["by_decade"]) == 20
    model = data["year_model"]
    assert (
        model["vector"] == "+".join(json.loads((client.tmp / "model" / "model.json").read_text())["vector_names"])
        and model["n_test"] > 0
        and "Keras head" in model["test"]
    )
    assert model["test"]["Keras head"]["mae_by_decade"]
    assert client.get("/api/era", params={"k": 2}).json() == data  # computed once, then cached
    assert_one_line_error(client.get("/api/era", params={"k": 60}), 400, "at most 50")
    assert_one_line_error(client.get("/api/era", params={"sample": 1}), 422, "sample")


# --- posters: only stored points, only from the recorded folder ---------------------------


def test_posters_are_served_for_stored_points_only(client):
    for i in (0, 13):
        response = client.get(f"/api/posters/posters/{point_id(f'{i}.jpg')}")
        assert response.status_code == 200 and response.content == poster_bytes(client, i)
        assert response.headers["content-type"] == "image/jpeg"
    for path, status in [
        (f"/api/posters/posters/{point_id('nope')}", 404),
        ("/api/posters/posters/0.jpg", 404),  # a file name is not an id
        ("/api/posters/posters/..%2Fsecret.txt", 404),
        ("/api/posters/posters/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", 404),
        (f"/api/posters/nothing/{point_id('0.jpg')}", 404),
        (f"/api/posters/posters/{ESCAPING}", 404),  # stored, but its file is outside the folder
    ]:
        response = client.get(path)
        assert response.status_code == status, (path, response.text)
        assert b"not a poster" not in response.content and b"root:" not in response.content
    assert "not in the recorded poster folder" in client.get(f"/api/posters/posters/{ESCAPING}").json()["detail"]


def test_a_poster_is_only_ever_served_as_the_image_it_is(client):
    response = client.get(f"/api/posters/posters/{DISGUISED}")  # PNG bytes in a file named .html
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff" and "sandbox" in response.headers["content-security-policy"]
    page = client.get("/")
    assert "default-src 'self'" in page.headers["content-security-policy"] and page.headers["x-content-type-options"] == "nosniff"


# --- bad input: 4xx with one line, never a 500 ----------------------------------------------


def bomb_png() -> bytes:
    """A tiny file that claims 72 megapixels: refused before decoding, as at ingest."""
    buffer = io.BytesIO()
    Image.new("1", (9_000, 8_000)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("path", ["/api/search/image", "/api/predict-year"])
def test_bad_uploads_are_4xx_with_one_line(client, path):
    jpeg = poster_bytes(client, 0)
    cases = [
        (b"", 400, "query.jpg: empty file"),
        (b"%PDF-1.4 this is not an image", 415, "not an image"),
        (jpeg[: len(jpeg) // 2], 422, "corrupt image"),
        (bomb_png(), 422, "over the 64 MP limit"),
        (b"\xff\xd8" + b"\0" * (20 * 1024 * 1024 + 100), 413, "20 MB"),
    ]
    for data, status, message in cases:
        assert_one_line_error(upload(client, data, path=path), status, message)
    assert_one_line_error(client.post(path), 422, "file")
    assert_one_line_error(client.post(path, data={"file": "text, not a file"}), 422, "file")
    # a file name never leaks the server's temporary paths, and odd names are made safe
    detail = upload(client, b"junk", name="../../etc/x\n.jpg", path=path).json()["detail"]
    assert "/tmp" not in detail and "poster-upload" not in detail and "\n" not in detail


def test_oversized_upload_is_refused_from_its_content_length(client):
    response = client.post(
        "/api/search/image",
        content=b"x" * 100,
        headers={"content-length": str(30 * 1024 * 1024), "content-type": "multipart/form-data; boundary=x"},
    )
    assert_one_line_error(response, 413, "over the 20 MB limit")


def test_bad_parameters_are_4xx_with_one_line(client):
    target = f"/api/search/id/{point_id('1.jpg')}"
    assert_one_line_error(client.get(target, params={"k": 0}), 422, "k")
    assert_one_line_error(client.get(target, params={"k": 101}), 422, "k")
    assert_one_line_error(client.get(target, params={"k": "many"}), 422, "k")
    assert_one_line_error(client.get(target, params={"year_min": "1950s"}), 422, "year_min")
    assert_one_line_error(client.get(target, params={"vector": "clip"}), 422, "vector: Input should be 'vgg16' or 'vgg16_style'")
    assert_one_line_error(client.get(target, params={"collection": "nothing"}), 404, "no poster collection 'nothing'")
    assert_one_line_error(upload(client, poster_bytes(client, 1), vector="clip"), 422, "vector")
    assert client.get("/api/nothing").status_code == 404


def test_nothing_is_written_to_the_store(client):
    before = sorted((p.id, json.dumps(p.payload, sort_keys=True)) for p in client.store.points(with_vectors=False))
    upload(client, poster_bytes(client, 2))
    upload(client, poster_bytes(client, 2), path="/api/predict-year")
    client.get(f"/api/search/id/{point_id('2.jpg')}")
    client.post("/api/recommend", json={"positive": [point_id("2.jpg")]})
    after = sorted((p.id, json.dumps(p.payload, sort_keys=True)) for p in client.store.points(with_vectors=False))
    assert after == before and client.store.count() == STORED


def test_only_loopback_hosts_count_as_local():
    from poster_search.web.server import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "::", "example.org"))


def test_serve_refuses_a_busy_port_and_a_missing_store_in_one_line(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", "--port", port, "--qdrant-path", tmp_path / "none", timeout=60)
    assert result.returncode == 1 and result.stderr.strip() == f"Error: cannot serve on 127.0.0.1:{port}: Address already in use"
    result = run_cli("serve", "--port", "0", "--qdrant-path", tmp_path / "none", timeout=60)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1 and "no store at" in result.stderr


# --- why neighbours are close, the collection at a glance ----------------------------------


def test_maps_of_an_upload_and_of_a_stored_poster_sum_to_their_scores(client):
    found = upload(client, poster_bytes(client, 2), k=6).json()
    token, ids = found["query"]["token"], [r["id"] for r in found["results"]]
    scores = {r["id"]: r["score"] for r in found["results"]}
    answer = client.post("/api/explain", json={"query_token": token, "ids": ids})
    assert answer.status_code == 200, answer.text
    maps = answer.json()["maps"]
    assert [m["id"] for m in maps] == ids and answer.json()["grid"] == 7
    for m in maps:
        assert np.array(m["neighbour"]).shape == (7, 7) and (np.array(m["neighbour"]) >= 0).all()
        assert abs(np.sum(m["neighbour"]) - scores[m["id"]]) < 1e-4 and abs(np.sum(m["query"]) - scores[m["id"]]) < 1e-4
    film = point_id("4.jpg")
    by_id = client.get(f"/api/search/id/{film}", params={"k": 3}).json()
    answer = client.post("/api/explain", json={"query_id": film, "ids": [r["id"] for r in by_id["results"]]}).json()
    assert all(abs(np.sum(m["neighbour"]) - r["score"]) < 1e-4 for m, r in zip(answer["maps"], by_id["results"]))
    assert_one_line_error(client.post("/api/explain", json={"query_token": "gone", "ids": ids}), 404, "no longer held")
    assert_one_line_error(client.post("/api/explain", json={"ids": ids}), 400, "name the query")
    assert_one_line_error(client.post("/api/explain", json={"query_id": film, "ids": ids * 5}), 422, "ids")


def test_the_poster_map_and_its_points(client, tmp_path, monkeypatch):
    from tests.test_map_background import ready_map, settled  # 202 while it is computed in the background

    monkeypatch.setenv("POSTER_SEARCH_CACHE", str(tmp_path / "cache"))
    data = ready_map(client)
    assert data["n"] == data["total"] == STORED and len(data["x"]) == len(data["y"]) == len(data["year"]) == len(data["ids"]) == STORED
    assert all(0 <= v <= 10_000 for v in data["x"] + data["y"]) and data["decades"][0]["decade"] == 1940
    again = client.get("/api/map").json()
    assert again["x"] == data["x"] and again["computed_seconds"] == data["computed_seconds"]  # kept, not computed again
    point = client.get("/api/map/0").json()
    assert {"id", "title", "year", "poster_url"} <= set(point)
    assert_one_line_error(client.get(f"/api/map/{STORED}"), 404, "no number")
    assert_one_line_error(settled(client, collection="second"), 400, "needs at least 10 posters")  # it has 4


def test_the_timeline_shows_each_decades_posters(client):
    data = client.get("/api/timeline").json()
    decades = [d["decade"] for d in data["decades"]]
    assert decades == sorted(decades) and decades[0] == 1940
    first = data["decades"][0]
    assert first["moved"] is None and all(d["moved"] >= 0 for d in data["decades"][1:])
    assert first["typical"] and first["typical"][0]["poster_url"].startswith("/api/posters/posters/")


# --- browse, suggestions, thumbnails, refine with an upload (issue 38) ----------------------


def test_browse_pages_through_every_poster_in_order_with_filters(client):
    seen, after, years = [], None, []
    while True:
        page = client.get(
            "/api/collections/posters/browse", params={"sort": "year", "order": "desc", "limit": 5, **({"after": after} if after else {})}
        )
        assert page.status_code == 200, page.text
        data = page.json()
        seen += [p["id"] for p in data["posters"]]
        years += [p["year"] for p in data["posters"]]
        assert all(p["thumb_url"].endswith("?w=240") and p["poster_url"] for p in data["posters"])
        after = data["next"]
        if after is None:
            break
    assert data["total"] == len(seen) == len(set(seen)) == client.posters.count()
    dated = [y for y in years if y is not None]
    assert dated == sorted(dated, reverse=True) and years[: len(dated)] == dated  # newest first, the undated last
    drama = client.get("/api/collections/posters/browse", params={"genre": "Drama", "decade": 1950, "limit": 200}).json()
    expected = [i for i in range(N) if "Drama" in GENRES[i % len(GENRES)] and 1950 <= 1940 + 3 * i <= 1959]
    assert drama["total"] == len(drama["posters"]) == len(expected) and drama["filters"] == {
        "decade": 1950,
        "genre": "Drama",
        "status": None,
    }
    titles = [p["title"] for p in client.get("/api/collections/posters/browse", params={"limit": 200}).json()["posters"]]
    assert titles == sorted(titles, key=lambda t: t.casefold())
    for params, fragment in [
        ({"after": "bm90IGEgY3Vyc29y"}, "browse cursor"),
        ({"decade": 1955}, "ending in 0"),
        ({"sort": "colour"}, "sort"),
    ]:
        response = client.get("/api/collections/posters/browse", params=params)
        assert response.status_code in (400, 422) and fragment in response.json()["detail"], response.text
    assert_one_line_error(client.get("/api/collections/nope/browse"), 404, "no poster collection")


def test_facets_count_what_the_collection_holds(client):
    data = client.get("/api/collections/posters/facets").json()
    assert data["count"] == client.posters.count()
    genres = {g["genre"]: g["count"] for g in data["genres"]}
    assert genres["Drama"] == sum("Drama" in GENRES[i % len(GENRES)] for i in range(N))
    decades = {d["decade"]: d["count"] for d in data["decades"]}
    assert decades[1940] == sum(1940 <= 1940 + 3 * i <= 1949 for i in range(N))
    assert sum(data["status"].values()) == data["count"]


def test_suggestions_from_a_few_letters(client):
    found = client.get("/api/collections/posters/suggest", params={"q": "twin ti"}).json()["suggestions"]
    assert [s["title"] for s in found] == ["Twin Title", "Twin Title"] and all(s["poster_url"] for s in found)
    assert client.get("/api/collections/posters/suggest", params={"q": "FILM 1"}).json()["suggestions"][0]["title"] == "Film 1"
    assert client.get("/api/collections/posters/suggest", params={"q": "zzz"}).json()["suggestions"] == []
    assert client.get("/api/collections/posters/suggest", params={"q": ""}).status_code == 422


def test_a_thumbnail_is_a_small_jpeg_of_the_poster(client):
    url = client.get("/api/collections/posters/browse", params={"limit": 1}).json()["posters"][0]["poster_url"]
    full, small = client.get(url), client.get(url, params={"w": 48})
    assert small.status_code == 200 and small.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(small.content)) as image, Image.open(io.BytesIO(full.content)) as original:
        assert image.width == 48 and abs(image.height / image.width - original.height / original.width) < 0.05
    assert client.get(url, params={"w": 4000}).status_code == 422


def test_refining_an_image_search_keeps_the_image(client):
    searched = upload(client, poster_bytes(client, 3), k=4).json()
    token, first = searched["query"]["token"], [r["id"] for r in searched["results"]]
    liked = first[1]
    refined = client.post("/api/recommend", json={"positive": [liked], "query_token": token, "k": 4}).json()
    ids = [r["id"] for r in refined["results"]]
    assert refined["query"]["query_token"] == token and liked not in ids
    # Qdrant's best-score recommend, by numpy: each poster scored by its best similarity to an example,
    # the uploaded image (poster 3's file, so poster 3's vector) one of them; the examples' posters never results
    stored = {p.id: p.vector for p in client.store.points()}
    examples = [stored[liked], stored[point_id("3.jpg")]]
    scores = {i: max(float(v @ e) for e in examples) for i, v in stored.items() if i not in (liked, point_id("3.jpg"))}
    assert ids == sorted(scores, key=lambda i: -scores[i])[:4]
    only_image = client.post("/api/recommend", json={"positive": [], "query_token": token, "k": 3})
    assert only_image.status_code == 200 and len(only_image.json()["results"]) == 3
    assert_one_line_error(client.post("/api/recommend", json={"positive": [liked], "query_token": "gone"}), 404, "no longer held")
