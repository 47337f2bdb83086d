"""Title, year and genres from a Kodi/Jellyfin `.nfo` file beside a poster: untrusted input.

An .nfo is XML written by any tool or person, so it is read as such: only a regular file of at
most MAX_NFO_BYTES (safe_io.read_regular: no FIFO, no device, no symlink followed), UTF-8 only
(the format's encoding), and parsed by defusedxml with DTDs, entities and external references
refused, so an entity-expansion bomb or an external entity is an error, never memory or a fetch.
Every failure is NfoError with a one-line reason; the caller notes it and names the poster from
its file name instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# A real movie.nfo is a few KB, with a full cast tens of KB. Kept under 128 KiB on purpose:
# read_regular reads up to the limit at once, and a larger buffer is an mmap per file (3x slower
# over the 10,000 .nfo files of a large library).
MAX_NFO_BYTES = 120_000
MAX_TITLE = 1000  # characters; a longer <title> is not a title
YEAR = re.compile(r"^\s*(\d{4})\s*$")
DATE_YEAR = re.compile(r"^\s*(\d{4})-\d{2}-\d{2}")  # <premiered>1999-03-31</premiered>
LINK = re.compile(r"^\s*https?://", re.IGNORECASE)


class NfoError(Exception):
    """Why an .nfo file was not used (one line)."""


@dataclass(frozen=True)
class NfoInfo:
    title: str | None = None
    year: int | None = None  # <year>, else the year of <premiered>; not yet checked for plausibility
    genres: tuple[str, ...] = ()


def read_nfo(path: Path) -> NfoInfo:
    """The title, year and genres an .nfo file states; NfoError when it cannot be used."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    from ..safe_io import UnsafeFile, read_regular

    try:
        data = read_regular(path, MAX_NFO_BYTES, ".nfo file")
    except UnsafeFile as e:
        raise NfoError(str(e).replace(f" {path}", "")) from None
    except OSError as e:
        raise NfoError(f"cannot read it: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise NfoError(f"not UTF-8 text (byte {e.start})") from None
    if LINK.match(text):
        raise NfoError("holds a link, not movie details (never fetched)")
    # Kodi allows a link on the line after the XML: the document ends at its root's closing tag.
    end = text.rfind("</movie>")
    if end >= 0:
        text = text[: end + len("</movie>")]
    try:
        root = fromstring(text.encode("utf-8"), forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        raise NfoError(f"refused: {type(e).__name__} (a DTD, entity or external reference)") from None
    except ParseError as e:
        raise NfoError(f"not well-formed XML ({e})") from None
    except (ValueError, RecursionError) as e:
        raise NfoError(f"not readable XML ({type(e).__name__})") from None

    def child(name: str) -> str:
        element = root.find(name)
        return " ".join((element.text or "").split()) if element is not None else ""

    title = child("title") or None
    if title is not None and len(title) > MAX_TITLE:
        title = None
    year = None
    for source, pattern in (("year", YEAR), ("premiered", DATE_YEAR)):
        match = pattern.match(child(source))
        if match:
            year = int(match.group(1))
            break
    genres: list[str] = []
    for element in root.findall("genre"):
        for genre in re.split(r"\s*[/|]\s*", " ".join((element.text or "").split())):
            if genre and len(genre) <= MAX_TITLE and genre not in genres:
                genres.append(genre)
    return NfoInfo(title, year, tuple(genres))
