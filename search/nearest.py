"""k nearest posters through Qdrant, ranked by cosine similarity, the query itself excluded.

"The query itself" is any stored poster with the same content: the same file bytes (sha256),
whichever path it is read from. A merely similar poster (re-encoded, resized) is a neighbour.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from embedding.images import ImageSource, decode_poster
from errors import UserError
from search.batch import EXCLUSION_MARGIN
from store.collection import PosterStore, StoredPoint
from store.schema import DEFAULT_COLLECTION, VECTOR_NAME

if TYPE_CHECKING:
    from embedding.model import Embedder
    from store.connection import StoreLocation


@dataclass(frozen=True)
class Neighbour:
    rank: int
    id: str
    title: str
    year: int | None
    score: float  # cosine similarity, 1 = same direction
    file: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Filters:
    year_min: int | None = None
    year_max: int | None = None
    genre: str | None = None


class PosterSearch:
    """Queries one store. The embedder is only needed to search by a new image."""

    def __init__(self, store: PosterStore, embedder: "Embedder | None" = None):
        self.store = store
        self.embedder = embedder
        self.spec = store.stored_spec()

    def by_image(self, image: ImageSource, k: int = 3, filters: Filters = Filters()) -> list[Neighbour]:
        """The k stored films whose posters are most similar to `image` (path, PIL image or array)."""
        _check_k(k)
        if self.embedder is None:
            raise UserError("searching by image needs an embedder (VGG16 weights)")
        self.store.check_spec(self.embedder.spec)  # never compare vectors of two embeddings
        poster = decode_poster(image)
        vector = self.embedder.embed_pixels(poster.pixels[None])[0]
        return self.by_vector(vector, k, filters, exclude_sha256=poster.sha256)

    def by_point(self, point: StoredPoint, k: int = 3, filters: Filters = Filters()) -> list[Neighbour]:
        """Neighbours of a stored film, from its stored vector: no model, no TensorFlow."""
        _check_k(k)
        if point.vector is None:
            [point] = self.store.retrieve([point.id], with_vectors=True)
        return self.by_vector(point.vector, k, filters, exclude_ids=[point.id], exclude_sha256=point.payload.get("sha256"))

    def by_vector(
        self,
        vector: np.ndarray,
        k: int,
        filters: Filters = Filters(),
        exclude_ids: list[str] = (),
        exclude_sha256: str | None = None,
    ) -> list[Neighbour]:
        if self.store.count() == 0:
            raise UserError(f"collection '{self.store.collection}' is empty: nothing to search")
        # Ask for a few extra hits and drop the query's own copies here: exact, and much faster
        # than a must_not filter, which local mode evaluates in Python point by point. Only when
        # the copies outnumber the margin does Qdrant filter them out.
        hits = self._query(vector, k + EXCLUSION_MARGIN, qdrant_filter(filters))
        kept = [h for h in hits if str(h.id) not in exclude_ids and not (exclude_sha256 and h.payload.get("sha256") == exclude_sha256)]
        if len(kept) < k and len(hits) == k + EXCLUSION_MARGIN:
            kept = self._query(vector, k, qdrant_filter(filters, exclude_ids, exclude_sha256))
        return [
            Neighbour(rank, str(h.id), h.payload.get("title", ""), h.payload.get("year"), float(h.score), h.payload.get("file", ""))
            for rank, h in enumerate(kept[:k], start=1)
        ]

    def _query(self, vector: np.ndarray, limit: int, query_filter):
        return self.store.client.query_points(
            self.store.collection,
            query=np.asarray(vector, dtype=np.float32).tolist(),
            using=VECTOR_NAME,
            limit=limit,
            query_filter=query_filter,
            with_payload=True,
        ).points


def qdrant_filter(filters: Filters, exclude_ids=(), exclude_sha256: str | None = None):
    """Filters become Qdrant conditions, evaluated by Qdrant, so k results still come back."""
    from qdrant_client import models

    must, must_not = [], []
    if filters.year_min is not None or filters.year_max is not None:
        must.append(models.FieldCondition(key="year", range=models.Range(gte=filters.year_min, lte=filters.year_max)))
    if filters.genre:
        must.append(models.FieldCondition(key="genres", match=models.MatchValue(value=filters.genre)))
    if exclude_ids:
        must_not.append(models.HasIdCondition(has_id=list(exclude_ids)))
    if exclude_sha256:
        must_not.append(models.FieldCondition(key="sha256", match=models.MatchValue(value=exclude_sha256)))
    return models.Filter(must=must or None, must_not=must_not or None) if must or must_not else None


def _check_k(k: int) -> None:
    if k < 1:
        raise UserError(f"k must be at least 1, not {k}")


def nearest(
    image: ImageSource,
    k: int = 3,
    *,
    location: "StoreLocation | None" = None,
    collection: str = DEFAULT_COLLECTION,
    weights: str | None = None,
    year_min: int | None = None,
    year_max: int | None = None,
    genre: str | None = None,
) -> list[Neighbour]:
    """One-call search for notebooks: opens the store and the model, returns the k nearest films.

    `weights` as for the CLI: None reads $VGG16_WEIGHTS, else "imagenet"; or a .h5 path.
    Opening the model costs seconds: for many queries keep a PosterSearch instead.
    """
    from embedding.model import Embedder
    from embedding.spec import resolve_weights
    from store.connection import location_from_options

    location = location or location_from_options(None, None, None)
    with PosterStore(location, collection, must_exist=True) as store:
        search = PosterSearch(store, Embedder(resolve_weights(weights)))
        return search.by_image(image, k, Filters(year_min, year_max, genre))
