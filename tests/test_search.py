"""Search against a real local store: ranking, self-exclusion, filters, titles, JSON, sheet, errors."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from poster_search.embedding.images import decode_poster
from poster_search.errors import PosterSearchError
from poster_search.ingest.catalog import read_catalog
from poster_search.ingest.pipeline import ingest
from poster_search.search.batch import EXCLUSION_MARGIN
from poster_search.search.neighbours import Filters, PosterSearch
from poster_search.search.titles import find_film
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.embeddings import load_embeddings
from poster_search.store.schema import point_id
from tests.conftest import ROOT, make_poster, run_cli, write_csv

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer

GENRES = ["Drama", "Comedy|Drama", "Horror", "Comedy", "Drama", "Horror|Comedy", "Western", "Drama", "Comedy", "Horror"]


@pytest.fixture(scope="module")
def searchable(tmp_path_factory, random_embedder):
    """10 generated posters with years 1950..1995 and genres, ingested for real; film 9 shares 0's title."""
    tmp = tmp_path_factory.mktemp("search")
    rows = []
    for i in range(10):
        make_poster(tmp / "posters" / f"{i}.jpg", seed=100 + i)
        rows.append([f"{i}.jpg", "Twin Title" if i in (0, 9) else f"Film {i}", 1950 + 5 * i, GENRES[i]])
    catalog = write_csv(tmp / "movies.csv", ["filename", "title", "release_year", "genre"], rows)
    location = StoreLocation(path=tmp / "store")
    with PosterStore(location) as store:
        ingest(read_catalog(catalog, tmp / "posters"), tmp / "posters", store, random_embedder, progress=False)
    return tmp, location


@pytest.fixture
def searcher(searchable, random_embedder):
    with PosterStore(searchable[1]) as store:
        yield PosterSearch(store, random_embedder)


def brute_force(store, vector, exclude=()):
    e = load_embeddings(store)
    scores = e.vectors @ vector
    order = [i for i in np.argsort(-scores) if e.ids[i] not in exclude]
    return [(str(e.ids[i]), float(scores[i])) for i in order]


def test_ranking_matches_exact_cosine_order_and_excludes_the_query(searcher, searchable):
    tmp, _ = searchable
    result = searcher.by_image(tmp / "posters" / "3.jpg", k=4)
    query_vector = searcher.embedder.embed([tmp / "posters" / "3.jpg"])[0]
    expected = brute_force(searcher.store, query_vector, exclude={point_id("3.jpg")})[:4]
    assert [n.id for n in result] == [i for i, _ in expected]
    assert np.allclose([n.score for n in result], [s for _, s in expected], atol=1e-4)
    assert [n.rank for n in result] == [1, 2, 3, 4]
    assert all(a.score >= b.score for a, b in zip(result, result[1:]))


def test_own_vector_is_its_own_nearest_neighbour_before_exclusion(searcher):
    [point] = searcher.store.retrieve([point_id("5.jpg")], with_vectors=True)
    [first] = searcher.by_vector(point.vector, k=1)
    assert first.id == point.id and first.score == pytest.approx(1.0, abs=1e-5)
    assert point.id not in [n.id for n in searcher.by_point(point, k=9)]


def test_same_content_elsewhere_is_excluded_but_a_similar_poster_is_not(searcher, searchable, tmp_path):
    tmp, _ = searchable
    shutil.copy(tmp / "posters" / "4.jpg", tmp_path / "renamed_copy.jpg")
    assert point_id("4.jpg") not in [n.id for n in searcher.by_image(tmp_path / "renamed_copy.jpg", k=9)]
    assert point_id("4.jpg") not in [n.id for n in searcher.by_image(Image.open(tmp_path / "renamed_copy.jpg"), k=9)]
    ImageEnhance.Brightness(Image.open(tmp / "posters" / "4.jpg")).enhance(1.1).save(tmp_path / "brighter.png")
    assert searcher.by_image(tmp_path / "brighter.png", k=1)[0].id == point_id("4.jpg")


def test_k_beyond_the_store_returns_all_others_and_k_below_1_is_an_error(searcher, searchable):
    tmp, _ = searchable
    assert len(searcher.by_image(tmp / "posters" / "0.jpg", k=50)) == 9
    with pytest.raises(PosterSearchError, match="k must be at least 1"):
        searcher.by_image(tmp / "posters" / "0.jpg", k=0)


def test_year_and_genre_filters_still_return_k(searcher, searchable):
    tmp, _ = searchable
    result = searcher.by_image(tmp / "posters" / "0.jpg", k=3, filters=Filters(year_min=1960, year_max=1980))
    assert len(result) == 3 and all(1960 <= n.poster.year <= 1980 for n in result)
    comedies = searcher.by_image(tmp / "posters" / "0.jpg", k=10, filters=Filters(genre="Comedy"))
    assert sorted(n.id for n in comedies) == sorted(point_id(f"{i}.jpg") for i in (1, 3, 5, 8))


