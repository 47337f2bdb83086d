"""The library's results as the page's JSON: the one place the API's answers take their shape."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..api import Neighbour, StoredPoint
from ..store.schema import PREDICTED_FIELDS, PosterPayload


def poster_url(collection: str, point_id: str) -> str:
    return f"/api/posters/{quote(collection, safe='')}/{quote(point_id, safe='')}"


def predicted(poster: PosterPayload) -> dict[str, Any]:
    """A poster's predicted year as the API sends it, beside (never in) its catalog `year`: all four
    predicted_* keys, None where it has no prediction."""
    return {name: getattr(poster, name) for name in PREDICTED_FIELDS}


def poster_fields(poster: PosterPayload) -> dict[str, Any]:
    """What the page shows of a stored poster: its title, its catalog year and its predicted year."""
    return {"title": poster.title, "year": poster.year, **predicted(poster)}


def card(collection: str, neighbour: Neighbour) -> dict[str, Any]:
    """A result: the neighbour as the search found it, with its predicted year and its poster's URL."""
    return {**neighbour.as_dict(), **predicted(neighbour.poster), "poster_url": poster_url(collection, neighbour.id)}


def cards(collection: str, neighbours: list[Neighbour]) -> list[dict[str, Any]]:
    return [card(collection, n) for n in neighbours]


def film(collection: str, point: StoredPoint) -> dict[str, Any]:
    """A stored film as the query of a search."""
    poster = point.poster
    return {
        "id": point.id,
        **poster_fields(poster),
        "genres": list(poster.genres),
        "file": poster.file,
        "poster_url": poster_url(collection, point.id),
    }
