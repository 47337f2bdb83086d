"""What a storage engine must do for the poster store, and the plain types that cross the boundary.

Two engines implement it, one module each: `store/edge.py` (Qdrant Edge, the engine running
in-process: the embedded default) and `store/server.py` (qdrant-client: a Qdrant server or
cluster by URL, and folders made by earlier versions in qdrant-client's local mode). Everything
above this line (PosterStore, search, regression, web) speaks only these types, and
tests/test_engines.py runs one behavioural suite against both, so they cannot drift.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

QUANTILE = 0.99  # of a quantised vector's values (store/schema.py QUANTIZED_VECTORS): the extreme 1% are clipped
# A search on quantised vectors rescores 4x the hits it returns with the originals (2x lost recall at 1M: docs/performance.md).
OVERSAMPLING = 4.0


@dataclass
class Record:
    """A stored point: id (a UUID string), payload, and the named vectors asked for."""

    id: str
    payload: dict
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Hit:
    """A search result: id, cosine similarity and payload (as stored: PosterStore decodes it)."""

    id: str
    score: float
    payload: dict


@dataclass(frozen=True)
class PointFilter:
    """The conditions poster search uses, translated by each engine into Qdrant's own filter.

    All given conditions must hold. Evaluated by the engine (with payload indexes), so a query
    with a filter still returns `limit` hits when that many match.
    """

    year_min: int | None = None
    year_max: int | None = None
    genre: str | None = None
    title_words: str | None = None  # full-text match on `title`: every word, case-insensitive
    title: str | None = None  # exact title
    sha256: str | None = None  # one file's copies
    exclude_ids: tuple[str, ...] = ()
    exclude_sha256: str | None = None
    has_vector: str | None = None
    lacks_vector: str | None = None
    missing: tuple[str, ...] = ()  # payload fields that must be absent (or null, or empty)
    present: tuple[str, ...] = ()  # payload fields that must be there
    ranges: tuple[tuple[str, int | None, int | None], ...] = ()  # (integer field, at least, at most)

    def is_empty(self) -> bool:
        return self == PointFilter()


@dataclass(frozen=True)
class VectorConfig:
    name: str
    dim: int
    quantized: bool = False  # int8 scalar quantisation beside the fp32 originals: searched on it, rescored with them (store/schema.py)


class Engine(Protocol):
    """One store (a folder or a server), holding named collections of points.

    The repair of an orphaned collection (its metadata files lost, its shard there) is not part of
    it: only the embedded store keeps metadata apart from the points, so ingest/repair.py takes an
    EdgeEngine explicitly (isinstance), not any engine that happens to have such methods."""

    def describe(self) -> str: ...
    def close(self) -> None: ...

    # collections
    def collection_names(self) -> list[str]: ...
    def collection_exists(self, name: str) -> bool: ...
    def create_collection(self, name: str, vectors: Sequence[VectorConfig], metadata: dict, sharding=None) -> None: ...
    def delete_collection(self, name: str) -> None: ...
    def vectors(self, name: str) -> dict[str, int]: ...
    def metadata(self, name: str) -> dict: ...
    def update_metadata(self, name: str, metadata: dict) -> None: ...
    def add_vector(self, name: str, vector: VectorConfig) -> None: ...
    def payload_indexes(self, name: str) -> set[str]: ...
    def ensure_indexes(self, name: str) -> None: ...

    # points
    def upsert(self, name: str, records: Sequence[Record]) -> None: ...
    def update_vectors(self, name: str, ids: Sequence[str], vector_name: str, vectors: np.ndarray) -> None: ...
    def overwrite_payloads(self, name: str, items: Sequence[tuple[str, dict]]) -> None: ...
    def set_payloads(self, name: str, items: Sequence[tuple[str, dict]]) -> None: ...  # only the keys given; the rest stays
    def delete(self, name: str, ids: Sequence[str]) -> None: ...
    def retrieve(self, name: str, ids: Sequence[str], with_payload: bool | list[str], with_vectors: bool | list[str]) -> list[Record]: ...
    def scroll(
        self, name: str, filter: PointFilter, limit: int, offset: str | None, with_payload: bool | list[str], with_vectors: bool | list[str]
    ) -> tuple[list[Record], str | None]: ...
    def scroll_ordered(
        self, name: str, filter: PointFilter, key: str, descending: bool, start_from: int | None, limit: int, with_payload: bool | list[str]
    ) -> list[Record]: ...  # points having integer field `key`, ordered by it (Qdrant's order_by), from `start_from` on
    def facet(self, name: str, key: str, filter: PointFilter, limit: int) -> list[tuple[str | int, int]]: ...  # (value, count), most first
    def count(self, name: str, filter: PointFilter = PointFilter()) -> int: ...

    # search
    def query(
        self,
        name: str,
        vectors: Sequence[np.ndarray],
        vector_name: str,
        limit: int,
        filter: PointFilter,
        exact: bool,
        with_payload: bool | list[str],
        score_threshold: float | None = None,
        hnsw_ef: int | None = None,  # the graph search's breadth (None: the engine's HNSW_EF); not with `exact`
    ) -> list[list[Hit]]: ...
    def recommend(
        self,
        name: str,
        positive: Sequence[np.ndarray],
        negative: Sequence[np.ndarray],
        vector_name: str,
        limit: int,
        filter: PointFilter,
        with_payload: bool | list[str],
    ) -> list[Hit]: ...
    def optimize(self, name: str, progress: bool = False) -> None: ...
    def index_waiting(self, name: str) -> bool: ...


GIVE_WAY_QUIET = 0.01  # seconds without another thread's call before a call made giving way goes ahead
# seconds a call made giving way waits at most: under constant searching, long work still moves on
# (the timeline of 100,000 posters, about 1 s alone, took 84 s at 0.2 s and 13 s at 0.02 s while one client searched without pause)
GIVE_WAY_AT_MOST = 0.02
_giving_way = threading.local()


@contextmanager
def giving_way() -> Iterator[None]:
    """The store calls this thread makes inside give way to other threads' (TurnLock): for long
    work in the background (a poster map's reading, an overview), so that a search's few calls
    run one after another instead of each waiting behind one of the long work's."""
    before = getattr(_giving_way, "on", False)
    _giving_way.on = True
    try:
        yield
    finally:
        _giving_way.on = before


class TurnLock:
    """A reentrant lock that goes to waiting threads in the order they asked, and that a thread
    giving way (giving_way()) takes only after GIVE_WAY_QUIET without another thread's call (or
    GIVE_WAY_AT_MOST). threading's locks are not fair: a thread that releases and asks again at
    once, as a long read does call by call, takes it again before a woken waiter runs. Measured on
    the poster map's reading at 100,000 posters (store calls hold the GIL): a search waited up to
    0.9 s with an RLock, and 1.6 s taking turns alone (each of its ten calls behind one of the
    reading's); giving way, it waits for one call at most."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._waiting: deque[tuple[int, threading.Lock]] = deque()  # (thread, its turn: released when handed the lock)
        self._others_at = 0.0  # when a thread not giving way last asked or let go (time.monotonic)

    def __enter__(self) -> TurnLock:
        me = threading.get_ident()
        background = getattr(_giving_way, "on", False)
        if background and self._owner != me:
            until = time.monotonic() + GIVE_WAY_AT_MOST
            while time.monotonic() < until and time.monotonic() - self._others_at < GIVE_WAY_QUIET:
                time.sleep(GIVE_WAY_QUIET)
        with self._mutex:
            if not background:
                self._others_at = time.monotonic()
            if self._owner == me or (self._owner is None and not self._waiting):
                self._owner, self._depth = me, self._depth + 1
                return self
            turn = threading.Lock()
            turn.acquire()
            entry = (me, turn)
            self._waiting.append(entry)
        try:
            turn.acquire()  # until the thread before hands over: _owner is then this thread
        except BaseException:  # Ctrl-C while waiting: leave the queue, or pass on a turn handed over meanwhile
            with self._mutex:
                if self._owner == me:
                    self._hand_over()
                else:
                    self._waiting.remove(entry)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        with self._mutex:
            if not getattr(_giving_way, "on", False):
                self._others_at = time.monotonic()
            self._depth -= 1
            if not self._depth:
                self._hand_over()

    def _hand_over(self) -> None:
        """To the longest waiting thread, or to none (under _mutex)."""
        if self._waiting:
            owner, turn = self._waiting.popleft()
            self._owner, self._depth = owner, 1
            turn.release()
        else:
            self._owner, self._depth = None, 0


def serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    """The method runs under its instance's `_calls` lock (a context manager)."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._calls:
            return method(self, *args, **kwargs)

    return call


def is_point_id(value: str) -> bool:
    """Point ids are UUIDs: anything else cannot be stored, so it is simply not found."""
    import uuid

    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False


def as_vector_list(vectors: Iterable[np.ndarray]) -> list[list[float]]:
    return [np.asarray(v, dtype=np.float32).tolist() for v in vectors]
