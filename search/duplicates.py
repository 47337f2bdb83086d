"""Near-duplicate posters: pairs above a cosine threshold (copies, re-releases, alternative art),
listed with their titles and years so that a catalog can be cleaned.

Exact, through the store: every poster's stored vector is an exact query (a full scan, not the
HNSW graph) with Qdrant's score threshold, so no pair above the threshold is missed; a query that
fills its limit asks again with a larger one. Each pair is found from both of its posters and
reported once. Byte-identical files (the same sha256) are marked as such.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import cast

import numpy as np

from ..errors import BadInput
from ..store.collection import PosterStore, StoredPoint
from ..store.schema import VECTOR_NAME

BATCH = 64  # queries per batch request
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
    store: PosterStore, threshold: float = 0.95, vector_name: str = VECTOR_NAME, progress: bool = False
) -> list[DuplicatePair]:
    """Every pair of stored posters at least `threshold` similar, most similar first."""
    from tqdm import tqdm

    if not 0 < threshold <= 1:
        raise BadInput(f"the threshold is a cosine similarity, above 0 and at most 1, not {threshold}")
    store.stored_spec(vector_name)
    points = list(store.points(with_vectors=True, fields=["title", "year", "file", "sha256"], vector_name=vector_name))
    by_id = {p.id: p for p in points}
    pairs: dict[tuple[str, str], DuplicatePair] = {}
    bar = tqdm(total=len(points), unit="poster", desc="near-duplicates", disable=not progress)
    todo, limit = list(range(len(points))), FIRST_LIMIT
    while todo:
        full = []
        for start in range(0, len(todo), BATCH):
            rows = todo[start : start + BATCH]
            queries = [cast(np.ndarray, points[i].vector) for i in rows]  # points() yields only points with the vector
            found = store.nearest(queries, limit, vector_name=vector_name, exact=True, fields=[], score_threshold=threshold)
            for i, hits in zip(rows, found):
                if len(hits) == limit:  # there may be more above the threshold: ask again, for more
                    full.append(i)
                    continue
                bar.update(1)
                mine = points[i]
                for hit in hits:
                    if hit.id > mine.id:  # each pair once, from its smaller id
                        other = by_id[hit.id]
                        same = bool(mine.poster.sha256) and mine.poster.sha256 == other.poster.sha256
                        pairs[(mine.id, hit.id)] = DuplicatePair(_poster(mine), _poster(other), min(1.0, hit.score), same)
        todo, limit = full, limit * 4
    bar.close()
    return sorted(pairs.values(), key=lambda p: (-p.score, p.a.id, p.b.id))


def _poster(point: StoredPoint) -> Poster:
    return Poster(point.id, point.poster.title, point.poster.year, point.poster.file)


def duplicates_table(pairs: list[DuplicatePair], threshold: float) -> str:
    lines = [f"{len(pairs)} pairs of posters at least {threshold:.2f} similar (same file: =)"]
    for p in pairs:
        year = lambda x: x.year if x.year is not None else "?"  # noqa: E731
        lines.append(
            f"{p.score:.4f} {'=' if p.identical else ' '} {p.a.title} ({year(p.a)}) | {p.b.title} ({year(p.b)})   [{p.a.file} | {p.b.file}]"
        )
    return "\n".join(lines)
