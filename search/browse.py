"""Browse a whole collection: every poster, sorted by title, year or when it was added, filtered
by decade, genre and year status, a page at a time, from Qdrant's own indexes.

Each page is one ordered scroll (Qdrant's `order_by` on the integer index of `title_order`,
`year` or `added`, store/sort_keys.py), started from where the last page ended: the cost of a page
grows with its length, not with the collection. A sort runs through phases, so that every poster
is reached: by year, the dated posters, then the undated by title; and, for posters stored before
schema 4 (which lack the sort keys until the next ingest gives them), one last plain scroll.

Posters sharing a sort value (one year's films; titles alike in their first ten letters) come in
title order: the group is read whole when a page reaches it. The cursor that continues a browse is
opaque to its user: the phase, the last sort value and how many of its group were given, or a
scroll offset.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace
from typing import get_args

from ..errors import BadInput
from ..results import Sort, YearStatus
from ..store.collection import PosterStore, StoredPoint
from ..store.engine import PointFilter, Record
from ..store.schema import PREDICTED_FIELDS
from ..store.sort_keys import sort_title

SORTS: tuple[Sort, ...] = get_args(Sort)
STATUSES: tuple[YearStatus, ...] = get_args(YearStatus)
MAX_PAGE = 200
CARD_FIELDS = ["key", "title", "year", "genres", "file", "sha256", *PREDICTED_FIELDS]


@dataclass(frozen=True)
class BrowseFilters:
    decade: int | None = None  # 1960: catalog years 1960-1969
    genre: str | None = None
    status: YearStatus | None = None

    def check(self) -> None:
        if self.decade is not None and (self.decade % 10 or not 0 <= self.decade <= 9990):
            raise BadInput(f"decade must be a year ending in 0, like 1960, not {self.decade}")
        if self.status is not None and self.status not in STATUSES:
            raise BadInput(f"status must be one of {', '.join(STATUSES)}, not {self.status!r}")

    def point_filter(self) -> PointFilter:
        missing: tuple[str, ...] = ()
        present: tuple[str, ...] = ()
        if self.status == "catalog":
            present = ("year",)
        elif self.status == "predicted":
            missing, present = ("year",), ("predicted_year",)
        elif self.status == "none":
            missing = ("year", "predicted_year")
        decade = self.decade
        return PointFilter(
            year_min=decade, year_max=None if decade is None else decade + 9, genre=self.genre or None, missing=missing, present=present
        )

    def as_dict(self) -> dict:
        return {"decade": self.decade, "genre": self.genre, "status": self.status}


@dataclass(frozen=True)
class _Phase:
    key: str | None  # the integer field this phase is ordered by; None: a plain scroll (by id)
    missing: tuple[str, ...] = ()  # what the phase's posters lack (the keys of the phases before it)


PHASES: dict[str, tuple[_Phase, ...]] = {
    "title": (_Phase("title_order"), _Phase(None, ("title_order",))),
    "year": (_Phase("year"), _Phase("title_order", ("year",)), _Phase(None, ("year", "title_order"))),
    "added": (_Phase("added"), _Phase(None, ("added",))),
}


@dataclass(frozen=True)
class BrowsePage:
    posters: list[StoredPoint]
    total: int  # posters matching the filters
    next: str | None  # the cursor of the next page; None after the last


def browse(
    store: PosterStore,
    sort: Sort = "title",
    descending: bool = False,
    filters: BrowseFilters = BrowseFilters(),
    limit: int = 48,
    after: str | None = None,
) -> BrowsePage:
    """One page of the collection in this order; `after`: the cursor the page before returned."""
    if sort not in SORTS:
        raise BadInput(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    if not 1 <= limit <= MAX_PAGE:
        raise BadInput(f"limit must be 1 to {MAX_PAGE}, not {limit}")
    filters.check()
    base = filters.point_filter()
    phases = PHASES[sort]
    phase, value, skip, offset = _decode(after, len(phases))
    found: list[Record] = []
    while len(found) < limit and phase < len(phases):
        step = phases[phase]
        where = replace(base, missing=(*base.missing, *step.missing))
        if step.key is None:
            records, next_offset = store.page(where, limit - len(found), offset, CARD_FIELDS)
            found += records
            offset = None if next_offset is None else str(next_offset)
            if offset is None:
                phase, value, skip = phase + 1, None, 0
            continue
        # the first phase follows the order asked for; the later ones (the undated, by title) run A to Z
        down = descending and step is phases[0]
        fields = [*CARD_FIELDS, step.key]
        if value is not None:  # finish the group of posters sharing the last value
            group = _group(store, where, step.key, int(value), fields, down)
            taken = group[skip : skip + limit - len(found)]
            found += taken
            skip += len(taken)
            if skip < len(group):
                break
        need = limit - len(found)
        if not need:
            break
        records = store.scroll_ordered(_beyond(where, step.key, value, down), step.key, down, None, need, fields)
        if not records:
            phase, value, skip = phase + 1, None, 0
            continue
        last = records[-1].payload[step.key]
        # the groups before the last are whole in `records` (Qdrant orders by value); the last is read whole
        before = [r for r in records if r.payload[step.key] != last]
        found += sorted(before, key=lambda r: (r.payload[step.key], *_tie(r)), reverse=down)
        group = _group(store, where, step.key, int(last), fields, down)
        taken = group[: limit - len(found)]
        found += taken
        value, skip = last, len(taken)
    more = phase < len(phases)
    return BrowsePage(store.decoded(found), store.count(base), _encode(phase, value, skip, offset) if more else None)


def _tie(record: Record) -> tuple[str, str]:
    """The order among posters with the same sort value: by title as people sort it, then by id (stable)."""
    return sort_title(str(record.payload.get("title") or "")), record.id


def _group(store: PosterStore, where: PointFilter, key: str, value: int, fields: list[str], descending: bool) -> list[Record]:
    """Every poster with this sort value (a tie: one year's films, titles alike in their first ten
    letters), in tie order. Its cost grows with the tie: browsing by year, the posters of one year."""
    same = replace(where, ranges=(*where.ranges, (key, value, value)))
    records = [r for batch in store.records(with_vectors=False, fields=fields, filter=same) for r in batch]
    return sorted(records, key=_tie, reverse=descending)


def _beyond(where: PointFilter, key: str, value: int | float | None, descending: bool) -> PointFilter:
    """`where`, for the values after `value` in the order (all of them when it is None)."""
    if value is None:
        return where
    after = (key, None, int(value) - 1) if descending else (key, int(value) + 1, None)
    return replace(where, ranges=(*where.ranges, after))


def _encode(phase: int, value: object, skip: int, offset: str | None) -> str:
    text = json.dumps([phase, value, skip, offset], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str | None, phases: int) -> tuple[int, int | float | None, int, str | None]:
    """The cursor's parts; BadInput, one line, for anything this module did not write."""
    if not cursor:
        return 0, None, 0, None
    try:
        phase, value, skip, offset = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        valid = (
            isinstance(phase, int)
            and 0 <= phase < phases
            and (value is None or isinstance(value, (int, float)))
            and isinstance(skip, int)
            and 0 <= skip <= 1_000_000
            and (offset is None or isinstance(offset, str))
        )
    except (ValueError, TypeError):
        valid = False
    if not valid:
        raise BadInput("that browse cursor is not one this server gave: start the browse again")
    return phase, value, skip, offset
