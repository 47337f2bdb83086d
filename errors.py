"""The errors poster search raises on purpose, by kind, and the checks that make a bad input or
output path one of them before any long work starts.

Every one is a PosterSearchError whose message is one line saying what is wrong and what to do:
the CLI prints it as `Error: ...` (exit code 1), the web page answers it with the status of its
kind (web/app.py), and a notebook can catch the kind it cares about. Anything else escaping the
library is a bug.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PosterSearchError(Exception):
    """An error the user can act on: one line, never a traceback."""


class BadInput(PosterSearchError):
    """What was asked cannot be done as asked: a bad option, value, file or image, or a place that
    cannot be written (a missing folder, a full disk, a read-only mount) or reached (a server)."""


class NotFound(PosterSearchError):
    """Something named does not exist: a store, a collection, a film (by title or id), a vector, a model."""


class Damaged(PosterSearchError):
    """A store file or a record is damaged or missing: the message names it and how to repair it."""


class InUse(PosterSearchError):
    """The embedded store is held by another process (it admits one at a time)."""


class NotInstalled(PosterSearchError):
    """An optional part of poster search is not installed: the message says what to install."""


def command(words: str = "") -> str:
    """How the user runs a command, for messages: `poster-search WORDS` installed, `python cli.py
    WORDS` in a checkout (the program this process was started as), in backquotes."""
    import sys

    program = "python cli.py" if os.path.basename(sys.argv[0] if sys.argv else "") == "cli.py" else "poster-search"
    return f"`{program} {words}`" if words else f"`{program}`"


def check_output_file(path: Path, what: str) -> None:
    """BadInput unless `path` can be written as a file: checked at the start of a command, so a
    folder, a missing parent or an unwritable place fails at once, not after an hour of embedding.

    The file itself is never opened (it may be a link planted to make this process write elsewhere;
    outputs are written beside it and renamed over it, safe_io.staged_path): a device or a FIFO
    there is refused, and the folder is really written to, with an exclusive temp file removed at
    once (permission bits say nothing for root, and places like /proc refuse files whatever the bits).
    """
    import tempfile

    path = Path(path)
    if path.is_dir():
        raise BadInput(f"{what} {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise BadInput(f"cannot write {what} {path}: folder {path.parent} does not exist")
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise BadInput(f"cannot write {what} {path}: {e.strerror or e}") from None
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise BadInput(f"cannot write {what} {path}: it is not a regular file (a device, a FIFO or a socket); give a file name")
    try:
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise BadInput(f"cannot write {what} {path}: {e.strerror or e}") from None


def check_image_output(out: Path, what: str) -> None:
    """BadInput unless `out` names an image file Pillow can write (a figure, a sheet): checked
    before the work that draws it."""
    from PIL import Image

    out = Path(out)
    if out.is_dir():
        raise BadInput(f"{what} {out} is a folder; give a file name such as sheet.png")
    if Image.registered_extensions().get(out.suffix.lower()) not in Image.SAVE:
        raise BadInput(f"{what} {out}: not an image file name; give one ending in .png (or .jpg)")
    check_output_file(out, what)


def check_folder(path: Path, what: str) -> Path:
    """BadInput unless `path` is a folder."""
    if not Path(path).is_dir():
        raise BadInput(f"{what} {path} not found, or not a folder")
    return Path(path)


@contextmanager
def writing(path: Path) -> Iterator[Path]:
    """Write `path` inside the block: a missing folder, a full disk or a read-only place is one
    line, and no half-written file is left behind. Writing `path` by name follows a link there:
    new code writes through safe_io.output_path (a private temp name renamed into place) instead."""
    path = Path(path)
    if not path.parent.is_dir():
        raise BadInput(f"cannot write {path}: folder {path.parent} does not exist")
    try:
        yield path
    except OSError as e:
        if path.is_file():
            path.unlink(missing_ok=True)
        raise BadInput(f"cannot write {path}: {e.strerror or e}") from None


def check_file(path: Path, what: str) -> None:
    """BadInput unless `path` is a regular file: a folder, a FIFO or a device is named as such, not "not found"."""
    try:
        mode = Path(path).stat().st_mode
    except FileNotFoundError:
        raise BadInput(f"{what} not found: {_shown(path)}") from None
    except OSError as e:
        raise BadInput(f"cannot read {what} {_shown(path)}: {e.strerror or e}") from None
    if stat.S_ISDIR(mode):
        raise BadInput(f"{what} {_shown(path)} is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise BadInput(f"{what} {_shown(path)} is not a regular file (a FIFO or a device)")


def _shown(path: Path, limit: int = 200) -> str:
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
