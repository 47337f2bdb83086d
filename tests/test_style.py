"""The style embedding: its shape and determinism, stored beside the original, and the comparison."""

import numpy as np
import pytest

from poster_search.embedding.model import Embedder
from poster_search.embedding.spec import STYLE_CHANNELS
from poster_search.errors import PosterSearchError
from poster_search.ingest.catalog import read_catalog
from poster_search.ingest.pipeline import ingest
from poster_search.regression.compare import read_for_comparison, train_for_comparison
from poster_search.regression.config import HeadConfig
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.schema import STYLE_VECTOR_NAME, VECTOR_NAME
from tests.conftest import make_poster

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer


@pytest.fixture(scope="module")
def style_embedder():
    return Embedder(None, style=True)


def test_style_vector_shape_blocks_and_determinism(style_embedder, random_embedder, tmp_path):
    paths = [make_poster(tmp_path / f"{i}.jpg", seed=i) for i in range(3)]
    pixels = np.stack([np.asarray(__import__("poster_search.embedding.images", fromlist=["x"]).decode_poster(p).pixels) for p in paths])
    base, style = style_embedder.embed_both(pixels)
    assert style.shape == (3, 2 * sum(STYLE_CHANNELS)) == (3, 2944) and style.dtype == np.float32
    assert np.allclose(np.linalg.norm(style, axis=1), 1.0, atol=1e-5)
    # five layers, each normalised on its own: every block holds an equal share of the length
    edges = np.cumsum([0, *[2 * c for c in STYLE_CHANNELS]])
    for start, end in zip(edges, edges[1:]):
        assert np.allclose(np.linalg.norm(style[:, start:end], axis=1), 1 / np.sqrt(5), atol=1e-5)
    assert np.allclose(Embedder(None, style=True).embed_both(pixels)[1], style, atol=1e-5)  # same in every build
    assert np.array_equal(base, random_embedder.embed_pixels(pixels))  # the original vector is unchanged
    assert style_embedder.style_spec.dim == 2944 and style_embedder.style_spec.layer.count("+") == 4


def run(catalog, posters, location, embedder):
    with PosterStore(location) as store:
        return ingest(read_catalog(catalog, posters), posters, store, embedder, progress=False)


def test_style_is_stored_beside_the_original(poster_set, tmp_path, style_embedder):
    catalog, posters = poster_set(4)
    location = StoreLocation(path=tmp_path / "store")
    run(catalog, posters, location, style_embedder)
    with PosterStore(location) as store:
        assert store.vectors() == {VECTOR_NAME: 512, STYLE_VECTOR_NAME: 2944}
        assert store.stored_spec(STYLE_VECTOR_NAME) == style_embedder.style_spec
        assert len(list(store.points(vector_name=STYLE_VECTOR_NAME))) == 4 == len(list(store.points()))


def test_style_is_added_to_an_existing_store_without_touching_what_is_stored(poster_set, tmp_path, random_embedder, style_embedder):
    catalog, posters = poster_set(5)
    location = StoreLocation(path=tmp_path / "store")
    run(catalog, posters, location, random_embedder)  # the original embedding only
    with PosterStore(location) as store:
        before = {p.id: (p.payload, p.vector) for p in store.points()}
        with pytest.raises(PosterSearchError, match="no 'vgg16_style' vector.*ingest with --style"):
            store.stored_spec(STYLE_VECTOR_NAME)

    report = run(catalog, posters, location, style_embedder)
    assert (report.ingested, report.already_stored, report.style_added) == (0, 5, 5)
    with PosterStore(location) as store:
        after = {p.id: (p.payload, p.vector) for p in store.points()}
        assert store.ids_without(STYLE_VECTOR_NAME) == set() and store.count() == 5
    assert set(after) == set(before)
    for pid, (payload, vector) in before.items():
        assert after[pid][0] == payload and np.array_equal(after[pid][1], vector)

    assert run(catalog, posters, location, style_embedder).style_added == 0  # nothing left to do
    make_poster(posters / "new.jpg", seed=77)
    with open(catalog, "a") as f:
        f.write("new.jpg,New Film,2001\n")
    report = run(catalog, posters, location, style_embedder)
    assert (report.ingested, report.style_added) == (1, 0)
    with PosterStore(location) as store:
        assert store.ids_without(STYLE_VECTOR_NAME) == set()


def test_comparison_on_a_small_store(poster_set, tmp_path, random_embedder, style_embedder):
    catalog, posters = poster_set(30)
    location = StoreLocation(path=tmp_path / "store")
    run(catalog, posters, location, random_embedder)
    config = HeadConfig(hidden=(16,), members=1, epochs=5)
    with PosterStore(location) as store, pytest.raises(PosterSearchError, match="no 'vgg16_style' vector"):
        read_for_comparison(store, progress=False)
    run(catalog, posters, location, style_embedder)
    with PosterStore(location) as store:  # read, then close: as `compare` does, the store is free while the heads train
        data, era = read_for_comparison(store, seed=1, progress=False)
    result = train_for_comparison(data, era, tmp_path / "models", seed=1, config=config, knn_k=3, progress=False)
    assert set(result.year) == set(result.era) == {VECTOR_NAME, STYLE_VECTOR_NAME}
    assert 2 <= result.n_test <= 12  # about 20 % of 30, decided by each poster's content hash
    for vector in (VECTOR_NAME, STYLE_VECTOR_NAME):
        assert set(result.era[vector]) == {3, 10}
        assert (
            result.year[vector]["mean of training years"]["mae"] == result.year[VECTOR_NAME]["mean of training years"]["mae"]
        )  # same split
        assert (tmp_path / "models" / vector / "model.keras").is_file()
    table = result.table()
    assert "vgg16_style" in table and "3 nearest neighbours" in table and "head MAE" in table

    # the style model predicts the year of a new poster from the style vector
    from poster_search.regression.model_file import YearModel
    from poster_search.regression.predict import predict_year

    model = YearModel.load(tmp_path / "models" / STYLE_VECTOR_NAME)
    assert model.uses_style
    prediction = predict_year(make_poster(tmp_path / "q.jpg", seed=5), model, style_embedder)
    assert 1900 < prediction.year < 2100
    with pytest.raises(PosterSearchError, match="no style vector"):
        predict_year(make_poster(tmp_path / "q.jpg", seed=5), model, random_embedder)


def test_search_by_the_style_vector_from_the_cli(poster_set, tmp_path, style_embedder):
    import json

    from tests.conftest import run_cli

    catalog, posters = poster_set(5)
    location = StoreLocation(path=tmp_path / "store")
    run(catalog, posters, location, style_embedder)
    with PosterStore(location) as store:
        points = {p.payload["title"]: p for p in store.points(vector_name=STYLE_VECTOR_NAME)}
    query = points["Film 1"]
    others = sorted((p for t, p in points.items() if t != "Film 1"), key=lambda p: -float(p.vector @ query.vector))
    expected = [p.payload["title"] for p in others[:3]]
    for args in (["--title", "Film 1"], [str(posters / "1.jpg"), "--weights", "random"]):
        result = run_cli("search", *args, "--vector", STYLE_VECTOR_NAME, "-k", "3", "--json", "--qdrant-path", location.path)
        assert result.returncode == 0, result.stderr
        assert [n["title"] for n in json.loads(result.stdout)["neighbours"]] == expected  # ranked by the style vector
    result = run_cli("search", "--title", "Film 1", "--vector", "nope", "--qdrant-path", location.path)
    assert result.returncode == 2 and "'nope' is not one of 'vgg16', 'vgg16_style'" in result.stderr and result.stderr.count("\n") == 1
