"""Free space, checked before the embedded store allocates any.

Qdrant Edge keeps its vectors and its write-ahead log in files mapped into memory. A write to a
mapped page that the disk cannot back kills the process with SIGBUS: no exception, no message, a
half-written store. So every open and every write first asks the file system for the room Edge
may take, and stops with one line when it is not there, before Edge is called. What was written
before is kept: every earlier write was acknowledged.

What Edge takes, measured (tests/test_hostile.py makes the small file systems):
- a write: about what it adds, a few times over (its log entry, then the segment);
- an open: nothing on a disk file system (ext4: the files stay sparse, untouched pages cost
  nothing), but on tmpfs every page of the vector files it maps is allocated as it is read, so
  opening there needs the vector files' unallocated size (32 MB chunks).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from ..errors import BadInput

MARGIN = 2 * 2**20  # headers, small files, rounding to blocks
MEMORY_FILE_SYSTEMS = ("tmpfs", "ramfs", "shm")


def check_free_space(folder: Path, needed: int, doing: str, kept: bool = False) -> None:
    """BadInput unless the file system holding `folder` has `needed` bytes free."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # cannot tell (a vanished folder is reported by whatever opens it next)
    if free < needed:
        then = "; everything written before is kept" if kept else ""
        raise BadInput(
            f"not enough free space for {doing}: {folder} has {mb(free)} free and Qdrant Edge needs about {mb(needed)}{then}; "
            "free some space, or use a store on another disk (--qdrant-path)"
        )


def open_bytes(shard: Path) -> int:
    """What opening a shard may allocate: on a memory file system, the holes of its files; else nothing.

    Every file counts, not only the vector chunks: the payload pages and the payload indexes
    (a title index page is 32 MB) are mapped too, and a hole touched there is a SIGBUS as well."""
    if file_system(shard) not in MEMORY_FILE_SYSTEMS:
        return 0
    holes = 0
    for file in Path(shard).rglob("*"):
        try:
            info = file.lstat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            holes += max(0, info.st_size - info.st_blocks * 512)
    return holes + MARGIN


def file_system(path: Path) -> str:
    """The type of the file system holding `path` ("ext4", "tmpfs", ...; "" where it cannot be told)."""
    real, best, kind = os.path.realpath(path), "", ""
    try:
        with open("/proc/self/mountinfo") as mounts:
            for line in mounts:
                fields = line.split()
                mount, fstype = fields[4].replace("\\040", " "), fields[fields.index("-") + 1]
                if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                    best, kind = mount, fstype
    except (OSError, ValueError, IndexError):
        return ""
    return kind


def folder_bytes(folder: Path) -> int:
    """Bytes a folder occupies on disk (allocated blocks: Edge's sparse files count for what they hold)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


def mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"
