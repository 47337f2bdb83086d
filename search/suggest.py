"""Films from a few typed letters: title suggestions, from Qdrant's indexes, never a scan.

Two bounded questions to the store, then a ranking of their few answers here:
- titles that *start* with the text, as a person sorts them ("sou" and "the sou" both find
  "The Sound of Music"): one range condition on the integer index of `title_order`, in order;
- titles holding every typed word at the start of one of their words ("mus", "sound of mus",
  "amel" for "Amélie"): the full-text index on `title`, whose prefix tokenizer keeps each word's
  prefixes, case and accents folded.
Best first: the title itself, then titles starting with the text, then word matches; shorter
titles before longer ones among equals (the film, before its sequels).
"""

from __future__ import annotations

from ..store.collection import PosterStore, StoredPoint
from ..store.schema import PREDICTED_FIELDS
from ..store.sort_keys import folded, sort_title

MAX_TEXT = 200
CANDIDATES = 64  # per question: what is ranked, whatever the collection's size
FIELDS = ["title", "year", "genres", "file", "sha256", *PREDICTED_FIELDS]


def suggestions(store: PosterStore, text: str, limit: int = 8) -> list[StoredPoint]:
    """Up to `limit` stored films whose titles fit the typed `text`, best first."""
    text = text[:MAX_TEXT]
    wanted = folded(text)
    if not wanted:
        return []
    candidates = {p.id: p for p in store.titles_starting(text, CANDIDATES, FIELDS)}
    if any(ch.isalnum() for ch in wanted):
        for point in store.with_title_words(wanted, CANDIDATES, FIELDS):
            candidates.setdefault(point.id, point)
    ranks = {p.id: _rank(p, wanted) for p in candidates.values()}  # once each: folding titles is the work here
    return [p for p in sorted(candidates.values(), key=lambda p: ranks[p.id]) if ranks[p.id][0] < NO_MATCH][:limit]


NO_MATCH = 6


def _rank(point: StoredPoint, wanted: str) -> tuple[int, int, str]:
    title = folded(point.poster.title)
    words = title.split()
    if title == wanted or sort_title(point.poster.title) == sort_title(wanted):
        kind = 0  # the title itself
    elif title.startswith(wanted):
        kind = 1
    elif sort_title(point.poster.title).startswith(sort_title(wanted) or wanted):
        kind = 2  # as it is sorted: "sou" for "The Sound of Music"
    elif all(t in words for t in wanted.split()):
        kind = 3  # every typed word is one of the title's words ("wind": Inherit the Wind before Rear Window)
    elif all(any(w.startswith(t) for w in words) for t in wanted.split()):
        kind = 4  # every typed word begins one of the title's words
    elif wanted in title:
        kind = 5
    else:
        kind = NO_MATCH  # a candidate the index gave for a word longer than its prefix length: not shown
    return kind, len(title), title
