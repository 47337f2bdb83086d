"""Why two posters are close: their cosine score, split exactly over VGG16's 7x7 grid.

A poster's stored vector is v = m / |m|, where m = (1/49) sum_c F[c] is the average of the 49
cells of its block5_pool grid (512 channels each; after ReLU and max-pooling, all >= 0). So the
score of a neighbour n for a query vector q is, exactly,

    score = q . v_n = sum over cells c of  q . F_n[c] / (49 |m_n|)

one term per cell of the neighbour's grid: where in the neighbour the score comes from. Every
term is >= 0 (both sides are non-negative), so the map is a share of the score, not a guess of
a saliency method. The query's own map is the same sum the other way round: its cells against the
neighbour's stored vector. The terms sum to the score up to float rounding and the runtime's
agreement with the vectors in the store (ONNX Runtime and Keras agree to cosine 0.99999:
tests/test_explain.py checks the sum against Qdrant's own scores, within 1e-4).

The style vector (`vgg16_style`) has no such map: half of it is each layer's channel means, which
do split over that layer's cells, but the other half is standard deviations, which are not sums
over cells (one cell's share depends on every other cell through the mean), and each layer's
part is normalised on its own. A map that summed to its score would be one choice among many, so
none is offered: maps are for `vgg16` only.

Cost: a neighbour's grid is not stored (49 x 512 floats each would be 100 KB a poster), so each
map needs one forward pass over the neighbour's poster file, on the runtime the queries use.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from ..embedding.images import ImageError, decode_poster
from ..errors import BadInput, NotFound
from ..path_inside import inside
from ..store.collection import PosterStore, StoredPoint
from ..store.schema import VECTOR_NAME
from .neighbours import ImageQuery, Neighbour

GRID = 7


@dataclass(frozen=True)
class Explanation:
    """A neighbour's score and where it comes from, in both posters."""

    neighbour: Neighbour
    on_neighbour: np.ndarray  # (7, 7): the neighbour's cells against the query vector; sums to the score
    on_query: np.ndarray  # (7, 7): the query's cells against the neighbour's stored vector; sums to the score

    @property
    def total(self) -> float:
        return float(self.on_neighbour.sum())

    def as_dict(self) -> dict:
        return {
            "id": self.neighbour.id,
            "score": self.neighbour.score,
            "sum": self.total,
            "neighbour": np.round(self.on_neighbour, 6).tolist(),
            "query": np.round(self.on_query, 6).tolist(),
        }


