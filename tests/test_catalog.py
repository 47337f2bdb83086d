"""Catalog reading: both real formats, column options, and every kind of bad row."""

import os

import pytest

from poster_search.errors import PosterSearchError
from poster_search.ingest.catalog import Columns, read_catalog
from poster_search.store.schema import point_id
from tests.conftest import make_poster, run_cli, write_csv

KAGGLE_HEADER = ["imdbId", "Imdb Link", "Title", "IMDB Score", "Genre", "Poster"]


def test_filename_title_year_format(tmp_path):
    for i in range(3):
        make_poster(tmp_path / "posters" / f"{i}.jpg", seed=i)
    csv = write_csv(
        tmp_path / "movies.csv",
        ["filename", "title", "release_year"],
        [["0.jpg", "Gone with the Wind", 1939], ["1.jpg", 'Say "Hi", Again', "2001"], ["2.jpg", "千と千尋の神隠し", 2001]],
    )
    catalog = read_catalog(csv, tmp_path / "posters")
    assert catalog.rejects == []
    assert [(f.key, f.title, f.year, f.file) for f in catalog.films] == [
        ("0.jpg", "Gone with the Wind", 1939, "0.jpg"),
        ("1.jpg", 'Say "Hi", Again', 2001, "1.jpg"),
        ("2.jpg", "千と千尋の神隠し", 2001, "2.jpg"),
    ]
    assert catalog.films[0].point_id == point_id("0.jpg")
    assert catalog.films[0].payload() == {"key": "0.jpg", "title": "Gone with the Wind", "file": "0.jpg", "year": 1939, "source": "catalog"}


def test_kaggle_movie_genre_format_latin1_with_years_in_titles(tmp_path):
    for imdb in ("114709", "113497", "0113228"):
        make_poster(tmp_path / "posters" / f"{imdb}.jpg", seed=int(imdb))
    rows = [
        ["114709", "http://www.imdb.com/title/tt114709", "Toy Story (1995)", "8.3", "Animation|Adventure|Comedy", "https://x/1.jpg"],
        ["113497", "http://www.imdb.com/title/tt113497", "Jumanji (1995)", "6.9", "Action|Adventure|Family", "https://x/2.jpg"],
        ["0113228", "http://www.imdb.com/title/tt113228", "Les Misérables (I) (1995)", "7", "Drama", "https://x/3.jpg"],
        ["114709", "http://www.imdb.com/title/tt114709", "Toy Story (1995)", "8.3", "Animation", "https://x/1.jpg"],
    ]
    csv = write_csv(tmp_path / "MovieGenre.csv", KAGGLE_HEADER, rows, encoding="latin-1")
    catalog = read_catalog(csv, tmp_path / "posters")
    assert catalog.encoding == "latin-1"
    assert [(f.key, f.title, f.year, f.file, f.genres) for f in catalog.films] == [
        ("114709", "Toy Story", 1995, "114709.jpg", ("Animation", "Adventure", "Comedy")),
        ("113497", "Jumanji", 1995, "113497.jpg", ("Action", "Adventure", "Family")),
        ("0113228", "Les Misérables (I)", 1995, "0113228.jpg", ("Drama",)),  # leading zero kept: ids are strings
    ]
    assert [(r.row, r.reason) for r in catalog.rejects] == [(5, "duplicate key '114709' (first at line 2)")]


def test_bad_rows_are_rejected_with_reasons_and_never_stop_the_run(tmp_path):
    posters = tmp_path / "posters"
    for name in ("ok.jpg", "noyear.jpg", "bad.jpg", "old.jpg", "future.jpg", "untitled.jpg"):
        make_poster(posters / name, seed=len(name))
    make_poster(tmp_path / "outside.jpg", seed=9)
    csv = write_csv(
        tmp_path / "movies.csv",
        ["filename", "title", "release_year"],
        [
            ["ok.jpg", "Fine", "1999.0"],
            ["noyear.jpg", "No Year", ""],
            ["bad.jpg", "Bad Year", "19x9"],
            ["old.jpg", "Too Old", "1700"],
            ["future.jpg", "Too New", "2999"],
            ["missing.jpg", "Missing", "2000"],
            ["../outside.jpg", "Escapes", "2000"],
            ["/etc/passwd", "Absolute", "2000"],
            ["ok.jpg", "Again", "1999"],
            ["untitled.jpg", "", "1999"],
            ["", "No File", "1999"],
        ],
    )
    catalog = read_catalog(csv, posters)
    assert [(f.title, f.year) for f in catalog.films] == [("Fine", 1999), ("No Year", None)]
    assert "year" not in catalog.films[1].payload()
    assert [(r.row, r.reason) for r in catalog.rejects] == [
        (4, "unparseable year '19x9'"),
        (5, "implausible year 1700"),
        (6, "implausible year 2999"),
        (7, "poster file not found"),
        (8, "poster path escapes the posters folder"),
        (9, "poster path escapes the posters folder"),
        (10, "duplicate key 'ok.jpg' (first at line 2)"),
        (11, "no title"),
        (12, "no poster file or id"),
    ]
    assert catalog.rows == 11


