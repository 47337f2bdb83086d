"""How a collection moves through time: for each decade, its most and least typical posters and
how far its centre moved from the decade before.

A decade's centre is the normalised mean of its posters' unit vectors. Its most typical posters
are those nearest that centre (the mean of a seeded sample of the decade, on a large collection), its least typical the farthest: both found by Qdrant's exact search
within the decade (a year-range filter), the farthest as the nearest to the opposite direction
(cosine(-c, x) = -cosine(c, x)). The centre's movement is 1 - cosine between consecutive centres:
0 when a decade looks, on average, like the one before. How tightly a decade holds together is
the mean cosine of its posters to its centre.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..errors import BadInput
from ..store.collection import PosterStore
from ..store.engine import PointFilter
from ..store.schema import VECTOR_NAME, PosterPayload
from .batch import EXACT_UP_TO
from .decades import centre_of, decade_sizes, in_decade

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
    """The timeline of a collection, decade by decade, oldest first. Bounded at any size: the
    decades' sizes are Qdrant's facet counts of `year`, a decade's centre and cohesion come from a
    seeded sample of at most CENTRE_SAMPLE of its posters, and its most and least typical posters
    are one filtered query each (exact up to EXACT_UP_TO posters, through the index beyond)."""
    store.stored_spec(vector_name)
    by_decade = decade_sizes(store, vector_name)
    if not by_decade:
        raise BadInput(f"collection '{store.collection}' has no dated posters: a timeline needs years")
    exact = sum(by_decade.values()) <= EXACT_UP_TO
    steps: list[DecadeStep] = []
    previous = None
    for decade, size in by_decade.items():
        if size < MIN_DECADE:
            continue
        where = in_decade(decade)
        centre, members = centre_of(store, where, vector_name, seed=decade)
        shown = min(per_decade, (size + 1) // 2)  # a small decade's posters are shown once, typical or not
        typical = _nearest(store, centre, shown, where, vector_name, exact)
        farthest = _nearest(
            store, -centre, min(per_decade, size - shown), replace(where, exclude_ids=tuple(p.id for p in typical)), vector_name, exact
        )
        atypical = [TimelinePoster(**{**asdict(p), "similarity": -p.similarity}) for p in farthest]
        moved = None if previous is None else float(1 - centre @ previous)
        steps.append(DecadeStep(decade, size, float((members @ centre).mean()), moved, typical, atypical))
        previous = centre
    return steps


def _nearest(store: PosterStore, vector: np.ndarray, k: int, where: PointFilter, vector_name: str, exact: bool) -> list[TimelinePoster]:
    [hits] = store.nearest([vector.astype(np.float32)], k, where, vector_name, exact=exact, fields=["title", "year", "file"])
    return [TimelinePoster(h.id, h.poster.title, h.poster.year, h.poster.file, h.score, h.poster.file_raw) for h in hits]


def timeline_table(steps: list[DecadeStep]) -> str:
    lines = [f"{'decade':8}{'posters':>8}{'cohesion':>10}{'moved':>8}  most typical | least typical"]
    for s in steps:
        moved = f"{s.moved:8.3f}" if s.moved is not None else f"{'':8}"
        typical = "; ".join(f"{p.title} ({p.year})" for p in s.typical)
        atypical = "; ".join(f"{p.title} ({p.year})" for p in s.atypical)
        lines.append(f"{f'{s.decade}s':8}{s.posters:8d}{s.cohesion:10.3f}{moved}  {typical} | {atypical}")
    return "\n".join(lines)
