"""Issue #39: a careless rerun, an odd file name or one bad record takes nothing away.

Real Qdrant Edge stores in temporary folders, real generated posters, the small seeded embedder
(tests/small_embedder.py) for the library paths and the real CLI (seeded random VGG16 weights)
where the command line itself is the case."""

from __future__ import annotations

import base64
import csv
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from poster_search import Damaged, Posters
from poster_search.ingest.folder import read_folder
from poster_search.ingest.pipeline import ingest as run_ingest
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.schema import PosterPayload, point_id
from poster_search.text_out import as_text, raw_name, sheet_cell
from tests.conftest import generated_catalog, make_poster, payloads, run_cli, write_csv
from tests.small_embedder import SmallEmbedder

LATIN1 = os.fsdecode(b"caf\xe9 (1998).jpg")  # as an old Samba share or a Latin-1 system saves it
NFD = "Ame\u0301lie (2001).jpg"  # as macOS writes it
EMOJI = "\U0001f3ac Reel (2010).jpg"


# --- a folder never replaces what a catalog wrote ----------------------------------------------


def test_a_folder_ingest_of_a_catalogs_own_folder_keeps_every_title_and_year(tmp_path):
    """The quick start's folder, ingested again without --catalog (an easy slip from shell history)."""
    rows = [["0.jpg", "Gone with the Wind", 1939], ["1.jpg", "Alien", 1979], ["Solaris (1972).jpg", "Solaris", ""]]
    for i, (name, _, _) in enumerate(rows):
        make_poster(tmp_path / "posters" / name, seed=i)
    catalog = write_csv(tmp_path / "movies.csv", ["filename", "title", "release_year"], rows)
    folder = tmp_path / "posters"
    with Posters(tmp_path / "store", embedder=SmallEmbedder()) as posters:
        posters.ingest(folder, catalog, workers=0, progress=False)
        before = {p["key"]: p for p in _payloads(posters)}
        make_poster(folder / "Heat (1995).jpg", seed=9)  # a poster added to the folder since
        report = posters.ingest(folder, workers=0, progress=False)  # no --catalog
        after = {p["key"]: p for p in _payloads(posters)}
    assert (report.ingested, report.updated, report.kept_from_catalog) == (1, 1, 2)
    assert "kept the catalog's title, year or genres of 2 stored posters" in report.summary()
    for key in ("0.jpg", "1.jpg"):  # untouched
        assert after[key] == before[key]
    assert (after["0.jpg"]["title"], after["0.jpg"]["year"]) == ("Gone with the Wind", 1939)
    solaris = after["Solaris (1972).jpg"]  # the folder adds what the catalog did not know: the year
    assert (solaris["title"], solaris["year"], solaris["source"]) == ("Solaris", 1972, "catalog")
    heat = after["Heat (1995).jpg"]
    assert (heat["title"], heat["year"], heat["source"]) == ("Heat", 1995, "folder")


def test_a_folder_ingest_finds_the_posters_of_a_catalog_keyed_by_its_own_ids(tmp_path):
    """A catalog with an id column keys films by id, a folder by path: matched by file, never stored twice."""
    for i in range(3):
        make_poster(tmp_path / "posters" / f"{i}.jpg", seed=i)
    catalog = write_csv(
        tmp_path / "movies.csv",
        ["id", "filename", "title", "release_year"],
        [[f"tt{i}", f"{i}.jpg", f"Film {i}", 1950 + i] for i in range(3)],
    )
    with Posters(tmp_path / "store", embedder=SmallEmbedder()) as posters:
        posters.ingest(tmp_path / "posters", catalog, workers=0, progress=False)
        report = posters.ingest(tmp_path / "posters", workers=0, progress=False, prune=True)
        stored = {p["key"]: (p["title"], p["year"]) for p in _payloads(posters)}
    assert (report.ingested, report.updated, report.gone, report.total) == (0, 0, 0, 3)
    assert stored == {f"tt{i}": (f"Film {i}", 1950 + i) for i in range(3)}


