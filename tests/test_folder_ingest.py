"""Ingest without a catalog: a generated media-server folder, .nfo files good and hostile, links, reruns."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from poster_search.ingest.folder import poster_files, read_folder
from poster_search.ingest.nfo import MAX_NFO_BYTES, NfoError, read_nfo
from poster_search.ingest.pipeline import ingest
from poster_search.store.collection import PosterStore
from tests.conftest import make_poster, run_cli

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer

GOOD_NFO = """<?xml version="1.0" encoding="UTF-8" standalone="yes" ?>
<movie>
  <title>Alien</title>
  <originaltitle>Alien</originaltitle>
  <year>1979</year>
  <genre>Horror</genre>
  <genre>Science Fiction / Thriller</genre>
  <plot>In space no one can hear you scream.</plot>
</movie>
"""
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<movie><title>&lol3;</title><year>1990</year></movie>
"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE movie [<!ENTITY secret SYSTEM "file:///etc/passwd"><!ENTITY web SYSTEM "http://127.0.0.1:9/x">]>
<movie><title>&secret;&web;</title><year>1991</year></movie>
"""


def media_library(root: Path, outside: Path) -> Path:
    """A folder as Kodi/Jellyfin users keep one, with every hostile case beside the good ones."""
    make_poster(root / "Alien (1979)" / "poster.jpg", 1)
    (root / "Alien (1979)" / "movie.nfo").write_text(GOOD_NFO)
    make_poster(root / "Alien (1979)" / "fanart.jpg", 2)  # artwork, not a poster
    make_poster(root / "Alien (1979)" / "extrafanart" / "fanart1.jpg", 3)
    make_poster(root / "Heat (1995).jpg", 4)
    make_poster(root / "kodi" / "Casablanca (1942)-poster.jpg", 5)
    (root / "kodi" / "Casablanca (1942).nfo").write_text(
        "<movie><title>Casablanca</title><premiered>1942-11-26</premiered></movie>\nhttps://www.imdb.com/title/tt0034583/\n"
    )
    make_poster(root / "kodi" / "Metropolis (1927) [imdbid-tt0017136].png", 6)
    # hostile .nfo files: each poster is still ingested, named from its file name, with one note
    make_poster(root / "hostile" / "Bomb (1990).jpg", 7)
    (root / "hostile" / "Bomb (1990).nfo").write_text(BILLION_LAUGHS)
    make_poster(root / "hostile" / "Secret (1991).jpg", 8)
    (root / "hostile" / "Secret (1991).nfo").write_text(EXTERNAL_ENTITY)
    make_poster(root / "hostile" / "Broken (1992).jpg", 9)
    (root / "hostile" / "Broken (1992).nfo").write_text("<movie><title>Broken</title><year>1980</year>")
    make_poster(root / "hostile" / "Latin (1993).jpg", 10)
    (root / "hostile" / "Latin (1993).nfo").write_bytes("<movie><title>Amélie</title><year>1970</year></movie>".encode("latin-1"))
    make_poster(root / "hostile" / "Huge (1994).jpg", 11)
    with open(root / "hostile" / "Huge (1994).nfo", "wb") as f:  # 50 MB (sparse): refused by its size, never read
        f.truncate(50 * 2**20)
    make_poster(root / "fifo" / "Pipe (1996)" / "poster.jpg", 12)
    os.mkfifo(root / "fifo" / "Pipe (1996)" / "movie.nfo")  # opened without blocking, refused as not a regular file
    # undated, duplicate names in different folders, hidden, links
    make_poster(root / "scans" / "unknown.jpg", 13)
    make_poster(root / "scans" / "a" / "poster.jpg", 14)
    make_poster(root / "scans" / "b" / "poster.jpg", 15)
    make_poster(root / ".hidden" / "Ghost (2000).jpg", 16)
    make_poster(root / "scans" / ".thumb.jpg", 17)
    make_poster(outside / "Stolen (2001).jpg", 18)
    os.symlink(outside / "Stolen (2001).jpg", root / "Stolen (2001).jpg")  # a link leading outside: never read
    os.symlink(outside, root / "linked-folder")  # a symlinked folder: never followed
    os.symlink(root / "Heat (1995).jpg", root / "scans" / "heat.jpg")  # a second name for a scanned poster
    (root / "scans" / "notes.txt").write_text("not an image")
    return root


