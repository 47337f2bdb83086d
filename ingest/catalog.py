"""Read a film catalog (CSV) into validated films and rejected rows with reasons.

Two real formats work without options:
1. `filename,title,release_year` (../shared/data/posters-era/movies.csv)
2. Kaggle "Movie Genre from its Poster": `imdbId,Imdb Link,Title,IMDB Score,Genre,Poster`,
   latin-1, the year only in the title ("Toy Story (1995)"), genres "A|B", posters `<imdbId>.jpg`.
Other layouts work by naming the columns.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import io
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput, check_file
from ..store.schema import PosterPayload, point_id

# Candidate column names, compared case-insensitively, first match wins.
FILE_COLUMNS = ("filename", "file", "poster_file", "poster_path", "path", "image")
ID_COLUMNS = ("imdbid", "imdb_id", "id", "movie_id", "tmdb_id")
TITLE_COLUMNS = ("title", "name", "movie_title", "original_title")
YEAR_COLUMNS = ("release_year", "year")
GENRE_COLUMNS = ("genres", "genre")

FIRST_FILM_YEAR = 1870  # Muybridge; anything earlier is a data error
TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:/[IVX]+)?\)\s*$")  # "Toy Story (1995)"
YEAR_VALUE = re.compile(r"^(\d{4})(?:\.0+|-\d{2}-\d{2})?$")  # 1995, 1995.0, 1995-11-22
NOT_FOUND = "poster file not found"
MAX_FIELD = 10_000  # characters in a used field: longer is a broken row (a title is at most a few hundred)
MAX_LINE = 8_000_000  # characters in a line: longer is left out unread (a row is a few kilobytes; MAX_FIELD judges long fields)
MAX_MESSAGE_VALUE = 200  # characters of a value quoted in a reject or an error message
# Excel's first line naming the separator ("sep=;", also quoted, or with the separator repeated):
# the separator, then anything after it, which must be only more of it.
SEP_LINE = re.compile(r'"?sep=(\\t|[^\w"\r\n])"?(.*)', re.IGNORECASE)


@dataclass(frozen=True)
class Film:
    key: str  # the catalog's identity for the film: its id column, else its poster file name
    title: str
    year: int | None
    file: str  # relative to the posters folder, as the file system names it (any encoding: text_out.py)
    genres: tuple[str, ...] = ()
    row: int = 0  # line in the CSV (header is line 1)
    source: str = "catalog"  # what says the title, year and genres: a catalog, or a "folder" (names and .nfo files)
    file_stat: tuple[int, int] | None = None  # (size, mtime_ns) of the poster file as planning found it (ingest/plan.py)

    @property
    def point_id(self) -> str:
        return point_id(self.key)

    def payload(self, sha256: str = "") -> dict:
        """The point's payload (store/schema.py); `sha256` of the poster file once it is read, and
        the file's size and modification time from before it was read (a later change shows)."""
        size, mtime = self.file_stat if self.file_stat and sha256 else (None, None)
        return PosterPayload.of_file(
            self.file,
            key=self.key,
            title=self.title,
            year=self.year,
            sha256=sha256,
            genres=self.genres,
            source=self.source,
            file_size=size,
            file_mtime_ns=mtime,
        ).to_dict()


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
    named: set[str] = field(default_factory=set)  # every key a row names, in full (reject keys are cut)
    notes: list[Reject] = field(default_factory=list)  # problems that did not stop a film (an .nfo ignored): written with the rejects
    unit: str = "catalog rows"  # what `rows` counts, for the summary (a folder: "poster files")

    def keys(self) -> set[str]:
        """Every key the catalog names, valid or rejected: a stored film outside it is gone from the catalog."""
        return {f.key for f in self.films} | {r.key for r in self.rejects if r.key} | self.named


