"""Read a film catalog (CSV) into validated films and rejected rows with reasons.

Two real formats work without options:
1. `filename,title,release_year` (../shared/data/posters-era/movies.csv)
2. Kaggle "Movie Genre from its Poster": `imdbId,Imdb Link,Title,IMDB Score,Genre,Poster`,
   latin-1, the year only in the title ("Toy Story (1995)"), genres "A|B", posters `<imdbId>.jpg`.
Other layouts work by naming the columns.
"""

from __future__ import annotations

import csv
import datetime
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from errors import UserError
from store.schema import point_id

# Candidate column names, compared case-insensitively, first match wins.
FILE_COLUMNS = ("filename", "file", "poster_file", "poster_path", "path", "image")
ID_COLUMNS = ("imdbid", "imdb_id", "id", "movie_id", "tmdb_id")
TITLE_COLUMNS = ("title", "name", "movie_title", "original_title")
YEAR_COLUMNS = ("release_year", "year")
GENRE_COLUMNS = ("genres", "genre")

FIRST_FILM_YEAR = 1870  # Muybridge; anything earlier is a data error
TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:/[IVX]+)?\)\s*$")  # "Toy Story (1995)"
YEAR_VALUE = re.compile(r"^(\d{4})(?:\.0+|-\d{2}-\d{2})?$")  # 1995, 1995.0, 1995-11-22


@dataclass(frozen=True)
class Film:
    key: str  # the catalog's identity for the film: its id column, else its poster file name
    title: str
    year: int | None
    file: str  # relative to the posters folder
    genres: tuple[str, ...] = ()
    row: int = 0  # line in the CSV (header is line 1)

    @property
    def point_id(self) -> str:
        return point_id(self.key)

    def payload(self) -> dict:
        payload = {"key": self.key, "title": self.title, "file": self.file}
        if self.year is not None:
            payload["year"] = self.year
        if self.genres:
            payload["genres"] = list(self.genres)
        return payload


@dataclass(frozen=True)
class Reject:
    row: int
    key: str
    file: str
    reason: str


@dataclass
class Columns:
    file: str | None = None
    id: str | None = None
    title: str | None = None
    year: str | None = None
    genres: str | None = None


@dataclass
class Catalog:
    films: list[Film]
    rejects: list[Reject]
    columns: Columns
    encoding: str = "utf-8"
    rows: int = field(default=0)


def read_catalog(
    csv_path: Path,
    posters_dir: Path,
    columns: Columns | None = None,
    encoding: str | None = None,
) -> Catalog:
    """Validate every row; bad rows become Rejects, never exceptions. Bad files are UserErrors."""
    csv_path, posters_dir = Path(csv_path), Path(posters_dir)
    if not csv_path.is_file():
        raise UserError(f"catalog not found: {csv_path}")
    if not posters_dir.is_dir():
        raise UserError(f"posters folder not found: {posters_dir}")
    table, encoding = _read_table(csv_path, encoding)
    cols = _detect_columns(list(table.columns), columns or Columns(), csv_path)
    root = posters_dir
    latest_year = datetime.date.today().year + 5  # announced films have posters before release

    films: list[Film] = []
    rejects: list[Reject] = []
    first_row_of: dict[str, int] = {}
    for index, record in enumerate(table.to_dict("records")):
        row = index + 2
        get = lambda name: str(record[name]).strip() if name else ""  # noqa: E731
        file = get(cols.file) or (f"{get(cols.id)}.jpg" if get(cols.id) else "")
        key = get(cols.id) or file
        title, year_text = get(cols.title), get(cols.year)
        if not cols.year:
            match = TITLE_YEAR.match(title)
            if match:
                title, year_text = match["title"], match["year"]

        def reject(reason: str) -> None:
            rejects.append(Reject(row, key, file, reason))

        if not key:
            reject("no poster file or id")
            continue
        if key in first_row_of:
            reject(f"duplicate key {key!r} (first at line {first_row_of[key]})")
            continue
        first_row_of[key] = row
        if not title:
            reject("no title")
            continue
        year = None
        if year_text:
            match = YEAR_VALUE.match(year_text)
            if not match:
                reject(f"unparseable year {year_text!r}")
                continue
            year = int(match.group(1))
            if not FIRST_FILM_YEAR <= year <= latest_year:
                reject(f"implausible year {year}")
                continue
        # Lexical check: "../x" or "/x" in a catalog must not read outside the folder, while
        # symlinks the user put inside their own posters folder are followed.
        path = Path(os.path.normpath(file))
        if path.is_absolute() or path.parts[0] == "..":
            reject("poster path escapes the posters folder")
            continue
        if not (root / path).is_file():
            reject("poster file not found")
            continue
        genres = tuple(g.strip() for g in re.split(r"[|,]", get(cols.genres)) if g.strip()) if cols.genres else ()
        films.append(Film(key=key, title=title, year=year, file=path.as_posix(), genres=genres, row=row))
    return Catalog(films=films, rejects=rejects, columns=cols, encoding=encoding, rows=len(table))


def _read_table(path: Path, encoding: str | None) -> tuple[pd.DataFrame, str]:
    # Strings only, and "" for empty cells: ids like 0114709 and years must not become floats.
    candidates = [encoding] if encoding else ["utf-8-sig", "latin-1"]  # latin-1 decodes any byte: last resort
    for candidate in candidates:
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=candidate), candidate
        except UnicodeDecodeError:
            continue
        except LookupError:
            raise UserError(f"unknown encoding {candidate!r}") from None
        except pd.errors.EmptyDataError:
            raise UserError(f"catalog {path} is empty") from None
        except (pd.errors.ParserError, csv.Error) as e:
            raise UserError(f"catalog {path} is not a readable CSV: {str(e).strip().splitlines()[-1]}") from None
    raise UserError(f"catalog {path} is not valid {encoding} text (try --encoding latin-1)")


def _detect_columns(names: list[str], given: Columns, path: Path) -> Columns:
    by_lower = {n.strip().lower(): n for n in names}

    def pick(option: str | None, candidates: tuple[str, ...], what: str) -> str | None:
        if option:
            if option not in names:
                raise UserError(f"catalog {path} has no column {option!r} for the {what} (columns: {', '.join(names)})")
            return option
        return next((by_lower[c] for c in candidates if c in by_lower), None)

    cols = Columns(
        file=pick(given.file, FILE_COLUMNS, "poster file"),
        id=pick(given.id, ID_COLUMNS, "film id"),
        title=pick(given.title, TITLE_COLUMNS, "title"),
        year=pick(given.year, YEAR_COLUMNS, "year"),
        genres=pick(given.genres, GENRE_COLUMNS, "genres"),
    )
    if not cols.file and not cols.id:
        raise UserError(f"catalog {path} has no poster file or id column (columns: {', '.join(names)}); name one with --file-column")
    if not cols.title:
        raise UserError(f"catalog {path} has no title column (columns: {', '.join(names)}); name one with --title-column")
    return cols
