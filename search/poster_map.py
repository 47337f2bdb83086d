"""The poster map: every poster of a collection placed in 2-D by its embedding, coloured by year,
with the decade centres joined in order as the collection's path through time.

The projection is t-SNE, as openTSNE computes it, on a seeded sample of at most LAYOUT_SAMPLE
posters; every other poster is placed at the similarity-weighted mean position of its NEAREST
most similar sample posters (cosine, a matrix product in chunks). t-SNE's cost grows faster than
the collection, the placing's only linearly, so a first map takes seconds at any size (3,748
posters: about 4 s on 2 cores, against 22 s for t-SNE on all of them; docs/results.md). Against
the alternatives, measured in bench/projection.py: PCA is instant but keeps few neighbourhoods
(posters that look alike land far apart); UMAP keeps about as many as t-SNE but brings numba and
llvmlite (200 MB, and seconds of compilation in each new process); t-SNE keeps neighbourhoods
best, which is what a map to browse by looks is for. Its distances between far-apart groups mean
little, which the page says. A map holds at most MAX_POINTS posters (a seeded sample beyond:
`n` against `total`), which is what a browser draws and hovers over smoothly.

A map is computed once per collection state and cached: the key is a digest of the collection's
state token (rewritten by every change poster search makes: store/schema.py), its count, the
vector and the map's version, so any ingest, correction or deletion gives a new map and an
unchanged collection reuses the old one (embedding/onnx_cache.py's folder), and telling which
reads no point. The store is read in calls of a batch each (the engine serialises calls, not
tasks), so a server's searches answer while a map reads; each stage reports how far it is
(`report`): search/map_jobs.py runs it in the background for the page.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadInput
from ..store.collection import PosterStore
from ..store.engine import is_point_id
from ..store.schema import VECTOR_NAME
from ..tables import Tabular

MAP_VERSION = 2  # another projection or other settings: every cached map is computed again (2: t-SNE on a sample, the rest placed)
SCALE = 10_000  # coordinates sent to the browser as integers 0..SCALE
MIN_POSTERS = 10
MAX_CACHE_BYTES = 2 * 1024**3  # a cached map: about 300 bytes a poster
LAYOUT_SAMPLE = 2_000  # posters t-SNE places itself: about 3 s on 2 cores (bench/map_first_draw.py)
MAX_POINTS = 50_000  # posters a map holds: megabytes of JSON, and what a canvas redraws at each zoom step
NEAREST = 5  # sample posters each other poster is placed among
SHARPNESS = 0.02  # weights exp(cosine / SHARPNESS): the nearest sample poster counts most
CHUNK = 1024  # rows of the placing's similarity matrix at a time: CHUNK x LAYOUT_SAMPLE floats
TSNE_ITERATIONS = (250, 500)  # openTSNE's early exaggeration and optimisation phases (its defaults)
READ_BATCH = 1024

Report = Callable[[str, int, int], None]  # (stage, done, total): how far a computation is


def _quiet(stage: str, done: int, total: int) -> None:
    pass


@dataclass
class PosterMap(Tabular):
    ids: np.ndarray  # (n,) point ids
    xy: np.ndarray  # (n, 2) in [0, 1]
    years: np.ndarray  # (n,) float, NaN where unknown
    titles: np.ndarray  # (n,)
    fingerprint: str
    seconds: float = 0.0  # to compute it (0 when it came from the cache)
    decades: list[dict] = field(default_factory=list)  # {"decade", "x", "y", "n"}, in order
    total: int = 0  # posters in the collection: more than n when the map holds a sample of them

    def __post_init__(self) -> None:
        self.total = max(self.total, len(self.ids))

    def as_json(self) -> dict:
        """Compact, for the page: integer coordinates, years (-1 unknown), ids (for posters and hovers); titles are asked for by index."""
        return {
            "n": len(self.ids),
            "total": self.total,
            "fingerprint": self.fingerprint,
            "ids": [str(i) for i in self.ids],
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


def layout(vectors: np.ndarray, seed: int = 0, report: Report = _quiet) -> np.ndarray:
    """(n, 2) t-SNE coordinates of unit vectors (cosine), openTSNE's defaults but for the gradient:
    Barnes-Hut below 5,000 posters (on 2 cores 9 s for 3,748 where FFT takes 16 s), FFT above."""
    from openTSNE import TSNE

    from ..embedding.backend import usable_cores

    n, every, iterations = len(vectors), 50, sum(TSNE_ITERATIONS)  # every 50: openTSNE computes its error for each call
    done = 0

    def progress(iteration: int, error: float, embedding: np.ndarray) -> bool:
        nonlocal done  # openTSNE counts each phase's iterations from 0: these count both
        done = min(done + every, iterations)
        report("t-SNE", done, iterations)
        return False  # go on

    report("neighbours", 0, n)
    tsne = TSNE(
        n_components=2,
        perplexity=min(30.0, max(2.0, (n - 1) / 3.5)),
        metric="cosine",
        initialization="pca",  # global structure from PCA, then refined: reproducible and faster to converge
        early_exaggeration_iter=TSNE_ITERATIONS[0],
        n_iter=TSNE_ITERATIONS[1],
        negative_gradient_method="bh" if n < 5000 else "fft",
        neighbors="exact" if n < 1000 else "annoy",  # never pynndescent: it would bring numba's seconds of compiling
        n_jobs=usable_cores(),
        random_state=seed,
        callbacks=progress,
        callbacks_every_iters=every,
        verbose=False,
    )
    return np.asarray(tsne.fit(np.asarray(vectors, np.float32)), np.float64)


def place(vectors: np.ndarray, seed: int = 0, report: Report = _quiet) -> np.ndarray:
    """(n, 2) positions in the unit square of unit vectors: t-SNE on a seeded sample of at most
    LAYOUT_SAMPLE, each other at the weighted mean position of its NEAREST most similar sample
    vectors (weights exp(cosine / SHARPNESS)), CHUNK rows at a time so memory stays bounded."""
    n = len(vectors)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, LAYOUT_SAMPLE, replace=False)) if n > LAYOUT_SAMPLE else np.arange(n)
    xy = np.zeros((n, 2))
    xy[sample] = layout(vectors[sample], seed, report)
    rest = np.setdiff1d(np.arange(n), sample)
    anchors, k = vectors[sample], min(NEAREST, len(sample))
    for start in range(0, len(rest), CHUNK):
        report("placing", start, len(rest))
        rows = rest[start : start + CHUNK]
        similar = vectors[rows] @ anchors.T
        nearest = np.argpartition(-similar, k - 1, axis=1)[:, :k]
        cosine = np.take_along_axis(similar, nearest, axis=1).astype(np.float64)
        weights = np.exp((cosine - cosine.max(axis=1, keepdims=True)) / SHARPNESS)
        xy[rows] = (weights[..., None] * xy[sample][nearest]).sum(axis=1) / weights.sum(axis=1, keepdims=True)
    return _unit_square(xy)


def fingerprint(store: PosterStore, vector_name: str = VECTOR_NAME) -> str:
    """A digest of the collection's state (store.state(): its token and count, no point read), the
    embedding and this version: a new one after any ingest, correction or deletion."""
    digest = hashlib.sha256(f"v{MAP_VERSION}:{vector_name}:{store.stored_spec(vector_name).describe()}:{store.state()}".encode())
    return digest.hexdigest()[:24]


@dataclass
class _Read:
    """What a map is computed from: the posters it holds, by id, with their unit vectors."""

    ids: np.ndarray
    vectors: np.ndarray
    years: np.ndarray
    titles: np.ndarray


def poster_map(store: PosterStore, vector_name: str = VECTOR_NAME, seed: int = 0, *, report: Report = _quiet) -> PosterMap:
    """The map of the collection as it is now: from the cache, or computed (and cached). Every read
    is a few calls of at most READ_BATCH points (or one run of a sample): a store shared with a
    server's searches answers them in between. `report(stage, done, total)` hears how far it is."""
    started = time.perf_counter()
    report("reading", 0, 0)
    key, total = fingerprint(store, vector_name), store.count()
    path = _cache_path(store, vector_name, key)
    cached = _read(path, key, store, total)
    if cached is not None:
        return cached
    read = _read_posters(store, vector_name, total, seed, report)
    if len(read.ids) < MIN_POSTERS:
        raise BadInput(f"the poster map needs at least {MIN_POSTERS} posters; collection '{store.collection}' has {len(read.ids)}")
    xy = place(read.vectors, seed, report)
    result = PosterMap(read.ids, xy, read.years, read.titles, key, time.perf_counter() - started, total=max(total, len(read.ids)))
    result.decades = decade_path(xy, read.years)
    report("saving", 0, 0)
    _write(path, result)
    return result


