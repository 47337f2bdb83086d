"""A folder of posters with no catalog: every image under it becomes a film, named as media servers do.

The result is the same `Catalog` a CSV gives (ingest/catalog.py), so planning, embedding, resuming
and pruning are the catalog path's: the key of each film is its path relative to the folder
(`Alien (1979)/poster.jpg`), so a rerun embeds only new or replaced files.

What is scanned: every file with an image extension, in every folder below, in sorted order.
Hidden files and folders (a leading dot) are skipped, and so are media servers' artwork that is
not a poster (`fanart.jpg`, `banner.png`, `clearlogo.png`, `<name>-fanart.jpg`, `extrafanart/`, ...).
Links: a symlinked folder is never followed; a symlinked file is taken only when it resolves to a
regular file inside the folder that is not scanned anyway (a second name for a scanned poster
would be a second point of one poster), and a link leading outside is a reject, never read.

Title, year and genres, in order (field by field: an .nfo without a year takes the name's):
1. a Kodi/Jellyfin .nfo beside the poster: `<name>.nfo` for `<name>.jpg` and for Kodi's
   `<name>-poster.jpg`; `movie.nfo` (or the folder's only .nfo) for an artwork name
   (`poster.jpg`, `folder.jpg`, `cover.jpg`, ...) or the folder's only poster. `<year>`, else the
   year of `<premiered>`; `<genre>` elements. Read as untrusted input (ingest/nfo.py): one that
   cannot be used is a note, and the name decides.
2. the media-server naming convention `Title (1999)` (Jellyfin's `[imdbid-...]` tags allowed
   after it) in the file name, or, for an artwork name, in the folder's name;
3. else the file name without extension as the title, and no year.
"""

from __future__ import annotations

import datetime
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput
from ..text_out import as_text
from .catalog import FIRST_FILM_YEAR, Catalog, Columns, Film, Reject
from .nfo import NfoError, NfoInfo, read_nfo

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".jfif"})
# Artwork names whose title is the folder's (Kodi, Jellyfin, Plex, Emby).
ARTWORK_NAMES = frozenset({"poster", "folder", "cover", "movie", "default", "keyart"})
# Media-server artwork that is not a poster, alone or as `<name>-<kind>`.
NOT_POSTERS = frozenset({"fanart", "backdrop", "background", "banner", "clearart", "clearlogo", "logo", "landscape", "disc", "discart"})
SKIPPED_FOLDERS = frozenset({"extrafanart", "extrathumbs", "backdrops", "extrafanarts"})
POSTER_SUFFIX = "-poster"  # Kodi: `<name>-poster.jpg` beside `<name>.nfo`
NAME_YEAR = re.compile(
    r"^(?P<title>.*?\S)\s*\((?P<year>\d{4})\)(?:\s*\[[^\]]*\])*\s*$"
)  # "Alien (1979)", "Alien (1979) [imdbid-tt0078748]"
# Scene and download names, as Jellyfin's and Kodi's date cleaning reads them: the title, a
# separator, a year, then nothing or a separator and anything (quality, source, group). Greedy, so
# the last year wins: "Blade.Runner.2049.2017.1080p" is Blade Runner 2049, "2001.A.Space.Odyssey.1968"
# is 2001 A Space Odyssey.
SCENE_YEAR = re.compile(r"^(?P<title>.*[^ ._\-(\[])[ ._\-(\[]+(?P<year>1[89]\d\d|20\d\d)(?:[ ._\-)\]].*)?$")


@dataclass(frozen=True)
class _Found:
    file: str  # relative to the root, with "/"
    folder: str  # relative folder ("" at the root)
    nfos: dict[str, str]  # the .nfo files in its folder: lower-cased name -> the name as written (see _nfo_for)
    posters_in_folder: int


def read_folder(posters_dir: Path) -> Catalog:
    """Every poster image under `posters_dir` as a Catalog (films, rejects, notes)."""
    posters_dir = Path(posters_dir)
    if not posters_dir.is_dir():
        kind = "is a file, not a folder" if posters_dir.exists() else "not found"
        raise BadInput(f"posters folder {kind}: {posters_dir}")
    root = posters_dir.resolve()
    found, rejects, notes = _scan(root)
    latest_year = datetime.date.today().year + 5
    films: list[Film] = []
    keys: set[str] = set()
    for row, item in enumerate(found, start=1):
        title, year, genres = _from_name(item)
        nfo = _nfo_for(item)
        if nfo is not None:
            try:
                info = read_nfo(root / nfo)
            except NfoError as e:
                notes.append(Reject(row, item.file, item.file, f"{nfo} ignored: {e}; title and year from the file name"))
                info = NfoInfo()
            if info.year is not None and not FIRST_FILM_YEAR <= info.year <= latest_year:
                notes.append(Reject(row, item.file, item.file, f"{nfo}: implausible year {info.year} ignored"))
                info = NfoInfo(info.title, None, info.genres)
            title, year, genres = info.title or title, info.year if info.year is not None else year, info.genres or genres
        if year is not None and not FIRST_FILM_YEAR <= year <= latest_year:
            year = None
        key = as_text(item.file)  # a name in any encoding is keyed by its text; its bytes stay in the payload
        if key in keys:
            rejects.append(
                Reject(row, key, item.file, "another poster's name reads as the same text (one of the two is not UTF-8): rename one")
            )
            continue
        keys.add(key)
        films.append(Film(key=key, title=as_text(title), year=year, file=item.file, genres=genres, row=row, source="folder"))
    rejects, notes = [_as_text(r) for r in rejects], [_as_text(r) for r in notes]
    named = {f.key for f in films} | {r.key for r in rejects}
    return Catalog(films, rejects, Columns(file="(folder)"), rows=len(found) + len(rejects), named=named, notes=notes, unit="poster files")


