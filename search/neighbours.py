"""k nearest posters through Qdrant, ranked by cosine similarity, the query itself excluded;
and recommendations from liked and disliked stored posters.

"The query itself" is any stored poster with the same content: the same file bytes (sha256),
whichever path it is read from. A merely similar poster (re-encoded, resized) is a neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, cast

import numpy as np

from ..embedding.images import ImageSource, decode_poster
from ..errors import BadInput, NotFound
from ..store.collection import Match, PosterStore, StoredPoint
from ..store.engine import PointFilter
from ..store.integrity import check_intact
from ..store.schema import DEFAULT_COLLECTION, PREDICTED_FIELDS, VECTOR_NAME, PosterPayload
from .batch import EXCLUSION_MARGIN

if TYPE_CHECKING:
    from ..embedding.onnx_embedder import OnnxEmbedder
    from ..store.connection import StoreLocation


@dataclass(frozen=True)
class Neighbour:
    """One result of a search: its rank, the stored poster (its payload, decoded) and its cosine
    similarity to the query (1 = the same direction)."""

    rank: int
    id: str
    score: float
    poster: PosterPayload

    def as_dict(self) -> dict:
        """Plain values: rank, id, title, year, score, file, genres, and the predicted_* fields where the poster has a prediction."""
        poster = self.poster
        row = {"rank": self.rank, "id": self.id, "title": poster.title, "year": poster.year, "score": self.score, "file": poster.file}
        row["genres"] = list(poster.genres)
        row.update({name: getattr(poster, name) for name in PREDICTED_FIELDS if getattr(poster, name) is not None})
        return row


@dataclass(frozen=True)
class Filters:
    """What a user narrows a search by; Qdrant evaluates them with its payload indexes."""

    year_min: int | None = None
    year_max: int | None = None
    genre: str | None = None

    def check(self, names: tuple[str, str] = ("--year-min", "--year-max")) -> None:
        """BadInput for a range no film can match; `names`: what the caller calls the two bounds."""
        if self.year_min is not None and self.year_max is not None and self.year_min > self.year_max:
            raise BadInput(f"{names[0]} {self.year_min} is after {names[1]} {self.year_max}: no film can match")

    def conditions(self) -> dict:
        return {"year_min": self.year_min, "year_max": self.year_max, "genre": self.genre or None}


@dataclass(frozen=True)
class ImageQuery:
    """An image query as embedded: its vector, its file's sha256 and, for `vgg16` on ONNX Runtime,
    its 7x7 block5_pool grid, which its similarity maps need (search/explain.py)."""

    vector: np.ndarray
    sha256: str
    grid: np.ndarray | None = None
    source: str = "image"  # how the query was given: its path, or "image" for a PIL image or an array


class PosterSearch:
    """Queries one store. The embedder is only needed to search by a new image."""

    def __init__(self, store: PosterStore, embedder: OnnxEmbedder | None = None):
        self.store = store
        self.embedder = embedder
        self.spec = store.stored_spec()

    def by_image(self, image: ImageSource, k: int = 3, filters: Filters = Filters(), vector_name: str = VECTOR_NAME) -> list[Neighbour]:
        """The k stored films whose posters are most similar to `image` (path, PIL image or array)."""
        return self.by_image_query(image, k, filters, vector_name)[0]

    def by_image_query(
        self, image: ImageSource, k: int = 3, filters: Filters = Filters(), vector_name: str = VECTOR_NAME
    ) -> tuple[list[Neighbour], ImageQuery]:
        """by_image, and the query as embedded (with its grid for similarity maps, from the same forward pass)."""
        _check_k(k)
        filters.check()
        if self.embedder is None:
            raise BadInput("searching by image needs an embedder (VGG16 weights)")
        self.store.check_spec(self.embedder.spec)  # never compare vectors of two embeddings
        if vector_name != VECTOR_NAME:
            if self.embedder.style_spec is None:
                raise BadInput(f"searching by '{vector_name}' needs an embedder made with style=True")
            self.store.check_spec(self.embedder.style_spec, vector_name)
        poster = decode_poster(image)
        grid = None
        if vector_name == VECTOR_NAME and hasattr(self.embedder, "embed_with_grid"):
            [vector], [grid] = self.embedder.embed_with_grid(poster.pixels[None])
        else:
            base, style = self.embedder.embed_both(poster.pixels[None])
            vector = base[0] if vector_name == VECTOR_NAME else cast(np.ndarray, style)[0]  # style_spec checked above
        source = str(image) if isinstance(image, (str, PathLike)) else "image"
        query = ImageQuery(vector, poster.sha256, grid, source)
        return self.by_vector(vector, k, filters, exclude_sha256=poster.sha256, vector_name=vector_name), query

    def by_point(self, point: StoredPoint, k: int = 3, filters: Filters = Filters(), vector_name: str = VECTOR_NAME) -> list[Neighbour]:
        """Neighbours of a stored film, from its stored vector: no model, no TensorFlow."""
        _check_k(k)
        filters.check()
        self.store.stored_spec(vector_name)  # a clear error if the collection lacks this vector
        if point.vector is None or vector_name != VECTOR_NAME:
            found = self.store.retrieve([point.id], with_vectors=vector_name)
            if not found or found[0].vector is None:
                if vector_name == VECTOR_NAME:  # every stored point has one: without it, the store is damaged
                    check_intact(self.store)
                raise NotFound(f"film {point.id} has no '{vector_name}' vector yet (ingest --style adds it)")
            point = StoredPoint(point.id, point.poster, found[0].vector, point.payload)
        assert point.vector is not None
        return self.by_vector(point.vector, k, filters, [point.id], point.poster.sha256 or None, vector_name)

    def recommend(
        self,
        positive_ids: list[str],
        negative_ids: Sequence[str] = (),
        k: int = 3,
        filters: Filters = Filters(),
        vector_name: str = VECTOR_NAME,
        query: ImageQuery | None = None,
    ) -> list[Neighbour]:
        """Films like the liked examples (and the image `query`) and unlike the disliked ones
        (Qdrant's recommend query), the examples themselves and their same-content copies excluded."""
        _check_k(k)
        filters.check()
        if not positive_ids and query is None:
            raise BadInput("recommend needs at least one liked (positive) example")
        dim = self.store.vectors().get(vector_name)
        if query is not None and query.vector.shape != (dim,):
            raise BadInput(f"the image was searched by another vector than '{vector_name}': search with it again, then refine")
        self.store.stored_spec(vector_name)
        examples = {p.id: p for p in self.store.retrieve([*positive_ids, *negative_ids], with_vectors=vector_name)}
        missing = [i for i in [*positive_ids, *negative_ids] if i not in examples or examples[i].vector is None]
        if missing:
            check_intact(self.store)
            raise NotFound(f"no film with id {missing[0]} (and a '{vector_name}' vector) in collection '{self.store.collection}'")
        exclude = PointFilter(**filters.conditions(), exclude_ids=tuple(examples))
        liked = [cast(np.ndarray, examples[i].vector) for i in positive_ids]  # none missing (checked above)
        hits = self.store.recommend(
            liked + ([query.vector] if query is not None else []),
            [cast(np.ndarray, examples[i].vector) for i in negative_ids],
            k + EXCLUSION_MARGIN,
            exclude,
            vector_name,
        )
        copies = {examples[i].poster.sha256 or None for i in examples}
        if query is not None:
            copies.add(query.sha256)
        return _neighbours([h for h in hits if (h.poster.sha256 or None) not in copies], k)

    def by_vector(
        self,
        vector: np.ndarray,
        k: int,
        filters: Filters = Filters(),
        exclude_ids: Sequence[str] = (),
        exclude_sha256: str | None = None,
        vector_name: str = VECTOR_NAME,
    ) -> list[Neighbour]:
        if self.store.count() == 0:
            raise BadInput(f"collection '{self.store.collection}' is empty: nothing to search")
        # The query's own copies are excluded by Qdrant itself (ids and sha256 are indexed), so
        # k results come back whenever k others match the filters.
        query_filter = PointFilter(**filters.conditions(), exclude_ids=tuple(exclude_ids), exclude_sha256=exclude_sha256)
        [hits] = self.store.nearest([vector], k, query_filter, vector_name)
        if any(not h.payload for h in hits):  # a point whose payload was lost
            check_intact(self.store)
        return _neighbours(hits, k)


def _neighbours(hits: list[Match], k: int) -> list[Neighbour]:
    return [Neighbour(rank, h.id, h.score, h.poster) for rank, h in enumerate(hits[:k], start=1)]


def _check_k(k: int) -> None:
    if k < 1:
        raise BadInput(f"k must be at least 1, not {k}")


def image_embedder(store: PosterStore, weights: str | None = None, style: bool = False, long_lived: bool = False):
    """The embedder for image queries of this collection: the CPU's fastest runtime (OpenVINO bf16
    where the CPU has bf16, else ONNX Runtime; no TensorFlow), the
    collection's own int8 model if it was made in int8. `weights` as for the CLI's --weights;
    `long_lived` for many queries (a server, a notebook's PosterSearch)."""
    from ..embedding.embedders import query_embedder
    from ..embedding.spec import resolve_weights

    return query_embedder(
        resolve_weights(weights), style, store.stored_spec(), store.collection_metadata().calibration, store.posters_dir(), long_lived
    )


def nearest(
    image: ImageSource,
    k: int = 3,
    *,
    location: StoreLocation | None = None,
    collection: str = DEFAULT_COLLECTION,
    weights: str | None = None,
    year_min: int | None = None,
    year_max: int | None = None,
    genre: str | None = None,
    vector_name: str = VECTOR_NAME,
) -> list[Neighbour]:
    """One-call search for notebooks: opens the store and the model, returns the k nearest films.

    `weights` as for the CLI: None reads $VGG16_WEIGHTS, else "imagenet"; or a .h5 path.
    Runs on OpenVINO or ONNX Runtime (embedding.backend.cpu_runtime), without TensorFlow. Opening the store and the model costs about half a
    second: for many queries keep a PosterSearch instead.
    """
    from ..store.connection import location_from_options

    location = location or location_from_options(None, None, None)
    with PosterStore(location, collection, must_exist=True) as store:
        search = PosterSearch(store, image_embedder(store, weights, style=vector_name != VECTOR_NAME))
        return search.by_image(image, k, Filters(year_min, year_max, genre), vector_name)
