"""The ingest pipeline on generated posters, a real local store and a real (random-weights) VGG16."""

import csv

import numpy as np
import pytest

from poster_search.ingest.catalog import read_catalog
from poster_search.ingest.pipeline import ingest, write_rejects
from poster_search.store.collection import PosterStore
from poster_search.store.embeddings import load_embeddings
from poster_search.store.exchange import export_npz
from poster_search.store.schema import point_id
from tests.conftest import CountingEmbedder

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer


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
    assert {k: point.payload[k] for k in ("key", "title", "year", "file")} == {
        "key": "3.jpg",
        "title": "Film 3",
        "year": 1953,
        "file": "3.jpg",
    }
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
        export_npz(store, tmp_path / "e.npz")
    assert embeddings.vectors.shape == (4, 512)
    assert list(embeddings.ids) == sorted(point_id(f"{i}.jpg") for i in range(4))
    by_title = dict(zip(embeddings.titles, embeddings.years))
    assert by_title == {f"Film {i}": 1950 + i for i in range(4)}
    with np.load(tmp_path / "e.npz") as npz:
        assert npz["embeddings"].shape == (4, 512)
        assert np.array_equal(npz["ids"], embeddings.ids)
        assert np.array_equal(npz["years"], embeddings.years)


def test_export_of_a_missing_collection_is_a_clear_error(location):
    from poster_search.errors import PosterSearchError

    with PosterStore(location) as store, pytest.raises(PosterSearchError, match="no collection"):
        load_embeddings(store)


def test_worker_processes_store_what_a_thread_stores_and_reject_every_odd_file(poster_set, tmp_path, random_embedder):
    """Decoding in worker processes (the default) is the same as in-process; a FIFO, a folder named
    like a poster, broken EXIF data and a sparse 200 MB file are rejects with their reason, never an abort."""
    import os

    from tests.test_images import _broken_exif_jpeg

    catalog_csv, posters = poster_set(40)
    os.remove(posters / "3.jpg")
    os.mkfifo(posters / "3.jpg")
    os.remove(posters / "7.jpg")
    (posters / "7.jpg").mkdir()
    _broken_exif_jpeg(posters / "11.jpg")
    with open(posters / "20.jpg", "r+b") as f:
        f.truncate(200 * 2**20)
    from poster_search.store.connection import StoreLocation

    threads, processes = StoreLocation(path=tmp_path / "threads"), StoreLocation(path=tmp_path / "processes")
    report, _, count = run(catalog_csv, posters, threads, random_embedder, workers=0, batch_size=8)
    report2, _, count2 = run(catalog_csv, posters, processes, random_embedder, workers=2, batch_size=8)
    assert (report2.ingested, count2, report2.workers) == (report.ingested, count, 2) == (36, 36, 2)
    reasons = {r.key: r.reason for r in report2.rejects}
    assert sorted(reasons) == ["11.jpg", "20.jpg", "3.jpg", "7.jpg"]
    assert "not a regular file" in reasons["3.jpg"] and "is a folder" in reasons["7.jpg"]  # the catalog may see these first
    assert reasons["11.jpg"].startswith("corrupt image (error: ")  # struct.error from Pillow's EXIF reader
    assert reasons["20.jpg"] == "file is 200 MB, over the 128 MB limit"
    assert reasons == {r.key: r.reason for r in report.rejects}
    with PosterStore(threads) as a, PosterStore(processes) as b:
        va = {p.id: p.vector for p in a.points()}
        vb = {p.id: p.vector for p in b.points()}
    assert va.keys() == vb.keys() and all(np.allclose(va[k], vb[k], atol=1e-6) for k in va)


def test_summary_names_the_stage_that_bound_the_run(poster_set, location, random_embedder):
    catalog_csv, posters = poster_set(6)
    report, _, _ = run(catalog_csv, posters, location, random_embedder, batch_size=4, workers=1)
    assert set(report.busy) == {"decode", "model", "store"}
    assert all(0 <= v <= 1.0 for v in report.busy.values())
    assert report.busy["model"] > report.busy["store"]  # VGG16 on a CPU dwarfs the rest
    summary = report.summary()
    assert "busy: decode " in summary and "bound by model" in summary and "batch 4" in summary
    noop, _, _ = run(catalog_csv, posters, location, random_embedder)
    assert "busy" not in noop.summary()  # nothing ran: no stage figures


def test_the_decode_pool_works_ahead_of_a_slow_consumer_but_never_further_than_its_bound(poster_set):
    """While the model is busy with one chunk, the workers decode the next ones (that is the overlap)
    and hold no more than `ahead` in all (that is the flat memory); chunks come back in order."""
    import time

    from poster_search.ingest.decode import DecodePool

    _, posters = poster_set(12)
    chunks = [[str(posters / f"{i}.jpg")] for i in range(12)]
    with DecodePool(workers=1, ahead=3) as pool:
        decoded = pool.decode(chunks)
        first = next(decoded)
        deadline = time.monotonic() + 30
        while pool.ahead_of_caller()[1] < 2 and time.monotonic() < deadline:  # the consumer is busy elsewhere
            time.sleep(0.05)
        assert pool.ahead_of_caller() == (2, 2)  # the next two decoded meanwhile: ahead of the caller, and no more
        assert pool.submitted == 3
        rest = [next(decoded)]
        assert pool.ahead_of_caller()[0] == 2 and pool.submitted == 4  # one taken, one more handed out: still 3 in all
        rest += list(decoded)
    assert len(first.kept) == 1 and len(rest) == 11 and pool.submitted == 12
    assert [r.hashes for r in [first, *rest]] == [[decode_hash(posters / f"{i}.jpg")] for i in range(12)]  # in catalog order


def decode_hash(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_store_error_stops_the_pipeline_with_that_error():
    from poster_search.ingest.writer import StoreWriter

    written = []

    def write(item):
        if item == 3:
            raise RuntimeError("store went away")
        written.append(item)

    writer = StoreWriter(write, depth=1)
    with pytest.raises(RuntimeError, match="store went away"):
        for item in range(100):
            writer.put(item)
        writer.close()
    writer.close()  # closing after the error is quiet, and writes nothing more
    assert written == [0, 1, 2]
