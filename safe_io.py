"""Reading and writing files in folders that may come from someone else (a store, a cache, a model
folder, a poster folder): nothing is written through a link this process did not make, and nothing
is read that is not a regular file of bounded size.

- `write_atomic`: a temp file created exclusively (O_EXCL, an unpredictable name) beside the target,
  then renamed over it. A rename replaces a planted link instead of writing through it, and a reader
  sees the old file or the new one, never half of one.
- `read_regular`: opened without blocking (a FIFO cannot hang the reader) and, by default, without
  following a final link; refused unless it is a regular file within `max_bytes`.
- `open_lock_file`: a lock file opened without following a link and never truncated.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from errors import UserError


class UnsafeFile(UserError):
    """A file that is not what it should be (a link, a FIFO, a device, too large): one line."""


def read_regular(path: str | Path, max_bytes: int, what: str = "file", follow_links: bool = False) -> bytes:
    """The bytes of `path` if it is a regular file of at most `max_bytes`; UnsafeFile otherwise.

    FileNotFoundError passes through, so callers can tell a missing file from a bad one."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        if os.path.islink(path) and not follow_links:
            raise UnsafeFile(f"{what} {path} is a symbolic link: not followed") from None
        raise UnsafeFile(f"cannot read {what} {path}: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"{what} {path} is not a regular file")
        if info.st_size > max_bytes:
            raise UnsafeFile(f"{what} {path} is {info.st_size:,} bytes, more than the {max_bytes:,} allowed")
        data = f.read(max_bytes + 1)  # the file may grow after fstat
    if len(data) > max_bytes:
        raise UnsafeFile(f"{what} {path} is more than the {max_bytes:,} bytes allowed")
    return data


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """A file object to write `path` through: a fresh temp file beside it, renamed over `path` when
    the block ends without an exception, removed otherwise. `path` itself is never opened."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")  # O_EXCL, random name
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Replace `path` with `data` (text is written as UTF-8), never writing through a link there."""
    with atomic_writer(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def open_lock_file(path: str | Path) -> int:
    """A descriptor for a lock file: created if missing, never truncated, a link never followed."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as e:
        if os.path.islink(path):
            raise UnsafeFile(f"lock file {path} is a symbolic link: not followed (remove it)") from None
        raise UnsafeFile(f"cannot open lock file {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFile(f"lock file {path} is not a regular file (remove it)")
    return fd
