"""The typed results of poster_search.Posters: what a search, an overview or the year model gives
back, carrying the stored posters' decoded payloads. Each tabular one turns into a pandas DataFrame
with `to_frame()` (tables.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .search.neighbours import Filters, ImageQuery, Neighbour
from .tables import Tabular

if TYPE_CHECKING:
    from .regression.predict import ImageYear
    from .search.browse import BrowseFilters
    from .search.duplicates import DuplicatePair
    from .search.explain import Explanation
    from .search.landing import StartGroup
    from .search.timeline import DecadeStep
    from .store.collection import StoredPoint


@dataclass(frozen=True)
class Examples:
    """The query of a recommendation: liked and disliked stored posters, by id, and an image
    searched with before, liked too (a refined image search keeps its image)."""

    positive: tuple[str, ...]
    negative: tuple[str, ...] = ()
    image: ImageQuery | None = None


@dataclass
class SearchResult(Tabular):
    """The k posters most similar to a query, best first: a stored film (`StoredPoint`), an image
    (`ImageQuery`) or liked and disliked examples (`Examples`)."""

    collection: str
    vector: str
    query: StoredPoint | ImageQuery | Examples
    neighbours: list[Neighbour]
    filters: Filters = Filters()
    posters_dir: Path | None = None  # where the stored posters' files are (for sheets)

    def records(self) -> list[dict[str, Any]]:
        return [n.as_dict() for n in self.neighbours]

    def describe_query(self) -> dict[str, Any]:
        """The query as plain values: the image's name, the stored film's id, title and years, or the examples."""
        from .store.collection import StoredPoint

        if isinstance(self.query, ImageQuery):
            return {"image": self.query.source}
        if isinstance(self.query, Examples):
            return {"positive": list(self.query.positive), "negative": list(self.query.negative)}
        assert isinstance(self.query, StoredPoint)
        poster = self.query.poster
        described: dict[str, Any] = {"id": self.query.id, "title": poster.title, "year": poster.year, "file": poster.file}
        if poster.file_raw:  # the name's bytes, which `file` shows as text (text_out.py)
            described["file_raw"] = poster.file_raw
        if poster.predicted_year is not None:
            described["predicted_year"] = poster.predicted_year
        return described

    def sheet(self, out: str | os.PathLike, explanations: list[Explanation] | None = None, posters_dir: Path | None = None) -> Path:
        """Draw the query and its neighbours as a PNG (with `explanations`: where each score comes from)."""
        from .search.sheet import query_sheet

        return query_sheet(self.describe_query(), self.neighbours, posters_dir or self.posters_dir, Path(out), explanations)


@dataclass
class Duplicates(Tabular):
    """Pairs of stored posters at least `threshold` similar, most similar first."""

    threshold: float
    pairs: list[DuplicatePair]

    def table(self) -> str:
        from .search.duplicates import duplicates_table

        return duplicates_table(self.pairs, self.threshold)

    def as_json(self) -> list[dict[str, Any]]:
        return [p.as_dict() for p in self.pairs]

    def records(self) -> list[dict[str, Any]]:
        return [
            {
                "score": p.score,
                "identical": p.identical,
                **{f"{side}_{name}": getattr(getattr(p, side), name) for side in ("a", "b") for name in ("id", "title", "year", "file")},
            }
            for p in self.pairs
        ]


@dataclass
class Timeline(Tabular):
    """Each decade's most and least typical posters and how far its centre moved."""

    collection: str
    vector: str
    steps: list[DecadeStep]
    posters_dir: Path | None = None

    def records(self) -> list[dict[str, Any]]:
        return [
            {
                "decade": s.decade,
                "posters": s.posters,
                "cohesion": s.cohesion,
                "moved": s.moved,
                "typical": "; ".join(p.title for p in s.typical),
                "atypical": "; ".join(p.title for p in s.atypical),
            }
            for s in self.steps
        ]

    def figure(self, out: str | os.PathLike) -> Path:
        from .search.figures import timeline_figure

        return timeline_figure(self.steps, self.posters_dir, Path(out), self.collection)

    def table(self) -> str:
        from .search.timeline import timeline_table

        return timeline_table(self.steps)

    def as_json(self) -> list[dict[str, Any]]:
        return [s.as_dict() for s in self.steps]