def read_catalog(
    csv_path: Path,
    posters_dir: Path,
    columns: Columns | None = None,
    encoding: str | None = None,
) -> Catalog:
    """Validate every row; bad rows become Rejects, never exceptions. Bad files raise BadInput."""
    csv_path, posters_dir = Path(csv_path), Path(posters_dir)
    check_file(csv_path, "catalog")
    if not posters_dir.is_dir():
        kind = "is a file, not a folder" if posters_dir.exists() else "not found"
        raise BadInput(f"posters folder {kind}: {_clip(str(posters_dir))}")
    header, records, encoding, broken = _read_records(csv_path, encoding)
    cols = _detect_columns(header, columns or Columns(), csv_path)
    root = posters_dir.resolve()
    latest_year = datetime.date.today().year + 5  # announced films have posters before release
    wanted = [name for name in (cols.file, cols.id, cols.title, cols.year, cols.genres) if name]

    films: list[Film] = []
    rejects: list[Reject] = [Reject(row, _clip(key), "", reason) for row, key, reason in broken]
    first_row_of: dict[str, int] = {}
    first_row_of_file: dict[Path, int] = {}
    named: set[str] = set()
    for row, fields in records:
        # Read by position, never by guessing: a row with trailing commas (empty extra fields) is
        # the row without them; a row with extra values is a reject, not a shift of every column.
        extra = fields[len(header) :]
        values = dict(reversed(list(zip(header, fields))))  # a repeated column name: its first column
        get = lambda name: values.get(name, "").strip() if name else ""  # noqa: E731, B023 (called at once, inside the loop)
        file = _normal_file(get(cols.file)) or (_normal_file(f"{get(cols.id)}.jpg") if get(cols.id) else "")
        key = get(cols.id) or file
        if len(key) <= MAX_FIELD:
            named.add(key)  # a stored film whose row is now rejected is still in the catalog, not gone
        too_long = next((name for name in wanted if len(values.get(name, "")) > MAX_FIELD), None)
        if too_long:
            reason = f"field {_clip(too_long, 40)!r} is {len(values[too_long]):,} characters (limit {MAX_FIELD:,})"
            rejects.append(Reject(row, _clip(key), _clip(file), reason))
            continue
        title, year_text = get(cols.title), get(cols.year)
        if not cols.year:
            match = TITLE_YEAR.match(title)
            if match:
                title, year_text = match["title"], match["year"]

        def reject(reason: str) -> None:
            rejects.append(Reject(row, _clip(key), _clip(file), reason))  # noqa: B023 (called at once, inside the loop)

        if any(value.strip() for value in extra):
            reject(f"row has {len(fields)} fields, the header {len(header)} (an unquoted comma?)")
            continue
        if any("\x00" in values.get(name, "") for name in wanted):
            reject("a field holds NUL bytes (a binary file, or a catalog saved as UTF-16? save it as UTF-8)")
            continue
        if not key:
            reject("no poster file or id")
            continue
        if key in first_row_of:
            reject(f"duplicate key {_clip(key)!r} (first at line {first_row_of[key]})")
            continue
        first_row_of[key] = row
        if not title:
            reject("no title")
            continue
        year = None
        if year_text:
            match = YEAR_VALUE.match(year_text)
            if not match:
                reject(f"unparseable year {_clip(year_text, 40)!r}")
                continue
            year = int(match.group(1))
            if not FIRST_FILM_YEAR <= year <= latest_year:
                reject(f"implausible year {year}")
                continue
        where, problem = _locate_poster(root, file)
        if problem == NOT_FOUND and not file.isascii():
            legacy = _legacy_name(root, file, encoding)
            if legacy is not None:  # the file as a Latin-1 system saved it: read by its bytes, keyed by the catalog's text
                file, (where, problem) = legacy, _locate_poster(root, legacy)
        if problem:
            reject(problem)
            continue
        assert where is not None  # _locate_poster gives a path or a problem
        if where in first_row_of_file:  # e.g. a symlink beside its target: one poster file, one point
            reject(f"same poster file as line {first_row_of_file[where]}")
            continue
        first_row_of_file[where] = row
        genres = tuple(g.strip() for g in re.split(r"[|,]", get(cols.genres)) if g.strip()) if cols.genres else ()
        films.append(Film(key=key, title=title, year=year, file=file, genres=genres, row=row))
    return Catalog(films=films, rejects=rejects, columns=cols, encoding=encoding, rows=len(records) + len(broken), named=named - {""})


def _normal_file(name: str) -> str:
    """The poster path as one spelling: `./b.jpg` and `sub/../b.jpg` are `b.jpg` (same key, same point)."""
    if not name:
        return ""
    normal = os.path.normpath(name)
    return "" if normal == "." else Path(normal).as_posix()


def _locate_poster(root: Path, file: str) -> tuple[Path | None, str]:
    """The real path of a poster inside `root`, or why there is none.

    Lexically escaping paths ("../x", "/x") and symlinks that lead outside the folder are both
    refused: a catalog must not make ingest read (and hash, and store a vector of) other files.
    """
    path = Path(file)
    if path.is_absolute() or path.parts[0] == "..":
        return None, "poster path escapes the posters folder"
    try:
        real, mode = root, 0
        for part in path.parts:  # one lstat per component: cheaper than resolve() when no symlink is met
            real = real / part
            mode = os.lstat(real).st_mode
            if stat.S_ISLNK(mode):
                break
        if stat.S_ISLNK(mode):  # a symlink on the way: follow it all, and see where it leads
            real = (root / path).resolve()
            if not real.is_relative_to(root):
                return None, "poster path escapes the posters folder (a symlink leads outside it)"
            mode = real.stat().st_mode
    except FileNotFoundError:
        return None, NOT_FOUND
    except RuntimeError:  # a symlink loop
        return None, "poster path is a symlink loop"
    except OSError as e:
        return None, f"poster file unreadable: {e.strerror or type(e).__name__}"
    if stat.S_ISDIR(mode):
        return None, "poster path is a folder, not a file"
    if not stat.S_ISREG(mode):
        return None, "poster path is not a regular file"
    return real, ""


