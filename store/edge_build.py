"""Building an embedded collection's search index in a child process.

Qdrant Edge's `optimize()` holds Python's GIL until its HNSW build is done: about 17 minutes for
a million posters on 2 cores (docs/performance.md#the-index-build). Run in the command's own
process, nothing else moves meanwhile: no progress line, no Ctrl-C (Python acts on a signal only
when the call returns). So the embedded engine closes the collection's shard and lends it to a
child process that builds the index (`python -m poster_search.store.edge_build SHARD`); the
parent shows the time going, and on Ctrl-C stops the child at once. The points are on disk before
the build starts, and Qdrant's optimiser writes the new segments beside the old ones and swaps
them in only when they are complete, so a stopped build loses nothing: the collection is read as
it was, searched by scanning, until a later build (tests/test_index_build.py stops one midway).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..errors import BadInput

POLL = 0.5  # seconds between looks at the child (and progress updates)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
TEMP = "temp_segments"  # where Qdrant's optimiser builds a segment before it swaps it in
BUILDER = "segment_builder_"  # its name for one build's folder there


def clear_stale_builds(shard: Path) -> None:
    """Remove what a stopped build left in the shard's temp_segments (Edge does not on its own:
    a million posters' build leaves gigabytes). Called only while no build runs: this process
    holds the store, and its builds are its own. Only folders of Qdrant's builder's name, never
    through a link."""
    temp = shard / TEMP
    if temp.is_symlink() or not temp.is_dir():
        return
    for entry in temp.iterdir():
        if entry.name.startswith(BUILDER) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)


def reason(e: BaseException, limit: int = 200) -> str:
    """What Edge said went wrong, as one short line (its errors and Rust panics span several)."""
    return " ".join(str(e).split())[:limit] or type(e).__name__


def release_freed_memory() -> None:
    """Give memory the closed shard freed back to the system (glibc keeps it for reuse otherwise),
    so that the parent and the child building the index do not hold two shards' worth."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # another C library: it keeps what it keeps


def build_in_child(shard: Path, what: str, progress: bool) -> None:
    """Build the index of the shard in `shard` (closed by this process) in a child process.

    KeyboardInterrupt stops the child before it is raised again; a build that fails is BadInput
    with the child's last line (the collection is stored either way)."""
    from tqdm import tqdm

    child = subprocess.Popen(
        [sys.executable, "-m", "poster_search.store.edge_build", str(shard), str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # Ctrl-C in a terminal reaches this process alone, which stops the child
    )
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.extend(child.stderr or ()), daemon=True)
    reader.start()
    started = time.monotonic()
    try:
        # Qdrant reports no progress of a build: the time it has taken is what can be shown
        with tqdm(desc=f"indexing {what} (Ctrl-C stops it, the posters stay)", bar_format="{desc}: {elapsed}", disable=not progress) as bar:
            while child.poll() is None:
                time.sleep(POLL)
                bar.refresh()
    except BaseException:  # KeyboardInterrupt, SystemExit: the child must not outlive the command
        child.kill()
        child.wait()
        raise
    finally:
        reader.join(timeout=5)
    if child.returncode != 0:
        lines = b"".join(errors).decode("utf-8", "replace").strip().splitlines()
        last = lines[-1] if lines else f"exit status {child.returncode}"
        raise BadInput(
            f"building the search index of {what} failed after {time.monotonic() - started:.0f}s ({last[:300]}): its posters are "
            "stored and searched without the index; run the command again"
        )


def _die_with(parent: int) -> None:
    """End this process with the command that lent it the shard: once that one is gone (kill -9),
    the store's lock is free, and a build still running would share the shard with whatever
    command opens it next. Linux's parent-death signal; elsewhere the build runs to its end."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # gone already, before the signal was asked for
        os._exit(1)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m poster_search.store.edge_build SHARD_FOLDER PARENT_PID", file=sys.stderr)
        return 2
    _die_with(int(argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # the parent decides; a stray SIGINT ends the build at once
    from qdrant_edge import EdgeShard

    try:
        shard = EdgeShard.load(argv[0])
        try:
            shard.optimize()
            shard.flush()
        finally:
            shard.close()
    except BaseException as e:  # Edge's errors and Rust panics (BaseException) as one line for the parent
        print(reason(e, 300), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
