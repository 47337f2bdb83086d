"""Why neighbours are close, and the collection at a glance (issue 21): similarity maps whose cells
sum to the store's own scores, the poster map (cached per collection state), the era timeline and
near-duplicates, through the library and the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from poster_search.ingest.catalog import read_catalog
from poster_search.ingest.pipeline import ingest
from poster_search.search.explain import cell_terms, explain_search
from poster_search.search.neighbours import PosterSearch
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from tests.conftest import catalog_rows, generated_catalog, local_mode_folder, real_subset, run_cli

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer


@pytest.fixture(scope="module")
def real_posters(era_data, tmp_path_factory):
    """12 real posters spread over the years, with their catalog: the query and more than its 8 neighbours."""
    tmp = tmp_path_factory.mktemp("explain")
    catalog, posters = real_subset(era_data, catalog_rows(era_data[0])[::300][:12], tmp)
    return catalog, posters, tmp


@pytest.mark.parametrize("engine", ["edge", "local-mode"])
def test_the_cells_of_a_map_sum_to_the_stores_own_score(real_posters, real_weights, real_embedder, engine, tmp_path, monkeypatch):
    """On real posters with the real weights, vectors stored by Keras: each map's 49 terms add up to
    the cosine Qdrant computed (Edge, and qdrant-client's local mode), within 1e-4, both ways round.
    In fp32, as the stored vectors are: a bf16 query (OpenVINO) moves the sum by up to about 3e-4."""
    monkeypatch.setenv("POSTER_SEARCH_PRECISION", "fp32")
    catalog, posters, _ = real_posters
    location = StoreLocation(path=tmp_path / "edge") if engine == "edge" else local_mode_folder(tmp_path / "local")
    with PosterStore(location) as store:
        ingest(read_catalog(catalog, posters), posters, store, real_embedder, progress=False, workers=0)
        query = posters / sorted(p.name for p in posters.iterdir())[3]
        from poster_search.search.neighbours import image_embedder

        embedder = image_embedder(store, str(real_weights))
        neighbours = PosterSearch(store, embedder).by_image(query, k=8)
        maps = explain_search(store, query, neighbours, str(real_weights), embedder)
        again, asked = PosterSearch(store, embedder).by_image_query(query, k=8)  # the grid from the search's own pass
        from_search = explain_search(store, asked, again, str(real_weights), embedder)
    assert [n.id for n in again] == [n.id for n in neighbours] and asked.grid is not None  # one pass or two: the same search
    assert np.allclose([n.score for n in again], [n.score for n in neighbours], atol=1e-6)
    assert all(
        np.allclose(a.on_query, b.on_query, atol=1e-6) and np.allclose(a.on_neighbour, b.on_neighbour, atol=1e-6)
        for a, b in zip(maps, from_search)
    )
    assert len(maps) == 8
    for m in maps:
        assert m.on_neighbour.shape == m.on_query.shape == (7, 7)
        assert (m.on_neighbour >= 0).all() and (m.on_query >= 0).all()  # shares of the score, never negative
        assert abs(m.on_neighbour.sum() - m.neighbour.score) < 1e-4, (m.on_neighbour.sum(), m.neighbour.score)
        assert abs(m.on_query.sum() - m.neighbour.score) < 1e-4
    assert len({round(float(m.on_neighbour.max() / m.total), 3) for m in maps}) > 1  # the maps differ: they say something


def test_a_cached_grid_is_never_that_of_a_replaced_poster_file(generated, tmp_path):
    """The server keeps recent grids (one forward pass each); a poster file replaced since is read again."""
    from poster_search.search.explain import Explainer, GridCache
    from poster_search.search.neighbours import image_embedder
    from poster_search.search.titles import find_film

    tmp, store_folder, _ = generated
    posters = tmp_path / "posters"
    shutil.copytree(tmp / "posters", posters)
    with PosterStore(StoreLocation(path=store_folder)) as store:
        embedder = image_embedder(store, "random")
        query = find_film(store, title="Film 3")
        neighbours = PosterSearch(store).by_point(query, k=2)
        store.posters_dir = lambda: posters  # this test's copy of the folder, which it may change
        cache = GridCache()
        explainer = Explainer(store, embedder, cache)
        vector, grid = explainer.query_from_point(query)
        before = explainer.neighbours(vector, grid, neighbours)[0].on_neighbour
        assert np.array_equal(explainer.neighbours(vector, grid, neighbours)[0].on_neighbour, before)  # from the cache
        replaced = posters / neighbours[0].poster.file
        Image.open(posters / "20.jpg").save(replaced)  # another image under the same name
        after = explainer.neighbours(vector, grid, neighbours)[0].on_neighbour
        fresh = Explainer(store, embedder).neighbours(vector, grid, neighbours)[0].on_neighbour
    assert not np.allclose(after, before) and np.allclose(after, fresh, atol=1e-6)


def test_cell_terms_are_the_exact_split_of_the_cosine():
    rng = np.random.default_rng(0)
    grid = np.abs(rng.normal(size=(7, 7, 512)))
    q = np.abs(rng.normal(size=512))
    q /= np.linalg.norm(q)
    mean = grid.reshape(49, 512).mean(axis=0)
    assert np.isclose(cell_terms(q, grid).sum(), q @ (mean / np.linalg.norm(mean)), atol=1e-12)
    hot = grid.copy()
    hot[2, 5] *= 10  # one cell far brighter: it holds the largest share
    assert np.unravel_index(cell_terms(q, hot).argmax(), (7, 7)) == (2, 5)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """40 generated posters over eight decades, two of them byte-identical copies, ingested (random weights)."""
    tmp = tmp_path_factory.mktemp("overview")
    catalog, _ = generated_catalog(tmp, 40, seed=700, start_year=1940, step=2, size=(120, 180))
    shutil.copy(tmp / "posters" / "7.jpg", tmp / "posters" / "copy.jpg")  # the same file under another name
    catalog.write_text(catalog.read_text() + "copy.jpg,Film 7 again,2020\n")
    store = tmp / "store"
    made = run_cli(
        "ingest",
        "--catalog",
        catalog,
        "--posters",
        tmp / "posters",
        "--qdrant-path",
        store,
        "--weights",
        "random",
        "--rejects",
        tmp / "r.csv",
    )
    assert made.returncode == 0, made.stderr
    return tmp, store, catalog


def test_search_explain_writes_the_maps_and_refuses_the_style_vector(generated, tmp_path):
    tmp, store, _ = generated
    out = tmp_path / "why.png"
    result = run_cli("search", "--title", "Film 3", "-k", "4", "--explain", out, "--qdrant-path", store, "--weights", "random")
    assert result.returncode == 0, result.stderr
    image = Image.open(out)
    assert image.width > 5 * 200 and image.height > 2 * 300  # the query and four columns of two posters each
    result = run_cli("search", tmp / "posters" / "5.jpg", "--explain", tmp_path / "x.png", "--qdrant-path", store, "--weights", "random")
    assert result.returncode == 0, result.stderr
    refused = run_cli("search", "--title", "Film 3", "--vector", "vgg16_style", "--explain", out, "--qdrant-path", store)
    assert refused.returncode == 1 and "exist for the vgg16 vector only" in refused.stderr


def test_the_poster_map_is_computed_once_per_collection_state(generated, tmp_path, monkeypatch):
    from poster_search.search.poster_map import poster_map

    monkeypatch.setenv("POSTER_SEARCH_CACHE", str(tmp_path / "cache"))
    tmp, store, catalog = generated
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    with PosterStore(StoreLocation(path=copy)) as db:
        first = poster_map(db)
        again = poster_map(db)
    assert first.seconds > 0 and again.seconds == 0  # the second came from the cache
    assert first.xy.shape == (41, 2) and (0 <= first.xy).all() and (first.xy <= 1).all()
    assert np.array_equal(first.xy, again.xy) and list(first.ids) == list(again.ids)
    assert [d["decade"] for d in first.decades] == sorted(d["decade"] for d in first.decades) and len(first.decades) == 9
    with PosterStore(StoreLocation(path=copy)) as db:  # the collection changes: a title corrected
        [point] = [p for p in db.points(with_vectors=False) if p.payload["title"] == "Film 1"]
        db.overwrite_payloads([(point.id, {**point.payload, "title": "Film One"})])
        changed = poster_map(db)
    assert changed.seconds > 0 and changed.fingerprint != first.fingerprint and "Film One" in changed.titles
    # neighbours stay neighbours: the identical pair sits at (nearly) the same place
    a, b = (list(first.titles).index(t) for t in ("Film 7", "Film 7 again"))
    spread = np.linalg.norm(first.xy[:, None] - first.xy[None], axis=-1)
    assert spread[a, b] < np.median(spread)


def test_map_command_writes_the_picture_and_the_coordinates(generated, tmp_path, monkeypatch):
    monkeypatch.setenv("POSTER_SEARCH_CACHE", str(tmp_path / "cache"))
    _, store, _ = generated
    result = run_cli("map", "--out", tmp_path / "map.png", "--json", "--json-out", tmp_path / "map.json", "--qdrant-path", store)
    assert result.returncode == 0, result.stderr
    assert "41 posters mapped" in result.stderr and Image.open(tmp_path / "map.png").width > 500
    data = json.loads((tmp_path / "map.json").read_text())
    assert json.loads(result.stdout) == data  # --json prints what --json-out writes, and nothing else
    assert len(data["posters"]) == 41 and {"id", "title", "year", "x", "y"} <= set(data["posters"][0]) and data["decades"]
    assert "from the cache" in run_cli("map", "--out", tmp_path / "map2.png", "--qdrant-path", store).stdout


def test_the_timeline_finds_each_decades_most_and_least_typical_posters(generated):
    from poster_search.search.timeline import era_timeline

    _, store, _ = generated
    with PosterStore(StoreLocation(path=store)) as db:
        steps = era_timeline(db, per_decade=2)
        points = [p for p in db.points() if p.payload.get("year") is not None]
    assert [s.decade for s in steps] == sorted(s.decade for s in steps)
    previous = None
    for step in steps:
        members = [p for p in points if p.payload["year"] // 10 * 10 == step.decade]
        vectors = np.stack([p.vector for p in members])
        centre = vectors.mean(axis=0) / np.linalg.norm(vectors.mean(axis=0))
        order = np.argsort(-(vectors @ centre))
        shown = min(2, (len(members) + 1) // 2)  # a decade of 3 shows 2 typical and 1 least typical poster
        assert [p.id for p in step.typical] == [members[i].id for i in order[:shown]]
        assert [p.id for p in step.atypical] == [members[i].id for i in order[::-1][: min(2, len(members) - shown)]]
        assert step.posters == len(members) and abs(step.cohesion - float((vectors @ centre).mean())) < 1e-5
        assert (step.moved is None) == (previous is None)
        if previous is not None:
            assert abs(step.moved - float(1 - centre @ previous)) < 1e-5
        previous = centre


def test_a_small_decade_shows_each_poster_once(generated):
    """Three of each kind asked for: a decade of fewer than six shows each of its posters once, the
    more typical half (rounded up) as typical; a larger one three and three, never one twice."""
    from poster_search.search.timeline import era_timeline

    _, store, _ = generated
    with PosterStore(StoreLocation(path=store)) as db:
        steps = era_timeline(db, per_decade=3)
    assert min(s.posters for s in steps) < 6 <= max(s.posters for s in steps)
    for step in steps:
        shown = [p.id for p in step.typical + step.atypical]
        assert len(step.typical) == min(3, (step.posters + 1) // 2) and len(shown) == len(set(shown)) == min(6, step.posters)


def test_era_timeline_command(generated, tmp_path):
    _, store, _ = generated
    result = run_cli("era", "-k", "2", "--timeline", tmp_path / "timeline.png", "--qdrant-path", store)
    assert result.returncode == 0, result.stderr
    assert "most typical" in result.stdout and "1940s" in result.stdout and Image.open(tmp_path / "timeline.png").height > 300


def test_near_duplicates_are_every_pair_above_the_threshold_exactly(generated, monkeypatch):
    from poster_search.search import duplicates
    from poster_search.search.duplicates import near_duplicates

    _, store, _ = generated
    monkeypatch.setattr(duplicates, "BATCH", 5)  # pairs across the batches the posters are read in
    with PosterStore(StoreLocation(path=store)) as db:
        points = list(db.points())
        for threshold, exact in ((0.999, True), (0.98, True), (0.98, False)):
            pairs = near_duplicates(db, threshold, exact=exact)
            vectors = np.stack([p.vector for p in points])
            sims = vectors @ vectors.T
            expected = {
                tuple(sorted((points[i].id, points[j].id)))
                for i in range(len(points))
                for j in range(i + 1, len(points))
                if sims[i, j] >= threshold
            }
            assert {(p.a.id, p.b.id) for p in pairs} == expected  # exact: none missed, none extra
    with PosterStore(StoreLocation(path=store)) as db:
        [identical] = [p for p in near_duplicates(db, 0.999) if p.identical]
    assert {identical.a.title, identical.b.title} == {"Film 7", "Film 7 again"} and identical.score > 0.9999
    shown = run_cli("duplicates", "--threshold", "0.999", "--qdrant-path", store)
    assert shown.returncode == 0 and "Film 7 again" in shown.stdout and "=" in shown.stdout


def test_the_map_pictures_decade_labels_never_overlap():
    """Ten decades whose centres crowd together (as on a map where the middle decades overlap):
    every label placed is clear of every other, and most find a place."""
    from poster_search.search.figures import _pyplot, place_labels

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.set(xlim=(0, 1), ylim=(0, 1))
    crowd = [(0.5 + 0.01 * (i % 3), 0.5 + 0.01 * (i // 3), f"{1930 + 10 * i}s") for i in range(10)]
    placed = place_labels(fig, ax, crowd)
    boxes = [t.get_window_extent(fig.canvas.get_renderer()) for t in placed]
    assert len(placed) >= 8
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    plt.close(fig)