def test_a_media_library_is_named_from_nfo_and_names_and_hostile_files_are_notes(tmp_path):
    root = media_library(tmp_path / "library", tmp_path / "outside")
    catalog = read_folder(root)
    films = {f.key: f for f in catalog.films}
    assert set(films) == {
        "Heat (1995).jpg",
        "Alien (1979)/poster.jpg",
        "fifo/Pipe (1996)/poster.jpg",
        "hostile/Bomb (1990).jpg",
        "hostile/Broken (1992).jpg",
        "hostile/Huge (1994).jpg",
        "hostile/Latin (1993).jpg",
        "hostile/Secret (1991).jpg",
        "kodi/Casablanca (1942)-poster.jpg",
        "kodi/Metropolis (1927) [imdbid-tt0017136].png",
        "scans/a/poster.jpg",
        "scans/b/poster.jpg",
        "scans/unknown.jpg",
    }
    alien = films["Alien (1979)/poster.jpg"]
    assert (alien.title, alien.year, alien.genres) == ("Alien", 1979, ("Horror", "Science Fiction", "Thriller"))
    assert (films["kodi/Casablanca (1942)-poster.jpg"].title, films["kodi/Casablanca (1942)-poster.jpg"].year) == ("Casablanca", 1942)
    assert (films["kodi/Metropolis (1927) [imdbid-tt0017136].png"].title, films["kodi/Metropolis (1927) [imdbid-tt0017136].png"].year) == (
        "Metropolis",
        1927,
    )
    assert (films["Heat (1995).jpg"].title, films["Heat (1995).jpg"].year) == ("Heat", 1995)
    # hostile .nfo files: the name decides (not the .nfo's 1970 or 1980), no entity expanded or fetched
    for name, title, year in [
        ("Bomb (1990)", "Bomb", 1990),
        ("Secret (1991)", "Secret", 1991),
        ("Broken (1992)", "Broken", 1992),
        ("Latin (1993)", "Latin", 1993),
        ("Huge (1994)", "Huge", 1994),
    ]:
        film = films[f"hostile/{name}.jpg"]
        assert (film.title, film.year) == (title, year)
    assert (films["fifo/Pipe (1996)/poster.jpg"].title, films["fifo/Pipe (1996)/poster.jpg"].year) == ("Pipe", 1996)
    # undated, and the same file name in two folders: two films, titled from their folders, no year
    assert (films["scans/unknown.jpg"].title, films["scans/unknown.jpg"].year) == ("unknown", None)
    assert (films["scans/a/poster.jpg"].title, films["scans/b/poster.jpg"].title) == ("a", "b")
    assert films["scans/a/poster.jpg"].point_id != films["scans/b/poster.jpg"].point_id
    # one note per unusable .nfo, naming why; the posters themselves are not rejected
    notes = {n.key: n.reason for n in catalog.notes}
    assert set(notes) == {f"hostile/{n}.jpg" for n in ("Bomb (1990)", "Secret (1991)", "Broken (1992)", "Latin (1993)", "Huge (1994)")} | {
        "fifo/Pipe (1996)/poster.jpg"
    }
    assert "DTDForbidden" in notes["hostile/Bomb (1990).jpg"] and "DTDForbidden" in notes["hostile/Secret (1991).jpg"]
    assert "not well-formed" in notes["hostile/Broken (1992).jpg"] and "not UTF-8" in notes["hostile/Latin (1993).jpg"]
    assert f"more than the {MAX_NFO_BYTES:,} allowed" in notes["hostile/Huge (1994).jpg"]
    assert "not a regular file" in notes["fifo/Pipe (1996)/poster.jpg"]
    rejects = {r.key: r.reason for r in catalog.rejects}
    assert set(rejects) == {"Stolen (2001).jpg", "scans/heat.jpg"}
    assert "outside the posters folder" in rejects["Stolen (2001).jpg"] and "ingested already" in rejects["scans/heat.jpg"]
    assert catalog.rows == 15 and catalog.keys() >= set(films)
    assert [p.relative_to(root).as_posix() for p in poster_files(root)] == [f.file for f in catalog.films]


def test_nfo_reader_on_its_own(tmp_path):
    nfo = tmp_path / "movie.nfo"
    nfo.write_text("<movie><title> The  Third\nMan </title><year>n/a</year><premiered>1949-09-02</premiered></movie>")
    info = read_nfo(nfo)
    assert (info.title, info.year, info.genres) == ("The Third Man", 1949, ())
    nfo.write_text("https://www.themoviedb.org/movie/1092")
    with pytest.raises(NfoError, match="link.*never fetched"):
        read_nfo(nfo)
    os.symlink(nfo, tmp_path / "link.nfo")
    with pytest.raises(NfoError, match="symbolic link"):
        read_nfo(tmp_path / "link.nfo")
    deep = tmp_path / "deep.nfo"
    deep.write_text("<movie>" + "<a>" * 100_000 + "</a>" * 100_000 + "<title>x</title></movie>")
    started = time.perf_counter()
    try:
        assert read_nfo(deep).title == "x"  # deep but bounded by the file size: read, or refused in one line
    except NfoError:
        pass
    assert time.perf_counter() - started < 5


