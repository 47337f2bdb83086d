"""The embedded store: Qdrant Edge, the Qdrant engine itself running in this process.

EdgeEngine implements the Engine protocol (store/engine.py) by translating it to qdrant_edge's
API: one Edge shard per collection, its queries, filters, payload indexes and updates. Everything
about the store's files (the folder's layout, its locks, collection.json and its backup, orphans,
damage checks on the shard's files) is StoreFolder's, in store/edge_folder.py. Search, filters,
payload indexes (including the full-text index on `title`), recommend and HNSW are Qdrant's.

A store on read-only media is read from private copies of its shards (StoreFolder.shard_to_open:
Edge writes to every shard it opens), and every write is refused in one line (check_writable).

Free space is checked before Edge is asked to allocate any (store/space.py): Edge maps its files
into memory, and a write to a mapped file on a full disk kills the process with SIGBUS, which no
error handling can catch.

Search parameters (docs/store.md#store): collections are exact-scanned until a segment holds more
than INDEXING_THRESHOLD_KB of one vector (about 5,000 posters of 512-d); then `optimize()`, run
at the end of an ingest, builds an HNSW graph (m=16, ef_construct=100: Qdrant's defaults) and
interactive queries use it with hnsw_ef=128. Evaluations (era, k-NN baselines) ask for exact search.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from ..errors import BadInput, Damaged, command
from .edge_build import build_in_child, clear_stale_builds, reason, release_freed_memory
from .edge_folder import CONFIG, StoreFolder
from .edge_folder import MARKER as MARKER  # re-exported: store/connection.py tells an Edge store by it
from .edge_folder import edge_version as edge_version  # re-exported
from .engine import (
    OVERSAMPLING,
    QUANTILE,
    Hit,
    PointFilter,
    Record,
    TurnLock,
    VectorConfig,
    as_vector_list,
    is_point_id,
    serialised,
)
from .schema import INDEXED_FIELDS, TOKEN_PREFIX_CHARS
from .space import MARGIN, check_free_space, folder_bytes, open_bytes

if TYPE_CHECKING:
    from uuid import UUID

    # annotations only: ConditionType and NamedVector exist in the stub alone, and qdrant_edge is imported where it is used
    from qdrant_edge import ConditionType, EdgeShard, NamedVector

HNSW_M = 16  # Qdrant's default
HNSW_EF_CONSTRUCT = 100  # Qdrant's default
HNSW_EF = 128
INDEXING_THRESHOLD_KB = 10_000
FULL_SCAN_THRESHOLD_KB = 10_000  # a filter matching fewer vectors than this is answered by exact scan
# Vectors waiting for the index from which it is built in a child process (store/edge_build.py):
# about 10 s of building on 2 cores, below which a build holds the GIL too briefly to matter.
BUILD_APART_AT = 20_000
# Vectors written between flushes. Edge holds what a write adds to a segment's mutable structures
# in memory until a flush: a million posters imported in one go held 3.2 GB, and 4.6 GB while
# flushed at the end; flushed every 100,000, 2.2 GB (docs/performance.md#the-index-build).
FLUSH_EVERY = 100_000

T = TypeVar("T")


class EdgeEngine:
    """The embedded store in `path`, opened by one process at a time (its folder: StoreFolder).

    Threads share it call by call: each call into Edge (`_read`, which writes go through too) and
    each change of the collections and their metadata (serialised) holds `_calls`, a TurnLock; the
    conversion of what Edge answered into Records and Hits does not, so a search waits for Edge's
    answer to another thread's call at most, not for its conversion too."""

    def __init__(self, path: Path, must_exist: bool = False):
        self._folder = StoreFolder(path, must_exist)  # checks the folder, takes its lock, reads or writes its marker
        self.path = self._folder.path
        self._shards: dict[str, EdgeShard] = {}  # collection name -> its shard, opened on first use
        self._opened: dict[str, Path] = {}  # collection name -> the folder Edge opened (the shard, or its private copy)
        self._opening = threading.Lock()
        self._written: set[str] = set()  # collections changed since open: flushed on close
        self._unbuilt: dict[str, int] = {}  # collection name -> vectors written since its last index build here
        self._unflushed: dict[str, int] = {}  # collection name -> vectors written since its last flush
        self._calls = TurnLock()  # one call at a time, in the order asked

    def describe(self) -> str:
        return f"local store {self.path}"

    @property
    def read_only(self) -> bool:
        """Whether the store cannot be written (read-only media): it is then read, never written."""
        return bool(self._folder.read_only)

    def check_writable(self) -> None:
        """BadInput, in one line, on a store that cannot be written: writing commands ask before their work."""
        self._folder.check_writable()

    @serialised
    def close(self) -> None:
        for name, shard in self._shards.items():
            try:
                if name in self._written:
                    shard.flush()  # so that the next open need not replay the WAL
                    self._record_count(name, shard)
                shard.close()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # a full disk, say: often while an error is on its way out, which this must not hide
                print(
                    f"Note: collection '{name}' could not be flushed on close ({reason(e)}): every write it acknowledged is in its "
                    "write-ahead log, which the next open replays",
                    file=sys.stderr,
                )
        self._shards.clear()
        self._opened.clear()
        self._folder.close()  # after the shards: it removes the private copies they were opened from

    # --- collections -------------------------------------------------------------------------

    def collection_names(self) -> list[str]:
        """Collections of the store, the damaged ones included (opening them says what is wrong)."""
        return self._folder.names()

    def collection_exists(self, name: str) -> bool:
        """True once the collection was made: its metadata, or a shard of stored points without it
        (an orphan: reading it then says what is damaged; it is never created over)."""
        return self._folder.has_config(name) or self.orphaned(name)

    def orphaned(self, name: str) -> bool:
        """The collection's metadata is lost (both files gone or damaged) while its shard holds points."""
        return self._folder.metadata_lost(name) and not self._empty_shard(name)

    def _empty_shard(self, name: str) -> bool:
        """Whether the shard holds no point: a creation interrupted before the metadata (its last
        step), which create_collection then makes anew. A shard that cannot be read holds points."""
        from qdrant_edge import EdgeShard

        try:
            self._folder.check_shard_files(name)
            shard = EdgeShard.load(str(self._folder.shard_to_open(name)))
        except Exception:
            return False
        try:
            return _points(shard) == 0
        except Exception:
            return False
        finally:
            shard.close()

    def _config(self, name: str) -> dict[str, Any]:
        """The collection's vectors and metadata (StoreFolder.config, a copy); Damaged, naming the
        files, when neither can be read while the shard holds points, BadInput when there is none."""
        config = self._folder.config(name)
        if config is not None:
            return config
        folder = self._folder.collection_dir(name)
        if self.orphaned(name):
            raise Damaged(
                f"collection '{name}' in {self.path} is damaged: {folder / CONFIG} and its backup are missing or unreadable, "
                f"while {self._folder.shard_dir(name)} holds its points; nothing was deleted. Run {command('ingest')} with the same "
                "catalog, --posters and --weights to rebuild them from the shard (it checks stored vectors against the posters first)"
            )
        raise BadInput(f"no collection '{name}' in {self.describe()}")

    @serialised
    def adopt(self, name: str, metadata: dict) -> None:
        """Write the metadata of an orphaned collection anew: its vectors from the shard's own config,
        `metadata` from the caller, who has checked that the stored vectors are that embedding."""
        self._folder.adopt(name, metadata)

    def open_orphan(self, name: str) -> None:
        """Open an orphaned collection's shard without its metadata, to read what it holds (ingest/repair.py)."""
        from qdrant_edge import EdgeShard

        self.check_writable()  # the repair that reads it writes next
        if name not in self._shards:
            self._folder.claim(name)
            self._folder.check_shard_files(name)
            check_free_space(self.path, self._open_bytes(name), f"opening collection '{name}'")
            self._shards[name], self._opened[name] = EdgeShard.load(str(self._folder.shard_dir(name))), self._folder.shard_dir(name)

    def shard_vectors(self, name: str) -> dict[str, int]:
        """The named vectors of a collection's shard (for an orphan, whose metadata is lost)."""
        return self._folder.shard_vectors(name)

    @serialised
    def create_collection(self, name: str, vectors: Sequence[VectorConfig], metadata: dict, sharding: object = None) -> None:
        from qdrant_edge import EdgeConfig, EdgeOptimizersConfig, EdgeShard, HnswIndexConfig

        self.check_writable()
        self._folder.claim(name)
        if self.orphaned(name):
            self._config(name)  # Damaged: a shard of stored points is never created over
        if self._folder.collection_dir(name).exists():
            # a half-made collection (interrupted before its metadata was written): nothing in it is stored
            self._folder.remove(name)  # its lock file goes with it: claimed anew below
        check_free_space(self.path, 2 * MARGIN, f"creating collection '{name}'")
        config = EdgeConfig(
            vectors={v.name: _vector_params(v) for v in vectors},
            hnsw_config=HnswIndexConfig(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=FULL_SCAN_THRESHOLD_KB),
            optimizers=EdgeOptimizersConfig(indexing_threshold=INDEXING_THRESHOLD_KB),
        )
        shard = EdgeShard.create(str(self._folder.shard_dir(name)), config)
        self._shards[name], self._opened[name] = shard, self._folder.shard_dir(name)
        self._folder.claim(name)
        self.ensure_indexes(name)
        # the metadata last: a collection exists once it is complete
        self._folder.save_config(name, {"vectors": {v.name: v.dim for v in vectors}, "metadata": metadata})

    @serialised
    def delete_collection(self, name: str) -> None:
        self.check_writable()
        self._folder.claim(name)  # never a collection another process holds
        shard = self._shards.pop(name, None)
        self._opened.pop(name, None)
        if shard is not None:
            shard.close()
        self._folder.remove(name)

    def vectors(self, name: str) -> dict[str, int]:
        return dict(self._config(name)["vectors"])

    def metadata(self, name: str) -> dict:
        return dict(self._config(name).get("metadata") or {})

    @serialised
    def update_metadata(self, name: str, metadata: dict) -> None:
        config = self._config(name)
        if all(config.get("metadata", {}).get(k) == v for k, v in metadata.items()):
            return  # nothing new: no write (a read-only open on a full disk, or on read-only media, stays read-only)
        self.check_writable()
        config["metadata"] = {**(config.get("metadata") or {}), **metadata}
        self._folder.save_config(name, config)

    @serialised
    def add_vector(self, name: str, vector: VectorConfig) -> None:
        from qdrant_edge import Distance, UpdateOperation

        # Edge adds a vector to an existing shard without quantisation (create_dense_vector takes
        # none): a collection created with the style vector has it quantised, one given it later not
        self._update(name, UpdateOperation.create_dense_vector(vector.name, vector.dim, Distance.Cosine), MARGIN)
        config = self._config(name)
        config["vectors"][vector.name] = vector.dim
        self._folder.save_config(name, config)

    def payload_indexes(self, name: str) -> set[str]:
        return set(self._read(name, lambda shard: shard.info().payload_schema))

    @serialised
    def ensure_indexes(self, name: str) -> None:
        """Create the payload indexes poster search filters on; idempotent, so run on every open.
        On a read-only store they are made in the private copy of the shard only (filters and
        title words then mean what they mean on a writable store), never in the store."""
        from qdrant_edge import UpdateOperation

        have = self._read(name, lambda shard: shard.info().payload_schema)
        for field_name, kind in INDEXED_FIELDS.items():
            if field_name in have:
                current = _index_is_current(kind, have[field_name])
                # made again as this version makes it: a title index of schema 3 or before must be (whole
                # words); one only held in memory is, on a store this process may write, not in a private copy
                if current or (self.read_only and kind != "text"):
                    continue
                self._write(name, UpdateOperation.delete_field_index(field_name))
            self._write(name, UpdateOperation.create_field_index(field_name, _index_schema(kind)))

    def _update(self, name: str, operation: Any, size: int = 0) -> None:
        """One write; `size`: about how many bytes it adds (its write-ahead-log entry and segment data)."""
        self.check_writable()
        self._write(name, operation, size)

    def _write(self, name: str, operation: Any, size: int = 0) -> None:
        """One write to the folder Edge opened: the shard, or the private copy of a read-only one."""
        self._shard(name)  # opened first: its own space check, and a damaged collection said as such
        where = self._opened[name] if self.read_only else self.path  # a read-only store's copy is written, not the store
        check_free_space(where, self._open_bytes(name) + 4 * size + MARGIN, f"writing to collection '{name}'", kept=not self.read_only)
        self._read(name, lambda shard: shard.update(operation), "writing to")
        if not self.read_only:  # a private copy is neither flushed nor counted: it is removed at close
            self._written.add(name)

    def _read(self, name: str, call: Callable[[EdgeShard], T], doing: str = "reading") -> T:
        """call(shard): Edge reports files it cannot decode as plain exceptions, or as Rust panics
        (BaseException): both are damage to say in one line, not a traceback."""
        try:
            while True:
                shard = self._shard(name)
                with self._calls:
                    if self._shards.get(name) is shard:  # else closed meanwhile, lent to an index build: open it again
                        return call(shard)
        except (KeyboardInterrupt, SystemExit, BadInput):
            raise
        except BaseException as e:
            raise Damaged(
                f"Qdrant Edge failed {doing} collection '{name}' in {self.path} ({reason(e)}): its files in "
                f"{self._folder.shard_dir(name)} may be damaged; restore them from a backup, or ingest into a new --collection"
            ) from None

    def _open_bytes(self, name: str) -> int:
        """What Edge may allocate to open a collection (store/space.py), in the folder it opens."""
        return open_bytes(self._opened.get(name) or self._folder.shard_dir(name))

    def _shard(self, name: str) -> EdgeShard:
        from qdrant_edge import EdgeShard

        shard = self._shards.get(name)
        if shard is not None:
            return shard
        with self._opening:  # the web server's threads may ask for a collection at the same time
            shard = self._shards.get(name)
            if shard is not None:
                return shard
            self._config(name)  # a missing or damaged collection is one line, here
            self._folder.check_shard_files(name)
            opened = self._folder.shard_to_open(name)  # on a read-only store, a private copy (Edge writes to what it opens)
            check_free_space(opened if self.read_only else self.path, open_bytes(opened), f"opening collection '{name}'")
            try:
                shard = EdgeShard.load(str(opened))
            except BaseException as e:  # Edge reports damaged files as errors, or as Rust panics (BaseException)
                if isinstance(e, (KeyboardInterrupt, SystemExit)):
                    raise
                raise Damaged(
                    f"cannot open collection '{name}' in {self.describe()}: its shard {self._folder.shard_dir(name)} is damaged "
                    f"({str(e).splitlines()[0][:200] if str(e) else type(e).__name__}); nothing was deleted: restore the folder from a backup, "
                    "or ingest into a new --collection (or --recreate this one)"
                ) from None
            self._shards[name] = shard
            self._opened[name] = opened
            self.ensure_indexes(name)
            self._check_count(name, shard)
        return shard

    def _record_count(self, name: str, shard: EdgeShard) -> None:
        """How many points the collection held when this process last wrote it (StoreFolder.record_points)."""
        try:
            self._folder.record_points(name, _points(shard))
        except (OSError, BadInput, Damaged):
            pass  # best effort (a full disk): the check is then skipped, nothing else depends on it

    def _check_count(self, name: str, shard: EdgeShard) -> None:
        """A note when the shard holds fewer points than when it was last written (see _record_count)."""
        recorded = self._folder.recorded_points(name)
        if recorded is None:
            return
        held = _points(shard)
        if held < recorded:
            print(
                f"Note: collection '{name}' holds {held} points, {recorded} when it was last written: files of its shard "
                f"{self._folder.shard_dir(name)} may be lost or damaged; nothing was deleted. Restore the folder from a backup, or run "
                f"{command('ingest')} with the same catalog to embed the missing posters again",
                file=sys.stderr,
            )

    # --- points ------------------------------------------------------------------------------

    def upsert(self, name: str, records: Sequence[Record]) -> None:
        from qdrant_edge import Point, UpdateOperation

        points = [Point(r.id, {k: np.asarray(v, dtype=np.float32).tolist() for k, v in r.vectors.items()}, r.payload) for r in records]
        # Durable once update() returns: Edge writes the WAL first, and replays it on the next
        # open after a crash (kill -9 included). Segments are flushed on close().
        size = sum(sum(np.size(v) for v in r.vectors.values()) * 4 + len(json.dumps(r.payload)) for r in records)
        self._update(name, UpdateOperation.upsert_points(points), size)
        self._wrote(name, sum(len(r.vectors) for r in records))

    def update_vectors(self, name: str, ids: Sequence[str], vector_name: str, vectors: np.ndarray) -> None:
        from qdrant_edge import PointVectors, UpdateOperation

        operation = UpdateOperation.update_vectors([PointVectors(i, {vector_name: v}) for i, v in zip(ids, as_vector_list(vectors))])
        self._update(name, operation, int(np.size(vectors)) * 4)
        self._wrote(name, len(ids))

    def _wrote(self, name: str, vectors: int) -> None:
        """Count vectors written: for the index build (BUILD_APART_AT), and to flush every FLUSH_EVERY."""
        self._unbuilt[name] = self._unbuilt.get(name, 0) + vectors
        self._unflushed[name] = self._unflushed.get(name, 0) + vectors
        if self._unflushed[name] >= FLUSH_EVERY and not self.read_only:
            self._flush(name)

    def _flush(self, name: str) -> None:
        self._read(name, lambda shard: shard.flush(), "flushing")
        self._unflushed.pop(name, None)

    def overwrite_payloads(self, name: str, items: Sequence[tuple[str, dict]]) -> None:
        from qdrant_edge import UpdateOperation

        for point_id, payload in items:
            self._update(name, UpdateOperation.overwrite_payload([point_id], payload))

    def set_payloads(self, name: str, items: Sequence[tuple[str, dict]]) -> None:
        """Set the given keys of each point's payload (its other keys stay): one check of free space
        for the batch, then one update per point (each durable when it returns)."""
        from qdrant_edge import UpdateOperation

        if not items:
            return
        size = sum(len(json.dumps(payload)) for _, payload in items)
        self._update(name, UpdateOperation.set_payload([items[0][0]], items[0][1]), size)
        for point_id, payload in items[1:]:
            self._read(name, lambda shard: shard.update(UpdateOperation.set_payload([point_id], payload)), "writing to")  # noqa: B023 (called at once, inside the loop)

    def delete(self, name: str, ids: Sequence[str]) -> None:
        from qdrant_edge import UpdateOperation

        self._update(name, UpdateOperation.delete_points(list(ids)))

    def retrieve(self, name: str, ids: Sequence[str], with_payload: bool | list[str], with_vectors: bool | list[str]) -> list[Record]:
        valid: list[int | UUID | str] = [i for i in ids if is_point_id(i)]  # Qdrant ids are UUIDs: anything else is simply not stored
        if not valid:
            return []
        records = self._read(
            name, lambda shard: shard.retrieve(valid, with_payload=_payload_selector(with_payload), with_vector=with_vectors)
        )
        return [_record(r) for r in records]

    def scroll(self, name, filter, limit, offset, with_payload, with_vectors):
        from qdrant_edge import ScrollRequest

        request = ScrollRequest(
            offset=offset, limit=limit, filter=edge_filter(filter), with_payload=_payload_selector(with_payload), with_vector=with_vectors
        )
        records, next_offset = self._read(name, lambda shard: shard.scroll(request))
        return [_record(r) for r in records], next_offset

    def scroll_ordered(self, name, filter, key, descending, start_from, limit, with_payload) -> list[Record]:  # as Engine's
        from qdrant_edge import Direction, OrderBy, ScrollRequest

        order = OrderBy(key, Direction.Desc if descending else Direction.Asc, start_from=start_from)
        request = ScrollRequest(limit=limit, filter=edge_filter(filter), with_payload=_payload_selector(with_payload), order_by=order)
        records, _ = self._read(name, lambda shard: shard.scroll(request))
        return [_record(r) for r in records]

    def facet(self, name: str, key: str, filter: PointFilter, limit: int) -> list[tuple[str | int, int]]:
        from qdrant_edge import FacetRequest

        request = FacetRequest(key, limit=limit, exact=True, filter=edge_filter(filter))
        return [(hit.value, hit.count) for hit in self._read(name, lambda shard: shard.facet(request))]

    def count(self, name: str, filter: PointFilter = PointFilter()) -> int:
        from qdrant_edge import CountRequest

        if filter.is_empty():
            return self._read(name, _points)
        request = CountRequest(exact=True, filter=edge_filter(filter))
        return self._read(name, lambda shard: shard.count(request))

    # --- search ------------------------------------------------------------------------------

    def query(
        self, name, vectors, vector_name, limit, filter, exact, with_payload, score_threshold=None, hnsw_ef=None
    ) -> list[list[Hit]]:  # as Engine's
        from qdrant_edge import Query, QueryBatchRequest, QueryRequest

        requests = [
            QueryRequest(
                limit=limit,
                query=Query.Nearest(v, using=vector_name),
                filter=edge_filter(filter),
                params=_search_params(exact, hnsw_ef),
                with_payload=_payload_selector(with_payload),
                score_threshold=score_threshold,
            )
            for v in as_vector_list(vectors)
        ]
        if len(requests) == 1:
            return [[_hit(p) for p in self._read(name, lambda shard: shard.query(requests[0]))]]
        return [[_hit(p) for p in found] for found in self._read(name, lambda shard: shard.query_batch(QueryBatchRequest(requests)))]

    def recommend(self, name, positive, negative, vector_name, limit, filter, with_payload) -> list[Hit]:  # as Engine's
        from qdrant_edge import Query, QueryRequest, RecommendQuery

        query = Query.RecommendBestScore(
            RecommendQuery(
                positives=cast("list[NamedVector]", as_vector_list(positive)), negatives=cast("list[NamedVector]", as_vector_list(negative))
            ),
            using=vector_name,
        )
        request = QueryRequest(
            limit=limit, query=query, filter=edge_filter(filter), params=_search_params(False), with_payload=_payload_selector(with_payload)
        )
        return [_hit(p) for p in self._read(name, lambda shard: shard.query(request))]

    def _waiting(self, name: str) -> int:
        """About how many vectors wait for the search index: written since this process last built
        it, or left by a build that was stopped (the segments' vectors that are not indexed)."""
        info = self._read(name, lambda shard: shard.info())
        return max(self._unbuilt.get(name, 0), int(info.points_count) - int(info.indexed_vectors_count))

    def index_waiting(self, name: str) -> bool:
        """Whether BUILD_APART_AT vectors or more wait for the index (a collection smaller than that
        is built whenever it is written, in a moment)."""
        return self._waiting(name) >= BUILD_APART_AT

    def optimize(self, name: str, progress: bool = False) -> None:
        """Merge segments and build HNSW where a segment is over the indexing threshold; from
        BUILD_APART_AT vectors on in a child process (store/edge_build.py), which Ctrl-C stops at
        once. The optimiser writes new segments before it removes the old ones: without room for a
        copy it is left for later (searches stay exact scans meanwhile), with a note; the data is
        stored either way."""
        self.check_writable()
        self._shard(name)
        needed = folder_bytes(self._folder.shard_dir(name)) + self._open_bytes(name)
        try:
            check_free_space(self.path, needed, "building the search index")
        except BadInput as e:
            print(f"Note: {e}; the next ingest builds it", file=sys.stderr)
            return
        clear_stale_builds(self._folder.shard_dir(name))
        waiting = self._waiting(name)
        if waiting < BUILD_APART_AT:
            self._read(name, lambda shard: shard.optimize(), "optimising")
            self._written.add(name)
        else:
            self._build_apart(name, waiting, progress)
        self._unbuilt.pop(name, None)

    def _build_apart(self, name: str, waiting: int, progress: bool) -> None:
        """The build in a child process, the shard closed here meanwhile: a thread of this process
        that asks for the collection waits for the build (it waits to open the shard again)."""
        with self._opening:
            with self._calls:
                self._flush(name)  # the child then replays no log
                shard = self._shards.pop(name)
                self._opened.pop(name, None)
                self._record_count(name, shard)
                shard.close()
                self._written.discard(name)
            release_freed_memory()  # what the shard held, before the child loads it again
            try:
                build_in_child(self._folder.shard_dir(name), f"{waiting:,} vectors of collection '{name}'", progress)
            except KeyboardInterrupt:
                print(
                    f"Note: stopped building the search index of collection '{name}': its posters are stored and searched "
                    f"without it (every search scans them) until {command('index')} builds it, or the stopped command is run again",
                    file=sys.stderr,
                )
                raise