def _legacy_name(root: Path, file: str, encoding: str) -> str | None:
    """The catalog's file name as a system that saves names in the catalog's encoding (or
    Windows-1252, the usual one) wrote it to disk, if such a file exists: `café.jpg` named in the
    catalog, `caf\\xe9.jpg` on an old Samba share. The name as Python opens it (text_out.py)."""
    for codec in dict.fromkeys([encoding, "cp1252"]):
        if codec.replace("-", "").replace("_", "").lower().startswith(("utf", "ascii")):
            continue
        try:
            name = os.fsdecode(file.encode(codec))
        except (UnicodeEncodeError, LookupError):
            continue
        if name != file and os.path.lexists(root / name):
            return name
    return None


def _clip(text: str, limit: int = MAX_MESSAGE_VALUE) -> str:
    """A value as it may appear in a message: long values cut, with their length."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _read_records(path: Path, encoding: str | None) -> tuple[list[str], list[tuple[int, list[str]]], str, list[tuple[int, str, str]]]:
    """The header, every non-blank record with the file line it starts on (all values strings), the
    encoding, and the records that were rejected whole: (line, key, reason).

    The csv module, not pandas: pandas guesses that the first column is an index when rows are
    longer than the header (trailing commas), shifting every column; ids like 0114709 must stay
    strings; and a huge field must be a rejected row, not a parser abort.
    """
    text, encoding, long_lines = _read_text(path, encoding)
    text, named_delimiter = _sep_line(text, path)
    csv.field_size_limit(sys.maxsize)  # long fields are judged per row (MAX_FIELD), not by the parser
    lines = text.splitlines(keepends=True)
    header: list[str] | None = None
    records: list[tuple[int, list[str]]] = []
    broken: list[tuple[int, str, str]] = [
        (line, "", f"the line is {length:,} characters long, more than the {MAX_LINE:,} a catalog row may have: not read")
        for line, length in long_lines
    ]
    delimiter = named_delimiter or _delimiter(text)
    try:
        pending = [(1, text)]  # (first file line, text): a run-away quote's lines are parsed again on their own
        while pending:
            first, chunk = pending.pop(0)
            reader = csv.reader(io.StringIO(chunk, newline=""), delimiter=delimiter)
            line = first
            for fields in reader:
                start, line = line, first + reader.line_num
                if not fields or not any(f.strip() for f in fields):
                    continue  # blank line
                if header is None:
                    header = fields
                    continue
                swallowed = _swallowed_rows(lines[start : line - 1], len(header), delimiter) if line - start > 1 else 0
                if swallowed:
                    # An unclosed quote: the field ran on and took the next rows' lines into itself.
                    # This row is rejected; the lines it swallowed are read again as rows of their own.
                    reason = f"a quoted field is not closed: it runs over {line - start} lines, {swallowed} of them shaped like rows of their own"
                    broken.append((start, fields[0] if fields else "", reason))
                    pending.insert(0, (start + 1, "".join(lines[start:])))
                    break
                records.append((start, fields))
    except csv.Error as e:
        raise BadInput(f"catalog {path} is not a readable CSV: {_clip(str(e))} (line {reader.line_num})") from None
    if header is None:
        raise BadInput(f"catalog {path} is empty")
    while header and not header[-1].strip():  # a trailing comma on the header line too
        header.pop()
    return header, records, encoding, broken


def _swallowed_rows(continuation: list[str], columns: int, delimiter: str = ",") -> int:
    """How many of a multi-line record's continuation lines look like complete rows of their own:
    quotes balanced on the line (the line that closes a real multi-line title has an odd number)
    and as many fields as the header."""
    count = 0
    for text in continuation:
        if text.count('"') % 2 == 0 and text.strip():
            fields = next(csv.reader([text.rstrip("\r\n")], delimiter=delimiter), [])
            count += len(fields) == columns and bool(fields[0].strip())
    return count


def _sep_line(text: str, path: Path) -> tuple[str, str | None]:
    """The text without Excel's `sep=X` first line, and X (None without such a line). The line is
    left empty, not removed, so every later row keeps its file line number."""
    first = re.match(r"[^\r\n]*", text)
    content = first[0] if first else ""
    if not content.lstrip('"').lower().startswith("sep="):
        return text, None
    match = SEP_LINE.fullmatch(content)
    delimiter = "" if match is None else "\t" if match[1] == "\\t" else match[1]  # "sep=\t" spelt out: a tab
    if match is None or match[2].strip(delimiter + '" '):
        raise BadInput(
            f"catalog {path}: its first line {_clip(content, 40)!r} names no one-character separator (Excel writes sep=; or sep=,)"
        )
    return text[len(content) :], delimiter


def _delimiter(text: str) -> str:
    """The catalog's field separator, from its header line alone: a comma, unless the header has
    none and splits on exactly one of tab, semicolon or bar (what spreadsheet programs write in
    locales whose decimal mark is a comma). The header names the columns, so a wrong guess cannot
    pass silently: the columns would not be found, which is an error naming them."""
    header = next((line for line in text.splitlines()[:50] if line.strip()), "")
    if "," in header:
        return ","
    found = [d for d in ("\t", ";", "|") if d in header]
    return found[0] if len(found) == 1 else ","


def _read_text(path: Path, encoding: str | None) -> tuple[str, str, list[tuple[int, int]]]:
    """The catalog's text, its encoding, and the lines left out for their length: (line, characters).

    Read a line at a time with a bound (MAX_LINE characters): a line of a gigabyte costs one
    bound's memory while it is skipped, never the whole of it several times over (bytes, text,
    lines, fields). A skipped line is kept as an empty line, so later rows keep their line numbers."""
    with open(path, "rb") as f:
        head = f.read(4096)
    for candidate in _encodings(head, path, encoding):
        try:
            with open(path, encoding=candidate, newline="") as f:
                text, long_lines = _bounded_lines(f)
        except UnicodeDecodeError:
            continue
        except LookupError:
            raise BadInput(f"unknown encoding {_clip(candidate, 40)!r}") from None
        return text.removeprefix("\ufeff"), candidate, long_lines
    raise BadInput(f"catalog {path} is not valid {encoding} text (try --encoding latin-1)")


def _bounded_lines(f) -> tuple[str, list[tuple[int, int]]]:
    """The text of `f`, lines over MAX_LINE characters replaced by an empty line; and those lines: (line, characters)."""
    pieces: list[str] = []
    long_lines: list[tuple[int, int]] = []
    number = 0
    while line := f.readline(MAX_LINE):
        number += 1
        if len(line) < MAX_LINE or line.endswith(("\n", "\r")):
            pieces.append(line)
            continue
        length = len(line)
        while (more := f.readline(MAX_LINE)) and not more.endswith(("\n", "\r")):
            length += len(more)
        length += len(more.rstrip("\r\n"))
        long_lines.append((number, length))
        pieces.append("\n")
    return "".join(pieces), long_lines


def _encodings(head: bytes, path: Path, encoding: str | None) -> list[str]:
    """The encodings to try, in order: the one given, else UTF-8 (or the UTF-16/32 its byte-order
    mark names), else latin-1."""
    if encoding is None:
        for bom, name in (
            (codecs.BOM_UTF32_LE, "utf-32"),
            (codecs.BOM_UTF32_BE, "utf-32"),
            (codecs.BOM_UTF16_LE, "utf-16"),
            (codecs.BOM_UTF16_BE, "utf-16"),
        ):
            if head.startswith(bom):
                encoding = name
                break
    if encoding is None and head.count(b"\x00") > len(head) // 8:  # every other byte NUL: UTF-16 text; a few: rows with NUL, rejected
        raise BadInput(
            f"catalog {path} holds NUL bytes: it looks like UTF-16 without a byte-order mark; pass --encoding utf-16 (or utf-16-le) or save it as UTF-8"
        )
    return [encoding] if encoding else ["utf-8-sig", "latin-1"]  # latin-1 decodes any byte: last resort


def _detect_columns(names: list[str], given: Columns, path: Path) -> Columns:
    by_lower = {n.strip().lower(): n for n in names}

    def pick(option: str | None, candidates: tuple[str, ...], what: str) -> str | None:
        if option:
            if option not in names:
                raise BadInput(f"catalog {path} has no column {option!r} for the {what} (columns: {', '.join(names)})")
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
        raise BadInput(f"catalog {path} has no poster file or id column (columns: {', '.join(names)}); name one with --file-column")
    if not cols.title:
        raise BadInput(f"catalog {path} has no title column (columns: {', '.join(names)}); name one with --title-column")
    return cols
