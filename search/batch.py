"""Nearest neighbours for many queries at once, through Qdrant batch queries.

Each query asks for a few more hits than it needs, without a filter, and `accept` decides which
hits count (not the query itself, only training posters, ...). Queries left short ask again with a
larger limit, until they have k or have seen the whole store. The result is exact, and avoids
filters, which local mode evaluates in Python point by point.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from store.collection import PosterStore
from store.schema import VECTOR_NAME

EXCLUSION_MARGIN = 8  # extra hits fetched so that dropping the query's own copies still leaves k


def nearest_accepted(
    store: PosterStore,
    vectors: Sequence[np.ndarray],
    k: int,
    accept: Callable[[int, object], bool],
    vector_name: str = VECTOR_NAME,
    payload: Sequence[str] = ("year", "sha256"),
    batch: int = 64,
    progress: bool = False,
    desc: str = "neighbours",
) -> list[list]:
    """For query i, the k nearest stored points (Qdrant ScoredPoints) for which accept(i, hit) is true."""
    from qdrant_client import models
    from tqdm import tqdm

    results: list[list] = [[] for _ in vectors]
    todo, limit = list(range(len(vectors))), k + EXCLUSION_MARGIN
    bar = tqdm(total=len(vectors), unit="query", desc=desc, disable=not progress)
    while todo:
        short = []
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            requests = [
                models.QueryRequest(query=np.asarray(vectors[i], dtype=np.float32).tolist(), using=vector_name, limit=limit, with_payload=list(payload))
                for i in chunk
            ]
            for i, response in zip(chunk, store.client.query_batch_points(store.collection, requests)):
                kept = [hit for hit in response.points if accept(i, hit)]
                if len(kept) >= k or len(response.points) < limit:  # enough, or nothing more to see
                    results[i] = kept[:k]
                    bar.update(1)
                else:
                    short.append(i)
        todo, limit = short, limit * 4
    bar.close()
    return results