@dataclass
class Evaluation(Tabular):
    """A year model scored on the dated posters of some collections it was not trained on."""

    figures: dict[str, Any]

    def table(self) -> str:
        from .regression.evaluate import evaluation_table

        return evaluation_table(self.figures)

    def as_dict(self) -> dict[str, Any]:
        return self.figures

    def records(self) -> list[dict[str, Any]]:
        return [{"decade": decade, **row} for decade, row in self.figures["by_decade"].items()]


class YearPredictions(Tabular):
    """predict-year over images: each image's year and calibrated range, or why there is none, in
    order. Dated as it is iterated (a folder of thousands streams); `to_frame()` dates the rest."""

    def __init__(self, source: Iterator[ImageYear]) -> None:
        self._source = source
        self.results: list[ImageYear] = []

    def __iter__(self) -> Iterator[ImageYear]:
        yield from list(self.results)
        for result in self._source:
            self.results.append(result)
            yield result

    def records(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self]

    @property
    def failed(self) -> list[ImageYear]:
        return [r for r in self if r.prediction is None]


@dataclass
class Starts(Tabular):
    """Posters to start from, before any search: each decade's most typical, a varied sample of the undated."""

    collection: str
    vector: str
    groups: list[StartGroup]
    seconds: float  # to choose them (once per collection state)

    def records(self) -> list[dict[str, Any]]:
        return [
            {"group": g.label, "id": i, "title": p.title, "year": p.year, "similarity": s}
            for g in self.groups
            for i, p, s in zip(g.ids, g.posters, g.similarity)
        ]


Sort = Literal["title", "year", "added"]  # how Posters.browse orders a collection
YearStatus = Literal["catalog", "predicted", "none"]  # a catalog year / only a predicted one / neither


def _poster_row(point: StoredPoint) -> dict[str, Any]:
    p = point.poster
    return {"id": point.id, "title": p.title, "year": p.year, "predicted_year": p.predicted_year, "genres": list(p.genres), "file": p.file}


@dataclass
class Browse(Tabular):
    """One page of a whole collection in an order (Posters.browse): its posters, how many match, the next page's cursor."""

    collection: str
    sort: str
    descending: bool
    filters: BrowseFilters
    posters: list[StoredPoint]
    total: int
    next: str | None  # give it as `after` for the next page; None after the last

    def records(self) -> list[dict[str, Any]]:
        return [_poster_row(p) for p in self.posters]


@dataclass
class Suggestions(Tabular):
    """Stored films whose titles fit a few typed letters, best first (Posters.suggest)."""

    collection: str
    text: str
    posters: list[StoredPoint]

    def records(self) -> list[dict[str, Any]]:
        return [_poster_row(p) for p in self.posters]


@dataclass(frozen=True)
class Facets:
    """What a collection holds, counted by Qdrant (facet counts and counts on its indexes): for filter menus."""

    collection: str
    count: int
    decades: list[tuple[int, int]]  # (decade, posters with a catalog year in it), in order
    genres: list[tuple[str, int]]  # (genre, posters), most first
    status: dict[str, int]  # "catalog", "predicted", "none": posters with a catalog year, only a predicted one, neither

    def as_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "count": self.count,
            "decades": [{"decade": d, "count": n} for d, n in self.decades],
            "genres": [{"genre": g, "count": n} for g, n in self.genres],
            "status": self.status,
        }


@dataclass(frozen=True)
class CollectionInfo:
    """A poster collection at a glance: its size, the embedding of each vector, its genres and years."""

    name: str
    count: int
    vectors: dict[str, dict]  # vector name -> EmbeddingSpec.as_dict()
    has_posters: bool  # whether the poster folder ingest recorded is here
    genres: list[str]
    years: tuple[int, int] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "count": self.count,
            "vectors": self.vectors,
            "posters": self.has_posters,
            "genres": self.genres,
            "years": list(self.years) if self.years else None,
        }