def test_a_folders_own_points_follow_its_nfo_files(tmp_path):
    """What a folder wrote, a folder updates: a corrected year in the .nfo is taken."""
    folder = tmp_path / "posters"
    make_poster(folder / "Film" / "poster.jpg", seed=1)
    (folder / "Film" / "movie.nfo").write_text("<movie><title>Film</title><year>1961</year></movie>")
    with Posters(tmp_path / "store", embedder=SmallEmbedder()) as posters:
        posters.ingest(folder, workers=0, progress=False)
        (folder / "Film" / "movie.nfo").write_text("<movie><title>Film</title><year>1962</year></movie>")
        report = posters.ingest(folder, workers=0, progress=False)
        [payload] = _payloads(posters)
    assert (report.updated, report.kept_from_catalog, payload["year"], payload["source"]) == (1, 0, 1962, "folder")


def test_the_cli_says_what_a_folder_ingest_kept(tmp_path):
    catalog, folder = generated_catalog(tmp_path, 3)
    store = tmp_path / "store"
    common = ["--posters", folder, "--qdrant-path", store, "--weights", "random"]
    assert run_cli("ingest", "--catalog", catalog, *common).returncode == 0
    result = run_cli("ingest", *common)
    assert result.returncode == 0, result.output
    assert "kept the catalog's title, year or genres of 3 stored posters" in result.stdout
    assert {p["title"] for p in payloads(store).values()} == {"Film 0", "Film 1", "Film 2"}
    assert "Film 1" in run_cli("search", "--title", "Film 1", "--qdrant-path", store, "--weights", "random", "-k", "1").stdout


# --- names in any encoding ----------------------------------------------------------------------


def test_names_in_any_encoding_are_text_and_keep_their_bytes():
    assert (as_text(LATIN1), raw_name(LATIN1)) == ("café (1998).jpg", base64.b64encode(b"caf\xe9 (1998).jpg").decode())
    assert (as_text(NFD), raw_name(NFD), as_text(EMOJI), raw_name(EMOJI)) == (NFD, None, EMOJI, None)
    payload = PosterPayload.of_file(LATIN1, key="k", title="café")
    assert PosterPayload.from_dict(payload.to_dict()).path == LATIN1  # through a stored dict and back
    for hostile in ("not base64!", base64.b64encode(b"a\x00b").decode(), "é"):  # as written past poster search
        with pytest.raises(Damaged, match="file_raw"):
            PosterPayload.from_dict({**payload.to_dict(), "file_raw": hostile})
    from poster_search.path_inside import inside

    assert inside(Path("/tmp"), "a\x00b") is None  # a `file` holding NUL names no file: not a ValueError


def test_a_folder_of_latin1_nfd_and_emoji_names_ingests_searches_and_exports(tmp_path):
    root = tmp_path / os.fsdecode(b"affiches-\xe9t\xe9")  # the folder's own name is Latin-1 too
    for i, name in enumerate([LATIN1, NFD, EMOJI, os.fsdecode(b"r\xe9alisateur/poster.jpg")]):
        make_poster(root / name, seed=i)
    store = tmp_path / "store"
    common = ["--qdrant-path", store, "--weights", "random"]
    result = run_cli("ingest", "--posters", root, *common)
    assert result.returncode == 0, result.output
    assert "ingested 4, already stored 0, rejected 0" in result.stdout
    stored = payloads(store)
    cafe = stored["café (1998).jpg"]
    assert (cafe["title"], cafe["year"], cafe["file"]) == ("café", 1998, "café (1998).jpg")
    assert base64.b64decode(cafe["file_raw"]) == b"caf\xe9 (1998).jpg"
    assert stored["réalisateur/poster.jpg"]["title"] == "réalisateur"
    assert (stored[NFD]["title"], stored[EMOJI]["title"]) == ("Ame\u0301lie", "\U0001f3ac Reel")
    again = run_cli("ingest", "--posters", root, *common)  # a rerun: the bytes are read again, nothing re-embedded
    assert "ingested 0, already stored 4" in again.stdout, again.output
    found = run_cli("search", "--title", "café", "--json", "-k", "3", "--sheet", tmp_path / "sheet.png", *common)
    assert found.returncode == 0 and '"file": "café (1998).jpg"' in found.stdout, found.output
    by_image = run_cli("search", root / LATIN1, "-k", "2", *common)
    assert by_image.returncode == 0 and "café (1998).jpg" in by_image.stdout, by_image.output
    export = run_cli("export-embeddings", tmp_path / "all.npz", "--qdrant-path", store)
    assert export.returncode == 0, export.output
    with np.load(tmp_path / "all.npz") as data:
        assert "café (1998).jpg" in set(data["files"])
    from fastapi.testclient import TestClient

    from poster_search.web.app import create_app

    cafe_id = point_id("café (1998).jpg")
    with Posters(store) as posters:  # the stored bytes open the poster, and the page serves it
        assert posters.poster_file(cafe_id) == (root / LATIN1).resolve() and posters.posters_dir() == root.resolve()
        with TestClient(create_app(posters), base_url="http://localhost") as client:
            found = client.get("/api/search/title", params={"title": "café", "k": 3})
            assert found.status_code == 200 and found.json()["query"]["title"] == "café", found.text
            served = client.get(f"/api/posters/posters/{cafe_id}")
            assert served.status_code == 200 and served.content == (root / LATIN1).read_bytes()


