"""The one exception type the CLI turns into a clear one-line message, and the checks that make a
bad input or output path one of them before any long work starts."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class UserError(Exception):
    """Bad input or environment the user can fix: printed as one line, exit code 1, no traceback."""


def check_output_file(path: Path, what: str) -> None:
    """UserError unless `path` can be written as a file: checked at the start of a command, so a
    folder, a missing parent or an unwritable place fails at once, not after an hour of embedding.

    The file itself is never opened (it may be a link planted to make this process write elsewhere;
    outputs are written beside it and renamed over it, safe_io.staged_path): a device or a FIFO
    there is refused, and the folder is really written to, with an exclusive temp file removed at
    once (permission bits say nothing for root, and places like /proc refuse files whatever the bits).
    """
    import tempfile

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise UserError(f"cannot write {what} {path}: folder {path.parent} does not exist")
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise UserError(f"cannot write {what} {path}: {e.strerror or e}") from None
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise UserError(f"cannot write {what} {path}: it is not a regular file (a device, a FIFO or a socket); give a file name")
    try:
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"cannot write {what} {path}: {e.strerror or e}") from None


@contextmanager
def writing(path: Path) -> Iterator[Path]:
    """Write `path` inside the block: a missing folder, a full disk or a read-only place is one
    line, and no half-written file is left behind. Writing `path` by name follows a link there:
    new code writes through safe_io.output_path (a private temp name renamed into place) instead."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"cannot write {path}: folder {path.parent} does not exist")
    try:
        yield path
    except OSError as e:
        if path.is_file():
            path.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def check_file(path: Path, what: str) -> None:
    """UserError unless `path` is a regular file: a folder, a FIFO or a device is named as such, not "not found"."""
    try:
        mode = Path(path).stat().st_mode
    except FileNotFoundError:
        raise UserError(f"{what} not found: {_shown(path)}") from None
    except OSError as e:
        raise UserError(f"cannot read {what} {_shown(path)}: {e.strerror or e}") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{what} {_shown(path)} is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise UserError(f"{what} {_shown(path)} is not a regular file (a FIFO or a device)")


def _shown(path: Path, limit: int = 200) -> str:
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
