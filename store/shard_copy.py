"""Private copies of a shard, for reading a store on read-only media (store/edge_folder.py).

Qdrant Edge writes to every shard it opens and has no read-only open, so a shard that cannot be
written is read from a copy in the temp folder. A shard's files are mostly holes (Edge maps them
at their full size), so a copy holds only the data ranges: kilobytes for a small collection whose
files add up to hundreds of megabytes. Each process's copies live in one private folder, locked
while the process lives, so that a copy left by a killed process is told apart and removed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

PREFIX = "poster-search-read-only-"  # the private copies' folders in the temp folder


def private_folder() -> tuple[Path, int]:
    """A new 0700 folder in the temp folder for this process's copies, and its held lock
    (abandoned ones are removed first)."""
    base = Path(tempfile.gettempdir())
    remove_abandoned(base)
    root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    fcntl.flock(fd, fcntl.LOCK_EX)
    return root, fd


def holes(folder: Path) -> int:
    """The unallocated bytes of the files under `folder` (a shard's files are mostly holes)."""
    holes = 0
    for root, _, files in os.walk(folder):
        for name in files:
            info = os.lstat(os.path.join(root, name))
            holes += max(0, info.st_size - info.st_blocks * 512)
    return holes


def copy_tree(source: Path, target: Path) -> None:
    """Copy a shard's folders and regular files (nothing else is copied, no link is followed),
    each file's holes left holes: a copy takes what the shard occupies, not its files' sizes."""
    target.mkdir(mode=0o700)
    for root, folders, files in os.walk(source):
        here = target / Path(root).relative_to(source)
        for name in folders:
            (here / name).mkdir(mode=0o700)
        for name in files:
            if stat.S_ISREG(os.lstat(os.path.join(root, name)).st_mode):
                copy_sparse(Path(root) / name, here / name)


def copy_sparse(source: Path, target: Path, chunk: int = 2**20) -> None:
    """Copy the data ranges of a file (SEEK_DATA / SEEK_HOLE), then give the copy the same size."""
    flags = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    src = os.open(source, os.O_RDONLY | os.O_NONBLOCK | flags)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | flags, 0o600)
        try:
            size = os.fstat(src).st_size
            for start, end in data_ranges(src, size):
                offset = start
                while offset < end:
                    data = os.pread(src, min(chunk, end - offset), offset)
                    if not data:
                        break  # the file shrank meanwhile
                    os.pwrite(dst, data, offset)
                    offset += len(data)
            os.ftruncate(dst, size)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def data_ranges(fd: int, size: int) -> list[tuple[int, int]]:
    """The (start, end) ranges of a file that hold data; the whole file where holes cannot be told."""
    ranges, offset = [], 0
    try:
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:  # no data after offset
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            ranges.append((start, end))
            offset = end
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
            raise
        return [(0, size)]  # a file system that cannot say where its holes are
    return ranges


def remove_abandoned(base: Path, age: float = 60) -> None:
    """Remove private copies whose process is gone (killed before it could remove its own): this
    user's folders of that name, whose lock no process holds, left for more than `age` seconds
    (a folder that another process has just made may not be locked yet)."""
    try:
        candidates = [p for p in base.iterdir() if p.name.startswith(PREFIX)]
    except OSError:
        return
    for folder in candidates:
        try:
            info = folder.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or time.time() - info.st_mtime < age:
                continue
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # in use
        else:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(fd)