def edge_filter(f: PointFilter):
    """PointFilter -> a qdrant_edge Filter (None when there is no condition)."""
    if f.is_empty():
        return None
    from qdrant_edge import FieldCondition, Filter, HasIdCondition, HasVectorCondition, IsEmptyCondition, MatchText, MatchValue, RangeFloat

    must: list[ConditionType] = []
    must_not: list[ConditionType] = []
    if f.year_min is not None or f.year_max is not None:
        must.append(FieldCondition("year", range=RangeFloat(gte=f.year_min, lte=f.year_max)))
    if f.genre:
        must.append(FieldCondition("genres", match=MatchValue(f.genre)))
    if f.sha256:
        must.append(FieldCondition("sha256", match=MatchValue(f.sha256)))
    if f.title_words:
        must.append(FieldCondition("title", match=MatchText(f.title_words)))
    for field_name, low, high in f.ranges:
        must.append(FieldCondition(field_name, range=RangeFloat(gte=low, lte=high)))
    must.extend(IsEmptyCondition(field_name) for field_name in f.missing)
    must_not.extend(IsEmptyCondition(field_name) for field_name in f.present)
    if f.has_vector:
        must.append(HasVectorCondition(f.has_vector))
    if f.lacks_vector:
        must_not.append(HasVectorCondition(f.lacks_vector))
    if f.exclude_ids:
        must_not.append(HasIdCondition({i for i in f.exclude_ids if is_point_id(i)}))
    if f.exclude_sha256:
        must_not.append(FieldCondition("sha256", match=MatchValue(f.exclude_sha256)))
    return Filter(must=must or None, must_not=must_not or None)


