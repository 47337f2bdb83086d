"""What the web API does, over the open store: search, recommend, predict the year, era figures.

One PosterService lives as long as the server. It holds the store open (the embedded store admits
one process, so the server opens it once) and loads VGG16 (on ONNX Runtime: no TensorFlow) and
the year model on first use, so the page answers at once. Calls are serialised with a lock: the
embedded store is not meant to be used from several threads at once, and a local page has one user.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from errors import UserError
from path_inside import inside
from search.explain import Explainer, GridCache
from search.nearest import Filters, Neighbour, PosterSearch
from search.titles import find_film
from store.collection import PosterStore, StoredPoint
from store.engine import StoreDamaged
from store.schema import PREDICTED_FIELDS, STYLE_VECTOR_NAME, VECTOR_NAME, whole_number
from web.overview import Overview

if TYPE_CHECKING:
    from embedding.onnx_embedder import OnnxEmbedder

KNOWN_VECTORS = (VECTOR_NAME, STYLE_VECTOR_NAME)
MAX_EXAMPLES = 20  # liked + disliked posters per recommendation, each
MAX_EXPLAIN = 24  # similarity maps per request: one forward pass each
MAX_UPLOADS_KEPT = 16


class NotFound(UserError):
    """Something the request names does not exist (HTTP 404)."""


@dataclass(frozen=True)
class Query:
    """Where and how to search: the collection, the stored vector, k and the filters."""

    collection: str
    vector: str = VECTOR_NAME
    k: int = 12
    filters: Filters = Filters()


class PosterService:
    """The open store plus lazily loaded models; every public method is one API call."""

    def __init__(
        self, store: PosterStore, weights: str | None = None, model_dir: Path | None = None, era_sample: int = 1000, embedder=None
    ):
        """`embedder`: an OnnxEmbedder already built, for fp32 collections (tests share one); else made on first use."""
        self.store = store
        self.weights = weights
        self.model_dir = Path(model_dir) if model_dir else None
        self.era_sample = era_sample
        self._lock = threading.RLock()
        self._handles: dict[str, PosterStore] = {}
        self._embedders: dict[str, OnnxEmbedder] = {"": embedder} if embedder is not None else {}  # by the spec's quantization
        self._uploads: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = (
            OrderedDict()
        )  # recent uploads' (vector, grid), by sha256: for their similarity maps
        self._grids = GridCache()
        self.overview = Overview()
        self._year_model = None
        self._info: dict[str, dict] = {}
        self._era: dict[tuple, dict] = {}

    # --- collections --------------------------------------------------------------------

    @property
    def default_collection(self) -> str:
        return self.store.collection

    def collection_names(self) -> list[str]:
        with self._lock:
            return sorted(n for n in self.store.collections() if self._is_poster_collection(n))

    def _is_poster_collection(self, name: str) -> bool:
        try:
            self._handle(name).stored_spec()
            return True
        except UserError:
            return False

    def _handle(self, name: str) -> PosterStore:
        if name not in self._handles:
            self._handles[name] = self.store if name == self.store.collection else self.store.other_collection(name)
        return self._handles[name]

    def collection(self, name: str) -> PosterStore:
        """The named collection, or NotFound: requests may name only collections of this store
        (StoreDamaged, a 503, for one whose files are damaged)."""
        names = self.collection_names()
        if name not in names:
            if name in self.store.collections():
                self._handle(name).stored_spec()  # says what is damaged
            shown = name if len(name) <= 80 else name[:79] + "…"
            raise NotFound(f"no poster collection {shown!r} in this store (there are: {', '.join(names) or 'none'})")
        return self._handle(name)

    def damaged_collections(self) -> list[dict]:
        """Collections of the store that cannot be read, each with the one line that says why."""
        damaged = []
        with self._lock:
            for name in self.store.collections():
                try:
                    self._handle(name).stored_spec()
                except StoreDamaged as e:
                    damaged.append({"name": name, "problem": str(e)})
                except UserError:
                    continue
        return damaged

    def info(self, name: str) -> dict:
        """Count, embedding of each stored vector, genres and year range of a collection."""
        with self._lock:
            if name not in self._info:
                store = self.collection(name)
                vectors = {v: store.stored_spec(v).as_dict() for v in KNOWN_VECTORS if store.has_vector(v)}
                genres: dict[str, int] = {}
                years = []
                for point in store.points(with_vectors=False, fields=["genres", "year"]):
                    for genre in point.poster.genres:
                        genres[genre] = genres.get(genre, 0) + 1
                    if point.poster.year is not None:
                        years.append(point.poster.year)
                self._info[name] = {
                    "name": name,
                    "count": store.count(),
                    "vectors": vectors,
                    "posters": store.posters_dir() is not None,
                    "genres": sorted(genres),
                    "years": [min(years), max(years)] if years else None,
                }
            return self._info[name]

    def _searcher(self, query: Query, with_model: bool = False) -> PosterSearch:
        store = self.collection(query.collection)
        if query.vector not in KNOWN_VECTORS or not store.has_vector(query.vector):
            have = ", ".join(v for v in KNOWN_VECTORS if store.has_vector(v))
            raise UserError(f"collection {query.collection!r} has no vector {query.vector!r} (it has: {have})")
        return PosterSearch(store, self.embedder(query.collection) if with_model else None)

    # --- models, loaded on first use ----------------------------------------------------

    def embedder(self, collection: str):
        """VGG16 for uploads searched in this collection, on ONNX Runtime (about half a second, once
        per embedding: an int8 collection has a model of its own)."""
        with self._lock:
            store = self.collection(collection)
            key = store.stored_spec().quantization
            if key not in self._embedders:
                from search.nearest import image_embedder

                embedder = image_embedder(store, self.weights, style=self._needs_style(), long_lived=True)
                embedder.load()
                self._embedders[key] = embedder
            return self._embedders[key]

    def _needs_style(self) -> bool:
        """Whether uploads need the style vector too (same forward pass, about 15 % more work): for
        `vgg16_style` searches, or a year model that reads it."""
        if any(self._handle(n).has_vector(STYLE_VECTOR_NAME) for n in self.collection_names()):
            return True
        errors = self._year_model_errors()
        return bool(errors and STYLE_VECTOR_NAME in errors["vector"].split("+"))

    def year_model(self):
        with self._lock:
            if self._year_model is None:
                from regression.model_file import YearModel

                if self.model_dir is None:
                    raise NotFound("no year model: start the server with --model-dir (made by `python cli.py train-year`)")
                try:
                    self._year_model = YearModel.load(self.model_dir)
                except UserError as e:
                    raise NotFound(str(e)) from None
            return self._year_model

    # --- searches -----------------------------------------------------------------------

    def search_image(self, image: Path, query: Query) -> tuple[str, list[dict]]:
        """The neighbours of an uploaded poster, and a token that names it for its similarity maps."""
        with self._lock:
            searcher = self._searcher(query, with_model=True)
            neighbours, asked = searcher.by_image_query(image, query.k, query.filters, vector_name=query.vector)
            if asked.grid is not None:  # kept for /api/explain, from the search's own forward pass: the file is gone after the request
                self._uploads[asked.sha256] = (asked.vector, asked.grid)
                self._uploads.move_to_end(asked.sha256)
                while len(self._uploads) > MAX_UPLOADS_KEPT:
                    self._uploads.popitem(last=False)
            return asked.sha256, self._cards(query.collection, neighbours)

    def explain(self, query: Query, ids: list[str], point_id: str | None = None, token: str | None = None) -> dict:
        """Similarity maps (search/explain.py) of these neighbours, for a stored poster or an earlier upload."""
        import time

        from search.nearest import Neighbour

        if query.vector != VECTOR_NAME:
            raise UserError("similarity maps exist for the vgg16 vector only: the style vector's score does not split over cells")
        if not ids or len(ids) > MAX_EXPLAIN:
            raise UserError(f"ask for the maps of 1 to {MAX_EXPLAIN} posters, not {len(ids)}")
        if (point_id is None) == (token is None):
            raise UserError("name the query: a stored poster's id, or the token of an uploaded one")
        started = time.perf_counter()
        with self._lock:
            store = self.collection(query.collection)
            explainer = Explainer(store, self.embedder(query.collection), self._grids)
            if point_id is not None:
                vector, grid = explainer.query_from_point(self.point(query.collection, point_id))
            elif token is not None and token in self._uploads:
                vector, grid = self._uploads[token]
            else:
                raise NotFound("that uploaded poster is no longer held by the server: search with it again")
            found = {p.id: p for p in store.retrieve(ids, with_vectors=True)}
            missing = [i for i in ids if i not in found]
            if missing:
                raise NotFound(f"no film with id {missing[0][:100]} in collection {query.collection!r}")
            neighbours = [
                Neighbour(
                    rank,
                    i,
                    found[i].payload.get("title", ""),
                    found[i].payload.get("year"),
                    float(np.dot(vector, cast(np.ndarray, found[i].vector))),  # every point has this vector
                    found[i].payload.get("file", ""),
                )
                for rank, i in enumerate(ids, start=1)
            ]
            maps = [e.as_dict() for e in explainer.neighbours(vector, grid, neighbours)]
        return {"grid": 7, "maps": maps, "seconds": round(time.perf_counter() - started, 3)}

    # --- the whole collection: map and timeline -----------------------------------------

    def poster_map(self, query: Query) -> dict:
        with self._lock:
            self._searcher(query)  # checks collection and vector
            result = self.overview.poster_map(self.collection(query.collection), query.vector)
            return {
                "collection": query.collection,
                "vector": query.vector,
                "computed_seconds": round(result.seconds, 2),
                **result.as_json(),
            }

    def map_point(self, query: Query, index: int) -> dict:
        """The poster at `index` of the map (the page asks on hover: the map itself sends no titles)."""
        with self._lock:
            result = self.overview.poster_map(self.collection(query.collection), query.vector)
            if not 0 <= index < len(result.ids):
                raise NotFound(f"the map of {query.collection!r} has {len(result.ids)} posters, no number {index}")
            year = result.years[index]
            pid = str(result.ids[index])
            found = self.collection(query.collection).retrieve([pid])
            return {
                "index": index,
                "id": pid,
                "title": str(result.titles[index]),
                "year": None if np.isnan(year) else int(year),
                **predicted_fields(found[0].payload if found else {}),
                "poster_url": poster_url(query.collection, pid),
            }

    def starts(self, query: Query) -> dict:
        """The posters to start from (search/landing.py): each decade's most typical, a varied
        sample of the undated. Chosen once per collection state; the payloads are read now."""
        with self._lock:
            self._searcher(query)  # checks collection and vector
            store = self.collection(query.collection)
            groups, seconds = self.overview.starts(store, query.vector)
            payloads = {p.id: p.payload for p in store.retrieve([i for g in groups for i in g.ids])}
            shown = []
            for group in groups:
                posters = [
                    {"id": i, **poster_fields(payloads[i]), "similarity": round(s, 4), "poster_url": poster_url(query.collection, i)}
                    for i, s in zip(group.ids, group.similarity, strict=True)
                    if i in payloads  # (deleted since, over a server: the next change of state recomputes)
                ]
                shown.append({"label": group.label, "decade": group.decade, "count": group.count, "posters": posters})
            return {
                "collection": query.collection,
                "vector": query.vector,
                "count": sum(g.count for g in groups),
                "undated": sum(g.count for g in groups if g.decade is None),
                "computed_seconds": round(seconds, 3),
                "groups": shown,
            }

    def timeline(self, query: Query) -> dict:
        with self._lock:
            self._searcher(query)
            steps = self.overview.timeline(self.collection(query.collection), query.vector)
            decades = []
            for step in steps:
                row = step.as_dict()
                for part in ("typical", "atypical"):
                    row[part] = [{**p, "poster_url": poster_url(query.collection, p["id"])} for p in row[part]]
                decades.append(row)
            return {"collection": query.collection, "vector": query.vector, "decades": decades}

    def point(self, collection: str, point_id: str) -> StoredPoint:
        with self._lock:
            try:
                return find_film(self.collection(collection), point_id=point_id)
            except NotFound:
                raise
            except UserError as e:
                raise NotFound(str(e)) from None

    def search_point(self, point_id: str, query: Query) -> tuple[dict, list[dict]]:
        """Neighbours of a stored poster, from its stored vector: no model."""
        with self._lock:
            point = self.point(query.collection, point_id)
            return self._describe(query.collection, point), self._neighbours_of(point, query)

    def search_title(self, title: str, year: int | None, query: Query) -> tuple[dict, list[dict]]:
        with self._lock:
            try:
                point = find_film(self.collection(query.collection), title=title, year=year)
            except NotFound:
                raise
            except UserError as e:
                if str(e).startswith("no film"):
                    raise NotFound(str(e)) from None
                raise
            return self._describe(query.collection, point), self._neighbours_of(point, query)

    def _neighbours_of(self, point: StoredPoint, query: Query) -> list[dict]:
        neighbours = self._searcher(query).by_point(point, query.k, query.filters, vector_name=query.vector)
        return self._cards(query.collection, neighbours)

    def recommend(self, positive: list[str], negative: list[str], query: Query) -> list[dict]:
        """Posters like the liked examples and unlike the disliked ones (Qdrant's recommend)."""
        if len(positive) > MAX_EXAMPLES or len(negative) > MAX_EXAMPLES:
            raise UserError(f"at most {MAX_EXAMPLES} liked and {MAX_EXAMPLES} disliked posters")
        if set(positive) & set(negative):
            raise UserError("a poster cannot be both liked and disliked")
        with self._lock:
            for point_id in [*positive, *negative]:
                self.point(query.collection, point_id)  # NotFound for ids outside the collection
            neighbours = self._searcher(query).recommend(positive, negative, query.k, query.filters, vector_name=query.vector)
            return self._cards(query.collection, neighbours)

    def predict_year(self, image: Path) -> dict:
        from regression.predict import model_embedder, predict_year

        with self._lock:
            model = self.year_model()
            key = f"year model {model.file.spec.quantization}"
            if key not in self._embedders:  # the uploads' fp32 embedder serves when it makes what the model reads
                shared = self._embedders.get("")
                usable = shared is not None and not model.file.spec.quantization and (shared.style_spec is not None or not model.uses_style)
                self._embedders[key] = shared if usable and shared is not None else model_embedder(model, self.weights, long_lived=True)
            prediction = predict_year(image, model, self._embedders[key])
            return {**prediction.as_dict(), "vector": model.file.vector_label, "trained_on": "+".join(model.file.collections)}

    # --- era figures --------------------------------------------------------------------

    def era(self, query: Query, sample: int | None = None) -> dict:
        """Neighbour year difference vs random pairs (computed once per setting), and the year
        model's held-out error by decade when there is a model."""
        from search.era import era_coherence

        sample = sample or self.era_sample
        key = (query.collection, query.vector, query.k, sample)
        with self._lock:
            self._searcher(query)  # checks collection and vector
            if key not in self._era:
                report = era_coherence(
                    self.collection(query.collection), k=query.k, sample=sample, vector_name=query.vector, progress=False
                )
                self._era[key] = report.as_dict()
            return {"coherence": self._era[key], "year_model": self._year_model_errors()}

    def _year_model_errors(self) -> dict | None:
        """The saved model's test figures (model.json only), or None when there is no usable model:
        a broken model breaks the year prediction (which says why), not the era figures."""
        from regression.model_file import ModelFile

        if self.model_dir is None:
            return None
        try:
            file = ModelFile.read(self.model_dir)
        except UserError:
            return None
        return {
            "vector": file.vector_label,
            "collection": "+".join(file.collections),
            "n_test": file.split.get("n_test"),
            "test": file.test,
        }

    # --- posters ------------------------------------------------------------------------

    def poster_file(self, collection: str, point_id: str) -> Path:
        """The poster file of a stored point, from the folder recorded at ingest, never outside it."""
        with self._lock:
            store = self.collection(collection)
            point = self.point(collection, point_id)
            folder = store.posters_dir()
        if folder is None:
            raise NotFound(f"collection {collection!r} records no poster folder")
        path = inside(folder, point.poster.file)
        if path is None or not path.is_file():
            raise NotFound(f"the poster file of {point_id} is not in the recorded poster folder")
        return path

    # --- results as the page shows them -------------------------------------------------

    def _cards(self, collection: str, neighbours: Iterable[Neighbour]) -> list[dict]:
        """Result items: the neighbour as search found it, and its predicted year from its payload
        (one retrieve for all of them: a few milliseconds)."""
        neighbours = list(neighbours)
        payloads = {p.id: p.payload for p in self._handle(collection).retrieve([n.id for n in neighbours])}
        return [{**n.as_dict(), **predicted_fields(payloads.get(n.id, {})), "poster_url": poster_url(collection, n.id)} for n in neighbours]

    def _describe(self, collection: str, point: StoredPoint) -> dict:
        return {
            "id": point.id,
            **poster_fields(point.payload),
            "genres": point.payload.get("genres", []),
            "file": point.payload.get("file", ""),
            "poster_url": poster_url(collection, point.id),
        }


def predicted_fields(payload: dict) -> dict:
    """A poster's predicted year as the API sends it, beside (never in) its catalog `year`: the
    payload's predicted_year, predicted_low, predicted_high (its 80 % range) and predicted_by (the
    year model that made it), each None when absent or malformed (payloads are public: anyone may
    write them), all None without a whole-number predicted_year."""
    year = whole_number(payload.get("predicted_year"))
    if year is None:
        return dict.fromkeys(PREDICTED_FIELDS)
    by = payload.get("predicted_by")
    return {
        "predicted_year": year,
        "predicted_low": whole_number(payload.get("predicted_low")),
        "predicted_high": whole_number(payload.get("predicted_high")),
        "predicted_by": by[:200] if isinstance(by, str) else None,
    }


def poster_fields(payload: dict) -> dict:
    """What the page shows of a stored poster: its title, its catalog year and its predicted year.
    The one place the web side reads these payload fields."""
    return {"title": str(payload.get("title", "")), "year": whole_number(payload.get("year")), **predicted_fields(payload)}


def poster_url(collection: str, point_id: str) -> str:
    from urllib.parse import quote

    return f"/api/posters/{quote(collection, safe='')}/{quote(point_id, safe='')}"
