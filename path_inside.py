"""Path containment: a file named by someone else (a payload, a request) resolved inside a folder,
never outside it. The contact sheets, the similarity maps, the figures and the web page's poster
files all go through here."""

from __future__ import annotations

from pathlib import Path


def inside(folder: Path, file: str) -> Path | None:
    """The stored poster `file` in `folder`, or None when it would lead outside it (as the web page
    serves posters: a payload, which anyone with access to the store can write, names no other file)."""
    base = Path(folder).resolve()
    path = (base / str(file)).resolve()
    return path if path.is_relative_to(base) and path != base else None
