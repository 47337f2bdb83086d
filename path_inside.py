"""Path containment: a file named by someone else (a payload, a request) resolved inside a folder,
never outside it. The contact sheets, the similarity maps, the figures and the web page's poster
files all go through here."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def inside(folder: Path, file: str) -> Path | None:
    """The stored poster `file` in `folder`, or None when it would lead outside it (as the web page
    serves posters: a payload, which anyone with access to the store can write, names no other file)."""
    if "\x00" in str(file):  # no file is named so (a payload written past poster search)
        return None
    base = Path(folder).resolve()
    path = (base / str(file)).resolve()
    return path if path.is_relative_to(base) and path != base else None


_FD_PATHS = os.path.isdir("/proc/self/fd")  # Linux names an open file's path by its descriptor


def open_inside(folder: str, path: str, flags: int = os.O_RDONLY) -> int:
    """A descriptor of `path`, which must be a file inside `folder` (a resolved path) when it is open.

    The check is made on the open descriptor, so it is the read's own file: a link repointed
    outside the folder after a scan cannot slip in between check and read. The last component is
    opened without following a link; a link (which a scan or a catalog check let in: it led inside
    then) is opened, and where it leads now checked. OSError (ELOOP for a link leading outside)."""
    flags |= os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        fd = os.open(path, flags)
    try:
        real = os.readlink(f"/proc/self/fd/{fd}") if _FD_PATHS else os.path.realpath(path)
    except OSError:
        real = os.path.realpath(path)
    if not real.startswith(folder.rstrip(os.sep) + os.sep):
        os.close(fd)
        raise OSError(errno.ELOOP, "leads outside the posters folder (a symlink): not read")
    return fd
