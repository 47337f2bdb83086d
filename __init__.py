"""poster search: embed movie posters with VGG16, keep them in Qdrant, find similar posters, date them.

    from poster_search import Posters

    posters = Posters("qdrant_data")                 # the embedded store (a folder), or Posters("http://host:6333")
    result = posters.search("my_poster.jpg", k=5)    # the 5 most similar stored posters
    result.to_frame()                                # as a pandas DataFrame

`Posters` (poster_search/api.py) is the one front door: the CLI (`poster-search`, or `python cli.py`
in a checkout) and the web page call it and nothing else. Its errors are the kinds in
poster_search.errors. This package is the repository's root folder: its modules import one
another relatively, and nothing here touches sys.path.

Names are imported on first use, so `import poster_search` costs nothing until one is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    from .api import Posters
    from .errors import BadInput, Damaged, InUse, NotFound, NotInstalled, PosterSearchError

__all__ = ["BadInput", "Damaged", "InUse", "NotFound", "NotInstalled", "PosterSearchError", "Posters", "__version__"]

_LAZY = {
    "Posters": "api",
    "PosterSearchError": "errors",
    "BadInput": "errors",
    "NotFound": "errors",
    "Damaged": "errors",
    "InUse": "errors",
    "NotInstalled": "errors",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