def _vector_params(v: VectorConfig):
    from qdrant_edge import Distance, EdgeVectorParams, Memory

    # Cold: mapped, not read in whole when the shard opens (Edge's default, Cached, reads every 32 MB
    # chunk into memory): a one-query process holds only the pages its search touches; the page
    # cache keeps them warm for the next process.
    return EdgeVectorParams(size=v.dim, distance=Distance.Cosine, memory=Memory.Cold, quantization_config=_quantization(v))


def _quantization(v: VectorConfig):
    """int8 scalar quantisation, mapped cold as the vectors (a one-query process reads only what its
    search touches); quantile 0.99: the extreme 1% of values are clipped, so the rest keep their resolution."""
    from qdrant_edge import Memory, ScalarQuantizationConfig, ScalarType

    return ScalarQuantizationConfig(ScalarType.Int8, quantile=QUANTILE, memory=Memory.Cold) if v.quantized else None


def _index_schema(kind: str):
    """Every payload index mapped cold, as the vectors: opening a shard then reads none of them
    whole (in-memory keyword and integer indexes were most of the time a 100,000-poster store
    took to open: 0.63 s against 0.19 s mapped), and a query touches only the pages it needs.
    Qdrant's extra graph links per indexed value stay on for every field: with them only on the
    fields searches filter on, a million posters indexed in 363 s instead of 997, but `duplicates`
    found 963 to 993 of 1,000 planted near-copies instead of all (docs/performance.md#the-index-build)."""
    from qdrant_edge import IntegerIndexParams, KeywordIndexParams, Memory, TextIndexParams

    if kind == "text":  # title search: words, case- and accent-insensitive
        return TextIndexParams(
            tokenizer=_text_tokenizer(), lowercase=True, ascii_folding=True, max_token_len=TOKEN_PREFIX_CHARS, memory=Memory.Cold
        )
    if kind == "integer":
        return IntegerIndexParams(lookup=True, range=True, memory=Memory.Cold)
    return KeywordIndexParams(memory=Memory.Cold)


