"""The decode stage: poster files -> uint8 224x224 batches, in a pool of worker processes.

Decoding (JPEG, resize) is pure CPU work in Pillow, a tenth of the model's time per poster on a
CPU but the bottleneck beside a GPU, so it runs in worker processes, not threads. The pool is
bounded: at most `2 x workers` chunks are decoded ahead of the model, so memory stays flat
however large the catalog, and chunks come back in catalog order. Any failure on one poster
becomes a reject with its reason (embedding.images turns every exception into one line).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..embedding.images import INPUT_SIZE, ImageError, decode_poster
from ..errors import BadInput

MAX_CHUNK = 32  # posters per worker task: small enough to keep every worker busy, big enough to amortise IPC
MAX_RESTARTS = 3  # pools replaced in one run after a worker died, before giving up with one line


@dataclass
class DecodedChunk:
    """One worker task's result: the posters that decoded (by index into the chunk) and the rest's reasons."""

    kept: list[int]
    pixels: np.ndarray  # (len(kept), 224, 224, 3) uint8
    hashes: list[str]
    rejects: list[tuple[int, str]]  # (index into the chunk, reason)
    started: float  # time.monotonic(), comparable across processes on one machine
    finished: float


def decode_chunk(paths: Sequence[str], size: int = INPUT_SIZE, augmented: bool = False, folder: str | None = None) -> DecodedChunk:
    """Decode a list of poster files (runs in a worker). Never raises for one bad poster.
    `folder`: the resolved posters folder every file must be inside as it is read."""
    started = time.monotonic()
    kept, pixels, hashes, rejects = [], [], [], []
    for i, path in enumerate(paths):
        try:
            poster = decode_poster(Path(path), size, augmented, folder)
        except ImageError as e:
            rejects.append((i, str(e).split(": ", 1)[-1]))
            continue
        except Exception as e:  # belt and braces: decode_poster already turns failures into ImageError
            rejects.append((i, f"cannot decode ({type(e).__name__}: {str(e)[:150]})"))
            continue
        kept.append(i)
        pixels.append(poster.pixels)
        hashes.append(poster.sha256)
    array = np.stack(pixels) if pixels else np.zeros((0, size, size, 3), dtype=np.uint8)
    return DecodedChunk(kept, array, hashes, rejects, started, time.monotonic())


def _worker_init(parent: int) -> None:
    # Ctrl-C is the parent's to handle (it stops the pool); and a worker whose parent was killed
    # (kill -9) exits instead of waiting forever on a queue nobody will fill.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        process = multiprocessing.parent_process()
        if process is not None:
            process.join()  # returns when the parent is gone
        else:
            while _alive(parent):
                time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _context():
    """A "forkserver" context that preloads only this module: workers are forked from a fresh, small
    server process, so they inherit neither the caller's open files (the embedded store's lock:
    a killed ingest must not leave its workers holding it) nor TensorFlow's threads, and start in
    milliseconds. "spawn" where there is no forkserver (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


class DecodePool:
    """Decode chunks of poster paths ahead of the consumer, in order, with a bounded number in flight.

    `workers=0` decodes in one thread of this process (no start-up cost: tiny runs and tests).
    The workers start at once, before the model loads (their start-up overlaps it). As with any
    Python multiprocessing, a worker imports the main script, so a script (not a notebook) that
    calls ingest() needs the usual `if __name__ == "__main__":` guard, or workers=0.
    """

    def __init__(self, workers: int, ahead: int | None = None):
        self.workers = workers
        self.ahead = ahead or max(2, 2 * workers)
        self._executor = self._start()
        self.busy_intervals: list[tuple[float, float]] = []
        self.submitted = 0  # chunks handed to the workers so far
        self.restarts = 0  # pools replaced after a worker died
        self._pending: deque[tuple[int, Future]] = deque()

    def ahead_of_caller(self) -> tuple[int, int]:
        """(chunks handed to the workers and not yet returned to the caller, how many of them are decoded)."""
        return len(self._pending), sum(future.done() for _, future in self._pending)

    def _start(self) -> Executor:
        if self.workers == 0:
            return ThreadPoolExecutor(1, thread_name_prefix="decode")
        executor = ProcessPoolExecutor(self.workers, mp_context=_context(), initializer=_worker_init, initargs=(os.getpid(),))
        for _ in range(self.workers):  # start them all now
            executor.submit(os.getpid)
        return executor

    def _replace_pool(self) -> None:
        """A worker died (the kernel's OOM killer, a kill): a fresh pool, or one line when it keeps happening."""
        self.restarts += 1
        if self.restarts > MAX_RESTARTS:
            raise BadInput(
                f"poster-decoding worker processes were killed {self.restarts} times (out of memory? the kernel ends the largest "
                'process when memory runs out; or a script calling ingest() without the `if __name__ == "__main__":` guard): '
                "run again with fewer --workers (or --workers 0), or with more memory free; everything stored so far is kept"
            )
        print(
            "Note: a poster-decoding worker process was killed (out of memory?); replaced it, and decoding its posters again",
            file=sys.stderr,
        )
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = self._start()

    def _submit(self, chunk: Sequence[str], augmented: bool, folder: str | None) -> Future:
        while True:
            try:
                return self._executor.submit(decode_chunk, list(chunk), INPUT_SIZE, augmented, folder)
            except BrokenProcessPool:
                self._replace_pool()

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def decode(self, chunks: Sequence[Sequence[str]], augmented: bool = False, folder: str | None = None) -> Iterator[DecodedChunk]:
        """Yield each chunk's DecodedChunk in order; at most `ahead` chunks decoded ahead of the caller.

        `augmented`: each poster's augmented view instead (`ingest --augment`). `folder`: the
        resolved folder every poster must be inside when it is read (path_inside.open_inside)."""
        pending = self._pending = deque()  # (chunk index, its decoding): what is decoded ahead of the caller
        submitted = 0
        while submitted < len(chunks) or pending:
            while submitted < len(chunks) and len(pending) < self.ahead:
                pending.append((submitted, self._submit(chunks[submitted], augmented, folder)))
                submitted += 1
                self.submitted += 1
            try:
                result = pending[0][1].result()
            except BrokenProcessPool:  # every chunk in flight is lost with the pool: decoded again, in order
                self._replace_pool()
                pending = self._pending = deque((i, self._submit(chunks[i], augmented, folder)) for i, _ in pending)
                continue
            pending.popleft()
            self.busy_intervals.append((result.started, result.finished))
            yield result

    def busy_seconds(self, since: float, until: float) -> float:
        """Worker-seconds spent decoding within [since, until] (time.monotonic())."""
        return sum(max(0.0, min(end, until) - max(start, since)) for start, end in self.busy_intervals)

    @property
    def capacity(self) -> int:
        return max(1, self.workers)
