"""The poster map: every poster of a collection placed in 2-D by its embedding, coloured by year,
with the decade centres joined in order as the collection's path through time.

The projection is t-SNE, as openTSNE computes it (FFT-accelerated gradients and approximate
nearest neighbours: time and memory grow linearly with the collection). Against the alternatives,
measured in bench/projection.py (docs/results.md has the figures): PCA is instant but keeps
few neighbourhoods (posters that look alike land far apart); UMAP keeps about as many as t-SNE
but brings numba and llvmlite (200 MB, and seconds of compilation in each new process); t-SNE
keeps neighbourhoods best, which is what a map to browse by looks is for. Its distances between
far-apart groups mean little, which the page says.

A map is computed once per collection state and cached: the key is a digest of every point's id
and content hash, the vector and the map's version, so any ingest, correction or deletion gives
a new map and an unchanged collection reuses the old one (embedding/onnx_cache.py's folder).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadInput
from ..store.collection import PosterStore
from ..store.schema import VECTOR_NAME
from ..tables import Tabular

MAP_VERSION = 1  # another projection or other settings: every cached map is computed again
SCALE = 10_000  # coordinates sent to the browser as integers 0..SCALE
MIN_POSTERS = 10
MAX_CACHE_BYTES = 2 * 1024**3  # a cached map: about 300 bytes a poster


@dataclass
class PosterMap(Tabular):
    ids: np.ndarray  # (n,) point ids
    xy: np.ndarray  # (n, 2) in [0, 1]
    years: np.ndarray  # (n,) float, NaN where unknown
    titles: np.ndarray  # (n,)
    fingerprint: str
    seconds: float = 0.0  # to compute it (0 when it came from the cache)
    decades: list[dict] = field(default_factory=list)  # {"decade", "x", "y", "n"}, in order

    def as_json(self) -> dict:
        """Compact, for the page: integer coordinates, years (-1 unknown); titles are asked for by index."""
        return {
            "n": len(self.ids),
            "fingerprint": self.fingerprint,
            "x": np.rint(self.xy[:, 0] * SCALE).astype(int).tolist(),
            "y": np.rint(self.xy[:, 1] * SCALE).astype(int).tolist(),
            "year": np.where(np.isnan(self.years), -1, self.years).astype(int).tolist(),
            "decades": self.decades,
        }

    def figure(self, out: Path, title: str) -> Path:
        """Draw it as a PNG: every poster a dot coloured by year, the decades' path."""
        from .figures import map_figure

        return map_figure(self, Path(out), title)

    def records(self) -> list[dict]:
        """Every poster with its coordinates (id, title, year, x, y): `map --json`, and to_frame()."""
        return self.as_records()

    def as_records(self) -> list[dict]:
        """Every poster with its coordinates, for `map --json`."""
        return [
            {"id": str(i), "title": str(t), "year": None if np.isnan(y) else int(y), "x": round(float(x), 5), "y": round(float(v), 5)}
            for i, t, y, (x, v) in zip(self.ids, self.titles, self.years, self.xy)
        ]


def layout(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n, 2) t-SNE coordinates of unit vectors (cosine), openTSNE's defaults for large data."""
    from openTSNE import TSNE

    from ..embedding.backend import usable_cores

    n = len(vectors)
    tsne = TSNE(
        n_components=2,
        perplexity=min(30.0, max(2.0, (n - 1) / 3.5)),
        metric="cosine",
        initialization="pca",  # global structure from PCA, then refined: reproducible and faster to converge
        negative_gradient_method="bh" if n < 2000 else "fft",  # Barnes-Hut is the faster below a few thousand
        neighbors="exact" if n < 1000 else "annoy",  # never pynndescent: it would bring numba's seconds of compiling
        n_jobs=usable_cores(),
        random_state=seed,
        verbose=False,
    )
    return np.asarray(tsne.fit(np.asarray(vectors, np.float32)), np.float64)


def fingerprint(store: PosterStore, vector_name: str = VECTOR_NAME) -> str:
    """A digest of the collection's state: every point's id and content hash, the embedding, this version."""
    return _state(store, vector_name)[0]


def _state(store: PosterStore, vector_name: str) -> tuple[str, set[str]]:
    """The fingerprint, and the ids of every stored point (what a cached map may name)."""
    digest = hashlib.sha256(f"v{MAP_VERSION}:{vector_name}:{store.stored_spec(vector_name).describe()}".encode())
    ids = set()
    for point in sorted(store.points(with_vectors=False, fields=["sha256", "year", "title"]), key=lambda p: p.id):
        ids.add(point.id)
        poster = point.poster
        digest.update(f"{point.id}:{poster.sha256}:{'' if poster.year is None else poster.year}:{poster.title}\n".encode())
    return digest.hexdigest()[:24], ids


