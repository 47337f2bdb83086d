"""Vectors and years out of one or several collections, and a split by poster content.

The split is a function of each poster's content hash (the sha256 of its file, stored at ingest),
not of its row number: identical posters always land on the same side (a copy of a test poster is
never trained on), and adding posters to a collection never moves an old one between train and test.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .. import defaults
from ..embedding.spec import EmbeddingSpec
from ..errors import BadInput, NotFound, command
from ..store.collection import PosterStore
from ..store.connection import StoreLocation
from ..store.embeddings import load_embeddings
from ..store.engine import PointFilter
from ..store.schema import STYLE_VECTOR_NAME, VECTOR_NAME
from .config import DEFAULT_VECTOR

BOTH_VECTORS = (VECTOR_NAME, STYLE_VECTOR_NAME)
MIN_DATED = 10


@dataclass
class YearData:
    ids: np.ndarray  # (n,) point ids, sorted within each collection
    vectors: np.ndarray  # (n, d): the named vectors side by side, each unit length
    years: np.ndarray  # (n,) float
    titles: np.ndarray
    undated: int  # points left out for having no year
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))  # content key: sha256, else the point id
    collections: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))  # which collection each row is from
    vector_names: tuple[str, ...] = (VECTOR_NAME,)
    specs: dict[str, EmbeddingSpec] = field(default_factory=dict)  # vector name -> the embedding it was made with
    calibration: dict | None = None  # an int8 embedding's calibration posters (embedding/quantize.py)
    store: str = ""  # where the data came from, in words
    location: StoreLocation | None = None  # the store itself, for queries after reading (the k-NN baseline); None for bare arrays

    def __len__(self) -> int:
        return len(self.ids)

    def vector_part(self, name: str) -> np.ndarray:
        """The columns of one named vector within `vectors` (they sit side by side in vector_names order)."""
        dims = [self.specs[n].dim if n in self.specs else self.vectors.shape[1] for n in self.vector_names]
        start = sum(dims[: self.vector_names.index(name)])
        return self.vectors[:, start : start + dims[self.vector_names.index(name)]]


def parse_vector_names(vector: str) -> tuple[str, ...]:
    """'vgg16', 'vgg16_style' or 'vgg16+vgg16_style' (both, side by side) -> names."""
    names = tuple(v.strip() for v in vector.split("+") if v.strip())
    unknown = [v for v in names if v not in BOTH_VECTORS]
    if not names or unknown or len(set(names)) != len(names):
        raise BadInput(f"--vector must be {VECTOR_NAME}, {STYLE_VECTOR_NAME} or {VECTOR_NAME}+{STYLE_VECTOR_NAME}, not '{vector}'")
    return names


def vector_names_for(store: PosterStore, collections: Sequence[str], choice: str) -> tuple[tuple[str, ...], str | None]:
    """The vectors a year model reads for --vector `choice`, and a note when "auto" had to leave one out.

    "auto" (the default) reads both vectors where every named collection has the style vector on
    every poster, else `vgg16` alone: a store made without `ingest --style` still trains a model."""
    if choice != "auto":
        return parse_vector_names(choice), None
    for name in collections:
        collection = store.other_collection(name)
        collection.stored_spec()  # a clear error for a missing collection
        if not collection.has_vector(STYLE_VECTOR_NAME) or collection.ids_without(STYLE_VECTOR_NAME):
            return (VECTOR_NAME,), (
                f"Note: collection '{name}' has no {STYLE_VECTOR_NAME} vector on every poster, so the year model reads "
                f"{VECTOR_NAME} alone ({command('ingest --style')} adds it; with both vectors it errs about a year less)"
            )
    return BOTH_VECTORS, None


def load_year_data(store: PosterStore, vector_name: str | Sequence[str] = VECTOR_NAME, at_most: int = defaults.YEAR_POSTERS) -> YearData:
    """Every dated point's vector(s), year and content key from one open collection (undated points
    are counted); past `at_most` dated posters, a seeded sample of that many (PosterStore.sample), so
    training holds at most that many vectors whatever the collection's size."""
    names = (vector_name,) if isinstance(vector_name, str) else tuple(vector_name)
    specs = {}
    for name in names:
        if name != VECTOR_NAME and not store.has_vector(name):
            raise NotFound(f"collection '{store.collection}' has no vector '{name}': run {command('ingest --style ...')} first")
        specs[name] = store.stored_spec(name)
        lacking = len(store.ids_without(name)) if name != VECTOR_NAME else 0
        if lacking:
            raise BadInput(
                f"{lacking} stored posters of '{store.collection}' lack the vector '{name}': run {command('ingest --style ...')} to add it"
            )
    dated_filter = PointFilter(present=("year",), has_vector=VECTOR_NAME)
    dated_count = store.count(dated_filter)
    if dated_count > at_most:
        ids, vectors, years, titles, sha256 = _sampled(store, names, dated_filter, at_most)
        undated = store.count() - dated_count
    else:
        parts, base = [], None
        for name in names:
            loaded = load_embeddings(store, name)
            if base is not None and not np.array_equal(loaded.ids, base.ids):
                raise BadInput(f"the posters of '{store.collection}' changed while they were read: run the command again")
            base = base if base is not None else loaded
            parts.append(loaded.vectors)
        assert base is not None  # names is never empty
        dated = ~np.isnan(base.years)
        ids, years, titles, sha256 = base.ids[dated], base.years[dated], base.titles[dated], base.sha256[dated]
        vectors = np.concatenate(parts, axis=1)[dated] if len(parts) > 1 else parts[0][dated]
        undated = int((~dated).sum())
    if len(ids) < MIN_DATED:
        raise BadInput(f"collection '{store.collection}' has {len(ids)} dated posters: too few to train and test a year model")
    return YearData(
        ids=ids,
        vectors=vectors,
        years=years,
        titles=titles,
        undated=undated,
        keys=np.where(sha256 != "", sha256, ids),
        collections=np.full(len(ids), store.collection, dtype=object).astype(str),
        vector_names=names,
        specs=specs,
        calibration=store.collection_metadata().calibration,
        store=store.location.describe(),
        location=store.location,
    )