def test_folder_ingest_stores_the_catalog_payload_and_reruns_incrementally(tmp_path, random_embedder):
    root = tmp_path / "posters"
    make_poster(root / "Alien (1979)" / "poster.jpg", 1)
    (root / "Alien (1979)" / "movie.nfo").write_text(GOOD_NFO)
    make_poster(root / "scans" / "unknown.jpg", 2)
    store_path = tmp_path / "store"
    from poster_search.store.connection import StoreLocation

    with PosterStore(StoreLocation(path=store_path)) as store:
        report = ingest(read_folder(root), root, store, random_embedder, progress=False, workers=0)
        assert (report.ingested, report.unit) == (2, "poster files")
        payloads = {p.payload["key"]: p.payload for p in store.points(with_vectors=False)}
    assert set(payloads) == {"Alien (1979)/poster.jpg", "scans/unknown.jpg"}
    alien = payloads["Alien (1979)/poster.jpg"]
    assert {k: alien[k] for k in ("key", "title", "year", "file", "genres")} == {
        "key": "Alien (1979)/poster.jpg",
        "title": "Alien",
        "year": 1979,
        "file": "Alien (1979)/poster.jpg",
        "genres": ["Horror", "Science Fiction", "Thriller"],
    }
    assert len(alien["sha256"]) == 64 and "year" not in payloads["scans/unknown.jpg"]

    # a rerun through the CLI with nothing new: no model loaded, nothing embedded
    common = ["ingest", "--posters", root, "--qdrant-path", store_path, "--weights", "random", "--rejects", tmp_path / "rejects.csv"]
    result = run_cli(*common)
    assert result.returncode == 0, result.stderr
    assert "ingested 0, already stored 2, rejected 0 of 2 poster files" in result.stdout
    # a corrected .nfo rewrites the payload only; a hostile one is a note in the rejects file
    (root / "scans" / "unknown.nfo").write_text("<movie><title>Found</title><year>1961</year></movie>")
    make_poster(root / "hostile" / "Bomb (1990).jpg", 3)
    (root / "hostile" / "Bomb (1990).nfo").write_text(BILLION_LAUGHS)
    with PosterStore(StoreLocation(path=store_path)) as store:
        report = ingest(read_folder(root), root, store, random_embedder, progress=False, workers=0)
        assert (report.ingested, report.updated, report.already_stored, report.notes) == (1, 1, 1, 1)
        found = {p.payload["key"]: p.payload for p in store.points(with_vectors=False)}
    assert (found["scans/unknown.jpg"]["title"], found["scans/unknown.jpg"]["year"]) == ("Found", 1961)
    assert (found["hostile/Bomb (1990).jpg"]["title"], found["hostile/Bomb (1990).jpg"]["year"]) == ("Bomb", 1990)
    result = run_cli(*common)
    assert result.returncode == 0 and "1 note (an .nfo file not used" in result.stdout, result.stdout + result.stderr
    assert "note (ingested): hostile/Bomb (1990).nfo ignored: refused: DTDForbidden" in (tmp_path / "rejects.csv").read_text()


def test_catalog_options_without_a_catalog_are_one_line(tmp_path):
    (tmp_path / "posters").mkdir()
    result = run_cli("ingest", "--posters", tmp_path / "posters", "--title-column", "name", "--qdrant-path", tmp_path / "s")
    assert result.returncode == 1 and "describe a --catalog" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("ingest", "--posters", tmp_path / "missing", "--qdrant-path", tmp_path / "s")
    assert result.returncode == 1 and "posters folder not found" in result.stderr


@pytest.mark.parametrize(
    ("name", "title", "year"),
    [
        ("Ryan.s.Daughter.1970.jpg", "Ryan's Daughter", 1970),
        ("Heat.1995.1080p.BluRay.jpg", "Heat", 1995),
        ("The_Third_Man_1949.png", "The Third Man", 1949),
        ("Blade.Runner.2049.2017.1080p.jpg", "Blade Runner 2049", 2017),
        ("2001.A.Space.Odyssey.1968.jpg", "2001 A Space Odyssey", 1968),
        ("Mr. Smith Goes to Washington 1939 DVDRip.jpg", "Mr. Smith Goes to Washington", 1939),
        ("Blade Runner 2049.jpg", "Blade Runner 2049", None),  # 2049 is no release year yet: the whole name
        ("Movie.1080p.BluRay.jpg", "Movie.1080p.BluRay", None),
        ("Alien (1979).jpg", "Alien", 1979),
    ],
)
def test_scene_style_names_give_title_and_year_as_media_servers_read_them(tmp_path, name, title, year):
    make_poster(tmp_path / "posters" / name, seed=1)
    [film] = read_folder(tmp_path / "posters").films
    assert (film.title, film.year) == (title, year)


def test_a_scene_style_folder_names_its_artwork(tmp_path):
    make_poster(tmp_path / "posters" / "The.Third.Man.1949.1080p" / "poster.jpg", seed=1)
    [film] = read_folder(tmp_path / "posters").films
    assert (film.title, film.year) == ("The Third Man", 1949)