def _as_text(reject: Reject) -> Reject:
    """A reject or note keyed and written as text, whatever the encoding of the names it holds."""
    return Reject(reject.row, as_text(reject.key), as_text(reject.file), as_text(reject.reason))


def poster_files(folder: Path) -> list[Path]:
    """The poster images under `folder` by the same rules (predict-year on a folder)."""
    found, _, _ = _scan(Path(folder).resolve())
    return [Path(folder) / item.file for item in found]


def _scan(root: Path) -> tuple[list[_Found], list[Reject], list[Reject]]:
    """Posters under `root` (sorted, depth first), rejected links, and notes (unreadable folders)."""
    found: list[_Found] = []
    rejects: list[Reject] = []
    notes: list[Reject] = []
    linked: list[tuple[str, str, str]] = []  # (relative link, its folder, relative target): resolved after the scan
    root_text = str(root)
    stack = [""]
    while stack:
        folder = stack.pop()
        where = os.path.join(root_text, folder) if folder else root_text
        try:
            with os.scandir(where) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as e:
            notes.append(Reject(0, folder, folder, f"folder not read: {e.strerror or type(e).__name__}"))
            continue
        nfos = {e.name.lower(): e.name for e in entries if e.name.lower().endswith(".nfo") and not e.name.startswith(".")}
        posters: list[str] = []
        subfolders: list[str] = []
        for entry in entries:
            name = entry.name
            if name[0] == ".":
                continue
            relative = f"{folder}/{name}" if folder else name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if name.lower() not in SKIPPED_FOLDERS:
                        subfolders.append(relative)
                elif _is_image_name(name):
                    if entry.is_symlink():
                        target = _link_target(root_text, entry.path)
                        if target is None:
                            rejects.append(
                                Reject(0, relative, relative, "a symlink that leads outside the posters folder (or nowhere): not followed")
                            )
                        else:
                            linked.append((relative, folder, target))
                    elif entry.is_file(follow_symlinks=False):
                        posters.append(relative)
                # anything else (a symlinked folder, a FIFO, a .txt) is not a poster: never followed or read
            except OSError:
                continue  # vanished while scanned
        for relative in posters:
            found.append(_Found(relative, folder, nfos, len(posters)))
        stack.extend(reversed(subfolders))
    scanned = {f.file for f in found}
    taken: set[str] = set()
    for relative, folder, target in linked:
        if target in scanned or target in taken:
            rejects.append(Reject(0, relative, relative, f"a symlink to {target}, which is ingested already: one poster, one point"))
            continue
        taken.add(target)
        found.append(_Found(relative, folder, {}, 1))
    return found, rejects, notes


def _is_image_name(name: str) -> bool:
    stem, dot, extension = name.rpartition(".")
    if not dot or f".{extension.lower()}" not in IMAGE_EXTENSIONS:
        return False
    stem = stem.lower()
    return stem not in NOT_POSTERS and stem.rpartition("-")[2] not in NOT_POSTERS


def _link_target(root: str, path: str) -> str | None:
    """A symlinked file's target relative to `root`, if it is a regular file inside it."""
    real = os.path.realpath(path)
    if not real.startswith(root + os.sep):
        return None
    try:
        if not stat.S_ISREG(os.stat(real).st_mode):
            return None
    except OSError:
        return None
    return Path(os.path.relpath(real, root)).as_posix()


def _base(file: str) -> tuple[str, str, bool]:
    """The poster's name without extension, that without Kodi's `-poster`, and whether it is an artwork name."""
    full = file.rpartition("/")[2].rpartition(".")[0]
    stem = full[: -len(POSTER_SUFFIX)] if full.lower().endswith(POSTER_SUFFIX) and len(full) > len(POSTER_SUFFIX) else full
    return full, stem, stem.lower() in ARTWORK_NAMES


def _from_name(item: _Found) -> tuple[str, int | None, tuple[str, ...]]:
    """Title and year from `Title (Year)` in the file name, or the folder's for an artwork name."""
    _, stem, artwork = _base(item.file)
    name = item.folder.rpartition("/")[2] if artwork and item.folder else stem
    match = NAME_YEAR.match(name) if name.endswith((")", "]")) else None
    if match:
        return match["title"], int(match["year"]), ()
    scene = SCENE_YEAR.match(name)
    if scene and FIRST_FILM_YEAR <= int(scene["year"]) <= datetime.date.today().year + 5:
        return _scene_title(scene["title"]), int(scene["year"]), ()
    return name.strip() or stem, None, ()


def _scene_title(title: str) -> str:
    """`Ryan.s.Daughter` -> "Ryan's Daughter", `The_Third_Man` -> "The Third Man": dots and
    underscores are spaces in a name that has none, and a lone `s` after a word is a possessive
    (scene names drop apostrophes)."""
    if " " not in title:
        title = re.sub(r"[._]+", " ", title)
    title = re.sub(r"(?<=\w) s(?= |$)", "'s", title)
    return " ".join(title.split()).strip(" -")


def _nfo_for(item: _Found) -> str | None:
    """The .nfo that describes this poster (relative to the root), if its folder has one."""
    if not item.nfos:
        return None
    full_stem, stem, artwork = _base(item.file)
    candidates = [f"{stem}.nfo".lower(), f"{full_stem}.nfo".lower()]
    if artwork or item.posters_in_folder == 1:
        candidates.append("movie.nfo")
        if len(item.nfos) == 1:
            candidates.append(next(iter(item.nfos)))
    for candidate in candidates:
        if candidate in item.nfos:
            name = item.nfos[candidate]
            return f"{item.folder}/{name}" if item.folder else name
    return None
