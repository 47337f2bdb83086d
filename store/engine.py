"""What a storage engine must do for the poster store, and the plain types that cross the boundary.

Two engines implement it, one module each: `store/edge.py` (Qdrant Edge, the engine running
in-process: the embedded default) and `store/server.py` (qdrant-client: a Qdrant server or
cluster by URL, and folders made by earlier versions in qdrant-client's local mode). Everything
above this line (PosterStore, search, regression, web) speaks only these types, and
tests/test_engines.py runs one behavioural suite against both, so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

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
    def optimize(self, name: str) -> None: ...


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
