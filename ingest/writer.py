"""The store stage: write embedded batches to the store in a thread of its own, off the model's path.

The queue between model and store is bounded (a couple of batches): a slow store slows the
model down instead of piling vectors up in memory. Each batch is written with the store's
acknowledged upsert, so what the writer reports as written is stored; a batch still queued when
the process is killed was never acknowledged, and a rerun embeds it again (same point ids: no
duplicates). A store error stops the pipeline at the next batch handed over, with that error.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

_STOP = object()


class StoreWriter:
    """Run `write(item)` for each item put, in one background thread, at most `depth` items queued."""

    def __init__(self, write: Callable[[Any], None], depth: int = 2):
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._failed = False
        self.busy_seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        """Hand a batch to the writer (waits while the queue is full); raises the writer's error, if any."""
        while True:
            self._raise_error()
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Write what is queued, stop the thread, and raise the writer's error, if any."""
        if self._thread.is_alive():
            while self._thread.is_alive():
                try:
                    self._queue.put(_STOP, timeout=0.2)
                    break
                except queue.Full:
                    continue
            self._thread.join()
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._failed:
                continue  # drain without writing: the pipeline is stopping
            started = time.perf_counter()
            try:
                self._write(item)
            except BaseException as e:  # handed to the main thread, which raises it
                self._error, self._failed = e, True
            finally:
                self.busy_seconds += time.perf_counter() - started
