"""Dating many posters: predict-year over images and folders, and --stored into the payloads of a real Edge store."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from poster_search.embedding.spec import EmbeddingSpec
from poster_search.errors import PosterSearchError
from poster_search.ingest.folder import read_folder
from poster_search.ingest.pipeline import ingest
from poster_search.regression.dataset import load_year_data
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.schema import PREDICTED_BY, PREDICTED_FIELDS, PREDICTED_HIGH, PREDICTED_LOW, PREDICTED_YEAR
from tests.conftest import make_poster, run_cli, without_derived

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer

N_DATED, N_UNDATED = 24, 6


@pytest.fixture(scope="module")
def dated_library(tmp_path_factory, random_embedder):
    """A folder of `Title (Year).jpg` posters and a few undated scans, ingested without a catalog
    (seeded random VGG16), and a small year model trained on it."""
    from poster_search.regression.config import HeadConfig
    from poster_search.regression.train import train_year_model

    tmp = tmp_path_factory.mktemp("dating")
    root = tmp / "posters"
    for i in range(N_DATED):
        make_poster(root / f"decade {1940 + 10 * (i % 8)}" / f"Film {i} ({1940 + 10 * (i % 8) + i % 10}).jpg", seed=i)
    for i in range(N_UNDATED):
        make_poster(root / "scans" / f"scan {i}.jpg", seed=100 + i)
    location = StoreLocation(path=tmp / "store")
    with PosterStore(location) as store:
        ingest(read_folder(root), root, store, random_embedder, progress=False, workers=0)
        data = load_year_data(store)
    config = HeadConfig(hidden=(32, 8), members=1, epochs=30, patience=5)
    train_year_model(data, tmp / "model", test_size=0.2, seed=0, config=config, knn_k=3, progress=False)
    train_year_model(data, tmp / "model2", test_size=0.2, seed=1, config=config, knn_k=3, progress=False)
    return tmp, root, location


def payloads(location: StoreLocation) -> dict[str, dict]:
    with PosterStore(location) as store:
        return {p.payload["key"]: p.payload for p in store.points(with_vectors=False)}


def test_stored_posters_are_dated_from_their_vectors_idempotently(dated_library, tmp_path, random_embedder):
    import shutil

    from poster_search.regression.dating import date_stored
    from poster_search.regression.model_file import YearModel

    tmp, _, original = dated_library
    shutil.copytree(original.path, tmp_path / "store")  # this test writes: its own copy
    location = StoreLocation(path=tmp_path / "store")
    before = payloads(location)
    model = YearModel.load(tmp / "model")
    assert model.identity.startswith("year-model:") and model.identity == YearModel.load(tmp / "model").identity
    with PosterStore(location) as store:
        report = date_stored(store, model, progress=False)
    assert (report.total, report.dated, report.catalog_dated, report.already) == (N_DATED + N_UNDATED, N_UNDATED, N_DATED, 0)
    after = payloads(location)
    with PosterStore(location) as store:
        vectors = {p.payload["key"]: p.vector for p in store.points(with_vectors=True)}
    for key, payload in after.items():
        old = {k: v for k, v in payload.items() if k not in PREDICTED_FIELDS}
        assert old == before[key]  # year, title, ... untouched
        if "year" in payload:
            assert not set(PREDICTED_FIELDS) & set(payload)
            continue
        year, low, high = model.predict_with_ranges(vectors[key][None])
        assert payload[PREDICTED_YEAR] == round(float(year[0])) and payload[PREDICTED_BY] == model.identity
        assert payload[PREDICTED_LOW] <= float(low[0]) + 1e-6 and payload[PREDICTED_HIGH] >= float(high[0]) - 1e-6
        assert all(isinstance(payload[k], int) for k in (PREDICTED_YEAR, PREDICTED_LOW, PREDICTED_HIGH))

    # a rerun with the same model changes nothing; --all dates the dated ones too, their year kept
    with PosterStore(location) as store:
        again = date_stored(store, model, progress=False)
        assert (again.dated, again.already) == (0, N_UNDATED)
        everything = date_stored(store, model, every_poster=True, progress=False)
        assert (everything.dated, everything.already, everything.catalog_dated) == (N_DATED, N_UNDATED, 0)
    dated = payloads(location)
    assert all(p[PREDICTED_BY] == model.identity for p in dated.values())
    assert all(dated[k].get("year") == before[k].get("year") for k in before)

    # another model replaces every prediction (through the CLI: no TensorFlow, one line)
    other = YearModel.load(tmp / "model2")
    assert other.identity != model.identity
    sheet = tmp_path / "dated.csv"
    result = run_cli(
        "predict-year", "--stored", "--all", "--model-dir", tmp / "model2", "--qdrant-path", location.path, "--json", "--csv", sheet
    )
    assert result.returncode == 0, result.stderr
    *rows, last = [json.loads(line) for line in result.stdout.splitlines()]  # one line per prediction written, then the summary
    summary = last["summary"]
    assert (summary["dated"], summary["model"], summary["total"]) == (N_DATED + N_UNDATED, other.identity, N_DATED + N_UNDATED)
    stored = {p["key"]: p for p in payloads(location).values()}
    assert all(p[PREDICTED_BY] == other.identity for p in stored.values())
    by_title = {p["title"]: p for p in stored.values()}
    assert len(rows) == N_DATED + N_UNDATED and all(
        (r["predicted_year"], r["predicted_low"], r["predicted_high"], r["year"])
        == tuple(by_title[r["title"]].get(k) for k in (PREDICTED_YEAR, PREDICTED_LOW, PREDICTED_HIGH, "year"))
        for r in rows
    )
    with open(sheet, newline="", encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert [(w["id"], int(w["predicted_year"])) for w in written] == [(r["id"], r["predicted_year"]) for r in rows]

    # a re-ingest that corrects a title keeps the prediction (same vector); the catalog year still wins
    root = tmp_path / "posters"
    shutil.copytree(dated_library[1], root)
    (root / "scans" / "scan 0.nfo").write_text("<movie><title>Found again</title></movie>")
    with PosterStore(location) as store:
        store.remember_posters_dir(root)  # the copy stands for the original folder
        from tests.conftest import CountingEmbedder

        counting = CountingEmbedder(random_embedder)
        report = ingest(read_folder(root), root, store, counting, progress=False, workers=0)
        assert (report.updated, counting.calls) == (1, 0)
    scan = payloads(location)["scans/scan 0.jpg"]
    assert scan["title"] == "Found again" and scan[PREDICTED_BY] == other.identity and "year" not in scan


def test_a_model_of_another_embedding_is_refused_and_nothing_is_written(dated_library, tmp_path):
    from poster_search.regression.dating import date_stored
    from poster_search.regression.model_file import YearModel
    from poster_search.store.schema import point_id

    tmp, _, _ = dated_library
    location = StoreLocation(path=tmp_path / "other")
    with PosterStore(location) as store:
        store.prepare(EmbeddingSpec(weights="other"))
        store.upsert([point_id("x")], np.ones((1, 512), np.float32) / np.sqrt(512), [{"key": "x", "title": "X"}])
        with pytest.raises(PosterSearchError, match="same weights"):
            date_stored(store, YearModel.load(tmp / "model"), progress=False)
        assert without_derived(store.retrieve([point_id("x")])[0].payload) == {"key": "x", "title": "X"}
    result = run_cli("predict-year", "--stored", "--model-dir", tmp / "model", "--qdrant-path", location.path)
    assert result.returncode == 1 and "same weights" in result.stderr and "Traceback" not in result.stderr
    for args, message in [
        ([], "give poster images or folders, or --stored"),
        ([tmp / "posters", "--stored"], "not both"),
        ([tmp / "posters", "--all"], "--all goes with --stored"),
    ]:
        result = run_cli("predict-year", *args, "--model-dir", tmp / "model", "--qdrant-path", location.path)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_many_images_and_folders_in_one_call(dated_library, tmp_path):
    from poster_search.regression.model_file import YearModel
    from poster_search.regression.predict import model_embedder, predict_year

    tmp, root, _ = dated_library
    loose = make_poster(tmp_path / "loose.jpg", seed=500)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    args = ["predict-year", root / "scans", loose, broken, root / "decade 1940", "--model-dir", tmp / "model", "--weights", "random"]
    result = run_cli(*args, "--json", "--csv", tmp_path / "years.csv", "--batch-size", "4")
    assert (
        result.returncode == 1 and "broken.jpg" in result.stderr and "Traceback" not in result.stderr
    )  # one bad image: the rest still dated
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    images = [line["image"] for line in lines]
    expected = [str(root / "scans" / f"scan {i}.jpg") for i in range(N_UNDATED)] + [str(loose), str(broken)]
    assert images[: N_UNDATED + 2] == expected and len(images) == N_UNDATED + 2 + len(list((root / "decade 1940").glob("*.jpg")))
    assert "error" in lines[N_UNDATED + 1] and all("year" in line for i, line in enumerate(lines) if i != N_UNDATED + 1)
    # the batch gives each image the year it gets alone
    model = YearModel.load(tmp / "model")
    alone = predict_year(loose, model, model_embedder(model, "random"))
    assert lines[N_UNDATED]["year"] == pytest.approx(alone.year, abs=1e-3) and lines[N_UNDATED]["low"] == pytest.approx(alone.low, abs=1e-3)
    with open(tmp_path / "years.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == images and rows[N_UNDATED]["year"] == str(round(alone.year))
    assert rows[N_UNDATED + 1]["year"] == "" and rows[N_UNDATED + 1]["error"]
    table = run_cli("predict-year", root / "scans", "--model-dir", tmp / "model", "--weights", "random")
    assert table.returncode == 0, table.stderr
    assert "80% range" in table.stdout and table.stdout.count("scan ") == N_UNDATED and "test MAE" in table.stdout


def test_predicted_years_are_shown_marked_and_never_as_catalog_years(dated_library, tmp_path):
    import shutil

    from poster_search import Posters
    from poster_search.presentation import neighbours_table

    tmp, root, original = dated_library
    shutil.copytree(original.path, tmp_path / "store")
    location = StoreLocation(path=tmp_path / "store")
    with Posters(location) as posters:
        posters.date_stored(tmp / "model", progress=False)
        result = posters.search(title="scan 0", k=N_DATED + N_UNDATED - 1)
        neighbours = result.neighbours
        predicted = {n.poster.title: n.poster.predicted_year for n in neighbours if n.poster.year is None}
        assert len(predicted) == N_UNDATED - 1 and all(isinstance(y, int) for y in predicted.values())
        assert all(n.poster.predicted_year is None for n in neighbours if n.poster.year is not None)
        table = neighbours_table(result.describe_query(), neighbours)
        for title, year in predicted.items():
            assert any(line.endswith(title) and f"c. {year}, predicted" in line for line in table.splitlines())
        assert f"scan 0 (c. {result.describe_query()['predicted_year']}, predicted)" in table
        # the year filters read catalog years only: no undated poster passes them, predicted or not
        filtered = posters.search(title="scan 0", k=50, year_min=1900, year_max=2100).neighbours
        assert len(filtered) == N_DATED and all(n.poster.year is not None for n in filtered)
        sheet = result.sheet(tmp_path / "sheet.png", posters_dir=root)
        assert sheet.stat().st_size > 0
    result = run_cli("export-embeddings", tmp_path / "e.npz", "--qdrant-path", location.path)
    assert result.returncode == 0 and "predicted_years" in result.stdout, result.stderr
    export = np.load(tmp_path / "e.npz")
    dated = ~np.isnan(export["years"])
    assert dated.sum() == N_DATED and np.isnan(export["predicted_years"][dated]).all()
    assert not np.isnan(export["predicted_years"][~dated]).any()
    assert (export["predicted_low"][~dated] <= export["predicted_years"][~dated]).all()
    result = run_cli("search", "--title", "scan 1", "--qdrant-path", location.path, "-k", "40", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["query"][PREDICTED_YEAR] is not None and found["query"]["year"] is None
    dated = [n for n in found["neighbours"] if n["year"] is not None]
    assert dated and not any(PREDICTED_YEAR in n for n in dated)  # a catalog year alone: no prediction beside it
    assert {n["title"] for n in found["neighbours"] if n.get("predicted_year") is not None} == {
        f"scan {i}" for i in range(N_UNDATED) if i != 1
    }


def test_set_payloads_sets_only_the_keys_given_on_every_engine(any_location):
    from poster_search.store.schema import point_id

    ids = [point_id(k) for k in ("a", "b", "c")]
    vectors = np.eye(3, 512, dtype=np.float32)
    with PosterStore(any_location) as store:
        store.prepare(EmbeddingSpec(weights="random"))
        store.upsert(ids, vectors, [{"key": k, "title": k.upper(), "year": 1950} for k in ("a", "b", "c")])
        store.set_payloads([(ids[0], {PREDICTED_YEAR: 1961, PREDICTED_BY: "m1"}), (ids[1], {PREDICTED_YEAR: 1972, PREDICTED_BY: "m1"})])
        store.set_payloads([(ids[1], {PREDICTED_YEAR: 1980, PREDICTED_BY: "m2"})])  # replaces those keys only
        found = {p.id: p for p in store.retrieve(ids, with_vectors=True)}
    assert without_derived(found[ids[0]].payload) == {"key": "a", "title": "A", "year": 1950, PREDICTED_YEAR: 1961, PREDICTED_BY: "m1"}
    assert without_derived(found[ids[1]].payload) == {"key": "b", "title": "B", "year": 1950, PREDICTED_YEAR: 1980, PREDICTED_BY: "m2"}
    assert without_derived(found[ids[2]].payload) == {"key": "c", "title": "C", "year": 1950}
    assert all(np.allclose(found[i].vector, v) for i, v in zip(ids, vectors))


def test_a_folder_of_odd_names_is_dated_and_written_as_csv_and_json(dated_library, tmp_path):
    """A Latin-1 name used to be predicted and then stop the CSV with a UnicodeEncodeError."""
    import os

    tmp, _, _ = dated_library
    folder = tmp_path / "odd"
    make_poster(folder / os.fsdecode(b"caf\xe9 (1998).jpg"), seed=1)
    make_poster(folder / "=HYPERLINK(1).jpg", seed=2)
    out = tmp_path / "years.csv"
    result = run_cli("predict-year", folder, "--model-dir", tmp / "model", "--weights", "random", "--csv", out)
    assert result.returncode == 0 and "café (1998).jpg" in result.stdout, result.output
    rows = list(csv.DictReader(out.read_bytes().decode("utf-8").splitlines()))
    assert sorted(r["image"] for r in rows) == [f"{folder}/=HYPERLINK(1).jpg", f"{folder}/café (1998).jpg"]  # as text, in UTF-8
    assert all(r["year"] for r in rows)
    as_json = run_cli("predict-year", folder, "--model-dir", tmp / "model", "--weights", "random", "--json")
    assert as_json.returncode == 0 and "café (1998).jpg" in as_json.stdout, as_json.output


def test_dating_stored_posters_shows_the_years_it_wrote(dated_library, tmp_path):
    import shutil

    tmp, _, original = dated_library
    shutil.copytree(original.path, tmp_path / "store")
    result = run_cli("predict-year", "--stored", "--all", "--model-dir", tmp / "model", "--qdrant-path", tmp_path / "store")
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["year", "range", "title"] and len(lines) >= 12, result.stdout
    year, span, title = lines[1].split(maxsplit=2)
    stored = {p["title"]: p for p in payloads(StoreLocation(path=tmp_path / "store")).values()}
    assert (int(year), span) == (stored[title][PREDICTED_YEAR], f"{stored[title][PREDICTED_LOW]}-{stored[title][PREDICTED_HIGH]}")
    assert f"... and {N_DATED + N_UNDATED - 10} more (--csv FILE or --json lists every one)" in result.stdout
    assert f"dated {N_DATED + N_UNDATED} posters" in result.stdout
