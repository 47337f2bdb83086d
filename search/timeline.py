"""How a collection moves through time: for each decade, its most and least typical posters and
how far its centre moved from the decade before.

A decade's centre is the normalised mean of its posters' unit vectors. Its most typical posters
are those nearest that centre, its least typical the farthest: both found by Qdrant's exact search
within the decade (a year-range filter), the farthest as the nearest to the opposite direction
(cosine(-c, x) = -cosine(c, x)). The centre's movement is 1 - cosine between consecutive centres:
0 when a decade looks, on average, like the one before. How tightly a decade holds together is
the mean cosine of its posters to its centre.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import cast

import numpy as np

from ..errors import BadInput
from ..store.collection import PosterStore
from ..store.engine import PointFilter
from ..store.schema import VECTOR_NAME, PosterPayload

MIN_DECADE = 3  # posters a decade needs to have a centre worth drawing


@dataclass
class TimelinePoster:
    id: str
    title: str
    year: int | None
    file: str
    similarity: float  # cosine to the decade's centre
    file_raw: str | None = None  # the name's bytes when it is not UTF-8 (store/schema.py)

    @property
    def path(self) -> str:
        return PosterPayload(file=self.file, file_raw=self.file_raw).path


@dataclass
class DecadeStep:
    decade: int
    posters: int
    cohesion: float  # mean cosine of the decade's posters to its centre
    moved: float | None  # 1 - cosine(centre, previous decade's centre); None for the first
    typical: list[TimelinePoster] = field(default_factory=list)
    atypical: list[TimelinePoster] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def era_timeline(store: PosterStore, vector_name: str = VECTOR_NAME, per_decade: int = 3) -> list[DecadeStep]:
    """The timeline of a collection, decade by decade, oldest first."""
    store.stored_spec(vector_name)
    dated = [p for p in store.points(with_vectors=True, fields=["year"], vector_name=vector_name) if p.poster.year is not None]
    if not dated:
        raise BadInput(f"collection '{store.collection}' has no dated posters: a timeline needs years")
    years = np.array([p.poster.year for p in dated])
    vectors = np.stack([cast(np.ndarray, p.vector) for p in dated]).astype(np.float64)  # points() yields only points with it
    steps: list[DecadeStep] = []
    previous = None
    for decade in np.unique(years // 10 * 10):
        members = vectors[(years // 10 * 10) == decade]
        if len(members) < MIN_DECADE:
            continue
        centre = members.mean(axis=0)
        centre /= np.linalg.norm(centre)
        in_decade = PointFilter(year_min=int(decade), year_max=int(decade) + 9)
        shown = min(per_decade, (len(members) + 1) // 2)  # a small decade's posters are shown once, typical or not
        typical = _nearest(store, centre, shown, in_decade, vector_name)
        farthest = _nearest(
            store, -centre, min(per_decade, len(members) - shown), replace(in_decade, exclude_ids=tuple(p.id for p in typical)), vector_name
        )
        atypical = [TimelinePoster(**{**asdict(p), "similarity": -p.similarity}) for p in farthest]
        moved = None if previous is None else float(1 - centre @ previous)
        steps.append(DecadeStep(int(decade), len(members), float((members @ centre).mean()), moved, typical, atypical))
        previous = centre
    return steps


def _nearest(store: PosterStore, vector: np.ndarray, k: int, where: PointFilter, vector_name: str) -> list[TimelinePoster]:
    [hits] = store.nearest([vector.astype(np.float32)], k, where, vector_name, exact=True, fields=["title", "year", "file"])
    return [TimelinePoster(h.id, h.poster.title, h.poster.year, h.poster.file, h.score, h.poster.file_raw) for h in hits]


def timeline_table(steps: list[DecadeStep]) -> str:
    lines = [f"{'decade':8}{'posters':>8}{'cohesion':>10}{'moved':>8}  most typical | least typical"]
    for s in steps:
        moved = f"{s.moved:8.3f}" if s.moved is not None else f"{'':8}"
        typical = "; ".join(f"{p.title} ({p.year})" for p in s.typical)
        atypical = "; ".join(f"{p.title} ({p.year})" for p in s.atypical)
        lines.append(f"{f'{s.decade}s':8}{s.posters:8d}{s.cohesion:10.3f}{moved}  {typical} | {atypical}")
    return "\n".join(lines)