def cell_terms(vector: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(7, 7) terms of vector . normalise(mean of the grid's cells): their sum is that cosine."""
    grid = np.asarray(grid, np.float64)
    mean = grid.reshape(-1, grid.shape[-1]).mean(axis=0)
    return (grid @ np.asarray(vector, np.float64)) / (grid.shape[0] * grid.shape[1] * max(np.linalg.norm(mean), 1e-12))


def explain(
    query_vector: np.ndarray,
    query_grid: np.ndarray,
    neighbours: list[Neighbour],
    neighbour_grids: np.ndarray,
    neighbour_vectors: list[np.ndarray],
) -> list[Explanation]:
    """Each neighbour's maps, from its grid (computed from its poster) and its stored vector."""
    return [
        Explanation(n, cell_terms(query_vector, grid).astype(np.float32), cell_terms(stored, query_grid).astype(np.float32))
        for n, grid, stored in zip(neighbours, neighbour_grids, neighbour_vectors)
    ]


class GridCache:
    """The grids of stored posters explained recently (100 KB each), by poster file: a page asks for
    one card's map, then another of the same search, and each grid costs a forward pass."""

    def __init__(self, size: int = 256):
        self.size = size
        self._grids: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def get(self, key: tuple) -> np.ndarray | None:
        if key in self._grids:
            self._grids.move_to_end(key)
        return self._grids.get(key)

    def put(self, key: tuple, grid: np.ndarray) -> None:
        self._grids[key] = grid
        self._grids.move_to_end(key)
        while len(self._grids) > self.size:
            self._grids.popitem(last=False)


class Explainer:
    """Maps for searches of one collection: grids from the poster files, on the queries' embedder."""

    def __init__(self, store: PosterStore, embedder, cache: GridCache | None = None):
        self.store, self.embedder, self.cache = store, embedder, cache
        if not hasattr(embedder, "grids"):
            raise BadInput("similarity maps need the ONNX Runtime embedder (search.neighbours.image_embedder)")

    def query_from_image(self, image) -> tuple[np.ndarray, np.ndarray]:
        """(vector, grid) of a query image, from one forward pass."""
        return self.query_from_pixels(decode_poster(image).pixels)

    def query_from_pixels(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(vector, grid) of a decoded query poster (224 x 224 x 3 uint8), from one forward pass."""
        [vector], [grid] = self.embedder.embed_with_grid(pixels[None])
        return vector, grid

    def query_from_point(self, point: StoredPoint) -> tuple[np.ndarray, np.ndarray]:
        """(stored vector, grid from its poster file) of a stored film as the query."""
        [grid] = self._grids([point.poster.path])
        vector = point.vector if point.vector is not None else self.store.retrieve([point.id], with_vectors=True)[0].vector
        return np.asarray(vector, np.float32), grid

    def neighbours(self, query_vector: np.ndarray, query_grid: np.ndarray, neighbours: list[Neighbour]) -> list[Explanation]:
        if not neighbours:
            return []
        stored = {p.id: p.vector for p in self.store.retrieve([n.id for n in neighbours], with_vectors=VECTOR_NAME)}
        missing = [n.id for n in neighbours if stored.get(n.id) is None]
        if missing:
            raise NotFound(f"no stored film with id {missing[0][:100]} in collection '{self.store.collection}'")
        grids = self._grids([n.poster.path for n in neighbours])
        return explain(query_vector, query_grid, neighbours, grids, [cast(np.ndarray, stored[n.id]) for n in neighbours])

    def _grids(self, files: list[str]) -> np.ndarray:
        """The grids of these stored posters: from the cache, the others in one batch."""
        paths = [self._path(file) for file in files]
        keys = [_file_key(path) for path in paths]
        known = {key: grid for key in keys if self.cache is not None and (grid := self.cache.get(key)) is not None}
        missing = {key: path for key, path in zip(keys, paths) if key not in known}
        if missing:
            for key, grid in zip(missing, self.embedder.grids(np.stack([_pixels(path) for path in missing.values()]))):
                known[key] = grid
                if self.cache is not None:
                    self.cache.put(key, grid)
        return np.stack([known[key] for key in keys])

    def _path(self, file: str) -> Path:
        folder = self.store.posters_dir()
        if folder is None or not Path(folder).is_dir():
            raise BadInput(
                f"similarity maps need the posters: the folder collection '{self.store.collection}' records ({folder}) is not here"
            )
        path = inside(Path(folder), file)
        if path is None:
            raise BadInput(f"the poster file {file[:100]!r} is not in the collection's posters folder")
        return path


def _file_key(path: Path) -> tuple:
    """A poster file as the grid cache knows it: a file replaced since has another key."""
    try:
        stat = path.stat()
    except OSError as e:
        raise BadInput(f"cannot draw the similarity map: {path.name}: {e.strerror or e}") from None
    return (str(path), stat.st_mtime_ns, stat.st_size)


def _pixels(path: Path) -> np.ndarray:
    try:
        return decode_poster(path).pixels
    except ImageError as e:
        raise BadInput(f"cannot draw the similarity map: {e}") from None


def explain_search(store: PosterStore, query, neighbours: list[Neighbour], weights: str | None = None, embedder=None) -> list[Explanation]:
    """The maps of a search's neighbours; `query` is the stored film (StoredPoint), the image
    query as searched (ImageQuery: no second forward pass), or any image."""
    from .neighbours import image_embedder

    explainer = Explainer(store, embedder or image_embedder(store, weights))
    if isinstance(query, StoredPoint):
        vector, grid = explainer.query_from_point(query)
    elif isinstance(query, ImageQuery):
        if query.grid is None:
            raise BadInput("this search kept no 7x7 grid of its query: similarity maps are for the vgg16 vector only")
        vector, grid = query.vector, query.grid
    else:
        vector, grid = explainer.query_from_image(query)
    return explainer.neighbours(vector, grid, neighbours)