def test_columns_can_be_named(tmp_path):
    make_poster(tmp_path / "posters" / "a.png", seed=1)
    csv = write_csv(tmp_path / "c.csv", ["img", "movie", "released", "tags"], [["a.png", "A Film", "1970", "War, Drama"]])
    with pytest.raises(PosterSearchError, match="no poster file or id column"):
        read_catalog(csv, tmp_path / "posters")
    catalog = read_catalog(csv, tmp_path / "posters", Columns(file="img", title="movie", year="released", genres="tags"))
    assert [(f.title, f.year, f.genres) for f in catalog.films] == [("A Film", 1970, ("War", "Drama"))]
    with pytest.raises(PosterSearchError, match="no column 'nope'"):
        read_catalog(csv, tmp_path / "posters", Columns(file="nope"))


def test_unreadable_catalogs_are_clear_errors(tmp_path):
    (tmp_path / "posters").mkdir()
    with pytest.raises(PosterSearchError, match="catalog not found"):
        read_catalog(tmp_path / "nope.csv", tmp_path / "posters")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(PosterSearchError, match="empty"):
        read_catalog(tmp_path / "empty.csv", tmp_path / "posters")
    csv = write_csv(tmp_path / "m.csv", ["filename", "title"], [])
    with pytest.raises(PosterSearchError, match="posters folder not found"):
        read_catalog(csv, tmp_path / "nothere")
    with pytest.raises(PosterSearchError, match="unknown encoding"):
        read_catalog(csv, tmp_path / "posters", encoding="klingon")
    (tmp_path / "bin.csv").write_bytes(b"filename,title\n\xff\xfe,\xff\n")
    with pytest.raises(PosterSearchError, match="not valid utf-8"):
        read_catalog(tmp_path / "bin.csv", tmp_path / "posters", encoding="utf-8")


def test_trailing_commas_and_a_longer_first_row_never_shift_columns(tmp_path):
    posters = tmp_path / "posters"
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        make_poster(posters / name, seed=len(name) + ord(name[0]))
    # Every row ends with a comma (pandas would take the first column as row labels).
    (tmp_path / "trailing.csv").write_text("filename,title,release_year\na.jpg,Alpha,1950,\nb.jpg,Beta,1960,\n")
    catalog = read_catalog(tmp_path / "trailing.csv", posters)
    assert [(f.file, f.title, f.year) for f in catalog.films] == [("a.jpg", "Alpha", 1950), ("b.jpg", "Beta", 1960)]
    assert catalog.rejects == []
    # The first row is longer than the header (an unquoted comma in a title): that row is a reject,
    # the others are read as they are.
    (tmp_path / "longer.csv").write_text("filename,title,release_year\na.jpg,Alpha, Part 2,1950\nb.jpg,Beta,1960\nc.jpg,Gamma,1970,,\n")
    catalog = read_catalog(tmp_path / "longer.csv", posters)
    assert [(f.file, f.title, f.year) for f in catalog.films] == [("b.jpg", "Beta", 1960), ("c.jpg", "Gamma", 1970)]
    assert [(r.row, r.key, r.reason) for r in catalog.rejects] == [(2, "a.jpg", "row has 4 fields, the header 3 (an unquoted comma?)")]


def test_one_poster_file_is_one_key_whatever_its_spelling(tmp_path):
    posters = tmp_path / "posters"
    make_poster(posters / "b.jpg", seed=1)
    make_poster(posters / "c.jpg", seed=2)
    make_poster(posters / "sub" / "d.jpg", seed=3)
    (posters / "link-to-b.jpg").symlink_to(posters / "b.jpg")
    csv = write_csv(
        tmp_path / "m.csv",
        ["filename", "title", "release_year"],
        [
            ["b.jpg", "B", 1950],
            ["./b.jpg", "B again", 1950],
            ["sub/../c.jpg", "C", 1951],
            ["c.jpg", "C again", 1951],
            ["sub//./d.jpg", "D", 1952],
            ["link-to-b.jpg", "B by a link", 1950],
        ],
    )
    catalog = read_catalog(csv, posters)
    assert [(f.key, f.file) for f in catalog.films] == [("b.jpg", "b.jpg"), ("c.jpg", "c.jpg"), ("sub/d.jpg", "sub/d.jpg")]
    assert catalog.films[1].point_id == point_id("c.jpg")
    assert [(r.row, r.reason) for r in catalog.rejects] == [
        (3, "duplicate key 'b.jpg' (first at line 2)"),
        (5, "duplicate key 'c.jpg' (first at line 4)"),
        (7, "same poster file as line 2"),
    ]


