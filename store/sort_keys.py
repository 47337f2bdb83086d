"""The derived payload fields Qdrant orders browsing by (schema version 4): read and written here.

Qdrant orders a scroll by a numeric payload field only (its `order_by` needs an integer or float
index), so a title's place in the alphabet is stored as an integer, `title_order`: the title
folded as a person sorts it (case and accents ignored, a leading "The", "A" or "An" moved off, as
Plex and Jellyfin sort), its first ORDER_CHARS characters in base ALPHABET_SIZE. Titles alike in
those characters tie; the browse cursor (search/browse.py) pages through ties.

The same key answers "titles starting with these letters" as one range condition on the integer
index (`prefix_range`), so suggestions need no scan either.
"""

from __future__ import annotations

import re
import time
import unicodedata

ORDER_CHARS = 10  # 39 ** 10 < 2 ** 53: exact as a float, which Qdrant's range conditions (and JSON) use
ALPHABET_SIZE = (
    39  # 0 pads a shorter title (so it sorts first), 1 any run of spaces or punctuation, 2-11 digits, 12-37 a-z, 38 anything else
)
_ARTICLE = re.compile(r"^(the|a|an)\s+(?=\S)")
_SEPARATORS = re.compile(r"[\W_]+")


def folded(text: str) -> str:
    """Case and accents ignored (NFKD, combining marks dropped, casefolded), spaces and punctuation one space."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return _SEPARATORS.sub(" ", plain).strip()


def sort_title(title: str) -> str:
    """The title as it is sorted: folded, a leading English article moved off ("The Third Man" -> "third man")."""
    return _ARTICLE.sub("", folded(title))


def _code(ch: str) -> int:
    if ch == " ":
        return 1
    if "0" <= ch <= "9":
        return 2 + ord(ch) - ord("0")
    if "a" <= ch <= "z":
        return 12 + ord(ch) - ord("a")
    return ALPHABET_SIZE - 1


def _number(text: str) -> int:
    key = 0
    for i in range(ORDER_CHARS):
        key = key * ALPHABET_SIZE + (_code(text[i]) if i < len(text) else 0)
    return key


def title_order(title: str) -> int:
    """The title's sort key (`title_order`)."""
    return _number(sort_title(title))


def prefix_range(text: str) -> tuple[int, int] | None:
    """The `title_order` keys of every title whose sort title starts with `text` (folded), as an
    inclusive range; None when `text` folds to nothing. Past ORDER_CHARS characters the range
    holds every title sharing the first ORDER_CHARS, to be narrowed by the caller."""
    wanted = sort_title(text) or folded(text)
    if not wanted:
        return None
    head = wanted[:ORDER_CHARS]
    low = _number(head)
    return low, low + ALPHABET_SIZE ** (ORDER_CHARS - len(head)) - 1


def now_added() -> int:
    """`added` for a point stored now: microseconds since 1970."""
    return time.time_ns() // 1000


def with_sort_keys(payload: dict, added: int | None) -> dict:
    """The payload as stored: `title_order` from its title; `added` kept, else `added` when given."""
    keys = {"title_order": title_order(str(payload.get("title") or ""))}
    if payload.get("added") is None and added is not None:
        keys["added"] = added
    return {**payload, **keys}
