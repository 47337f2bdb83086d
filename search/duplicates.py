"""Near-duplicate posters: pairs above a cosine threshold (copies, re-releases, alternative art),
listed with their titles and years so that a catalog can be cleaned.

Through the store, streamed: the posters are scrolled a batch at a time, and each batch's stored
vectors are one batch query with Qdrant's score threshold; a query that fills its limit asks
again with a larger one. Each pair is found from both of its posters and reported once, so memory
holds a batch and the pairs, never every vector. Byte-identical files (the same sha256) are marked.

Up to EXACT_UP_TO posters the queries scan every vector (no pair above the threshold is missed, and
a scan is as cheap as the graph there); beyond it they go through the HNSW index, which is what
keeps a million posters to hours of CPU instead of years: a pair that close is each other's
nearest neighbour, where the graph's recall is highest (bench/scale.py measures it against exact).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import cast

import numpy as np

from ..errors import BadInput
from ..store.collection import Match, PosterStore, StoredPoint
from ..store.schema import VECTOR_NAME
from .batch import EXACT_UP_TO

BATCH = 256  # posters read, and queries asked, at a time
FIELDS = ["title", "year", "file", "sha256"]
# The graph search's breadth: a pair this close is found with a narrow one. At 100,000 posters,
# 32 against search's 128 took 0.58 ms a query instead of 2.03, and the 16 nearest were still exact.
HNSW_EF = 32
FIRST_LIMIT = 16  # neighbours asked for at first: a poster rarely has more near-copies


@dataclass(frozen=True)
class Poster:
    id: str
    title: str
    year: int | None
    file: str


@dataclass(frozen=True)
class DuplicatePair:
    a: Poster
    b: Poster
    score: float
    identical: bool  # the same file content (sha256)

    def as_dict(self) -> dict:
        return asdict(self)


def near_duplicates(
    store: PosterStore, threshold: float = 0.95, vector_name: str = VECTOR_NAME, progress: bool = False, exact: bool | None = None
) -> list[DuplicatePair]:
    """Every pair of stored posters at least `threshold` similar, most similar first (`exact`:
    scan every vector for every poster; default: up to EXACT_UP_TO posters)."""
    from tqdm import tqdm

    if not 0 < threshold <= 1:
        raise BadInput(f"the threshold is a cosine similarity, above 0 and at most 1, not {threshold}")
    store.stored_spec(vector_name)
    total = store.count(store.having(vector_name))
    exact = total <= EXACT_UP_TO if exact is None else exact
    pairs: dict[tuple[str, str], DuplicatePair] = {}
    with tqdm(total=total, unit="poster", desc="near-duplicates", disable=not progress) as bar:
        batch: list[StoredPoint] = []
        for point in store.points(with_vectors=True, fields=FIELDS, vector_name=vector_name, batch=BATCH):
            batch.append(point)
            if len(batch) == BATCH:
                _pairs_of(store, batch, threshold, vector_name, exact, pairs)
                bar.update(len(batch))
                batch = []
        _pairs_of(store, batch, threshold, vector_name, exact, pairs)
        bar.update(len(batch))
    return sorted(pairs.values(), key=lambda p: (-p.score, p.a.id, p.b.id))


def _pairs_of(
    store: PosterStore,
    points: list[StoredPoint],
    threshold: float,
    vector_name: str,
    exact: bool,
    pairs: dict[tuple[str, str], DuplicatePair],
) -> None:
    """Add the pairs these posters are the smaller id of (each pair once)."""
    todo, limit = points, FIRST_LIMIT
    while todo:
        queries = [cast(np.ndarray, p.vector) for p in todo]  # points() yields only points with the vector
        found = store.nearest(
            queries,
            limit,
            vector_name=vector_name,
            exact=exact,
            fields=FIELDS,
            score_threshold=threshold,
            hnsw_ef=None if exact else HNSW_EF,
        )
        full = []
        for mine, hits in zip(todo, found):
            if len(hits) == limit:  # there may be more above the threshold: ask again, for more
                full.append(mine)
                continue
            for hit in hits:
                if hit.id > mine.id:
                    same = bool(mine.poster.sha256) and mine.poster.sha256 == hit.poster.sha256
                    pairs[(mine.id, hit.id)] = DuplicatePair(_poster(mine), _poster(hit), min(1.0, hit.score), same)
        todo, limit = full, limit * 4


def _poster(point: StoredPoint | Match) -> Poster:
    return Poster(point.id, point.poster.title, point.poster.year, point.poster.file)


def duplicates_table(pairs: list[DuplicatePair], threshold: float) -> str:
    lines = [f"{len(pairs)} pairs of posters at least {threshold:.2f} similar (same file: =)"]
    for p in pairs:
        year = lambda x: x.year if x.year is not None else "?"  # noqa: E731
        lines.append(
            f"{p.score:.4f} {'=' if p.identical else ' '} {p.a.title} ({year(p.a)}) | {p.b.title} ({year(p.b)})   [{p.a.file} | {p.b.file}]"
        )
    return "\n".join(lines)
