"""A few dozen real posters from ../shared/data with the real ImageNet weights (skipped without them)."""

import numpy as np
import pytest

from poster_search.ingest.catalog import read_catalog
from poster_search.ingest.pipeline import ingest
from poster_search.store.collection import PosterStore
from poster_search.store.embeddings import load_embeddings
from tests.conftest import catalog_rows, real_subset

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer

IDENTICAL_PAIR = ("1489210.jpg", "1489211.jpg")  # two catalog entries, byte-identical posters
GREYSCALE = ("1129566.jpg", "1264465.jpg")


@pytest.fixture(scope="module")
def real_store(era_data, real_embedder, tmp_path_factory):
    """34 real posters (the first 30 rows, an identical pair, two greyscale ones) ingested for real."""
    rows = catalog_rows(era_data[0])
    picked = rows[:30] + [r for r in rows if r["filename"] in IDENTICAL_PAIR + GREYSCALE]
    tmp = tmp_path_factory.mktemp("real")
    real_subset(era_data, picked, tmp)
    from poster_search.store.connection import StoreLocation

    location = StoreLocation(path=tmp / "store")
    embedder = real_embedder
    with PosterStore(location) as store:
        report = ingest(read_catalog(tmp / "movies.csv", tmp / "posters"), tmp / "posters", store, embedder, progress=False)
    return picked, location, report, embedder, tmp


def test_every_real_poster_is_stored_with_its_catalog_payload(real_store):
    picked, location, report, _, _ = real_store
    assert (report.ingested, len(report.rejects)) == (34, 0)
    with PosterStore(location) as store:
        embeddings = load_embeddings(store)
    assert embeddings.vectors.shape == (34, 512)
    stored = {(f, t, int(y)) for f, t, y in zip(embeddings.files, embeddings.titles, embeddings.years)}
    assert stored == {(r["filename"], r["title"], int(r["release_year"])) for r in picked}


def test_real_embeddings_put_identical_and_edited_posters_nearest(real_store):
    _, location, _, embedder, tmp = real_store
    with PosterStore(location) as store:
        e = load_embeddings(store)
    similarity = e.vectors @ e.vectors.T
    a, b = (list(e.files).index(name) for name in IDENTICAL_PAIR)
    assert similarity[a, b] > 0.9999
    # The same poster, brightened and trimmed at the edges, is still closest to its original.
    from PIL import Image, ImageEnhance

    original = Image.open(tmp / "posters" / e.files[0])
    w, h = original.size
    edited = ImageEnhance.Brightness(original.crop((8, 12, w - 8, h - 12))).enhance(1.3)
    query = embedder.embed([edited])[0]
    assert int(np.argmax(e.vectors @ query)) == 0


def test_rerun_on_real_data_is_a_no_op(real_store):
    _, location, _, embedder, tmp = real_store
    with PosterStore(location) as store:
        report = ingest(read_catalog(tmp / "movies.csv", tmp / "posters"), tmp / "posters", store, embedder, progress=False)
        assert (report.ingested, report.already_stored, store.count()) == (0, 34, 34)