def test_rejects_and_predictions_with_odd_names_are_written_as_text(tmp_path):
    root = tmp_path / "posters"
    root.mkdir()
    (root / os.fsdecode(b"bad\xff.jpg")).write_text("not an image")
    (root / '=HYPERLINK("http:x","y").jpg').write_text("not an image either")
    make_poster(root / "good.jpg", seed=1)
    rejects = tmp_path / "rejects.csv"
    result = run_cli("ingest", "--posters", root, "--qdrant-path", tmp_path / "store", "--weights", "random", "--rejects", rejects)
    assert result.returncode == 0 and "rejected 2" in result.stdout, result.output
    data = rejects.read_bytes()
    data.decode("utf-8")  # valid UTF-8 throughout
    cells = [cell for row in csv.reader(data.decode().splitlines()) for cell in row]
    assert "badÿ.jpg" in cells and not any(c.startswith("=") for c in cells)
    assert '\'=HYPERLINK("http:x","y").jpg' in cells


def test_spreadsheet_cells_never_start_a_formula():
    assert [sheet_cell(v) for v in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "Alien", 1979, None)] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@SUM(A1)",
        "'\tx",
        "Alien",
        1979,
        None,
    ]


# --- a poster link checked as it is read ----------------------------------------------------------


def test_a_link_repointed_outside_after_the_scan_is_never_read(tmp_path):
    root, outside = tmp_path / "posters", tmp_path / "private"
    make_poster(root / "real.jpg", seed=1)
    make_poster(outside / "secret.jpg", seed=2)
    make_poster(root / ".kept" / "real2.jpg", seed=3)  # a hidden folder: not scanned itself
    (root / "linked.jpg").symlink_to(root / ".kept" / "real2.jpg")
    make_poster(root / "sub" / "x.jpg", seed=4)
    catalog = read_folder(root)  # the scan: the link leads inside
    assert {f.file for f in catalog.films} == {"linked.jpg", "real.jpg", "sub/x.jpg"}
    (root / "linked.jpg").unlink()
    (root / "linked.jpg").symlink_to(outside / "secret.jpg")  # repointed while the ingest runs
    (root / "sub" / "x.jpg").unlink()
    (root / "sub" / "x.jpg").symlink_to(outside / "secret.jpg")
    with PosterStore(StoreLocation(path=tmp_path / "store")) as store:
        report = run_ingest(catalog, root, store, SmallEmbedder(), progress=False, workers=0)
        hashes = {p.payload.get("sha256") for p in store.points(with_vectors=False)}
    import hashlib

    secret = hashlib.sha256((outside / "secret.jpg").read_bytes()).hexdigest()
    assert secret not in hashes
    reasons = {r.file: r.reason for r in report.rejects}
    assert set(reasons) == {"linked.jpg", "sub/x.jpg"} and report.ingested == 1, reasons
    assert all("leads outside the posters folder" in reason for reason in reasons.values()), reasons


# --- one record that does not decode --------------------------------------------------------------


