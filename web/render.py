"""The library's results as the page's JSON: the one place the API's answers take their shape."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..api import Neighbour, StoredPoint
from ..store.schema import PREDICTED_FIELDS, PosterPayload

THUMB_WIDTH = 240  # pixels: a grid card's poster at twice a phone's card width


def poster_url(collection: str, point_id: str) -> str:
    return f"/api/posters/{quote(collection, safe='')}/{quote(point_id, safe='')}"


def thumb_url(collection: str, point_id: str) -> str:
    return f"{poster_url(collection, point_id)}?w={THUMB_WIDTH}"


def predicted(poster: PosterPayload) -> dict[str, Any]:
    """A poster's predicted year as the API sends it, beside (never in) its catalog `year`: all four
    predicted_* keys, None where it has no prediction."""
    return {name: getattr(poster, name) for name in PREDICTED_FIELDS}


def poster_fields(poster: PosterPayload) -> dict[str, Any]:
    """What the page shows of a stored poster: its title, its catalog year and its predicted year."""
    return {"title": poster.title, "year": poster.year, **predicted(poster)}


def card(collection: str, neighbour: Neighbour) -> dict[str, Any]:
    """A result: the neighbour as the search found it, with its predicted year and its poster's URL."""
    urls = {"poster_url": poster_url(collection, neighbour.id), "thumb_url": thumb_url(collection, neighbour.id)}
    return {**neighbour.as_dict(), **predicted(neighbour.poster), **urls}


def cards(collection: str, neighbours: list[Neighbour]) -> list[dict[str, Any]]:
    return [card(collection, n) for n in neighbours]


def film(collection: str, point: StoredPoint) -> dict[str, Any]:
    """A stored film as the query of a search."""
    return poster_card(collection, point.id, point.poster)


def poster_card(collection: str, point_id: str, poster: PosterPayload) -> dict[str, Any]:
    """A stored film in a grid (browse, suggestions) or as a query: title, years, genres, file, its poster's URLs."""
    return {
        "id": point_id,
        **poster_fields(poster),
        "genres": list(poster.genres),
        "file": poster.file,
        "poster_url": poster_url(collection, point_id),
        "thumb_url": thumb_url(collection, point_id),
    }
