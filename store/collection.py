"""The poster collection: created for one embedding, refused to any other.

PosterStore is the one interface the rest of the project uses; the engine under it is Qdrant Edge
for a folder (store/edge.py) or qdrant-client for a server (store/server.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..embedding.spec import EmbeddingSpec
from ..errors import BadInput, Damaged, NotFound, command
from .connection import StoreLocation, open_engine
from .engine import Hit, PointFilter, Record, VectorConfig
from .schema import (
    DEFAULT_COLLECTION,
    QUANTIZED_VECTORS,
    SCHEMA_VERSION,
    STYLE_VECTOR_NAME,
    VECTOR_NAME,
    CollectionMetadata,
    PosterPayload,
    check_collection_name,
)
from .sort_keys import now_added, prefix_range, with_sort_keys


@dataclass(frozen=True)
class Sharding:
    """Collection layout on a server or cluster; None leaves Qdrant's default (shards: one per
    node, replicas: 1, write consistency: 1)."""

    shards: int | None = None
    replicas: int | None = None
    write_consistency: int | None = None

    def is_default(self) -> bool:
        return self.shards is None and self.replicas is None and self.write_consistency is None


@dataclass
class StoredPoint:
    """A stored poster as the store hands it out: its payload decoded once (`poster`), and the vector asked for."""

    id: str
    poster: PosterPayload
    vector: np.ndarray | None = None
    payload: dict = field(default_factory=dict, repr=False)  # as stored: for copying and for damage checks, never read field by field


@dataclass(frozen=True)
class Match:
    """A search hit, decoded: the stored poster and its cosine similarity to the query."""

    id: str
    score: float
    poster: PosterPayload
    payload: dict = field(default_factory=dict, repr=False)  # as stored (empty: the payload was lost)


log = logging.getLogger("poster_search")
SAMPLE_RUNS = 50  # random ids a large sample is drawn from, a run of consecutive points from each (PosterStore.sample)


class PosterStore:
    """One collection of poster embeddings in a store. Use as a context manager: the embedded
    store is locked to this process until it is closed."""

    def __init__(self, location: StoreLocation, collection: str = DEFAULT_COLLECTION, must_exist: bool = False):
        check_collection_name(collection)
        self.location = location
        self.collection = collection
        self.engine = open_engine(location, must_exist=must_exist)
        self._owns_engine = True
        self._left_out: dict[tuple[str, str], str] = {}  # (collection, point id) -> why (_decode); shared by other_collection()s
        self._noting: list[list[str]] = []  # the lists left_out_during() fills

    def other_collection(self, collection: str) -> PosterStore:
        """Another collection of the same store, on the same engine (an embedded folder allows one)."""
        check_collection_name(collection)
        other = object.__new__(PosterStore)
        other.location, other.collection, other.engine, other._owns_engine = self.location, collection, self.engine, False
        other._left_out, other._noting = self._left_out, []
        return other

    def __enter__(self) -> PosterStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_engine:
            self.engine.close()

    def collections(self) -> list[str]:
        """Every collection in this store (e.g. one per poster collection)."""
        return self.engine.collection_names()

    # --- the collection and its embedding -------------------------------------------------

    def exists(self) -> bool:
        return self.engine.collection_exists(self.collection)

    def stored_spec(self, vector_name: str = VECTOR_NAME) -> EmbeddingSpec:
        """The embedding a vector of the collection was made with; BadInput if there is none."""
        if not self.exists():
            raise NotFound(f"no collection '{self.collection}' in {self.location.describe()}: run {command('ingest')} first")
        vectors = self.engine.vectors(self.collection)
        if VECTOR_NAME not in vectors:
            raise BadInput(f"collection '{self.collection}' has no '{VECTOR_NAME}' vector: it was not made by poster search")
        if vector_name not in vectors:
            hint = " (ingest with --style adds it)" if vector_name == STYLE_VECTOR_NAME else ""
            raise NotFound(f"collection '{self.collection}' has no '{vector_name}' vector{hint}")
        return self.collection_metadata().spec_of(vector_name, vectors[vector_name], f"collection '{self.collection}'")

    def metadata(self) -> dict:
        """The collection metadata as stored (keys of newer versions included): for copying it whole."""
        return self.engine.metadata(self.collection)

    def collection_metadata(self) -> CollectionMetadata:
        """The collection metadata, typed, upgraded from an older schema version; BadInput for a
        newer version or a field of the wrong type (one line)."""
        return CollectionMetadata.from_dict(self.metadata(), f"collection '{self.collection}' in {self.location.describe()}")

    def vectors(self) -> dict[str, int]:
        """The collection's named vectors and their sizes."""
        return self.engine.vectors(self.collection)

    def has_vector(self, vector_name: str) -> bool:
        return vector_name in self.engine.vectors(self.collection)

    def check_spec(self, spec: EmbeddingSpec, vector_name: str = VECTOR_NAME) -> None:
        stored = self.stored_spec(vector_name)
        if stored != spec:
            if stored.dim != spec.dim:
                what = f"holds {stored.dim}-d vectors, this embedding makes {spec.dim}-d vectors"
            else:
                mine, theirs = stored.compared(), spec.compared()
                differing = [k for k in theirs if mine.get(k) != theirs[k]]
                what = "differs in " + ", ".join(f"{k} (stored {mine.get(k) or 'none'}, now {theirs[k] or 'none'})" for k in differing)
            hint = "the same --precision and --weights" if stored.quantization or spec.quantization else "the same --weights"
            raise BadInput(
                f"collection '{self.collection}' was made with another embedding: {what}; "
                f"use {hint}, another --collection, or --recreate to start over"
            )

    def prepare(
        self, spec: EmbeddingSpec, recreate: bool = False, sharding: Sharding = Sharding(), style_spec: EmbeddingSpec | None = None
    ) -> None:
        """Make sure the collection exists for `spec` (and `style_spec`); existing vectors must match.

        A style vector asked for on a collection without one is added to it, empty: ingest then
        fills it in for the posters already stored.
        """
        self.check_sharding(sharding)
        if recreate and self.exists():
            self.engine.delete_collection(self.collection)
        if not self.exists():
            vectors = [VectorConfig(VECTOR_NAME, spec.dim)]
            if style_spec:
                vectors.append(VectorConfig(STYLE_VECTOR_NAME, style_spec.dim))
            metadata = CollectionMetadata(spec.as_dict(), style_spec.as_dict() if style_spec else None)
            self.create(vectors, metadata.to_dict(), sharding)
            return
        self.check_spec(spec)
        self.record_schema_version()
        self.add_sort_keys()
        if not style_spec:
            return
        if self.has_vector(STYLE_VECTOR_NAME):
            self.check_spec(style_spec, STYLE_VECTOR_NAME)
            return
        self.engine.add_vector(self.collection, VectorConfig(STYLE_VECTOR_NAME, style_spec.dim, STYLE_VECTOR_NAME in QUANTIZED_VECTORS))
        self.update_metadata(CollectionMetadata.changes(style_embedding=style_spec.as_dict()))

    def check_sharding(self, sharding: Sharding) -> None:
        if self.location.is_local and not sharding.is_default():
            raise BadInput(
                "--shards, --replicas and --write-consistency need a Qdrant server or cluster (--qdrant-url): "
                "the embedded store is a single shard"
            )

    def check_writable(self) -> None:
        """BadInput, in one line, when the store cannot be written (an embedded store on read-only
        media, which reading commands read): writing commands ask before their work."""
        from .edge import EdgeEngine

        if isinstance(self.engine, EdgeEngine):
            self.engine.check_writable()

    def create(self, vectors: Sequence[VectorConfig], metadata: dict, sharding: Sharding = Sharding()) -> None:
        """Create the collection with these named vectors (cosine; those of QUANTIZED_VECTORS with
        int8 quantisation), metadata and payload indexes."""
        self.check_sharding(sharding)
        vectors = [replace(v, quantized=v.name in QUANTIZED_VECTORS) for v in vectors]
        self.engine.create_collection(self.collection, vectors, {**metadata, **_new_state()}, sharding)

    def delete_collection(self) -> None:
        self.engine.delete_collection(self.collection)

    def state(self) -> str:
        """A token that changes with every change of the points poster search makes (and its count
        of points, for other writers): a cache of a view of the collection keys on it, reading no point."""
        return f"{self.collection_metadata().state or ''}:{self.count()}"

    def _changing(self) -> None:
        """Before a write: a new state token (first, so that a write cut short still changed it)."""
        self.engine.update_metadata(self.collection, _new_state())

    def update_metadata(self, metadata: dict) -> None:
        """Set these keys of the collection metadata (CollectionMetadata.changes() type-checks them)."""
        self.engine.update_metadata(self.collection, metadata)

    def record_schema_version(self) -> None:
        """Record this version's schema on a collection made by an older one (read through
        upgrade_metadata until now), before it is written to: it may then hold newer payload fields."""
        if self.collection_metadata().schema_version != self.metadata().get("schema_version"):
            self.update_metadata(CollectionMetadata.changes(schema_version=SCHEMA_VERSION))

    def remember_posters_dir(self, posters_dir: Path) -> None:
        """Record where the poster files are, so contact sheets and the web page can find them."""
        self.update_metadata(CollectionMetadata.posters_dir_changes(str(Path(posters_dir).resolve())))

    def posters_dir(self) -> Path | None:
        folder = self.collection_metadata().posters_path
        return Path(folder) if folder else None

    def payload_indexes(self) -> set[str]:
        return self.engine.payload_indexes(self.collection)

    def optimize(self, progress: bool = False) -> None:
        """Let the engine build its search index (HNSW) now rather than on the next query
        (`progress`: a line on stderr while a long build runs)."""
        self.engine.optimize(self.collection, progress)

    def index_waiting(self) -> bool:
        """Whether a build of the search index was stopped midway (Ctrl-C) and many vectors wait for it."""
        return self.exists() and self.engine.index_waiting(self.collection)

    # --- points -----------------------------------------------------------------------------

    def count(self, filter: PointFilter = PointFilter()) -> int:
        return self.engine.count(self.collection, filter) if self.exists() else 0

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict], style_vectors: np.ndarray | None = None) -> None:
        """Write a batch; what returns is stored (on disk, or acknowledged by the server)."""
        added = now_added()  # one more microsecond a point: the batch keeps its order, and no two points tie
        records = [Record(i, with_sort_keys(p, added + n), {VECTOR_NAME: v}) for n, (i, v, p) in enumerate(zip(ids, vectors, payloads))]
        if style_vectors is not None:
            for record, style in zip(records, style_vectors):
                record.vectors[STYLE_VECTOR_NAME] = style
        self._changing()
        self.engine.upsert(self.collection, records)

    def set_vectors(self, ids: Sequence[str], vector_name: str, vectors: np.ndarray) -> None:
        """Set one named vector of stored points; their payloads and other vectors stay as they are."""
        self._changing()
        self.engine.update_vectors(self.collection, ids, vector_name, vectors)

    def overwrite_payloads(self, items: list[tuple[str, dict]]) -> None:
        """Replace the whole payload of stored points (e.g. a corrected title); vectors stay. The
        sort keys follow the title; `added` stays what the item carries (the plan keeps it)."""
        self._changing()
        self.engine.overwrite_payloads(self.collection, [(i, with_sort_keys(p, None)) for i, p in items])

    def add_sort_keys(self) -> int:
        """Give points stored before schema 4 the derived fields browsing orders by (`title_order`,
        and for `added` their ordinal: earlier than any point stored since); how many were given them."""
        done = 0
        for records in self.records(with_vectors=False, fields=["title", "added"], filter=PointFilter(missing=("title_order",))):
            if records:
                self.set_payloads([(r.id, with_sort_keys(r.payload, done + n + 1)) for n, r in enumerate(records)])
                done += len(records)
        if done:
            log.info("collection '%s': %d posters given their sort keys (schema 4)", self.collection, done)
        return done

    def set_payloads(self, items: Sequence[tuple[str, dict]]) -> None:
        """Set some keys of stored points' payloads (e.g. a predicted year); every other key and the vectors stay."""
        self._changing()
        self.engine.set_payloads(self.collection, items)

    def delete(self, ids: list[str]) -> None:
        self._changing()
        self.engine.delete(self.collection, ids)

    def ids_without(self, vector_name: str) -> set[str]:
        """Ids of stored points that lack this named vector (e.g. stored before it was added)."""
        if not self.has_vector(vector_name):
            return set()
        return {r.id for records in self.records(fields=[], filter=PointFilter(lacks_vector=vector_name)) for r in records}

    def upsert_records(self, records: list[Record]) -> None:
        """Write Records as they are (all named vectors, payload, id), e.g. from another store."""
        self._changing()
        self.engine.upsert(self.collection, records)

    def points(
        self, with_vectors: bool = True, fields: list[str] | None = None, batch: int = 1024, vector_name: str = VECTOR_NAME
    ) -> Iterator[StoredPoint]:
        """Every point (only the payload `fields`, if given; `vector_name` as its vector), in batches.

        Points that lack the named vector are skipped when vectors are asked for."""
        vectors = [vector_name] if with_vectors else False
        for records in self.records(with_vectors=vectors, fields=fields, batch=batch):
            for r in records:
                if with_vectors and vector_name not in r.vectors:
                    continue
                point = self._point(r, vector_name if with_vectors else None)
                if point is not None:
                    yield point

    def _point(self, record: Record, vector_name: str | None) -> StoredPoint | None:
        poster = self._decode(record.id, record.payload)
        if poster is None:
            return None
        return StoredPoint(record.id, poster, record.vectors.get(vector_name) if vector_name else None, record.payload)

    def _match(self, hit: Hit) -> Match | None:
        poster = self._decode(hit.id, hit.payload)
        return None if poster is None else Match(hit.id, hit.score, poster, hit.payload)

    def _decode(self, point_id: str, payload: dict) -> PosterPayload | None:
        """The one policy for reading a stored payload, which anyone with access to the store may
        have written: the typed payload, or None for a record that does not decode. That record is
        left out of the answer and named once while the store is open (a warning on the
        `poster_search` logger, which the CLI prints on stderr), with what is wrong and how to
        repair it; everything else keeps working."""
        try:
            return PosterPayload.from_dict(payload, f"point {point_id}")
        except Damaged as e:
            for noted in self._noting:
                noted.append(point_id)
            key = (self.collection, point_id)
            if key not in self._left_out:
                self._left_out[key] = str(e)
                log.warning("collection '%s': %s (left out until then)", self.collection, e)
            return None

    def left_out(self, point_id: str) -> str | None:
        """Why this stored point was left out of the answers (its payload does not decode), if it was."""
        return self._left_out.get((self.collection, point_id))

    @contextmanager
    def left_out_during(self) -> Iterator[list[str]]:
        """The ids of the points left out of the answers given inside the block (named or not before)."""
        noted: list[str] = []
        self._noting.append(noted)
        try:
            yield noted
        finally:
            self._noting.remove(noted)

    def records(
        self, with_vectors: bool | list[str] = True, fields: list[str] | None = None, batch: int = 1024, filter: PointFilter = PointFilter()
    ) -> Iterator[list[Record]]:
        """Records a batch at a time (all named vectors with with_vectors=True), in id order."""
        offset = None
        while True:
            records, offset = self.engine.scroll(
                self.collection,
                filter,
                batch,
                offset,
                with_payload=True if fields is None else (fields or False),
                with_vectors=with_vectors,
            )
            yield records
            if offset is None:
                return

    def page(self, filter: PointFilter, limit: int, offset: str | None, fields: list[str]) -> tuple[list[Record], str | None]:
        """One batch of a scroll in id order, from `offset` (the last batch's next offset); records as stored."""
        return self.engine.scroll(self.collection, filter, limit, offset, with_payload=fields, with_vectors=False)

    def scroll_ordered(
        self, filter: PointFilter, key: str, descending: bool, start_from: int | float | None, limit: int, fields: list[str]
    ) -> list[Record]:
        """Points that have the integer field `key`, ordered by it (Qdrant's order_by on its index),
        from `start_from` on (inclusive); records as stored (decoded()). Points without `key` are never in it."""
        start = None if start_from is None else int(start_from)
        return self.engine.scroll_ordered(self.collection, filter, key, descending, start, limit, fields)

    def sample(
        self, n: int, seed: int = 0, filter: PointFilter = PointFilter(), fields: list[str] | None = None, vector_name: str | None = None
    ) -> list[StoredPoint]:
        """About `n` of the points matching `filter`, drawn at random (seeded), in bounded time and
        memory at any size (with `vector_name`: those having it, with it).

        Up to 2n matching points are read and n chosen from them. Beyond that, nothing else is
        read: point ids are uuid5 hashes, spread evenly over the id space, so the matching points
        at or after a random id are random points (their ids have nothing to do with their
        content). A draw is one scroll of a run of n/SAMPLE_RUNS of them from a random id: 50 short
        runs rather than n single points, 20-40x fewer round trips to the engine, and enough runs
        that ids given some other way (someone else's collection on a server) still spread it."""
        if vector_name:
            filter = self.having(vector_name, filter)
        vectors = [vector_name] if vector_name else False
        payload = True if fields is None else fields
        rng = np.random.default_rng(seed)
        if self.count(filter) <= 2 * n:
            records = [r for batch in self.records(with_vectors=vectors, fields=fields, filter=filter) for r in batch]
            chosen = [records[i] for i in np.sort(rng.choice(len(records), min(n, len(records)), replace=False))]
        else:
            import uuid

            run = -(-n // SAMPLE_RUNS)
            drawn: dict[str, Record] = {}
            for _ in range(4 * SAMPLE_RUNS):  # runs that meet are drawn again; this stops the rare unlucky case
                if len(drawn) >= n:
                    break
                records, _ = self.engine.scroll(self.collection, filter, run, str(uuid.UUID(bytes=rng.bytes(16))), payload, vectors)
                if len(records) < run:  # past the last id: the run goes on from the first
                    records += self.engine.scroll(self.collection, filter, run - len(records), None, payload, vectors)[0]
                for r in records:
                    drawn.setdefault(r.id, r)
            kept = sorted(drawn.values(), key=lambda r: r.id)
            chosen = [kept[i] for i in np.sort(rng.choice(len(kept), min(n, len(kept)), replace=False))]
        points = [point for r in chosen if (point := self._point(r, vector_name)) is not None]
        return [p for p in points if p.vector is not None] if vector_name else points

    def having(self, vector_name: str, filter: PointFilter = PointFilter()) -> PointFilter:
        """`filter`, for the points having this vector. Every point is written with the main vector,
        so for it the condition is left out: Qdrant checks it point by point (a facet of `year` at
        1M: 0.80 s with it, 0.12 s without); where vectors are read, one without it is left out."""
        return filter if vector_name == VECTOR_NAME else replace(filter, has_vector=vector_name)

    def decoded(self, records: Iterable[Record]) -> list[StoredPoint]:
        """Records as StoredPoints, under the one decoding policy (a payload that does not decode is left out, and named)."""
        return [point for r in records if (point := self._point(r, None)) is not None]

    def facet(self, key: str, filter: PointFilter = PointFilter(), limit: int = 1000) -> list[tuple[str | int, int]]:
        """The values of a payload field with how many points hold each (Qdrant's facet counts on its index), most first."""
        return self.engine.facet(self.collection, key, filter, limit)

    def retrieve(self, ids: Iterable[str], with_vectors: bool | str = False) -> list[StoredPoint]:
        """Stored points by id (unknown ids are left out); `with_vectors` True or a vector name."""
        name = VECTOR_NAME if with_vectors is True else (with_vectors or None)
        records = self.engine.retrieve(self.collection, list(ids), True, [name] if name else False)
        return [point for r in records if (point := self._point(r, name)) is not None]

    def stored_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of these ids that are stored (nothing else is read)."""
        return {r.id for r in self.engine.retrieve(self.collection, list(ids), False, False)}

    def vectors_of(self, ids: Sequence[str], names: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
        """The named vectors of these points, by id (no payloads); a point lacking one has only the others."""
        return {r.id: r.vectors for r in self.engine.retrieve(self.collection, list(ids), False, list(names))}

    # --- search -----------------------------------------------------------------------------

    def with_title_words(self, text: str, limit: int = 500, fields: list[str] | None = None) -> list[StoredPoint]:
        """Points whose title has a word starting with each word of `text` (case and accents
        ignored), by Qdrant's full-text index (its prefix tokenizer); only the payload `fields`."""
        fields = fields or ["title", "year", "sha256"]
        records, _ = self.engine.scroll(self.collection, PointFilter(title_words=text), limit, None, fields, False)
        return self.decoded(records)

    def titles_starting(self, text: str, limit: int, fields: list[str]) -> list[StoredPoint]:
        """Points whose title, as people sort titles, starts with `text` (case, accents and a leading
        article ignored), in alphabetical order: one range on the `title_order` index (store/sort_keys.py)."""
        span = prefix_range(text)
        if span is None:
            return []
        return self.decoded(self.scroll_ordered(PointFilter(ranges=(("title_order", *span),)), "title_order", False, None, limit, fields))

    def nearest(
        self,
        vectors: Sequence[np.ndarray],
        limit: int,
        filter: PointFilter = PointFilter(),
        vector_name: str = VECTOR_NAME,
        exact: bool = False,
        fields: list[str] | None = None,
        score_threshold: float | None = None,
        hnsw_ef: int | None = None,
    ) -> list[list[Match]]:
        """For each query vector, the `limit` most similar points (cosine), best first, by Qdrant;
        with `score_threshold`, only those at least that similar.

        `exact` scans every point instead of the HNSW graph: for evaluations, which need the true
        neighbours; interactive search leaves it off. `hnsw_ef`: the graph search's breadth, for
        callers that measured a smaller one finds what they ask for (None: the engine's default)."""
        if not len(vectors):
            return []
        payload = True if fields is None else fields
        sha256, copies = filter.exclude_sha256, 0
        if sha256 and not exact:
            # Qdrant checks a must_not on each point the graph search visits, in the sha256 index
            # (memory-mapped, cold): 4-10x the whole query at 1M (docs/performance.md). A file's
            # copies are few: asking for that many more and leaving them out here is the same answer.
            copies = self.count(PointFilter(sha256=sha256))
            filter = replace(filter, exclude_sha256=None)
            if fields is not None and "sha256" not in fields:
                payload = [*fields, "sha256"]
        answers = self.engine.query(self.collection, vectors, vector_name, limit + copies, filter, exact, payload, score_threshold, hnsw_ef)
        kept = [[h for h in hits if not copies or h.payload.get("sha256") != sha256][:limit] for hits in answers]
        return [[match for hit in hits if (match := self._match(hit)) is not None] for hits in kept]

    def recommend(
        self,
        positive: Sequence[np.ndarray],
        negative: Sequence[np.ndarray],
        limit: int,
        filter: PointFilter = PointFilter(),
        vector_name: str = VECTOR_NAME,
    ) -> list[Match]:
        """Points like the positive examples and unlike the negative ones (Qdrant's recommend, best score)."""
        hits = self.engine.recommend(self.collection, positive, negative, vector_name, limit, filter, True)
        return [match for hit in hits if (match := self._match(hit)) is not None]


def _new_state() -> dict:
    import uuid

    return CollectionMetadata.changes(state=uuid.uuid4().hex)