def test_one_wrongly_typed_year_leaves_every_command_and_the_page_working(tmp_path, caplog):
    """Set one point's year to the string "1939", as anyone writing Qdrant directly can."""
    from fastapi.testclient import TestClient

    from poster_search.web.app import create_app

    catalog, folder = generated_catalog(tmp_path, 6)
    store = tmp_path / "store"
    common = ["--qdrant-path", store, "--weights", "random"]
    assert run_cli("ingest", "--catalog", catalog, "--posters", folder, *common).returncode == 0
    with PosterStore(StoreLocation(path=store)) as s:
        s.set_payloads([(point_id("2.jpg"), {"year": "1939"})])
    title = run_cli("search", "--title", "Film 1", "-k", "5", *common)  # the damaged point is among the five
    assert title.returncode == 0 and "Film 1" in title.stdout, title.output
    assert "field 'year' is '1939'" in title.stderr and "ingest again" in title.stderr
    export = run_cli("export-embeddings", tmp_path / "all.npz", "--qdrant-path", store)
    assert export.returncode == 0, export.output
    with np.load(tmp_path / "all.npz") as data:
        assert len(data["ids"]) == 5
    era = run_cli("era", "--qdrant-path", store)
    assert era.returncode == 0, era.output
    with Posters(store) as posters, TestClient(create_app(posters), base_url="http://localhost") as client:
        with caplog.at_level(logging.WARNING, logger="poster_search"):
            answer = client.get("/api/collections")
        assert answer.status_code == 200 and answer.json()["collections"][0]["count"] == 6, answer.text
        assert client.get("/api/search/title", params={"title": "Film 3"}).status_code == 200


def test_a_schema_version_of_400_digits_is_not_echoed(tmp_path):
    from poster_search.store.schema import upgrade_metadata

    with pytest.raises(Damaged) as e:
        upgrade_metadata({"schema_version": 10**400})
    assert len(str(e.value)) < 200 and "401 digits" in str(e.value)


def _payloads(posters: Posters) -> list[dict]:
    return [p.poster.to_dict() for p in posters.store.points(with_vectors=False)]


def test_predictions_of_odd_names_are_written_as_csv_json_and_a_table():
    """predict-year FOLDER --csv used to predict every image and then fail writing the CSV."""
    from poster_search.presentation import as_json, predictions_csv, predictions_table
    from poster_search.regression.predict import ImageYear, YearPrediction

    results = [
        ImageYear(f"posters/{LATIN1}", YearPrediction(1998.2, 1990.0, 2004.0, 0.8, 9.5)),
        ImageYear("=cmd.jpg", None, "not an image"),
    ]
    sheet = predictions_csv(results).encode("utf-8")  # would raise on a lone surrogate
    assert [row[0] for row in csv.reader(sheet.decode().splitlines()[1:])] == ["posters/café (1998).jpg", "'=cmd.jpg"]
    assert "posters/café (1998).jpg" in predictions_table(results)
    assert '"image": "posters/café (1998).jpg"' in as_json([r.as_dict() for r in results]).encode("utf-8").decode()


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_a_catalog_naming_cafe_finds_the_file_a_latin1_system_saved(tmp_path, encoding):
    """The catalog says `café (1998).jpg` (in UTF-8 or in its own Latin-1); the share holds `caf\\xe9 (1998).jpg`."""
    make_poster(tmp_path / "posters" / LATIN1, seed=1)
    make_poster(tmp_path / "posters" / "plain.jpg", seed=2)
    catalog = write_csv(
        tmp_path / "movies.csv",
        ["filename", "title", "release_year"],
        [["café (1998).jpg", "Café", 1998], ["plain.jpg", "Plain", 1950]],
        encoding,
    )
    with Posters(tmp_path / "store", embedder=SmallEmbedder()) as posters:
        report = posters.ingest(tmp_path / "posters", catalog, workers=0, progress=False, encoding=encoding)
        assert (report.ingested, report.rejects) == (2, []), report.rejects
        cafe = posters.film(point_id("café (1998).jpg")).poster
        assert (cafe.key, cafe.file, cafe.path, cafe.title) == ("café (1998).jpg", "café (1998).jpg", LATIN1, "Café")
        assert posters.poster_file(point_id("café (1998).jpg")) == (tmp_path / "posters" / LATIN1).resolve()
