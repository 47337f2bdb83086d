"""`Posters`, the one front door: every feature of poster search on one object, which the CLI and
the web page call and nothing else.

    from poster_search import Posters

    with Posters("qdrant_data") as posters:
        result = posters.search("my_poster.jpg", k=5)
        print(result.to_frame())

A Posters is a store (an embedded folder, or a Qdrant server by URL) and one collection in it
(`using()` gives the same store's other collections). It opens the store on first use and keeps
it open until `close()`: the embedded store admits one process at a time. VGG16 (on OpenVINO or
ONNX Runtime, never TensorFlow) and the year model load on first use and stay loaded, so many
calls (a server, a notebook) pay for them once. Results are typed, carry the stored posters'
decoded payloads, and turn into DataFrames (`to_frame()`); errors are the kinds in
poster_search.errors.

The work itself lives in the stage packages (ingest/, search/, regression/, store/): this module
wires them to one store, its caches and its models.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import defaults
from .errors import BadInput, NotFound, PosterSearchError, command
from .ingest.catalog import Columns
from .results import (
    Browse,
    CollectionInfo,
    Duplicates,
    Evaluation,
    Examples,
    Facets,
    SearchResult,
    Sort,
    Starts,
    Suggestions,
    Timeline,
    YearPredictions,
    YearStatus,
)
from .search.neighbours import Filters, ImageQuery, Neighbour
from .store.collection import Sharding, StoredPoint
from .store.schema import DEFAULT_COLLECTION, STYLE_VECTOR_NAME, VECTOR_NAME, VECTOR_NAMES, check_collection_name

__all__ = ["Columns", "Filters", "ImageQuery", "Neighbour", "Posters", "Sharding", "StoredPoint", "nearest", "store_location"]

if TYPE_CHECKING:
    from .embedding.images import ImageSource
    from .embedding.interface import Embedder
    from .embedding.spec import EmbeddingSpec
    from .ingest.pipeline import IngestReport
    from .regression.compare import Comparison
    from .regression.config import HeadConfig
    from .regression.dating import DatedPoster, DatingReport
    from .regression.model_file import YearModel
    from .regression.train import TrainReport
    from .search.era import EraReport
    from .search.explain import Explanation
    from .search.landing import StartGroup
    from .search.poster_map import PosterMap
    from .store.collection import PosterStore
    from .store.connection import StoreLocation
    from .store.embeddings import Embeddings
    from .store.exchange import ExportReport, ImportReport
    from .store.migrate import MigrateReport


# --- the front object ---------------------------------------------------------------------------


def store_location(store: str | os.PathLike | StoreLocation | None = None, **options: Any) -> StoreLocation:
    """A store named as users name it: None (QDRANT_PATH / QDRANT_URL, else ./qdrant_data), a folder,
    an http(s) URL of a server, or a StoreLocation. `options`: api_key, timeout, grpc (for a URL)."""
    from .store.connection import StoreLocation, location_from_options

    if isinstance(store, StoreLocation):
        return store
    text = None if store is None else os.fspath(store)
    is_url = text is not None and text.startswith(("http://", "https://"))
    return location_from_options(
        None if is_url else text, text if is_url else None, options.get("api_key"), options.get("timeout"), options.get("grpc")
    )


class _Shared:
    """What every collection view of one Posters shares: the open store, the models, the caches.

    No lock is held around a whole request. The store serialises its own calls into the engine
    (store/engine.py TurnLock: in the order asked, long work giving way), so a search answers
    between the batches of a map's or an export's reading. `lock` guards these attributes and is
    held only to look one up or to build a model once; `writing` lets one task at a time write
    (an ingest, an import, dating); `embedding` lets one image at a time through the VGG16 model
    (an OpenVINO model keeps one inference request); `computing` makes an overview once however
    many requests ask for it at the same moment, while every other request goes on."""

    def __init__(self, location: StoreLocation, weights: str | None, embedder: Embedder | None) -> None:
        self.location = location
        self.weights = weights
        self.lock = threading.RLock()
        self.writing = threading.RLock()
        self.embedding = threading.RLock()
        self.computing: dict[tuple[str, str, str], threading.Lock] = {}
        self.root: PosterStore | None = None
        self.views: dict[str, PosterStore] = {}
        self.embedders: dict[tuple[EmbeddingSpec, bool], Any] = {}  # (embedding, with style) -> embedder, loaded once
        self.given_embedder = embedder  # a caller's own (tests, a notebook's): used for float collections it matches
        self.year_models: dict[Path, YearModel] = {}
        self.grids: Any = None  # search.explain.GridCache, made on first use
        self.overviews: dict[tuple[str, str, str], tuple[str, Any, float]] = {}  # (what, collection, vector) -> (state, value, seconds)

    def store(self, collection: str, must_exist: bool) -> PosterStore:
        from .store.collection import PosterStore

        with self.lock:
            if self.root is None:
                try:
                    self.root = PosterStore(self.location, collection, must_exist=must_exist)
                except OSError as e:
                    raise BadInput(f"cannot open {self.location.describe()}: {e.strerror or e}") from None
                self.views[collection] = self.root
            if collection not in self.views:
                self.views[collection] = self.root.other_collection(collection)
            return self.views[collection]

    def close(self) -> None:
        with self.writing, self.lock:
            if self.root is not None:
                self.root.close()
            self.root, self.views = None, {}


class Posters:
    """A poster collection in a store: search it, explore it, date its posters, add to it.

    `store`: a folder (the embedded store; default $QDRANT_PATH, else ./qdrant_data), or a Qdrant
    server's URL (default $QDRANT_URL); `api_key`, `timeout` and `grpc` for a server.
    `weights`: VGG16's weights ("imagenet", a notop .h5 file, "random"; default $VGG16_WEIGHTS,
    else imagenet). `model_dir`: the year model (default ./year_model once `train_year` has written
    it, else the model shipped with the project, regression/shipped/). `embedder`: an embedder
    of your own (embedding/interface.py): ingest embeds with it, and image queries of the
    collections it made use it."""

    def __init__(
        self,
        store: str | os.PathLike | StoreLocation | None = None,
        collection: str = DEFAULT_COLLECTION,
        *,
        weights: str | None = None,
        model_dir: str | os.PathLike | None = None,
        embedder: Embedder | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        grpc: bool | None = None,
    ) -> None:
        check_collection_name(collection)
        location = store_location(store, api_key=api_key, timeout=timeout, grpc=grpc)
        self._shared = _Shared(location, weights, embedder)
        self.collection = collection
        self.model_dir = Path(model_dir) if model_dir else None

    def using(self, collection: str | None = None, *, model_dir: str | os.PathLike | None = None) -> Posters:
        """The same store's collection `collection` (or this one), with the year model in `model_dir`
        (or this one's), sharing this object's open store, models and caches."""
        collection = collection or self.collection
        check_collection_name(collection)
        if collection == self.collection and (model_dir is None or Path(model_dir) == self.model_dir):
            return self
        view = Posters.__new__(Posters)
        view._shared, view.collection = self._shared, collection
        view.model_dir = Path(model_dir) if model_dir else self.model_dir
        return view

    @property
    def location(self) -> StoreLocation:
        return self._shared.location

    def __repr__(self) -> str:
        return f"Posters({self.location.describe()!r}, collection={self.collection!r})"

    def __enter__(self) -> Posters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store (the embedded store is then free for another process); reopened on next use."""
        self._shared.close()

    @property
    def store(self) -> PosterStore:
        """The collection's PosterStore, the layer under this one (store/collection.py), opened if it is not."""
        return self._store()

    def _store(self, must_exist: bool = True) -> PosterStore:
        return self._shared.store(self.collection, must_exist)

    def _poster_store(self) -> PosterStore:
        """This collection, which must be a poster collection (NotFound or Damaged otherwise)."""
        store = self._store()
        store.stored_spec()
        return store

    # --- the store and its collections -------------------------------------------------------

    def collections(self) -> list[str]:
        """The store's poster collections (other collections, and damaged ones, left out: damaged_collections())."""
        return sorted(name for name, problem in self._collection_states().items() if problem is None)

    def damaged_collections(self) -> dict[str, str]:
        """The store's collections that cannot be read, each with the one line that says why."""
        return {name: problem for name, problem in self._collection_states().items() if problem}

    def _collection_states(self) -> dict[str, str | None]:
        """Each collection of the store that is a poster collection: None when it reads, else the
        line that says how it is damaged (collections poster search did not make are left out)."""
        from .errors import Damaged

        states: dict[str, str | None] = {}
        for name in self._store().collections():
            try:
                self.using(name)._store().stored_spec()
                states[name] = None
            except Damaged as e:
                states[name] = str(e)
            except PosterSearchError:
                continue
        return states

    def exists(self) -> bool:
        """Whether this collection is in the store (and is a poster collection, or a damaged one: stored_spec says which)."""
        return self._store().exists()

    def count(self) -> int:
        return self._store().count()

    def info(self) -> CollectionInfo:
        """Count, embedding of each vector, genres and catalog years of this collection (kept, as the
        overviews are): from Qdrant's facet counts, never a read of every payload."""

        def compute(store: PosterStore) -> CollectionInfo:
            years = [int(year) for year, _ in store.facet("year")]
            return CollectionInfo(
                self.collection,
                store.count(),
                {v: store.stored_spec(v).as_dict() for v in VECTOR_NAMES if store.has_vector(v)},
                store.posters_dir() is not None,
                sorted(str(genre) for genre, _ in store.facet("genres")),
                (min(years), max(years)) if years else None,
            )

        self._poster_store()
        return self._overview("info", VECTOR_NAME, compute)

    def facets(self) -> Facets:
        """How many posters of each decade, genre and year status (catalog / predicted / none): the
        browse filters' menus, counted by Qdrant on its indexes."""
        from collections import Counter

        from .store.engine import PointFilter

        store = self._poster_store()
        decades: Counter[int] = Counter()
        for year, n in store.facet("year"):
            decades[int(year) // 10 * 10] += n
        status = {
            "catalog": store.count(PointFilter(present=("year",))),
            "predicted": store.count(PointFilter(missing=("year",), present=("predicted_year",))),
            "none": store.count(PointFilter(missing=("year", "predicted_year"))),
        }
        genres = [(str(g), n) for g, n in store.facet("genres")]
        return Facets(self.collection, store.count(), sorted(decades.items()), genres, status)

    def add_sort_keys(self) -> int:
        """Give posters stored before schema 4 the keys browsing orders by, as the next ingest would;
        how many were given them (0 on a store that cannot be written: browsing then shows them last)."""
        with self._shared.writing:
            store = self._poster_store()
            try:
                store.check_writable()
            except BadInput:
                return 0
            return store.add_sort_keys()

    def browse(
        self,
        sort: Sort = "title",
        *,
        descending: bool = False,
        decade: int | None = None,
        genre: str | None = None,
        status: YearStatus | None = None,
        limit: int = 48,
        after: str | None = None,
    ) -> Browse:
        """One page of every poster of the collection, sorted by `title`, `year` (the undated last)
        or `added`, filtered by decade, genre and year status; `after`: the `next` of the page before."""
        from .search.browse import BrowseFilters, browse

        filters = BrowseFilters(decade, genre or None, status)
        page = browse(self._poster_store(), sort, descending, filters, limit, after)
        return Browse(self.collection, sort, descending, filters, page.posters, page.total, page.next)

    def suggest(self, text: str, limit: int = 8) -> Suggestions:
        """Stored films whose titles fit a few typed letters (the start of the title, or the start
        of each of its words; case and accents ignored), best first."""
        from .search.suggest import suggestions

        if not 1 <= limit <= 50:
            raise BadInput(f"limit must be 1 to 50, not {limit}")
        return Suggestions(self.collection, text, suggestions(self._poster_store(), text, limit))

    def posters_dir(self) -> Path | None:
        """The folder the collection's poster files were ingested from, as recorded."""
        return self._poster_store().posters_dir()

    def check_vector(self, vector: str) -> None:
        """NotFound unless this collection holds the named vector."""
        store = self._poster_store()
        if vector not in VECTOR_NAMES or not store.has_vector(vector):
            have = ", ".join(v for v in VECTOR_NAMES if store.has_vector(v))
            hint = f" ({command('ingest --style')} adds it)" if vector == STYLE_VECTOR_NAME else ""
            raise NotFound(f"collection '{self.collection}' has no vector '{vector}'{hint} (it has: {have})")

    # --- adding posters ------------------------------------------------------------------------

    def ingest(
        self,
        posters: str | os.PathLike,
        catalog: str | os.PathLike | None = None,
        *,
        columns: Columns | None = None,
        encoding: str | None = None,
        limit: int | None = None,
        batch_size: int | None = None,
        backend: str | None = None,
        precision: str | None = "auto",
        workers: int | None = None,
        recreate: bool = False,
        prune: bool = False,
        style: bool = False,
        augment: bool = False,
        sharding: Sharding | None = None,
        rehash: bool = False,
        progress: bool = True,
    ) -> IngestReport:
        """Embed every poster of a catalog (a CSV of titles, years and poster files), or of a folder
        without one (titles and years from .nfo files and `Title (Year)` names), that the
        collection does not hold yet, and store it. Resumable: run it again after an interruption.
        A stored poster whose file kept its size and modification time is not read again unless `rehash`."""
        from .embedding.embedders import make_embedder
        from .embedding.spec import resolve_weights
        from .ingest.catalog import read_catalog
        from .ingest.pipeline import ingest

        columns = columns or Columns()
        if catalog is None and (columns != Columns() or encoding):
            raise BadInput("catalog columns and an encoding describe a catalog: give one")
        embedder = self._shared.given_embedder
        if embedder is None:  # cheap: the backend is chosen without importing it, and loads only if there is work
            embedder = make_embedder(
                resolve_weights(self._shared.weights), style=style, backend=backend, precision=precision, augmented=augment
            )
        elif style and embedder.style_spec is None:
            raise BadInput("style=True needs an embedder that makes the style vector too")
        if catalog is None:
            from .ingest.folder import read_folder

            films = read_folder(Path(posters))
        else:
            films = read_catalog(Path(catalog), Path(posters), columns, encoding)
        with self._shared.writing:
            store = self._store(must_exist=False)
            store.check_writable()  # a store on read-only media: one line before any work
            report = ingest(
                films,
                Path(posters),
                store,
                embedder,
                batch_size=batch_size,
                limit=limit,
                recreate=recreate,
                sharding=sharding or Sharding(),
                prune=prune,
                workers=workers,
                progress=progress,
                rehash=rehash,
            )
            return report

    # --- finding films and searching -----------------------------------------------------------

    def film(self, id: str | None = None, *, title: str | None = None, year: int | None = None) -> StoredPoint:
        """The one stored film with this id, or this title (and year): NotFound (with close
        matches) when there is none, BadInput when several share the title."""
        from .search.titles import find_film

        return find_film(self._poster_store(), title=title, point_id=id, year=year)

    def search(
        self,
        image: ImageSource | None = None,
        *,
        title: str | None = None,
        id: str | None = None,
        year: int | None = None,
        k: int = defaults.K,
        year_min: int | None = None,
        year_max: int | None = None,
        genre: str | None = None,
        vector: str = VECTOR_NAME,
        filters: Filters | None = None,
    ) -> SearchResult:
        """The k stored posters most similar to an image (a path, a PIL image or an array), or to a
        stored film (by `title` and `year`, or by `id`): the query itself and its copies excluded.
        `year_min`, `year_max` and `genre` narrow the results (catalog years only)."""
        from .search.neighbours import PosterSearch

        if (image is None) == (title is None and id is None):
            raise BadInput("give either an image or a title or id")
        if title is not None and id is not None:
            raise BadInput("give a title or an id, not both")
        filters = filters or Filters(year_min, year_max, genre)
        filters.check()
        store = self._poster_store()
        self.check_vector(vector)
        if image is not None:
            embedder = self._embedder(style=vector != VECTOR_NAME)
            with self._shared.embedding:
                neighbours, query = PosterSearch(store, embedder).by_image_query(image, k, filters, vector_name=vector)
            searched: StoredPoint | ImageQuery = query
        else:
            searched = self.film(id, title=title, year=year)
            neighbours = PosterSearch(store).by_point(searched, k, filters, vector_name=vector)
        return SearchResult(self.collection, vector, searched, neighbours, filters, store.posters_dir())

    def recommend(
        self,
        positive: Sequence[str],
        negative: Sequence[str] = (),
        *,
        k: int = defaults.K,
        filters: Filters = Filters(),
        vector: str = VECTOR_NAME,
        query: ImageQuery | None = None,
    ) -> SearchResult:
        """Posters like the liked examples (stored ids) and unlike the disliked ones (Qdrant's recommend);
        `query`, an image searched with before (`search(image).query`), is one more liked example:
        refining a search by an image keeps the image."""
        from .search.neighbours import PosterSearch

        if len(positive) > defaults.MAX_EXAMPLES or len(negative) > defaults.MAX_EXAMPLES:
            raise BadInput(f"at most {defaults.MAX_EXAMPLES} liked and {defaults.MAX_EXAMPLES} disliked posters")
        if set(positive) & set(negative):
            raise BadInput("a poster cannot be both liked and disliked")
        store = self._poster_store()
        self.check_vector(vector)
        for point_id in [*positive, *negative]:
            self.film(point_id)  # NotFound (or Damaged) for an id outside the collection
        neighbours = PosterSearch(store).recommend(list(positive), negative, k, filters, vector_name=vector, query=query)
        return SearchResult(
            self.collection, vector, Examples(tuple(positive), tuple(negative), query), neighbours, filters, store.posters_dir()
        )

    def explain(
        self, result: SearchResult | None = None, *, query: StoredPoint | ImageQuery | None = None, ids: Sequence[str] = ()
    ) -> list[Explanation]:
        """Similarity maps: where each neighbour's score comes from, cell by cell of VGG16's 7x7
        grid (vgg16 vector only). For a search's result, or for a query and some stored ids."""
        from .search.explain import Explainer, GridCache

        if result is not None:
            if result.vector != VECTOR_NAME:
                raise BadInput("similarity maps exist for the vgg16 vector only: the style vector's score does not split over cells")
            if isinstance(result.query, Examples):
                raise BadInput("similarity maps need one query poster, not liked and disliked examples")
            query, neighbours = result.query, result.neighbours
        elif query is None or not ids:
            raise BadInput("name the query (a stored poster or an image searched with) and the neighbours to explain")
        if result is None and len(ids) > defaults.MAX_EXPLAIN:
            raise BadInput(f"ask for the maps of 1 to {defaults.MAX_EXPLAIN} posters, not {len(ids)}")
        store = self._poster_store()
        with self._shared.lock:
            if self._shared.grids is None:
                self._shared.grids = GridCache()
        explainer = Explainer(store, self._embedder(), self._shared.grids)
        with self._shared.embedding:  # the query's and the neighbours' grids come from the model
            if result is None:
                found = {p.id: p for p in store.retrieve(ids, with_vectors=True)}
                missing = [i for i in ids if i not in found]
                if missing:
                    raise NotFound(f"no film with id {missing[0][:100]} in collection '{self.collection}'")
                assert query is not None
                query_vector = query.vector if isinstance(query, ImageQuery) else _stored_vector(query)
                neighbours = [
                    Neighbour(rank, i, float(np.dot(query_vector, _stored_vector(found[i]))), found[i].poster)
                    for rank, i in enumerate(ids, start=1)
                ]
            if isinstance(query, StoredPoint):
                vector, grid = explainer.query_from_point(query)
            else:
                assert isinstance(query, ImageQuery)
                if query.grid is None:
                    raise BadInput("this search kept no 7x7 grid of its query: similarity maps are for the vgg16 vector only")
                vector, grid = query.vector, query.grid
            return explainer.neighbours(vector, grid, neighbours)

    def poster_file(self, id: str) -> Path:
        """The poster file of a stored film, in the folder recorded at ingest, never outside it."""
        return self._poster_location(id)[1]

    def poster_bytes(self, id: str) -> bytes:
        """The content of a stored film's poster file, read as it is checked: opened inside the
        recorded folder (no link swapped in since leads out: path_inside.open_inside), a regular
        file of bounded size. What the page serves."""
        from .embedding.images import ImageError, read_file

        folder, path = self._poster_location(id)
        try:
            return read_file(path, folder=str(folder.resolve()))
        except ImageError as e:
            raise NotFound(f"the poster file of {id[:100]} cannot be served: {str(e).split(': ', 1)[-1]}") from None

    def _poster_location(self, id: str) -> tuple[Path, Path]:
        from .path_inside import inside

        point = self.film(id)
        folder = self._poster_store().posters_dir()
        if folder is None:
            raise NotFound(f"collection '{self.collection}' records no poster folder")
        path = inside(folder, point.poster.path)
        if path is None or not path.is_file():
            raise NotFound(f"the poster file of {id[:100]} is not in the recorded poster folder")
        return folder, path

    # --- the collection at a glance ------------------------------------------------------------

    def era(
        self,
        *,
        k: int = defaults.ERA_K,
        sample: int | None = defaults.ERA_QUERIES,
        seed: int = 0,
        vector: str = VECTOR_NAME,
        progress: bool = False,
    ) -> EraReport:
        """Are nearest neighbours from a similar era? Year differences to neighbours against random
        pairs, for a seeded sample of `sample` dated posters (None or 0: every one)."""
        from .search.era import era_coherence

        self.check_vector(vector)
        return self._overview(
            f"era {k} {sample} {seed}",
            vector,
            lambda store: era_coherence(store, k=k, sample=sample, seed=seed, vector_name=vector, progress=progress),
        )

    def timeline(self, vector: str = VECTOR_NAME) -> Timeline:
        """Each decade's most and least typical posters, and how far its centre moved."""
        from .search.timeline import era_timeline

        self.check_vector(vector)
        steps = self._overview("timeline", vector, lambda store: era_timeline(store, vector))
        return Timeline(self.collection, vector, steps, self._store().posters_dir())

    def poster_map(self, vector: str = VECTOR_NAME) -> PosterMap:
        """Every poster placed in 2-D by its embedding (t-SNE on a sample, the rest among their most
        similar), coloured by year, with the decades' path; computed once per state of the
        collection, then read from its cache. Waits for it: map_status() asks without waiting."""
        found = self.map_status(vector, wait=None)
        assert not isinstance(found, dict)
        return found

    def map_status(self, vector: str = VECTOR_NAME, *, wait: float | None = 0.0) -> PosterMap | dict:
        """The poster map if it is known; else its computation runs in the background (started, or
        joined: one per collection and vector) and this says how far it is: {"status": "computing",
        "stage", "done", "total", "seconds"}. Waits up to `wait` seconds first (None: until done), so
        that a cached or small map, or an error, comes at once. Searches answer meanwhile (the
        computation reads the store a batch a call). Its error is raised once (the next call tries
        again)."""
        import time

        from .search.map_jobs import MapPending, jobs_for
        from .search.poster_map import fingerprint, poster_map

        jobs, key = jobs_for(self._shared), (self.collection, vector)

        def start(store: PosterStore) -> MapPending:
            return MapPending(jobs.start(key, lambda report: poster_map(store, vector, report=report)))

        def compute(store: PosterStore) -> PosterMap:  # _overview asks only while the map is not known
            job = start(store).job
            if not job.finished.is_set():
                raise MapPending(job)
            jobs.take(key, job)
            if job.error is not None:
                raise job.error
            assert job.result is not None
            if job.result.fingerprint != fingerprint(store, vector):  # the collection changed while it was computed
                raise start(store)
            return job.result

        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                self.check_vector(vector)
                return self._overview("map", vector, compute)
            except MapPending as pending:
                job = pending.job
            if not job.finished.wait(None if deadline is None else max(0.0, deadline - time.monotonic())):
                return job.progress()

    def starts(self, vector: str = VECTOR_NAME) -> Starts:
        """Posters to start from: each decade's most typical, and a varied sample of the undated.
        Chosen once per collection state; their payloads are read fresh (a predicted year written
        since shows)."""
        from .search.landing import start_groups

        self.check_vector(vector)
        groups: list[StartGroup] = self._overview("starts", vector, lambda store: start_groups(store, vector))
        posters = {p.id: p.poster for p in self._store().retrieve([i for g in groups for i in g.ids])}
        seconds = self._shared.overviews[("starts", self.collection, vector)][2]
        return Starts(self.collection, vector, [g.with_posters(posters) for g in groups], seconds)

    def duplicates(
        self, threshold: float = defaults.DUPLICATE_THRESHOLD, *, vector: str = VECTOR_NAME, progress: bool = False
    ) -> Duplicates:
        """Pairs of posters at least `threshold` similar (cosine): copies, re-releases, alternative art."""
        from .search.duplicates import near_duplicates

        self.check_vector(vector)
        return Duplicates(threshold, near_duplicates(self._store(), threshold, vector, progress=progress))

    def _overview(self, what: str, vector: str, compute: Any) -> Any:
        """A view of the whole collection, kept while the collection stays as it is (its fingerprint:
        the store's state token and count, read without reading a point), computed once however
        many ask at the same moment, without holding up anything else."""
        import time

        from .search.poster_map import fingerprint
        from .store.engine import giving_way

        store, shared = self._store(), self._shared
        key = (what, self.collection, vector)
        with shared.lock:
            computing = shared.computing.setdefault(key, threading.Lock())
        with computing:
            state = fingerprint(store, vector)
            known = shared.overviews.get(key)
            if known is None or known[0] != state:
                started = time.perf_counter()
                with giving_way():  # a view of the whole collection lets searches go first, call by call
                    value = compute(store)
                known = (state, value, time.perf_counter() - started)
                shared.overviews[key] = known
            return known[1]

    # --- the year model ------------------------------------------------------------------------

    def model_folder(self, model_dir: str | os.PathLike | None = None) -> Path:
        """The year model's folder: `model_dir`, else this object's, else ./year_model once
        `train_year` has written it, else the model shipped with the project."""
        from .regression.shipped import default_model_dir

        return Path(model_dir) if model_dir else self.model_dir or default_model_dir()

    def year_model(self, model_dir: str | os.PathLike | None = None) -> YearModel:
        """The saved year model (NotFound when there is none), loaded once."""
        from .regression.model_file import YearModel

        folder = self.model_folder(model_dir)
        with self._shared.lock:
            if folder not in self._shared.year_models:
                self._shared.year_models[folder] = YearModel.load(folder)
            return self._shared.year_models[folder]

    def year_model_summary(self, model_dir: str | os.PathLike | None = None) -> dict | None:
        """The saved model's test figures (its record only), or None without a usable model."""
        from .regression.model_file import ModelFile

        try:
            file = ModelFile.read(self.model_folder(model_dir))
        except PosterSearchError:
            return None
        return {
            "vector": file.vector_label,
            "collection": "+".join(file.collections),
            "n_test": file.split.get("n_test"),
            "test": file.test,
        }

    def train_year(
        self,
        model_dir: str | os.PathLike | None = None,
        *,
        collections: Sequence[str] | None = None,
        test_size: float = defaults.TEST_SIZE,
        seed: int = 0,
        config: HeadConfig | None = None,
        knn_k: int = defaults.KNN_K,
        vector: str = defaults.YEAR_VECTOR,
        augmented: Sequence[str] = (),
        progress: bool = True,
    ) -> TrainReport:
        """Train the year model on the dated posters of this collection (or of `collections`),
        scored against baselines on a held-out part split by content; saved in `model_dir`.
        Needs Keras and TensorFlow: `pip install "poster-search[train]"`."""
        from .embedding.keras_import import require_keras

        require_keras("train-year")  # before reading anything, and before importing the trainer (which imports Keras)
        from .regression.config import HeadConfig
        from .regression.dataset import load_augmented, load_collections
        from .regression.model_file import check_model_dir
        from .regression.train import train_year_model

        folder = Path(model_dir or self.model_dir or defaults.MODEL_DIR)  # never into the shipped model
        check_model_dir(folder)  # before reading and training, not after
        with self._shared.writing:
            store = self._store()
            data = load_collections(store, list(collections or [self.collection]), vector)
            views = load_augmented(store, list(augmented), data) if augmented else None
            self.close()  # the store is free while the head trains (its k-NN baseline opens it again, briefly)
            report = train_year_model(data, folder, test_size, seed, config or HeadConfig(), knn_k, progress=progress, augmented=views)
            self._shared.year_models.pop(folder, None)
            return report

    def evaluate_year(
        self, model_dir: str | os.PathLike | None = None, *, collections: Sequence[str] | None = None, include_trained: bool = False
    ) -> Evaluation:
        """Score the year model on the dated posters of this collection (or `collections`) it was not trained on."""
        from .regression.dataset import load_collections
        from .regression.evaluate import evaluate_model

        model = self.year_model(model_dir)
        data = load_collections(self._store(), list(collections or [self.collection]), model.vector_names)
        return Evaluation(evaluate_model(model, data, include_trained=include_trained))

    def predict_year(
        self,
        images: Sequence[str | os.PathLike],
        model_dir: str | os.PathLike | None = None,
        *,
        batch_size: int = defaults.BATCH_SIZE,
        progress: bool = False,
    ) -> YearPredictions:
        """Each image's year and calibrated range (folders: every poster image under them), in
        order, dated as they are iterated; an image that cannot be read comes with its error. Needs no store."""
        from .regression.predict import image_files, predict_images

        model = self.year_model(model_dir)
        files = image_files([Path(i) for i in images])
        embedder = self._year_embedder(model)
        return YearPredictions(
            predict_images(files, model, embedder, batch_size=batch_size, progress=progress, lock=self._shared.embedding)
        )

    def predict_image_year(self, image: ImageSource, model_dir: str | os.PathLike | None = None) -> dict:
        """One image's year and range, with the model's figures (the page's upload)."""
        from .regression.predict import predict_year
        from .regression.shipped import SHIPPED_DIR

        model = self.year_model(model_dir)
        embedder = self._year_embedder(model)
        with self._shared.embedding:
            prediction = predict_year(image, model, embedder)
        return {
            **prediction.as_dict(),
            "vector": model.file.vector_label,
            "trained_on": "+".join(model.file.collections),
            "shipped": self.model_folder(model_dir) == SHIPPED_DIR,
        }

    def date_stored(
        self,
        model_dir: str | os.PathLike | None = None,
        *,
        every_poster: bool = False,
        progress: bool = True,
        written: Callable[[list[DatedPoster]], bool | None] | None = None,
    ) -> DatingReport:
        """Date the stored posters without a catalog year (every poster with `every_poster`) from their
        stored vectors: the year model's year and range into their predicted_* payload fields.
        `written`: called with each batch of predictions once stored (title, file, years), until it returns False."""
        from .regression.dating import date_stored

        self._store().check_writable()  # a store on read-only media: one line, before the model loads
        model = self.year_model(model_dir)
        with self._shared.writing:
            return date_stored(self._poster_store(), model, every_poster=every_poster, progress=progress, written=written)

    def compare(
        self,
        model_dir: str | os.PathLike = defaults.COMPARE_DIR,
        *,
        test_size: float = defaults.TEST_SIZE,
        seed: int = 0,
        config: HeadConfig | None = None,
        knn_k: int = defaults.KNN_K,
        progress: bool = True,
    ) -> Comparison:
        """The original (vgg16) and the style (vgg16_style) vector side by side: year head and era coherence."""
        from .embedding.keras_import import require_keras

        require_keras("compare")  # before importing the trainer, which imports Keras
        from .regression.compare import read_for_comparison, train_for_comparison
        from .regression.config import HeadConfig

        with self._shared.writing:
            data, era = read_for_comparison(self._poster_store(), seed=seed, progress=progress)
            self.close()  # free while the heads train
        return train_for_comparison(data, era, Path(model_dir), test_size, seed, config or HeadConfig(), knn_k, progress=progress)

    # --- whole collections -------------------------------------------------------------------

    def embeddings(self, vector: str = VECTOR_NAME) -> Embeddings:
        """Every stored vector as one (n, d) array, with ids, titles, years, predicted years, files."""
        from .store.embeddings import load_embeddings

        return load_embeddings(self._poster_store(), vector)

    def export_embeddings(self, out: str | os.PathLike, vector: str = VECTOR_NAME, *, progress: bool = False) -> ExportReport:
        """Write the collection as one .npz file (embeddings, ids, keys, titles, years, predicted
        years, files, hashes, every payload, the embedding spec), streamed: memory bounded by a batch."""
        from .errors import check_output_file
        from .store.exchange import export_npz, export_target

        out = Path(out)
        if out.is_dir():
            raise BadInput(f"the output file {out} is a folder; give a file name such as embeddings.npz")
        check_output_file(export_target(out), "the output file")
        return export_npz(self._poster_store(), out, vector, progress)

    def import_embeddings(
        self, file: str | os.PathLike, *, posters_dir: str | os.PathLike | None = None, index: bool = True, progress: bool = False
    ) -> ImportReport:
        """Add the posters of an export file to the collection (made from the file's embedding if
        new; an existing one must hold the same), without VGG16, then index it (`index=False`:
        later, with build_index(), once for several imports). `posters_dir`: where the poster files
        are on this machine, for the page and contact sheets."""
        from .store.exchange import import_npz

        with self._shared.writing:
            return import_npz(self._store(must_exist=False), Path(file), Path(posters_dir) if posters_dir else None, progress, index)

    def build_index(self, *, progress: bool = False) -> float:
        """Build the collection's search index now (after imports made without it, or a build
        stopped by Ctrl-C); seconds taken. A server builds its own: nothing to do there."""
        started = time.perf_counter()
        with self._shared.writing:
            self._poster_store().optimize(progress)
        return time.perf_counter() - started

    def migrate(
        self,
        to: str | os.PathLike | StoreLocation,
        to_collection: str | None = None,
        *,
        batch_size: int = defaults.MIGRATE_BATCH,
        sharding: Sharding | None = None,
        api_key: str | None = None,
        progress: bool = True,
    ) -> MigrateReport:
        """Copy the collection (vectors, payloads, ids, metadata) to a server, a cluster or another
        folder, without re-embedding. `to`: a folder or an http(s) URL."""
        from .store.collection import PosterStore
        from .store.connection import StoreLocation
        from .store.migrate import migrate, same_store

        if isinstance(to, StoreLocation):
            target_location = to
        elif os.fspath(to).startswith(("http://", "https://")):
            target_location = store_location(to, api_key=api_key, timeout=self.location.timeout, grpc=self.location.prefer_grpc)
        else:  # a folder, built directly: QDRANT_URL (the source's) cannot redirect it
            target_location = StoreLocation(path=Path(to))
        target_collection = to_collection or self.collection
        check_collection_name(target_collection)
        same = same_store(self.location, target_location)
        if same and target_collection == self.collection:
            raise BadInput("source and destination are the same collection")
        with self._shared.writing:
            source = self._poster_store()
            if same:
                source.check_writable()  # into the store read from, on read-only media: one line before the copy
                return migrate(source, source.other_collection(target_collection), batch_size, sharding or Sharding(), progress)
            try:
                target = PosterStore(target_location, target_collection)
            except OSError as e:
                raise BadInput(f"cannot open {target_location.describe()}: {e.strerror or e}") from None
            with target:
                target.check_writable()
                return migrate(source, target, batch_size, sharding or Sharding(), progress)

    # --- embedders -----------------------------------------------------------------------------

    def _embedder(self, style: bool = False) -> Any:
        """VGG16 for image queries of this collection (an int8 collection has a model of its own):
        OpenVINO or ONNX Runtime, never TensorFlow."""
        from .search.neighbours import image_embedder

        store = self._poster_store()

        def build() -> Any:
            embedder = image_embedder(store, self._shared.weights, style=style, long_lived=True)
            embedder.load()
            return embedder

        return self._cached_embedder(store.stored_spec(), style, build)

    def _year_embedder(self, model: YearModel) -> Any:
        """The embedder of the year model's own embedding."""
        from .regression.predict import model_embedder

        return self._cached_embedder(
            model.file.spec, model.uses_style, lambda: model_embedder(model, self._shared.weights, long_lived=True)
        )

    def _cached_embedder(self, spec: EmbeddingSpec, style: bool, build: Any) -> Any:
        """An embedder of `spec` (making the style vector too, with `style`), loaded once: the
        caller's own when it makes those vectors, else one already built, else build()'s."""
        shared = self._shared
        given = shared.given_embedder
        if given is not None and not spec.quantization and given.spec == spec and (not style or given.style_spec is not None):
            return given
        with shared.lock:
            for key in ((spec, True), (spec, style)):  # one that makes the style vector serves both
                if key in shared.embedders:
                    return shared.embedders[key]
            shared.embedders[(spec, style)] = build()
            return shared.embedders[(spec, style)]


def _stored_vector(point: StoredPoint) -> np.ndarray:
    if point.vector is None:
        raise BadInput(f"film {point.id} was read without its vector")
    return np.asarray(point.vector, np.float32)


def nearest(
    image: ImageSource, k: int = defaults.K, *, store: str | os.PathLike | None = None, collection: str = DEFAULT_COLLECTION, **options: Any
) -> list[Neighbour]:
    """One call for a notebook: the k stored posters most similar to `image`. `options` as
    Posters.search's (year_min, year_max, genre, vector) and Posters' (weights). Opening the store
    and the model costs about half a second: for many queries keep a Posters."""
    weights = options.pop("weights", None)
    with Posters(store, collection, weights=weights) as posters:
        return posters.search(image, k=k, **options).neighbours