def poster_map(store: PosterStore, vector_name: str = VECTOR_NAME, seed: int = 0) -> PosterMap:
    """The map of the collection as it is now: from the cache, or computed (and cached)."""
    from ..store.embeddings import load_embeddings

    key, stored_ids = _state(store, vector_name)
    path = _cache_path(store, vector_name, key)
    cached = _read(path, key, stored_ids)
    if cached is not None:
        return cached
    started = time.perf_counter()
    embeddings = load_embeddings(store, vector_name)
    if len(embeddings) < MIN_POSTERS:
        raise BadInput(f"the poster map needs at least {MIN_POSTERS} posters; collection '{store.collection}' has {len(embeddings)}")
    xy = _unit_square(layout(embeddings.vectors, seed))
    result = PosterMap(embeddings.ids, xy, embeddings.years, embeddings.titles, key, time.perf_counter() - started)
    result.decades = decade_path(xy, embeddings.years)
    _write(path, result)
    return result


def decade_path(xy: np.ndarray, years: np.ndarray) -> list[dict]:
    """Each decade's centre on the map (the mean position of its posters), in order."""
    dated = ~np.isnan(years)
    decades = (years[dated] // 10 * 10).astype(int)
    points = xy[dated]
    return [
        {
            "decade": int(d),
            "x": round(float(points[decades == d, 0].mean()), 5),
            "y": round(float(points[decades == d, 1].mean()), 5),
            "n": int((decades == d).sum()),
        }
        for d in np.unique(decades)
    ]


def _unit_square(xy: np.ndarray) -> np.ndarray:
    """Into [0, 1] on both axes (a common scale, so shapes are kept), a few far outliers clipped to the edge."""
    low, high = np.percentile(xy, 0.2, axis=0), np.percentile(xy, 99.8, axis=0)
    centre, span = (low + high) / 2, max(float((high - low).max()), 1e-9) * 1.02
    return np.clip((xy - centre) / span + 0.5, 0.0, 1.0)


def _cache_path(store: PosterStore, vector_name: str, key: str) -> Path:
    from ..embedding.onnx_cache import cache_dir

    where = hashlib.sha256(
        f"{store.location.describe()}|{Path(store.location.path).resolve() if store.location.is_local else ''}|{store.collection}".encode()
    )
    return cache_dir() / "maps" / where.hexdigest()[:16] / f"{vector_name}-{key}.npz"


def _read(path: Path, key: str, stored_ids: set[str]) -> PosterMap | None:
    """The cached map, if it checks out: a regular file of bounded size (not a link: the cache
    may be shared), arrays of one length and the right shapes, coordinates in the unit square,
    the ids of stored points. Anything else is computed again, never believed."""
    from ..safe_io import open_regular

    try:
        with open_regular(path, MAX_CACHE_BYTES, "cached map") as f, np.load(f, allow_pickle=False) as data:
            if str(data["fingerprint"]) != key:
                return None
            result = PosterMap(data["ids"], data["xy"], data["years"], data["titles"], key)
    except (OSError, KeyError, ValueError, EOFError, BadInput):
        return None  # missing or damaged: computed again
    n = len(result.ids)
    shapes = (result.ids.shape, result.xy.shape, result.years.shape, result.titles.shape)
    if shapes != ((n,), (n, 2), (n,), (n,)) or not n or result.xy.dtype.kind != "f" or result.years.dtype.kind != "f":
        return None
    if not (np.isfinite(result.xy).all() and (result.xy >= 0).all() and (result.xy <= 1).all()):
        return None
    ids = [str(i) for i in result.ids]
    if len(set(ids)) != n or not stored_ids.issuperset(ids):
        return None
    finite = result.years[~np.isnan(result.years)]
    if (np.abs(finite) > 10_000).any():
        return None
    result.decades = decade_path(result.xy, result.years)
    return result


def _write(path: Path, result: PosterMap) -> None:
    from ..safe_io import atomic_writer

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob(f"{path.name.split('-')[0]}-*.npz"):  # an earlier state of the collection
            old.unlink(missing_ok=True)
        with atomic_writer(path) as f:  # a private temp name renamed into place: a link there is replaced, not followed
            np.savez(f, ids=result.ids, xy=result.xy, years=result.years, titles=result.titles, fingerprint=np.array(result.fingerprint))
    except OSError:
        pass  # not cached: computed again next time
