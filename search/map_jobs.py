"""Poster maps computed in the background, with how far each one is: what the page polls.

A MapJob runs one computation (search/poster_map.py's poster_map) in a thread of its own and
keeps what it last reported (stage, done, total) and its result or its error for whoever asks.
MapJobs holds the jobs of one open store, at most one per (collection, vector): a request that
finds one running joins it instead of starting another. Only one map computes at a time per
process, whatever the collection: two t-SNEs on two cores would each take twice as long.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..store.engine import giving_way

if TYPE_CHECKING:
    from .poster_map import PosterMap, Report

_ONE_AT_A_TIME = threading.Lock()


class MapJob:
    """One map computed in a thread: `progress()` while it runs, then `result` or `error`."""

    def __init__(self, name: str, compute: Callable[[Report], PosterMap]) -> None:
        self.started = time.monotonic()
        self.stage: tuple[str, int, int] = ("waiting for another map", 0, 0)  # one tuple: read whole by another thread
        self.result: PosterMap | None = None
        self.error: BaseException | None = None
        self.finished = threading.Event()
        # compute goes to the thread only (which drops it when done): a finished job holds no store
        self.thread = threading.Thread(target=self._run, args=(compute,), name=f"poster map {name}", daemon=True)

    def report(self, stage: str, done: int, total: int) -> None:
        self.stage = (stage, done, total)

    def progress(self) -> dict:
        """{"status": "computing", "stage", "done", "total", "seconds"}: for the page's 202 answer."""
        stage, done, total = self.stage
        return {"status": "computing", "stage": stage, "done": done, "total": total, "seconds": round(time.monotonic() - self.started, 1)}

    def _run(self, compute: Callable[[Report], PosterMap]) -> None:
        try:
            with _ONE_AT_A_TIME, giving_way():  # its store calls let a search's go first
                self.result = compute(self.report)
        except BaseException as e:  # kept for whoever asks next, not lost in a thread's traceback
            self.error = e
        finally:
            self.finished.set()


class MapJobs:
    """The map jobs of one open store, by (collection, vector): at most one each."""

    def __init__(self) -> None:
        self._jobs: dict[tuple[str, str], MapJob] = {}
        self._lock = threading.Lock()

    def start(self, key: tuple[str, str], compute: Callable[[Report], PosterMap]) -> MapJob:
        """The job of `key` (running, or finished and not yet taken), else a new one, started."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None:
                job = self._jobs[key] = MapJob("/".join(key), compute)
                job.thread.start()
            return job

    def take(self, key: tuple[str, str], job: MapJob) -> None:
        """Forget a finished job once its result or error is handed out: the next ask starts afresh."""
        with self._lock:
            if self._jobs.get(key) is job:
                del self._jobs[key]


_OWNERS: weakref.WeakKeyDictionary[object, MapJobs] = weakref.WeakKeyDictionary()
_OWNERS_LOCK = threading.Lock()


def jobs_for(owner: object) -> MapJobs:
    """The MapJobs of an owner (api.py's shared state of one Posters), made on first use, gone with it."""
    with _OWNERS_LOCK:
        if owner not in _OWNERS:
            _OWNERS[owner] = MapJobs()
        return _OWNERS[owner]


class MapPending(Exception):
    """The map is being computed: `job` says how far (raised through api.py's overview cache, which keeps only results)."""

    def __init__(self, job: MapJob) -> None:
        super().__init__("the poster map is being computed")
        self.job = job
