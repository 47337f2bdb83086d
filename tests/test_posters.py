"""The unit layer: the front object, poster_search.Posters, on a real Qdrant Edge store in a temporary
folder, with a small seeded embedder (tests/small_embedder.py) instead of VGG16: no model runtime,
no TensorFlow, no subprocess. The whole module runs in seconds; `pytest -m "not e2e"` runs it with
the rest of the unit layer."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from poster_search import BadInput, Damaged, InUse, NotFound, Posters, PosterSearchError
from poster_search.api import SearchResult
from poster_search.search.neighbours import ImageQuery
from poster_search.store.schema import point_id
from tests.conftest import generated_catalog, make_poster
from tests.small_embedder import SmallEmbedder

N = 16


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """N generated posters (years 1950, 1953, ...), one exact copy of poster 0, ingested; the Posters open on them."""
    folder = tmp_path_factory.mktemp("library")
    catalog, posters = generated_catalog(folder, N)
    (posters / "copy.jpg").write_bytes((posters / "0.jpg").read_bytes())
    with open(catalog, "a", encoding="utf-8") as f:
        f.write("copy.jpg,Film 0 (re-release),1999\n")
    with Posters(folder / "store", embedder=SmallEmbedder()) as posters_store:
        report = posters_store.ingest(posters, catalog, workers=0, progress=False)
        assert (report.ingested, report.total, len(report.rejects)) == (N + 1, N + 1, 0)
        yield posters_store, posters, folder


def test_a_rerun_of_ingest_embeds_nothing_again(library):
    posters, folder, root = library
    embedder = posters._shared.given_embedder
    before = embedder.calls
    report = posters.ingest(folder, root / "movies.csv", workers=0, progress=False)
    assert (report.ingested, report.already_stored, embedder.calls) == (0, N + 1, before)


def test_search_by_image_excludes_the_query_and_its_copies(library):
    posters, folder, _ = library
    result = posters.search(folder / "0.jpg", k=5)
    assert isinstance(result, SearchResult) and isinstance(result.query, ImageQuery) and len(result.neighbours) == 5
    found = {n.id for n in result.neighbours}
    assert point_id("0.jpg") not in found and point_id("copy.jpg") not in found  # the same bytes: the query itself
    scores = [n.score for n in result.neighbours]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1.0001 for s in scores)
    frame = result.to_frame()
    assert list(frame["rank"]) == [1, 2, 3, 4, 5] and {"title", "year", "score", "file"} <= set(frame.columns)


def test_a_similar_image_finds_its_poster_first(library, tmp_path):
    from PIL import Image

    posters, folder, _ = library
    Image.open(folder / "7.jpg").resize((100, 150)).save(tmp_path / "smaller.jpg", quality=70)  # not the same bytes
    assert posters.search(tmp_path / "smaller.jpg", k=1).neighbours[0].poster.title == "Film 7"


def test_search_by_title_and_id_with_filters(library):
    posters, _, _ = library
    by_title = posters.search(title="film 3", k=3)  # case forgiven
    assert by_title.describe_query()["title"] == "Film 3" and len(by_title.neighbours) == 3
    by_id = posters.search(id=point_id("3.jpg"), k=3)
    assert [n.id for n in by_id.neighbours] == [n.id for n in by_title.neighbours]
    narrowed = posters.search(id=point_id("3.jpg"), k=10, year_min=1960, year_max=1970)
    assert narrowed.neighbours and all(1960 <= n.poster.year <= 1970 for n in narrowed.neighbours)


def test_errors_come_by_kind(library, tmp_path):
    posters, _, _ = library
    with pytest.raises(NotFound, match="no film titled 'Flim 3'; close matches: Film 3"):
        posters.search(title="Flim 3")
    with pytest.raises(NotFound, match="no film with id"):
        posters.search(id=point_id("nothing"))
    with pytest.raises(BadInput, match="is after"):
        posters.search(title="Film 3", year_min=2000, year_max=1990)
    with pytest.raises(NotFound, match="no vector 'vgg16_style'"):
        posters.search(title="Film 3", vector="vgg16_style")
    with pytest.raises(NotFound, match="no collection 'other'"):
        posters.using("other").search(title="Film 3")
    with pytest.raises(NotFound, match="no store at"):
        Posters(tmp_path / "nothing").search(title="Film 3")
    with pytest.raises(BadInput, match="invalid collection name"):
        posters.using("../escape")
    assert all(issubclass(kind, PosterSearchError) for kind in (BadInput, NotFound, Damaged, InUse))


def test_recommend_from_liked_and_disliked(library):
    posters, _, _ = library
    liked, disliked = [point_id("2.jpg"), point_id("5.jpg")], [point_id("9.jpg")]
    result = posters.recommend(liked, disliked, k=4)
    ids = [n.id for n in result.neighbours]
    assert len(ids) == 4 and not set(ids) & {*liked, *disliked}
    with pytest.raises(BadInput, match="both liked and disliked"):
        posters.recommend(liked, liked)
    with pytest.raises(NotFound):
        posters.recommend([point_id("nothing")])


def test_similarity_maps_sum_to_the_scores(library):
    posters, folder, _ = library
    for result in (posters.search(folder / "4.jpg", k=3), posters.search(title="Film 4", k=3)):
        maps = posters.explain(result)
        assert [m.neighbour.id for m in maps] == [n.id for n in result.neighbours]
        for m in maps:
            assert m.on_neighbour.shape == (7, 7) and abs(m.total - m.neighbour.score) < 1e-3
            assert abs(float(m.on_query.sum()) - m.neighbour.score) < 1e-3


def test_the_collection_at_a_glance(library):
    posters, _, _ = library
    info = posters.info()
    assert (info.name, info.count, info.years) == ("posters", N + 1, (1950, 1999)) and "vgg16" in info.vectors
    assert posters.collections() == ["posters"] and posters.damaged_collections() == {}
    era = posters.era(k=2)
    assert era.posters == N + 1 and era.to_frame().shape[0] == len(era.by_decade)
    duplicates = posters.duplicates(0.999)
    assert [(p.a.id, p.b.id) for p in duplicates.pairs] == [tuple(sorted([point_id("0.jpg"), point_id("copy.jpg")]))]
    assert duplicates.pairs[0].identical and duplicates.to_frame().shape == (1, 10)
    starts = posters.starts()
    assert [g.label for g in starts.groups] == sorted({f"{1950 + (3 * i) % 75 // 10 * 10}s" for i in range(N)} | {"1990s"})
    assert all(len(g.posters) == len(g.ids) > 0 for g in starts.groups)
    again = posters.starts()
    assert again.seconds == starts.seconds  # chosen once while the collection stays as it is
    timeline = posters.timeline()
    assert timeline.steps and timeline.to_frame().shape[0] == len(timeline.steps)


def test_export_is_the_collection_as_one_array(library, tmp_path):
    posters, _, _ = library
    report = posters.export_embeddings(tmp_path / "e.npz")
    embeddings = posters.embeddings()
    saved = np.load(tmp_path / "e.npz")
    assert report.shape == (N + 1, 512)
    assert saved["embeddings"].shape == (N + 1, 512) and sorted(saved["ids"]) == sorted(embeddings.ids)
    assert np.allclose(np.linalg.norm(saved["embeddings"], axis=1), 1, atol=1e-5)
    frame = embeddings.to_frame()
    assert len(frame) == N + 1 and frame.loc[frame["title"] == "Film 3", "year"].item() == 1959
    assert np.array_equal(np.stack(frame["vector"]), embeddings.vectors)


def test_a_record_that_does_not_decode_is_named_once_and_left_out(tmp_path, caplog):
    catalog, folder = generated_catalog(tmp_path, 6)
    with Posters(tmp_path / "store", embedder=SmallEmbedder()) as posters:
        posters.ingest(folder, catalog, workers=0, progress=False)
        posters.store.set_payloads([(point_id("2.jpg"), {"year": "1956"})])  # as someone's script might, straight into Qdrant
        with caplog.at_level(logging.WARNING, logger="poster_search"):
            result = posters.search(title="Film 1", k=5)
            posters.search(title="Film 3", k=5)
        assert point_id("2.jpg") not in {n.id for n in result.neighbours} and len(result.neighbours) == 4
        named = [r.getMessage() for r in caplog.records if point_id("2.jpg") in r.getMessage()]
        assert len(named) == 1 and "field 'year' is '1956'" in named[0]
        with pytest.raises(Damaged, match="field 'year' is '1956'"):  # asked for by name: said to be damaged, not missing
            posters.film(point_id("2.jpg"))
        assert posters.info().count == 6  # the rest, and the page's overview, keep working
        assert sum(len(g.ids) for g in posters.starts().groups) == 5
        report = posters.ingest(folder, catalog, workers=0, progress=False)  # the remedy the warning names
        assert report.updated == 1
        assert posters.film(point_id("2.jpg")).poster.year == 1956


def test_one_process_holds_an_embedded_store_and_another_collection_shares_it(tmp_path):
    catalog, folder = generated_catalog(tmp_path, 4)
    first = Posters(tmp_path / "store", embedder=SmallEmbedder())
    first.ingest(folder, catalog, workers=0, progress=False)
    other = first.using("second")
    other.ingest(folder, catalog, workers=0, progress=False, limit=2)
    assert first.collections() == ["posters", "second"] and other.count() == 2
    with pytest.raises(InUse, match="in use by another process"):
        Posters(tmp_path / "store").count()
    first.close()
    with Posters(tmp_path / "store") as again:  # closed: free for the next
        assert again.count() == 4


def test_migrate_copies_a_collection_without_embedding(library, tmp_path):
    posters, _, _ = library
    report = posters.migrate(tmp_path / "copy")
    assert report.copied == report.target_count == N + 1
    with Posters(tmp_path / "copy") as copy:

        def found(store):  # ties (the exact copy and its original) come in either order
            return sorted((round(n.score, 5), n.id, n.poster) for n in store.search(title="Film 5", k=4).neighbours)

        assert found(copy) == found(posters)


def test_bad_posters_are_rejects_not_failures(tmp_path):
    catalog, folder = generated_catalog(tmp_path, 3)
    (folder / "1.jpg").write_text("not an image")
    make_poster(folder / "unlisted.jpg", seed=9)
    with Posters(tmp_path / "store", embedder=SmallEmbedder()) as posters:
        report = posters.ingest(folder, catalog, workers=0, progress=False)
        assert (report.ingested, [r.file for r in report.rejects]) == (2, ["1.jpg"])
        assert report.write_rejects(tmp_path / "rejects.csv") and "not an image" in (tmp_path / "rejects.csv").read_text()


def test_the_page_calls_the_front_object_and_answers_errors_by_kind(library):
    """The web layer only parses and renders: its answers are Posters' results, its statuses the errors' kinds."""
    from fastapi.testclient import TestClient

    from poster_search.web.app import create_app

    posters, folder, _ = library
    with TestClient(create_app(posters), base_url="http://localhost") as client:
        answer = client.get("/api/search/title", params={"title": "Film 3", "k": 4}).json()
        expected = posters.search(title="Film 3", k=4)
        assert [r["id"] for r in answer["results"]] == [n.id for n in expected.neighbours]
        assert answer["query"]["title"] == "Film 3" and answer["results"][0]["poster_url"].startswith("/api/posters/posters/")
        upload = client.post("/api/search/image", files={"file": ("q.jpg", (folder / "5.jpg").read_bytes(), "image/jpeg")}).json()
        assert point_id("5.jpg") not in {r["id"] for r in upload["results"]} and upload["query"]["token"]
        maps = client.post("/api/explain", json={"query_token": upload["query"]["token"], "ids": [upload["results"][0]["id"]]})
        assert maps.status_code == 200 and abs(maps.json()["maps"][0]["sum"] - upload["results"][0]["score"]) < 1e-3
        for path, params, status, words in (
            ("/api/search/title", {"title": "Flim 3"}, 404, "no film titled"),
            ("/api/search/id/" + point_id("nothing"), {}, 404, "no film with id"),
            ("/api/search/title", {"title": "Film 3", "year_min": 2000, "year_max": 1990}, 400, "is after"),
            ("/api/search/title", {"title": "Film 3", "collection": "other"}, 404, "no poster collection 'other'"),
            ("/api/search/title", {"title": "Film 3", "vector": "vgg16_style"}, 404, "has no vector"),
        ):
            response = client.get(path, params=params)
            assert response.status_code == status and words in response.json()["detail"], (path, response.text)
        collections = client.get("/api/collections").json()
        assert collections["default"] == "posters" and collections["collections"][0]["count"] == N + 1
        assert client.get(f"/api/posters/posters/{point_id('5.jpg')}").content == (folder / "5.jpg").read_bytes()


def test_a_rerun_trusts_an_unchanged_size_and_time_and_rehash_reads_every_file(tmp_path):
    import hashlib
    import os

    catalog, folder = generated_catalog(tmp_path, 4)
    with Posters(tmp_path / "store", embedder=SmallEmbedder()) as posters:
        posters.ingest(folder, catalog, workers=0, progress=False)
        info = os.stat(folder / "1.jpg")
        [stored] = posters.store.retrieve([point_id("1.jpg")])
        assert (stored.poster.file_size, stored.poster.file_mtime_ns) == (info.st_size, info.st_mtime_ns)
        # the bytes changed, size and time put back (as no editor does): a rerun trusts them ...
        data = bytearray((folder / "1.jpg").read_bytes())
        at = next(i for i in range(len(data) - 20, 0, -1) if data[i] < 0xF0)  # a byte of the image data, never a marker's
        data[at] ^= 0x01
        (folder / "1.jpg").write_bytes(bytes(data))
        os.utime(folder / "1.jpg", ns=(info.st_atime_ns, info.st_mtime_ns))
        report = posters.ingest(folder, catalog, workers=0, progress=False)
        assert (report.ingested, report.already_stored) == (0, 4)
        # ... and --rehash reads every file: the change is found and embedded again
        calls = posters._shared.given_embedder.calls
        report = posters.ingest(folder, catalog, workers=0, progress=False, rehash=True)
        assert (report.updated, report.already_stored, posters._shared.given_embedder.calls) == (1, 3, calls + 1), report.summary()
        [stored] = posters.store.retrieve([point_id("1.jpg")])
        assert stored.poster.sha256 == hashlib.sha256(bytes(data)).hexdigest()
        # a file only touched: not embedded again; its new time recorded, so the next rerun trusts it
        os.utime(folder / "2.jpg", ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
        calls = posters._shared.given_embedder.calls
        report = posters.ingest(folder, catalog, workers=0, progress=False)
        assert report.ingested == 0 and posters._shared.given_embedder.calls == calls
        [stored] = posters.store.retrieve([point_id("2.jpg")])
        assert stored.poster.file_mtime_ns == os.stat(folder / "2.jpg").st_mtime_ns
