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
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from .errors import BadInput


class UnsafeFile(BadInput):
    """A file that is not what it should be (a link, a FIFO, a device, too large): one line."""


def open_regular(path: str | Path, max_bytes: int, what: str = "file", follow_links: bool = False) -> IO[bytes]:
    """`path` opened for reading if it is a regular file of at most `max_bytes` (for readers that
    take a file object, such as numpy's); UnsafeFile otherwise. FileNotFoundError passes through."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        if os.path.islink(path) and not follow_links:
            raise UnsafeFile(f"{what} {path} is a symbolic link: not followed") from None
        raise UnsafeFile(f"cannot read {what} {path}: {e.strerror or e}") from None
    f = os.fdopen(fd, "rb")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        f.close()
        raise UnsafeFile(f"{what} {path} is not a regular file")
    if info.st_size > max_bytes:
        f.close()
        raise UnsafeFile(f"{what} {path} is {info.st_size:,} bytes, more than the {max_bytes:,} allowed")
    return f


def read_regular(path: str | Path, max_bytes: int, what: str = "file", follow_links: bool = False) -> bytes:
    """The bytes of `path` if it is a regular file of at most `max_bytes`; UnsafeFile otherwise.

    FileNotFoundError passes through, so callers can tell a missing file from a bad one."""
    with open_regular(path, max_bytes, what, follow_links) as f:
        data = f.read(max_bytes + 1)  # the file may grow after fstat
    if len(data) > max_bytes:
        raise UnsafeFile(f"{what} {path} is more than the {max_bytes:,} bytes allowed")
    return data


def _umask() -> int:
    """The process's umask, read without changing it (os.umask sets it: a race with other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "wb", encoding: str | None = None, newline: str | None = None) -> Iterator[IO]:
    """A file object to write `path` through: a fresh temp file beside it, renamed over `path` when
    the block ends without an exception, removed otherwise. `path` itself is never opened.

    The file gets the permissions a plain open() would give a new file (mkstemp's are 0600)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")  # O_EXCL, random name
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def staged_path(path: str | Path) -> Iterator[Path]:
    """A name to write `path`'s new contents to, for libraries that only take a name (Pillow,
    matplotlib, Keras, numpy by extension): `<name>` inside a private folder made beside `path`
    (mkdtemp: mode 0700, an unpredictable name, so nothing can be planted in it), renamed over
    `path` when the block ends without an exception; the folder is removed either way."""
    target = Path(path)
    folder = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        staged = folder / target.name
        yield staged
        fd = os.open(staged, os.O_RDONLY | os.O_NOFOLLOW)  # what the library wrote, not a link it made
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{staged} is not a regular file")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(staged, target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def output_path(path: str | Path) -> Iterator[Path]:
    """staged_path for a file the user asked for (a figure, a sheet, an export): a missing folder, a
    full disk or a read-only place is one line (BadInput), and the file as it was is kept."""
    path = Path(path)
    if not path.parent.is_dir():
        raise BadInput(f"cannot write {path}: folder {path.parent} does not exist")
    try:
        with staged_path(path) as staged:
            yield staged
    except OSError as e:
        raise BadInput(f"cannot write {path}: {e.strerror or e}") from None


def probe_writable(folder: str | Path, size: int = 4096) -> None:
    """OSError unless `size` bytes can be written in `folder` (permission bits say nothing for root,
    and a full disk or a read-only mount refuses writes whatever they say): an exclusive temp file,
    removed at once, so a link planted there is never written through."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-test.", suffix=".tmp")
    try:
        os.write(fd, b"x" * size)
    finally:
        os.close(fd)
        os.unlink(tmp)


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Replace `path` with `data` (text is written as UTF-8), never writing through a link there."""
    with atomic_writer(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def open_lock_file(path: str | Path, create: bool = True) -> int:
    """A descriptor for a lock file: created if missing, never truncated, a link never followed.
    Without `create` (a folder that cannot be written), opened read-only: FileNotFoundError when missing."""
    mode = os.O_RDWR | os.O_CREAT if create else os.O_RDONLY
    try:
        fd = os.open(path, mode | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as e:
        if not create and isinstance(e, FileNotFoundError):
            raise
        if os.path.islink(path):
            raise UnsafeFile(f"lock file {path} is a symbolic link: not followed (remove it)") from None
        raise UnsafeFile(f"cannot open lock file {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFile(f"lock file {path} is not a regular file (remove it)")
    return fd


def regular_file_digest(path: str | Path, expected_size: int | None = None) -> tuple[int, str]:
    """(size, sha256) of a regular file, never through a link; OSError for anything else (a FIFO
    cannot hang it). With `expected_size`, a file of another size is not read: (its size, "")."""
    import hashlib

    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        if expected_size is not None and info.st_size != expected_size:
            return info.st_size, ""
        return info.st_size, hashlib.file_digest(f, "sha256").hexdigest()


def checked_record(folder: Path, name: str, max_bytes: int, what: str, fits: Callable[[dict], bool]) -> dict | None:
    """A cache folder's JSON record if the folder checks out, else None (the entry is then built
    again): the record read as a bounded regular file, `fits(record)` true (it describes what is
    wanted, and lists the folder's files), and every file it lists (`files`: {name: [size, sha256]})
    a regular one (not a link: a link to /dev/zero would hash forever) of that size and digest."""
    import json

    try:
        record = json.loads(read_regular(folder / name, max_bytes, what))
        if not isinstance(record, dict) or not fits(record):
            return None
        files = record["files"]
        if all(regular_file_digest(folder / file, int(size)) == (size, digest) for file, (size, digest) in files.items()):
            return record
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, BadInput):
        return None


def replace_folder(staging: str | Path, folder: str | Path, installed_meanwhile: Callable[[], bool]) -> None:
    """Rename the complete `staging` folder to `folder` (a cache entry made whole, then put in place).
    Whatever is at `folder` (stale, damaged, a link) is moved aside under a private name first and
    removed; if the rename still fails and `installed_meanwhile()` says another process put a good
    one there, that one is kept, otherwise the OSError is raised."""
    import shutil

    folder = Path(folder)
    if os.path.lexists(folder):
        old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old."))
        os.replace(folder, old / "stale")
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(staging, folder)
    except OSError:
        if not installed_meanwhile():
            raise