def test_find_film_by_title_id_and_year(searchable):
    with PosterStore(searchable[1]) as store:
        assert find_film(store, title="Film 3").payload["year"] == 1965
        assert find_film(store, title="  film 3 ").payload["title"] == "Film 3"  # case and spaces forgiven
        assert find_film(store, title="Twin Title", year=1995).payload["file"] == "9.jpg"
        assert find_film(store, point_id=point_id("2.jpg")).vector.shape == (512,)
        with pytest.raises(PosterSearchError, match=r"2 films are titled 'Twin Title'.*give the year too, or search by id"):
            find_film(store, title="Twin Title")
        with pytest.raises(PosterSearchError, match=r"no film titled 'Flim 3'; close matches: Film 3 \(1965\)"):
            find_film(store, title="Flim 3")
        with pytest.raises(PosterSearchError, match="no film with id"):
            find_film(store, point_id="not-a-uuid")


def test_search_cli_by_title_json_and_sheet(searchable, tmp_path):
    tmp, location = searchable
    result = run_cli("search", "--title", "Film 3", "-k", "2", "--json", "--qdrant-path", location.path, "--sheet", tmp_path / "s.png")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["query"]["title"] == "Film 3" and data["query"]["id"] == point_id("3.jpg")
    assert [set(n) for n in data["neighbours"]] == [{"rank", "id", "title", "year", "score", "file", "genres"}] * 2
    sheet = Image.open(tmp_path / "s.png")
    assert sheet.width > 3 * 200  # query + 2 neighbours
    assert np.asarray(sheet).std() > 10  # posters were drawn, not blank tiles
    table = subprocess.run(
        [sys.executable, "-X", "importtime", str(ROOT / "cli.py"), "search", "--title", "Film 3", "--qdrant-path", str(location.path)],
        capture_output=True,
        text=True,
    )
    assert table.returncode == 0 and table.stdout.splitlines()[0] == "nearest to Film 3 (1965):"
    assert len(table.stdout.splitlines()) == 2 + 3
    imported = {line.split("|")[-1].strip() for line in table.stderr.splitlines()}
    assert "qdrant_edge" in imported and not {"tensorflow", "keras"} & imported  # search by title needs no model
    assert "qdrant_client" not in imported  # the embedded store is Qdrant Edge alone


def test_search_cli_by_image_and_errors(searchable, tmp_path):
    tmp, location = searchable
    result = run_cli("search", tmp / "posters" / "2.jpg", "--weights", "random", "-k", "2", "--qdrant-path", location.path)
    assert result.returncode == 0, result.stderr
    assert "Film 2" not in result.stdout and len(result.stdout.splitlines()) == 4
    (tmp_path / "notes.jpg").write_text("not a poster")
    for args, message in [
        ([tmp_path / "notes.jpg", "--weights", "random"], "not an image file"),
        (["--title", "Film 2", "--sheet", tmp_path / "no" / "s.png"], "does not exist"),
        ([], "give either an image or --title"),
        (["--title", "Film 2", "--id", "5b1c0000-0000-0000-0000-000000000000"], "give one of"),
    ]:
        result = run_cli("search", *args, "--qdrant-path", location.path)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    for k in ("0", "-3"):  # refused by the parser (exit code 2, as for every bad option), in one line
        result = run_cli("search", tmp / "posters" / "2.jpg", "--weights", "random", "-k", k, "--qdrant-path", location.path)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and "is not in the range x>=1" in result.stderr
    missing = run_cli("search", "--title", "x", "--qdrant-path", tmp_path / "nothing")
    assert missing.returncode == 1 and "no store at" in missing.stderr


def test_an_empty_collection_is_a_clear_error(tmp_path, random_embedder):
    location = StoreLocation(path=tmp_path / "store")
    with PosterStore(location) as store:
        store.prepare(random_embedder.spec)
        with pytest.raises(PosterSearchError, match="is empty"):
            PosterSearch(store, random_embedder).by_image(make_poster(tmp_path / "q.jpg", seed=1))


def test_more_copies_than_the_margin_are_still_all_excluded(tmp_path, random_embedder):
    query = make_poster(tmp_path / "q.jpg", seed=1)
    copies = EXCLUSION_MARGIN + 4  # stored posters with the query's content, all nearer than anything else
    others = np.random.default_rng(0).normal(size=(5, 512)).astype(np.float32)
    vectors = np.vstack([np.repeat(random_embedder.embed([query]), copies, axis=0), others / np.linalg.norm(others, axis=1, keepdims=True)])
    sha = decode_poster(query).sha256
    payloads = [{"title": str(i), "sha256": sha if i < copies else "other"} for i in range(len(vectors))]
    with PosterStore(StoreLocation(path=tmp_path / "store")) as store:
        store.prepare(random_embedder.spec)
        store.upsert([point_id(str(i)) for i in range(len(vectors))], vectors, payloads)
        result = PosterSearch(store, random_embedder).by_image(query, k=3)
    assert len(result) == 3 and all(int(n.poster.title) >= copies for n in result)