def _sampled(store: PosterStore, names: tuple[str, ...], dated: PointFilter, n: int) -> tuple[np.ndarray, ...]:
    """A seeded sample of n dated posters, sorted by id: ids, vectors (side by side), years, titles, sha256."""
    drawn = sorted(store.sample(n, 0, dated, fields=["title", "year", "sha256"]), key=lambda p: p.id)
    kept, rows = [], []
    for start in range(0, len(drawn), 1024):
        chunk = drawn[start : start + 1024]
        found = store.vectors_of([p.id for p in chunk], names)
        for p in chunk:
            if all(name in found.get(p.id, {}) for name in names):  # one deleted meanwhile (on a server) is left out
                kept.append(p)
                rows.append(np.concatenate([found[p.id][name] for name in names]))
    return (
        np.array([p.id for p in kept], dtype=str),
        np.stack(rows).astype(np.float32),
        np.array([p.poster.year for p in kept], dtype=np.float64),
        np.array([p.poster.title for p in kept], dtype=str),
        np.array([p.poster.sha256 for p in kept], dtype=str),
    )


def load_collections(store: PosterStore, collections: Sequence[str], vector_name: str | Sequence[str] = DEFAULT_VECTOR) -> YearData:
    """The union of several collections of the open store, read one after the other.

    `vector_name`: a --vector choice ("auto", the default: both vectors where every collection has
    them, else vgg16, with a note on stderr; "vgg16+vgg16_style", ...) or the names themselves.
    Training never holds the store open: read, close it, then train (Posters.train_year). All
    collections must share the embedding (the same weights), else a model would mix incomparable vectors.
    """
    if not collections:
        raise BadInput("name at least one --collection")
    if len(set(collections)) != len(collections):
        raise BadInput(f"a collection is named twice: {', '.join(collections)}")
    if isinstance(vector_name, str):
        vector_name, note = vector_names_for(store, collections, vector_name)
        if note:
            print(note, file=sys.stderr)
    loaded = [load_year_data(store.other_collection(name), vector_name) for name in collections]
    first = loaded[0]
    for other, name in zip(loaded[1:], collections[1:]):
        if other.specs != first.specs:  # EmbeddingSpec equality: the runtime and float precision do not count
            differing = next(v for v in first.vector_names if other.specs[v] != first.specs[v])
            raise BadInput(
                f"collection '{name}' was embedded differently from '{collections[0]}' ({differing}: "
                f"{other.specs[differing].describe()} against {first.specs[differing].describe()}): a model cannot mix them"
            )
    if len(loaded) == 1:
        return first
    return YearData(
        ids=np.concatenate([d.ids for d in loaded]),
        vectors=np.concatenate([d.vectors for d in loaded]),
        years=np.concatenate([d.years for d in loaded]),
        titles=np.concatenate([d.titles for d in loaded]),
        undated=sum(d.undated for d in loaded),
        keys=np.concatenate([d.keys for d in loaded]),
        collections=np.concatenate([d.collections for d in loaded]),
        vector_names=first.vector_names,
        specs=first.specs,
        calibration=first.calibration,
        store=first.store,
        location=first.location,
    )


