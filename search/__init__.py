"""Find the stored posters most similar to an image or to a stored film, and look at a collection
as a whole (era coherence, timeline, map, near-duplicates). Posters (poster_search.api) wires these
modules to a store; `nearest` is the one-call search for a notebook:

    from poster_search.search import nearest
    nearest("poster.jpg", k=3)   # the default store ./qdrant_data, weights from $VGG16_WEIGHTS
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .neighbours import Neighbour


def nearest(image: Any, k: int = 3, **options: Any) -> list[Neighbour]:
    """The k stored posters most similar to `image`: poster_search.api.nearest (its options)."""
    from ..api import nearest as search_nearest

    return search_nearest(image, k, **options)
