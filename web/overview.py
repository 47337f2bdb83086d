"""The page's views of a whole collection, the poster map, the era timeline and the posters to
start from, kept while the collection stays as it is: an embedded store is the server's alone (one process opens it), so
they are computed once for the server's life; over a Qdrant server, where other processes may
write, each request checks the collection's fingerprint first (search/poster_map.py)."""

from __future__ import annotations

import threading

from search.landing import StartGroup, start_groups
from search.poster_map import PosterMap, fingerprint, poster_map
from search.timeline import DecadeStep, era_timeline
from store.collection import PosterStore


class Overview:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._maps: dict[tuple[str, str], PosterMap] = {}
        self._timelines: dict[tuple[str, str], tuple[str, list[DecadeStep]]] = {}
        self._starts: dict[tuple[str, str], tuple[str, list[StartGroup], float]] = {}

    def poster_map(self, store: PosterStore, vector: str) -> PosterMap:
        key = (store.collection, vector)
        with self._lock:
            known = self._maps.get(key)
            if known is not None and (store.location.is_local or fingerprint(store, vector) == known.fingerprint):
                return known
            self._maps[key] = poster_map(store, vector)  # from the disk cache when the collection is unchanged
            return self._maps[key]

    def timeline(self, store: PosterStore, vector: str) -> list[DecadeStep]:
        key = (store.collection, vector)
        with self._lock:
            known = self._timelines.get(key)
            state = "embedded" if store.location.is_local else fingerprint(store, vector)
            if known is None or known[0] != state:
                self._timelines[key] = (state, era_timeline(store, vector))
            return self._timelines[key][1]

    def starts(self, store: PosterStore, vector: str) -> tuple[list[StartGroup], float]:
        """The landing grid's groups (only their ids: the caller reads the posters' payloads fresh,
        so a predicted year written later shows), and the seconds they took to compute."""
        import time

        key = (store.collection, vector)
        with self._lock:
            known = self._starts.get(key)
            state = "embedded" if store.location.is_local else fingerprint(store, vector)
            if known is None or known[0] != state:
                started = time.perf_counter()
                groups = start_groups(store, vector)
                self._starts[key] = (state, groups, time.perf_counter() - started)
            return self._starts[key][1], self._starts[key][2]