def _read_posters(store: PosterStore, vector_name: str, total: int, seed: int, report: Report) -> _Read:
    """The vectors, years and titles of every stored poster, or of a seeded sample of MAX_POINTS of
    them (PosterStore.sample: runs from random ids, never a list of every id), in id order."""
    from ..store.integrity import check_intact

    store.stored_spec(vector_name)  # a clear error if there is no usable collection
    check_intact(store)  # points whose vector or payload was lost would be left out without a word
    fields = ["title", "year"]
    if total > MAX_POINTS:
        report("reading", 0, MAX_POINTS)
        points = store.sample(MAX_POINTS, seed, store.having(vector_name), fields, vector_name)
    else:
        points = []
        for point in store.points(with_vectors=True, fields=fields, batch=READ_BATCH, vector_name=vector_name):
            points.append(point)
            if len(points) % READ_BATCH == 0:
                report("reading", len(points), total)
    points.sort(key=lambda p: p.id)
    vectors = np.stack([np.asarray(p.vector, np.float32) for p in points]) if points else np.zeros((0, 1), np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return _Read(
        np.array([p.id for p in points], dtype=str),
        vectors,
        np.array([np.nan if p.poster.year is None else p.poster.year for p in points], dtype=np.float64),
        np.array([p.poster.title for p in points], dtype=str),
    )


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


def _read(path: Path, key: str, store: PosterStore, stored: int) -> PosterMap | None:
    """The cached map, if it checks out: a regular file of bounded size (not a link: the cache
    may be shared), arrays of one length and the right shapes, coordinates in the unit square,
    the ids of stored points (retrieved, READ_BATCH at a time: a map holds at most MAX_POINTS).
    Anything else is computed again, never believed."""
    from ..safe_io import open_regular

    try:
        with open_regular(path, MAX_CACHE_BYTES, "cached map") as f, np.load(f, allow_pickle=False) as data:
            if str(data["fingerprint"]) != key:
                return None
            result = PosterMap(data["ids"], data["xy"], data["years"], data["titles"], key)
            total = data["total"]
    except (OSError, KeyError, ValueError, EOFError, BadInput):
        return None  # missing or damaged: computed again
    n = len(result.ids)
    shapes = (result.ids.shape, result.xy.shape, result.years.shape, result.titles.shape)
    if shapes != ((n,), (n, 2), (n,), (n,)) or not n or result.xy.dtype.kind != "f" or result.years.dtype.kind != "f":
        return None
    if total.shape != () or total.dtype.kind not in "iu" or not n <= int(total) <= stored:
        return None
    result.total = int(total)
    if not (np.isfinite(result.xy).all() and (result.xy >= 0).all() and (result.xy <= 1).all()):
        return None
    finite = result.years[~np.isnan(result.years)]
    if (np.abs(finite) > 10_000).any():
        return None
    ids = [str(i) for i in result.ids]
    if len(set(ids)) != n or not all(is_point_id(i) for i in ids):
        return None
    for start in range(0, n, READ_BATCH):
        batch = ids[start : start + READ_BATCH]
        if len(store.stored_ids(batch)) != len(batch):
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
            np.savez(
                f,
                ids=result.ids,
                xy=result.xy,
                years=result.years,
                titles=result.titles,
                fingerprint=np.array(result.fingerprint),
                total=np.array(result.total),
            )
    except OSError:
        pass  # not cached: computed again next time
