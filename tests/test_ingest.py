"""The ingest pipeline on generated posters, a real local store and a real (random-weights) VGG16."""

import csv

import numpy as np
import pytest

from ingest.catalog import read_catalog
from ingest.pipeline import ingest, write_rejects
from store.collection import PosterStore
from store.embeddings import load_embeddings, save_npz
from store.schema import point_id


class CountingEmbedder:
    """The real embedder, counting the posters it is asked to embed."""

    def __init__(self, embedder):
        self.embedder, self.spec, self.style_spec, self.calls = embedder, embedder.spec, embedder.style_spec, 0

    def load(self):
        self.embedder.load()

    def embed_both(self, pixels):
        self.calls += len(pixels)
        return self.embedder.embed_both(pixels)


def run(catalog_csv, posters, location, embedder, **kwargs):
    counting = CountingEmbedder(embedder)
    with PosterStore(location) as store:
        report = ingest(read_catalog(catalog_csv, posters), posters, store, counting, progress=False, **kwargs)
        return report, counting.calls, store.count()


def test_ingest_stores_every_poster_with_its_payload(poster_set, location, random_embedder):
    catalog_csv, posters = poster_set(7)
    report, embedded, count = run(catalog_csv, posters, location, random_embedder, batch_size=3)
    assert (report.ingested, report.already_stored, len(report.rejects), embedded, count) == (7, 0, 0, 7, 7)
    with PosterStore(location) as store:
        [point] = store.retrieve([point_id("3.jpg")], with_vectors=True)
    assert {k: point.payload[k] for k in ("key", "title", "year", "file")} == {"key": "3.jpg", "title": "Film 3", "year": 1953, "file": "3.jpg"}
    assert len(point.payload["sha256"]) == 64
    expected = random_embedder.embed([posters / "3.jpg"])[0]
    assert np.allclose(point.vector, expected, atol=1e-5)  # stored what the model computes for that file


def test_rerun_embeds_nothing_and_duplicates_nothing(poster_set, location, random_embedder):
    catalog_csv, posters = poster_set(5)
    run(catalog_csv, posters, location, random_embedder, limit=3)
    report, embedded, count = run(catalog_csv, posters, location, random_embedder)
    assert (report.ingested, report.already_stored, embedded, count) == (2, 3, 2, 5)
    report, embedded, count = run(catalog_csv, posters, location, random_embedder)
    assert (report.ingested, report.already_stored, embedded, count) == (0, 5, 0, 5)
    report, embedded, count = run(catalog_csv, posters, location, random_embedder, recreate=True)
    assert (report.ingested, report.already_stored, count) == (5, 0, 5)


def test_corrupt_and_non_image_posters_are_rejected_and_the_rest_stored(poster_set, location, random_embedder, tmp_path):
    catalog_csv, posters = poster_set(6)
    (posters / "1.jpg").write_text("this is a text file")
    data = (posters / "4.jpg").read_bytes()
    (posters / "4.jpg").write_bytes(data[: len(data) // 3])
    report, embedded, count = run(catalog_csv, posters, location, random_embedder, batch_size=2)
    assert (report.ingested, count) == (4, 4)
    assert sorted((r.key, r.reason.split(" (")[0]) for r in report.rejects) == [
        ("1.jpg", "not an image file"),
        ("4.jpg", "corrupt image"),
    ]
    write_rejects(report.rejects, tmp_path / "rejects.csv")
    with open(tmp_path / "rejects.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["line"], r["key"]) for r in rows] == [("3", "1.jpg"), ("6", "4.jpg")]
    # a fixed poster is picked up by the next run
    from tests.conftest import make_poster

    make_poster(posters / "1.jpg", seed=1)
    report, _, count = run(catalog_csv, posters, location, random_embedder)
    assert (report.ingested, report.already_stored, count) == (1, 4, 5)


def test_a_batch_of_only_rejects_and_an_all_reject_catalog(poster_set, location, random_embedder):
    catalog_csv, posters = poster_set(2)
    for name in ("0.jpg", "1.jpg"):
        (posters / name).write_bytes(b"")
    report, embedded, count = run(catalog_csv, posters, location, random_embedder)
    assert (report.ingested, len(report.rejects), embedded, count) == (0, 2, 0, 0)


def test_export_is_one_array_with_ids_titles_years(poster_set, location, random_embedder, tmp_path):
    catalog_csv, posters = poster_set(4)
    run(catalog_csv, posters, location, random_embedder)
    with PosterStore(location) as store:
        embeddings = load_embeddings(store)
    assert embeddings.vectors.shape == (4, 512)
    assert list(embeddings.ids) == sorted(point_id(f"{i}.jpg") for i in range(4))
    by_title = dict(zip(embeddings.titles, embeddings.years))
    assert by_title == {f"Film {i}": 1950 + i for i in range(4)}
    save_npz(embeddings, tmp_path / "e.npz")
    with np.load(tmp_path / "e.npz") as npz:
        assert npz["embeddings"].shape == (4, 512)
        assert np.array_equal(npz["ids"], embeddings.ids)
        assert np.array_equal(npz["years"], embeddings.years)


def test_export_of_a_missing_collection_is_a_clear_error(location):
    from errors import UserError

    with PosterStore(location) as store, pytest.raises(UserError, match="no collection"):
        load_embeddings(store)
