"""Find the stored posters most similar to an image or to a stored film, and measure era coherence.

from search import nearest
nearest("poster.jpg", k=3)          # the default store ./qdrant_data, weights from $VGG16_WEIGHTS
"""

from search.nearest import Neighbour, PosterSearch, nearest

__all__ = ["Neighbour", "PosterSearch", "nearest"]
