"""Text that leaves the program: file names in any encoding, and cells a spreadsheet opens.

A file name is bytes. Python hands names that are not UTF-8 (a Latin-1 `café.jpg` from an old
Samba share) over as strings holding lone surrogates (PEP 383), which open the file but cannot be
written as UTF-8: JSON, CSV, a terminal, Qdrant's payloads. `as_text` is the one place such a
name becomes text: UTF-8 stays as it is, each byte that is not UTF-8 is read as Windows-1252 (what
such names almost always are), so `caf\\xe9` shows as `café`. That text may be shared by another
name, so where the exact file matters (a stored poster), `raw_name` keeps its bytes beside it.
"""

from __future__ import annotations

import base64
import codecs
import os
from typing import Any

_ERRORS = "poster_search.cp1252"


def _cp1252(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    bad = error.object[error.start : error.end]
    # The five bytes Windows-1252 leaves undefined are taken as Latin-1 (C1 controls, written out where shown).
    return "".join(bytes([b]).decode("cp1252", errors="strict") if b not in b"\x81\x8d\x8f\x90\x9d" else chr(b) for b in bad), error.end


codecs.register_error(_ERRORS, _cp1252)


def as_text(name: Any) -> str:
    """A name (str, Path or bytes) as text any UTF-8 writer takes; unchanged when it is UTF-8."""
    if isinstance(name, bytes):
        return name.decode("utf-8", errors=_ERRORS)
    text = os.fspath(name) if isinstance(name, os.PathLike) else str(name)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors=_ERRORS)


def raw_name(name: str) -> str | None:
    """The bytes of a name that `as_text` does not keep exactly (not UTF-8), as base64; else None."""
    if name.isascii() or as_text(name) == name:
        return None
    return base64.b64encode(os.fsencode(name)).decode("ascii")


def from_raw(raw: str) -> str:
    """The name `raw_name` recorded, as the string Python opens it by; ValueError if it is not
    base64 of a name (no file name holds a NUL byte)."""
    name = base64.b64decode(raw.encode("ascii"), validate=True)
    if b"\x00" in name:
        raise ValueError("a NUL byte in a file name")
    return os.fsdecode(name)


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def sheet_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as written: text starting like a formula (`=HYPERLINK(...)`
    in a file name or title) gets a leading apostrophe, as OWASP advises; numbers pass as they are."""
    if not isinstance(value, str):
        return value
    value = as_text(value)
    return "'" + value if value.startswith(_FORMULA_STARTS) else value
