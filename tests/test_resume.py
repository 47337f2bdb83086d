"""Ingest under change: replaced posters, corrected rows, films gone, --recreate that must not lose
data, a second posters folder. Real local stores, real (random-weights) VGG16, generated posters."""

from pathlib import Path

import numpy as np
import pytest

from poster_search.ingest.catalog import read_catalog
from poster_search.ingest.pipeline import ingest
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.schema import point_id
from tests.conftest import CountingEmbedder, ingest_args, make_poster, run_cli, write_csv

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer

HEADER = ["filename", "title", "release_year", "genres"]


def films(n: int) -> list[list]:
    return [[f"{i}.jpg", f"Film {i}", 1950 + i, "Drama"] for i in range(n)]


def run(rows, posters: Path, location, embedder, tmp_path: Path, **kwargs):
    csv = write_csv(tmp_path / "movies.csv", HEADER, rows)
    counting = CountingEmbedder(embedder)
    with PosterStore(location) as store:
        report = ingest(read_catalog(csv, posters), posters, store, counting, progress=False, **kwargs)
    return report, counting.calls


def stored(location) -> dict[str, tuple[dict, np.ndarray | None]]:
    with PosterStore(location) as store:
        return {p.id: (p.payload, p.vector) for p in store.points()}


def make_posters(folder: Path, n: int, seed: int = 0) -> Path:
    for i in range(n):
        make_poster(folder / f"{i}.jpg", seed=seed + i)
    return folder


def test_replaced_posters_are_embedded_again_and_corrected_rows_rewritten_without_embedding(tmp_path, location, random_embedder):
    posters = make_posters(tmp_path / "posters", 5)
    report, embedded = run(films(5), posters, location, random_embedder, tmp_path)
    assert (report.ingested, embedded) == (5, 5)
    before = stored(location)

    make_poster(posters / "1.jpg", seed=99)  # another image under the same name
    rows = films(5)
    rows[2][1] = "Film Two, corrected"
    rows[3][2] = 1961
    rows[4][3] = "Drama|War"
    report, embedded = run(rows, posters, location, random_embedder, tmp_path)
    assert (report.ingested, report.updated, report.already_stored, embedded) == (0, 4, 1, 1)  # only 1.jpg embedded
    assert "ingested 0, already stored 1, updated 4, rejected 0" in report.summary()

    after = stored(location)
    assert len(after) == 5
    payload, vector = after[point_id("1.jpg")]
    assert np.allclose(vector, random_embedder.embed([posters / "1.jpg"])[0], atol=1e-5)
    assert not np.allclose(vector, before[point_id("1.jpg")][1], atol=1e-3)
    assert payload["sha256"] != before[point_id("1.jpg")][0]["sha256"]
    assert after[point_id("2.jpg")][0]["title"] == "Film Two, corrected"
    assert after[point_id("3.jpg")][0]["year"] == 1961
    assert after[point_id("4.jpg")][0]["genres"] == ["Drama", "War"]
    for i in (0, 2, 3, 4):  # rewritten payloads keep their vector and sha256
        pid = point_id(f"{i}.jpg")
        assert np.array_equal(after[pid][1], before[pid][1])
        assert after[pid][0]["sha256"] == before[pid][0]["sha256"]
    assert after[point_id("0.jpg")][0] == before[point_id("0.jpg")][0]

    report, embedded = run(rows, posters, location, random_embedder, tmp_path)  # and now nothing to do
    assert (report.ingested, report.updated, report.already_stored, embedded) == (0, 0, 5, 0)


def test_films_gone_from_the_catalog_are_reported_and_removed_only_with_prune(tmp_path, location, random_embedder):
    posters = make_posters(tmp_path / "posters", 5)
    run(films(5), posters, location, random_embedder, tmp_path)

    report, _ = run(films(5), posters, location, random_embedder, tmp_path, limit=2)  # --limit: not gone
    assert report.gone == 0
    rows = films(5)
    rows[4][2] = "19x9"  # a row rejected this time is still in the catalog: not gone
    report, _ = run(rows, posters, location, random_embedder, tmp_path, prune=True)
    assert (report.gone, len(report.rejects), len(stored(location))) == (0, 1, 5)

    report, embedded = run(films(3), posters, location, random_embedder, tmp_path)
    assert (report.gone, embedded, len(stored(location))) == (2, 0, 5)
    assert "2 stored films are no longer in the catalog (--prune removes them)" in report.summary()

    report, embedded = run(films(3), posters, location, random_embedder, tmp_path, prune=True)
    assert (report.gone, embedded) == (2, 0)
    assert "removed 2 stored films that are no longer in the catalog" in report.summary()
    assert set(stored(location)) == {point_id(f"{i}.jpg") for i in range(3)}


