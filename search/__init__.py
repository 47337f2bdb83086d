"""Find the stored posters most similar to an image or to a stored film, and measure era coherence.

from search import nearest
nearest("poster.jpg", k=3)          # the default store ./qdrant_data, weights from $VGG16_WEIGHTS

`search.nearest` is the module search/nearest.py, and calling it calls its function nearest().
A package attribute cannot be both a submodule and a function of the same name: binding the
function here made `import search.nearest as m` give the function, not the module. Renaming the
module would break every `from search.nearest import ...` (here and in users' code), so the module
is made callable instead: both spellings hold. (`from search.nearest import nearest` is the function.)
"""

from search import nearest
from search.nearest import Neighbour, PosterSearch

__all__ = ["Neighbour", "PosterSearch", "nearest"]