def load_augmented(store: PosterStore, collections: Sequence[str], data: YearData) -> YearData:
    """The augmented views (collections made by `ingest --augment`) of posters in `data`, read like `data`.

    They must be the same embedding apart from the augmentation, and views of the same posters
    (matched by content key): training uses only the views of its fitting posters, never those of
    calibration or test posters.
    """
    if set(collections) & set(data.collections.tolist()):
        raise BadInput("a collection is named both with --collection and with --augmented")
    for collection in collections:  # checked before anything is read
        views_store = store.other_collection(collection)
        for name in data.vector_names:
            spec = views_store.stored_spec(name)  # a clear error for a missing collection or vector
            if spec.decode == data.specs[name].decode or replace(spec, decode=data.specs[name].decode) != data.specs[name]:
                raise BadInput(
                    f"--augmented {collection} must be made by `ingest --augment` with the same --weights (and --style) as the training collections"
                )
    views = load_collections(store, collections, data.vector_names)
    if not np.isin(views.keys, data.keys).any():
        raise BadInput(f"--augmented {', '.join(collections)} holds no view of a poster in the training collections")
    return views


def fitting_rows(data: YearData, fit: np.ndarray, views: YearData | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """The vectors and years to fit on: the `fit` rows of `data`, then the augmented `views` of those
    posters (matched by content key: never a view of a calibration or test poster) with the same
    years; and how many views were added."""
    x, y = data.vectors[fit], data.years[fit]
    if views is None:
        return x, y, 0
    rows = np.flatnonzero(np.isin(views.keys, data.keys[fit]))
    return np.concatenate([x, views.vectors[rows]]), np.concatenate([y, views.years[rows]]), len(rows)


def content_fraction(keys: Sequence[str] | np.ndarray, salt: str) -> np.ndarray:
    """A number in [0, 1) per key, uniform and fixed for (salt, key): the basis of every split here."""
    return np.array([int(hashlib.sha256(f"{salt}:{k}".encode()).hexdigest()[:15], 16) / 16**15 for k in keys])


def content_split(keys: Sequence[str] | np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and test row indices, decided per content key (sha256): copies share a side; stable as posters are added."""
    if not 0 < test_size < 1:
        raise BadInput(f"--test-size must be between 0 and 1, not {test_size}")
    is_test = content_fraction(keys, f"test-{seed}") < test_size
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def calibration_split(keys: Sequence[str], share: float, seed: int, at_least: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Within the training part: rows to fit on and rows to calibrate the ranges on, again by content.

    A tiny training part still gets `at_least` calibration posters (those whose hash is lowest)."""
    fraction = content_fraction(keys, f"calibration-{seed}")
    is_calibration = fraction < share
    if is_calibration.sum() < at_least and len(keys) > 2 * at_least:
        is_calibration = fraction <= np.sort(fraction)[at_least - 1]
    return np.flatnonzero(~is_calibration), np.flatnonzero(is_calibration)