def _index_is_current(kind: str, info: Any) -> bool:
    """Whether an existing index is as _index_schema makes it (older stores: in memory, or a title
    index of whole words, schema 3 and before)."""
    from qdrant_edge import Memory

    params = getattr(info, "params", None)
    if getattr(params, "memory", None) != Memory.Cold:
        return False
    return kind != "text" or getattr(params, "tokenizer", None) == _text_tokenizer()


def _text_tokenizer():
    from qdrant_edge import TokenizerType

    return TokenizerType.Prefix


def _search_params(exact: bool, hnsw_ef: int | None = None):
    from qdrant_edge import QuantizationSearchParams, SearchParams

    if exact:
        return SearchParams(exact=True)
    # ignored for a vector stored without quantisation
    return SearchParams(hnsw_ef=hnsw_ef or HNSW_EF, quantization=QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING))


def _payload_selector(with_payload: bool | list[str]):
    if isinstance(with_payload, bool):
        return with_payload
    from qdrant_edge import PayloadSelector

    return PayloadSelector.Include(list(with_payload))


def _record(r) -> Record:
    vectors = {k: np.asarray(v, dtype=np.float32) for k, v in (r.vector or {}).items()} if isinstance(r.vector, dict) else {}
    return Record(str(r.id), dict(r.payload or {}), vectors)


def _hit(p) -> Hit:
    return Hit(str(p.id), float(p.score), dict(p.payload or {}))


def _points(shard: EdgeShard) -> int:
    """The exact number of points an open shard holds. Without a filter Qdrant's estimate is the
    segments' own point counts, exact, at once; an exact count visits every point (77 ms at 1M)."""
    from qdrant_edge import CountRequest

    return int(shard.count(CountRequest(exact=False, filter=None)))