def test_symlinks_out_of_the_folder_huge_fields_and_odd_paths_are_rejects(tmp_path):
    posters = tmp_path / "posters"
    make_poster(posters / "ok.jpg", seed=1)
    make_poster(tmp_path / "secret.jpg", seed=2)
    (posters / "out.jpg").symlink_to(tmp_path / "secret.jpg")
    (posters / "outdir").symlink_to(tmp_path)
    (posters / "folder.jpg").mkdir()
    os.mkfifo(posters / "fifo.jpg")
    (posters / "loop.jpg").symlink_to(posters / "loop.jpg")
    long_name = "x" * 300 + ".jpg"
    huge = "T" * 5_000_000  # the real case was 50 MB; the same path, a tenth of the time
    rows = [
        ["ok.jpg", "Fine", 1950],
        ["out.jpg", "Symlink out", 1950],
        ["outdir/secret.jpg", "Through a linked folder", 1950],
        [long_name, "Long name", 1950],
        ["ok2.jpg", huge, 1950],
        ["folder.jpg", "A folder", 1950],
        ["fifo.jpg", "A FIFO", 1950],
        ["loop.jpg", "A loop", 1950],
        ["sub/..", "Not a file", 1950],
    ]
    csv = write_csv(tmp_path / "m.csv", ["filename", "title", "release_year"], rows)
    catalog = read_catalog(csv, posters)
    assert [f.key for f in catalog.films] == ["ok.jpg"]
    reasons = [(r.row, r.reason) for r in catalog.rejects]
    outside = "poster path escapes the posters folder (a symlink leads outside it)"
    assert reasons[:2] == [(3, outside), (4, outside)]
    assert reasons[2] == (5, "poster file unreadable: File name too long")
    assert reasons[3] == (6, "field 'title' is 5,000,000 characters (limit 10,000)")
    assert reasons[4:] == [
        (7, "poster path is a folder, not a file"),
        (8, "poster path is not a regular file"),
        (9, "poster path is a symlink loop"),
        (10, "no poster file or id"),
    ]
    assert all(len(r.key) < 300 and len(r.file) < 300 and len(r.reason) < 300 for r in catalog.rejects)


def test_reject_lines_are_file_lines_after_a_multiline_title(tmp_path):
    make_poster(tmp_path / "posters" / "a.jpg", seed=1)
    csv = write_csv(
        tmp_path / "m.csv", ["filename", "title", "release_year"], [["a.jpg", "Two\nlines\nhere", 1950], ["gone.jpg", "Missing", 1950]]
    )
    catalog = read_catalog(csv, tmp_path / "posters")
    assert [f.title for f in catalog.films] == ["Two\nlines\nhere"]
    assert [(r.row, r.reason) for r in catalog.rejects] == [(5, "poster file not found")]


def test_hostile_rows_through_the_command_line_are_short_rejects(tmp_path):
    make_poster(tmp_path / "posters" / "ok.jpg", seed=1)
    rows = [["ok.jpg", "Fine", 1950], ["y" * 300 + ".jpg", "Long name", 1950], ["z.jpg", "T" * 5_000_000, 1950]]
    catalog = write_csv(tmp_path / "m.csv", ["filename", "title", "release_year"], rows)
    rejects = tmp_path / "rejects.csv"
    args = ["ingest", "--catalog", catalog, "--posters", tmp_path / "posters", "--qdrant-path", tmp_path / "store"]
    result = run_cli(*args, "--weights", "random", "--rejects", rejects)
    assert result.exit_code == 0, result.output
    assert "ingested 1, already stored 0, rejected 2 of 3 catalog rows" in result.output
    assert max(len(line) for line in result.output.splitlines()) < 300
    lines = rejects.read_text().splitlines()
    assert len(lines) == 3 and max(len(line) for line in lines) < 600
    assert "File name too long" in lines[1] and "5,000,000 characters" in lines[2]
