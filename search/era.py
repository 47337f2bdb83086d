"""Are a poster's nearest neighbours from a similar era? The question as a number.

For a seeded sample of dated posters (or every one), the absolute year difference to each of its k
nearest dated neighbours (found by Qdrant, the poster itself and same-content copies excluded),
against the same figure for k random dated posters (years drawn from the collection's own counts). A ratio well under 1
means the embedding groups posters by era beyond chance.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import cast

import numpy as np

from .. import defaults
from ..errors import BadInput
from ..store.collection import Match, PosterStore, StoredPoint
from ..store.engine import PointFilter
from ..store.schema import VECTOR_NAME
from ..tables import Tabular
from .batch import EXACT_UP_TO, nearest_accepted


@dataclass
class DecadeRow:
    decade: int
    posters: int
    neighbour_mean: float
    random_mean: float


@dataclass
class EraReport(Tabular):
    k: int
    posters: int  # queries made
    neighbour_mean: float
    neighbour_median: float
    random_mean: float
    random_median: float
    by_decade: list[DecadeRow] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    def records(self) -> list[dict]:
        """By decade of the query poster: mean year difference to its neighbours and to random posters."""
        return [asdict(row) for row in self.by_decade]

    def table(self) -> str:
        lines = [
            f"era coherence: |year difference| between a poster and its {self.k} nearest neighbours, {self.posters} posters",
            f"{'':18}{'neighbours':>12}{'random pairs':>14}",
            f"{'mean':18}{self.neighbour_mean:12.1f}{self.random_mean:14.1f}",
            f"{'median':18}{self.neighbour_median:12.1f}{self.random_median:14.1f}",
            f"{'ratio of means':18}{self.neighbour_mean / self.random_mean:12.2f}",
            "by decade of the query poster:",
            f"{'decade':8}{'posters':>10}{'neighbours':>12}{'random pairs':>14}",
        ]
        lines += [f"{f'{r.decade}s':8}{r.posters:10d}{r.neighbour_mean:12.1f}{r.random_mean:14.1f}" for r in self.by_decade]
        return "\n".join(lines)


def era_coherence(
    store: PosterStore,
    k: int = 3,
    sample: int | None = defaults.ERA_QUERIES,
    seed: int = 0,
    vector_name: str = VECTOR_NAME,
    progress: bool = True,
) -> EraReport:
    """The report over a seeded sample of `sample` dated posters (None or 0: every one). Bounded at
    any size: the sample is drawn by the store (PosterStore.sample), the random baseline comes from
    Qdrant's facet counts of `year`, and beyond EXACT_UP_TO posters the neighbours come from the
    HNSW index rather than a scan of every vector per query."""
    started = time.perf_counter()
    store.stored_spec(vector_name)  # a clear error if the collection lacks this vector
    dated = store.having(vector_name, PointFilter(present=("year",)))
    # a facet of `year` counts only the dated: no is-empty condition to check point by point
    counts = [(int(year), n) for year, n in store.facet("year", store.having(vector_name), limit=100_000)]
    total = sum(n for _, n in counts)
    if total <= k:
        raise BadInput(f"the era analysis needs more than k={k} dated posters; the store has {total}")
    if len(counts) == 1:  # every difference would be 0, the ratio 0/0
        raise BadInput(f"all {total} dated posters are from {counts[0][0]}: era coherence needs posters from at least two years")
    queries = store.sample(sample or total, seed, dated, fields=["year", "sha256"], vector_name=vector_name)
    years = np.array([p.poster.year for p in queries], dtype=np.float64)
    rng = np.random.default_rng(seed)

    neighbour_years = nearest_dated_years(store, queries, k, vector_name, progress, exact=total <= EXACT_UP_TO)
    neighbour_diff = np.abs(neighbour_years - years[:, None])
    values, weights = np.array([y for y, _ in counts], dtype=np.float64), np.array([n for _, n in counts], dtype=np.float64)
    random_diff = np.abs(rng.choice(values, size=(len(queries), k), p=weights / weights.sum()) - years[:, None])

    decades = (years // 10 * 10).astype(int)
    by_decade = [
        DecadeRow(
            int(d), int((decades == d).sum()), float(np.nanmean(neighbour_diff[decades == d])), float(random_diff[decades == d].mean())
        )
        for d in np.unique(decades)
    ]
    return EraReport(
        k=k,
        posters=len(queries),
        neighbour_mean=float(np.nanmean(neighbour_diff)),
        neighbour_median=float(np.nanmedian(neighbour_diff)),
        random_mean=float(random_diff.mean()),
        random_median=float(np.median(random_diff)),
        by_decade=by_decade,
        seconds=time.perf_counter() - started,
    )


def nearest_dated_years(
    store: PosterStore, queries: list[StoredPoint], k: int, vector_name: str = VECTOR_NAME, progress: bool = False, exact: bool = True
) -> np.ndarray:
    """(len(queries), k) years of each query's k nearest dated posters, itself and copies excluded."""

    def accept(i: int, hit: Match) -> bool:
        query = queries[i]
        return str(hit.id) != query.id and hit.poster.sha256 != query.poster.sha256 and hit.poster.year is not None

    vectors = [cast(np.ndarray, q.vector) for q in queries]
    found = nearest_accepted(store, vectors, k, accept, vector_name, progress=progress, exact=exact)
    out = np.full((len(queries), k), np.nan)  # NaN where a tiny store has fewer than k candidates
    for i, hits in enumerate(found):
        out[i, : len(hits)] = [h.poster.year for h in hits]
    return out