# --- through the command line -----------------------------------------------------------------


def cli(*args) -> tuple[int, str]:
    result = run_cli(*args)
    return result.exit_code, result.output


def test_recreate_deletes_nothing_until_weights_and_catalog_are_usable(tmp_path):
    posters = make_posters(tmp_path / "posters", 3)
    catalog = write_csv(tmp_path / "movies.csv", HEADER, films(3))
    store = tmp_path / "store"
    code, out = cli(*ingest_args(catalog, posters, store))
    assert code == 0, out
    before = stored(StoreLocation(path=store))

    not_h5 = tmp_path / "weights.h5"
    not_h5.write_text("not a weights file")
    code, out = cli(*ingest_args(catalog, posters, store, "--recreate", weights=not_h5))
    assert code == 1 and "nothing was deleted" in out and "Traceback" not in out, out

    all_rejected = write_csv(tmp_path / "bad.csv", HEADER, [["missing.jpg", "Gone", 1950, ""]])
    code, out = cli(*ingest_args(all_rejected, posters, store, "--recreate"))
    assert code == 1 and "no usable rows" in out and "nothing was deleted" in out, out

    if not (Path.home() / ".keras" / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5").exists():
        code, out = cli(*ingest_args(catalog, posters, store, "--recreate", weights="imagenet"))
        assert code == 1 and "nothing was deleted" in out, out  # offline: no download

    after = stored(StoreLocation(path=store))
    assert after.keys() == before.keys()
    assert all(np.array_equal(after[k][1], before[k][1]) and after[k][0] == before[k][0] for k in before)

    code, out = cli(*ingest_args(catalog, posters, store, "--recreate"))  # usable: it does start over
    assert code == 0 and "ingested 3, already stored 0" in out, out


def test_prune_from_the_command_line(tmp_path):
    posters = make_posters(tmp_path / "posters", 4)
    store = tmp_path / "store"
    code, out = cli(*ingest_args(write_csv(tmp_path / "all.csv", HEADER, films(4)), posters, store))
    assert code == 0, out
    fewer = write_csv(tmp_path / "fewer.csv", HEADER, films(2))
    code, out = cli(*ingest_args(fewer, posters, store))
    assert code == 0 and "2 stored films are no longer in the catalog (--prune removes them)" in out, out
    assert "now holds 4 posters" in out
    code, out = cli(*ingest_args(fewer, posters, store, "--prune"))
    assert code == 0 and "removed 2 stored films" in out and "now holds 2 posters" in out, out


def test_a_second_posters_folder_is_refused_and_same_names_never_mix(tmp_path):
    first = make_posters(tmp_path / "a", 3, seed=0)
    second = make_posters(tmp_path / "b", 3, seed=50)  # 0.jpg, 1.jpg, 2.jpg again: other images
    catalog_a = write_csv(tmp_path / "a.csv", HEADER, films(3))
    catalog_b = write_csv(tmp_path / "b.csv", HEADER, [[f"{i}.jpg", f"Other {i}", 2000 + i, ""] for i in range(3)])
    store = tmp_path / "store"
    assert cli(*ingest_args(catalog_a, first, store))[0] == 0
    before = stored(StoreLocation(path=store))

    code, out = cli(*ingest_args(catalog_b, second, store))
    assert code == 1 and f"holds posters from {first.resolve()}" in out and "another --collection" in out, out
    after = stored(StoreLocation(path=store))
    assert after.keys() == before.keys() and all(after[k][0] == before[k][0] for k in before)

    code, out = cli(*ingest_args(catalog_b, second, store, "--collection", "others"))
    assert code == 0 and "ingested 3" in out, out
    with PosterStore(StoreLocation(path=store), "others") as other:
        assert sorted(p.payload["title"] for p in other.points(with_vectors=False)) == ["Other 0", "Other 1", "Other 2"]
        assert other.posters_dir() == second.resolve()
    with PosterStore(StoreLocation(path=store)) as posters_store:
        assert sorted(p.payload["title"] for p in posters_store.points(with_vectors=False)) == ["Film 0", "Film 1", "Film 2"]
        assert posters_store.posters_dir() == first.resolve()
