"""Posters to start from, before any search: each decade's most typical posters, and a varied
sample of the undated ones.

Why these: a random sample of a collection of thousands shows mostly its crowded decades and
says nothing of how it is arranged; the posters nearest a decade's centre (the normalised mean
of its unit vectors, as in search/timeline.py) are what that decade looks like on average, so a
row per decade shows what the collection holds and how its look changed, and "more like this"
on any of them opens that part of it. Undated posters (a folder ingested without a catalog) have
no decade: they get one group of their own, picked by farthest-point sampling so that it shows
the different looks among them rather than many of one. A catalog year alone places a poster in
a decade: a predicted year never does (the page shows it on the poster, marked).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import cast

import numpy as np

from ..store.collection import PosterStore
from ..store.engine import PointFilter
from ..store.schema import VECTOR_NAME, PosterPayload
from .batch import EXACT_UP_TO
from .decades import centre_of, decade_sizes, in_decade

PER_DECADE = 8
# Posters of a decade (and of the undated) its centre is drawn from. The posters shown are picked by
# it, not measured against it as the timeline's are: at 1M, 500 showed 96% of the posters 2,000
# did (two samples of 2,000 agree on 98%), and its groups took 0.65 s instead of 1.3-3.2 s.
START_SAMPLE = 500
UNDATED_SHOWN = 12


@dataclass
class StartGroup:
    label: str  # "1940s", or "undated"
    decade: int | None
    count: int  # posters of the collection in this group (only some of them are shown)
    ids: list[str] = field(default_factory=list)  # the posters shown, most typical first
    similarity: list[float] = field(default_factory=list)  # cosine of each to its decade's centre (undated: to theirs)
    posters: list[PosterPayload] = field(default_factory=list)  # theirs, in the same order (with_posters)

    def with_posters(self, posters: dict[str, PosterPayload]) -> StartGroup:
        """The group with its posters' payloads; one deleted since (over a server) is left out."""
        kept = [i for i, point_id in enumerate(self.ids) if point_id in posters]
        return replace(
            self,
            ids=[self.ids[i] for i in kept],
            similarity=[self.similarity[i] for i in kept],
            posters=[posters[self.ids[i]] for i in kept],
        )


def start_groups(
    store: PosterStore, vector_name: str = VECTOR_NAME, per_decade: int = PER_DECADE, undated_shown: int = UNDATED_SHOWN
) -> list[StartGroup]:
    """One group per decade with a catalog year (oldest first, its `per_decade` most typical
    posters), then the undated posters' group (`undated_shown` of them, as varied as they come).
    Bounded at any size (search/decades.py): a decade's centre is the mean of a sample of it, and
    its most typical posters one filtered query for the nearest to it (exact up to EXACT_UP_TO
    posters, through the index beyond); the undated are picked among a sample of them. Cache the
    answer (Posters.starts does, per collection state)."""
    sizes = decade_sizes(store, vector_name)
    exact = store.count() <= EXACT_UP_TO
    groups = []
    for decade, size in sizes.items():
        centre, _ = centre_of(store, in_decade(decade), vector_name, seed=decade, sample=START_SAMPLE)
        [hits] = store.nearest([centre.astype(np.float32)], per_decade, in_decade(decade), vector_name, exact=exact, fields=["year"])
        groups.append(StartGroup(f"{decade}s", decade, size, [h.id for h in hits], [h.score for h in hits]))
    undated = store.having(vector_name, PointFilter(missing=("year",)))
    count = store.count(undated)
    if count:
        drawn = store.sample(START_SAMPLE, 0, undated, fields=["year"], vector_name=vector_name)
        vectors = np.stack([cast(np.ndarray, p.vector) for p in drawn]).astype(np.float64)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        similarity = _to_centre(vectors)
        picked = _varied(vectors, int(np.argmax(similarity)), undated_shown)
        groups.append(StartGroup("undated", None, count, [drawn[i].id for i in picked], similarity[picked].tolist()))
    return groups


def _to_centre(vectors: np.ndarray) -> np.ndarray:
    centre = vectors.mean(axis=0)
    centre /= max(float(np.linalg.norm(centre)), 1e-12)
    return vectors @ centre


def _varied(vectors: np.ndarray, first: int, n: int) -> list[int]:
    """Farthest-point sampling from `first`: each next poster the least like any already picked."""
    picked = [first]
    closest = vectors @ vectors[first]  # each poster's highest cosine to the picked ones
    while len(picked) < min(n, len(vectors)):
        closest[picked] = np.inf
        nxt = int(np.argmin(closest))
        picked.append(nxt)
        closest = np.maximum(closest, vectors @ vectors[nxt])
    return picked
