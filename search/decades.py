"""A collection's decades, bounded at any size: how many posters each holds (Qdrant's facet counts
of `year`) and its centre, the normalised mean of a seeded sample of its posters' unit vectors
(PosterStore.sample): the timeline and the page's first screen both start from these."""

from __future__ import annotations

from typing import cast

import numpy as np

from ..store.collection import PosterStore
from ..store.engine import PointFilter

CENTRE_SAMPLE = 2000  # posters of a decade its centre is the mean of: its error is far below the differences shown


def decade_sizes(store: PosterStore, vector_name: str) -> dict[int, int]:
    """Posters with a catalog year and this vector, by decade (1950 for the 1950s), oldest first."""
    sizes: dict[int, int] = {}
    for year, n in store.facet("year", store.having(vector_name), limit=100_000):
        decade = int(year) // 10 * 10
        sizes[decade] = sizes.get(decade, 0) + n
    return dict(sorted(sizes.items()))


def in_decade(decade: int) -> PointFilter:
    return PointFilter(year_min=decade, year_max=decade + 9)


def centre_of(
    store: PosterStore, where: PointFilter, vector_name: str, seed: int = 0, sample: int = CENTRE_SAMPLE
) -> tuple[np.ndarray, np.ndarray]:
    """The centre of the posters matching `where` (a unit vector), and the sample's vectors it is the mean of."""
    drawn = store.sample(sample, seed, where, fields=["year"], vector_name=vector_name)
    members = np.stack([cast(np.ndarray, p.vector) for p in drawn]).astype(np.float64)  # sample() gives only points with it
    members /= np.maximum(np.linalg.norm(members, axis=1, keepdims=True), 1e-12)
    centre = members.mean(axis=0)
    return centre / max(float(np.linalg.norm(centre)), 1e-12), members
