"""Find a stored film by title or id, with helpful messages for unknown and ambiguous titles."""

from __future__ import annotations

import difflib

from ..errors import BadInput, Damaged, NotFound
from ..store.collection import PosterStore, StoredPoint
from ..store.integrity import check_intact
from ..store.schema import PosterPayload


def find_film(store: PosterStore, title: str | None = None, point_id: str | None = None, year: int | None = None) -> StoredPoint:
    """The one stored film with this id, or this title (and year); BadInput otherwise."""
    store.stored_spec()
    if point_id:
        # No try: every engine answers an id that is not a point id with nothing, and an error
        # here is damage (a truncated vector or payload file), said as --title says it.
        found = store.retrieve([point_id], with_vectors=True)
        if not found:
            check_intact(store)  # a point whose payload or vector was lost: said as such, not "no film"
            why = store.left_out(point_id)
            if why:  # stored, but its payload does not decode: named as such, not "no film"
                raise Damaged(f"collection '{store.collection}': {why}")
            raise NotFound(f"no film with id {_cut(point_id)} in collection '{store.collection}'")
        return _intact(store, found[0])
    if not title:
        raise BadInput("give an image, a --title or an --id")
    with store.left_out_during() as left_out:  # a film of that title may be one whose payload does not decode
        matches = _exact(store, title, year)
    if not matches:
        check_intact(store)
        if left_out:
            raise Damaged(f"collection '{store.collection}': {store.left_out(left_out[0])}")
        raise NotFound(f"no film titled {_cut(title)!r}{f' from {year}' if year else ''}{_close_matches(store, title)}")
    if len(matches) > 1:
        listed = "; ".join(f"{m.poster.title} ({_year(m.poster)}, id {m.id})" for m in matches[:5])
        raise BadInput(f"{len(matches)} films are titled {title!r}: {listed}; give the year too, or search by id")
    return _intact(store, store.retrieve([matches[0].id], with_vectors=True)[0])


def _intact(store: PosterStore, point: StoredPoint) -> StoredPoint:
    """The point, unless its payload or its vector was lost (then the damage is named)."""
    if point.vector is None or not point.payload:
        check_intact(store)
    return point


def _exact(store: PosterStore, title: str, year: int | None = None) -> list[StoredPoint]:
    """Films whose title is `title`, exactly or else up to case. The candidates are the films whose
    title sorts under the same `title_order` key (the same first letters, case, accents and a
    leading article aside), one range on its index, read a page at a time: however many films
    share a title, or its words, all of them and only they are compared here."""
    from dataclasses import replace

    from ..store.engine import PointFilter
    from ..store.sort_keys import title_order

    key = title_order(title)
    where = PointFilter(ranges=(("title_order", key, key),), year_min=year, year_max=year)
    candidates: list[StoredPoint] = []
    if store.count(PointFilter(missing=("title_order",))):  # stored before schema 4, until the next ingest gives them their key
        candidates += store.decoded(
            r
            for batch in store.records(False, ["title", "year", "sha256"], filter=replace(where, ranges=(), missing=("title_order",)))
            for r in batch
        )
    offset = None
    while True:
        records, offset = store.page(where, 1024, offset, ["title", "year", "sha256"])
        candidates += store.decoded(records)
        if offset is None:
            break
    exact = [p for p in candidates if p.poster.title == title]
    wanted = title.casefold().strip()
    return exact or [p for p in candidates if p.poster.title.casefold().strip() == wanted]


def _all_titles(store: PosterStore) -> list[StoredPoint]:
    return list(store.points(with_vectors=False, fields=["title", "year"], batch=2048))


ALL_TITLES_UP_TO = 20_000  # posters whose titles difflib reads whole (tens of ms); past that, near_titles() only


def _close_matches(store: PosterStore, title: str) -> str:
    candidates = _all_titles(store) if store.count() <= ALL_TITLES_UP_TO else near_titles(store, title)
    titles = {p.poster.title: _year(p.poster) for p in candidates}
    close = difflib.get_close_matches(title, list(titles), n=5, cutoff=0.6)
    return "; close matches: " + ", ".join(f"{t} ({titles[t]})" for t in close) if close else ""


def near_titles(store: PosterStore, title: str, per_word: int = 64) -> list[StoredPoint]:
    """Stored films a mistyped title may have meant, found without reading every title (a typo in a
    word's first three letters is not found this way; small collections read every title): the first
    titles in alphabetical order that start as it does, for the longest start that finds any
    ("gone wiht": "gone wi"), by the `title_order` index; and for each of its first words, the films
    with a word starting as it does, again its longest start that finds any ("casablanka": ...
    "casabl" finds Casablanca), by the title index's prefixes. difflib then ranks these few."""
    from ..store.sort_keys import folded

    fields = ["title", "year"]
    text = folded(title)
    found: dict[str, StoredPoint] = {}
    for length in range(min(len(text), 10), 2, -1):
        if starting := store.titles_starting(text[:length], per_word, fields):
            found.update((p.id, p) for p in starting)
            break
    for word in [w for w in text.split() if len(w) >= 3][:4]:
        for length in range(min(len(word), 20), 2, -1):
            if matching := store.with_title_words(word[:length], per_word, fields):
                found.update((p.id, p) for p in matching)
                break
    return list(found.values())


def _year(poster: PosterPayload) -> int | str:
    return "?" if poster.year is None else poster.year


def _cut(text: str, limit: int = 100) -> str:
    """A value as a message may quote it: never a huge input whole."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
