"""Damage that leaves the count of points as it was: points whose `vgg16` vector is flagged
deleted, or whose payload is lost (counted by Qdrant, never scrolled: see damage()). Qdrant answers for such points without a word (a search skips
them, a scroll returns them without the vector or with an empty payload), so a command that finds
less than it should asks here before it says "not found", writes a short export or reports a
copy "checked equal"; ingest embeds again the posters whose vector was lost, and names what it
cannot restore (ingest/pipeline.py).

Every point poster search writes has a `vgg16` vector and a payload (its `key`, `title`, `file`):
a point with an empty payload has lost it. The style vector may be missing (ingest --style adds it later), so it is not checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Damaged
from .collection import PosterStore
from .engine import PointFilter
from .schema import VECTOR_NAME


@dataclass(frozen=True)
class Damage:
    points: int
    without_vector: int
    without_payload: int

    def __bool__(self) -> bool:
        return bool(self.without_vector or self.without_payload)

    def what(self) -> str:
        """The damage in words, e.g. "2 of its 4 points have lost their 'vgg16' vector"."""
        parts = []
        if self.without_vector:
            parts.append(f"{self.without_vector} of its {self.points} points have lost their '{VECTOR_NAME}' vector")
        if self.without_payload:
            parts.append(f"{self.without_payload} of its {self.points} points have lost their payload (title, file)")
        return " and ".join(parts)

    def message(self, collection: str) -> str:
        return (
            f"collection '{collection}' is damaged: {self.what()}, while the count of points holds; nothing was changed. "
            "Restore the store folder from a backup, or ingest the catalog again into a new --collection"
        )


def damage(store: PosterStore) -> Damage:
    """What is damaged in the collection (falsy when nothing is): three counts, by Qdrant. A point
    that lost its payload lost `key`, `title` and `file` (every point is written with them): counted
    with is-empty conditions, not by scrolling every payload, so a miss costs the same at any size."""
    total = store.count()
    with_vector = store.count(PointFilter(has_vector=VECTOR_NAME)) if store.has_vector(VECTOR_NAME) else total
    return Damage(total, total - with_vector, store.count(PointFilter(missing=("key", "title", "file"))))


def lost_vectors(store: PosterStore) -> set[str]:
    """Ids of the points whose `vgg16` vector is flagged deleted: counted first (cheap), listed only
    when there are some. Ingest embeds those posters again (ingest/pipeline.py)."""
    if not store.exists() or not store.has_vector(VECTOR_NAME):
        return set()
    if store.count(PointFilter(has_vector=VECTOR_NAME)) == store.count():
        return set()
    return store.ids_without(VECTOR_NAME)


def check_intact(store: PosterStore) -> None:
    """Damaged naming the damage, if any (see the module's docstring)."""
    found = damage(store)
    if found:
        raise Damaged(found.message(store.collection))
