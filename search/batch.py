"""Exact nearest neighbours for many queries at once, through Qdrant batch queries.

For evaluations (era coherence, k-NN baselines): exact search, not HNSW, so the figures are
those of the embedding, not of an index, up to EXACT_UP_TO posters; past it, where a scan per
query would make an evaluation quadratic, callers ask the index. Each query asks for a few more hits than it needs and
`accept` decides which hits count (not the query itself, only training posters, ...): one rule
per query that a single filter cannot express. Queries left short ask again with a larger
limit, until they have k or have seen the whole store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..store.collection import Match, PosterStore
from ..store.schema import VECTOR_NAME

EXACT_UP_TO = 20_000  # posters: up to here a scan of every vector per query is cheap; beyond, the HNSW index answers
EXCLUSION_MARGIN = 8  # extra hits fetched so that dropping the query's own copies still leaves k


def nearest_accepted(
    store: PosterStore,
    vectors: Sequence[np.ndarray],
    k: int,
    accept: Callable[[int, Match], bool],
    vector_name: str = VECTOR_NAME,
    payload: Sequence[str] = ("year", "sha256"),
    batch: int = 64,
    progress: bool = False,
    desc: str = "neighbours",
    exact: bool = True,
) -> list[list]:
    """For query i, the k nearest stored points (Matches) for which accept(i, hit) is true
    (`exact`: by a scan of every vector; else through the HNSW index, for collections past EXACT_UP_TO)."""
    from tqdm import tqdm

    results: list[list] = [[] for _ in vectors]
    todo, limit = list(range(len(vectors))), k + EXCLUSION_MARGIN
    bar = tqdm(total=len(vectors), unit="query", desc=desc, disable=not progress)
    while todo:
        short = []
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            responses = store.nearest([vectors[i] for i in chunk], limit, vector_name=vector_name, exact=exact, fields=list(payload))
            for i, hits in zip(chunk, responses):
                kept = [hit for hit in hits if accept(i, hit)]
                if len(kept) >= k or len(hits) < limit:  # enough, or nothing more to see
                    results[i] = kept[:k]
                    bar.update(1)
                else:
                    short.append(i)
        todo, limit = short, limit * 4
    bar.close()
    return results
