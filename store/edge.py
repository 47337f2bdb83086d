"""The embedded store: Qdrant Edge, the Qdrant engine itself running in this process.

A store is a folder; each collection is one Edge shard in it:

    qdrant_data/
      poster-search-store.json         marks the folder as an Edge store (format, Edge version)
      .lock                            held (flock) by the one process using the store
      collections/<name>/collection.json   vectors, and the metadata Qdrant keeps per collection
      collections/<name>/collection.backup.json   the same, written after it: either restores the other
      collections/<name>/shard/        the shard: Qdrant's own segment and WAL files

Edge has no collections or collection metadata of its own (a shard is what a server keeps per
collection), so this module adds the thin layer a server would: the folder per collection and a
JSON file with its vectors and metadata (the embedding it was made with). Search, filters,
payload indexes (including the full-text index on `title`), recommend and HNSW are Qdrant's.

Nothing stored is deleted unless asked for. A collection whose metadata is lost (both JSON files
gone or damaged) but whose shard is there is *orphaned*: every command says so in one line and
how to repair it (ingest re-adopts the shard after checking stored vectors against the poster
files; ingest/repair.py), and creating a collection never clears a shard that holds points.

Free space is checked before Edge is asked to allocate any (store/space.py): Edge maps its files
into memory, and a write to a mapped file on a full disk kills the process with SIGBUS, which no
error handling can catch.

Search parameters (docs/store.md#store): collections are exact-scanned until a segment holds more
than INDEXING_THRESHOLD_KB of one vector (about 5,000 posters of 512-d); then `optimize()`, run
at the end of an ingest, builds an HNSW graph (m=16, ef_construct=100: Qdrant's defaults) and
interactive queries use it with hnsw_ef=128. Evaluations (era, k-NN baselines) ask for exact search.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from errors import UserError
from safe_io import UnsafeFile, open_lock_file, read_regular, write_atomic
from store.engine import Hit, PointFilter, Record, StoreDamaged, VectorConfig, as_vector_list, is_point_id
from store.schema import INDEXED_FIELDS, check_collection_name
from store.space import MARGIN, check_free_space, folder_bytes, open_bytes

if TYPE_CHECKING:
    from qdrant_edge import ConditionType, NamedVector  # type aliases of the stub only

MARKER = "poster-search-store.json"
FORMAT = 1
CONFIG, BACKUP = "collection.json", "collection.backup.json"
POINTS_AT_CLOSE = "points_at_close"  # in collection.json, beside vectors and metadata
HNSW_M = 16  # Qdrant's default
HNSW_EF_CONSTRUCT = 100  # Qdrant's default
HNSW_EF = 128
INDEXING_THRESHOLD_KB = 10_000
FULL_SCAN_THRESHOLD_KB = 10_000  # a filter matching fewer vectors than this is answered by exact scan
MAX_METADATA_BYTES = 4 * 1024 * 1024  # collection.json, its backup, the marker, a shard's config: kilobytes when this module writes them


def edge_version() -> str:
    from importlib.metadata import version

    return version("qdrant-edge-py")


class EdgeEngine:
    """The embedded store in `path`, opened by one process at a time."""

    def __init__(self, path: Path, must_exist: bool = False):
        self.path = Path(path)
        self._shards: dict = {}  # collection name -> EdgeShard, opened on first use
        self._opening = threading.Lock()
        self._written: set[str] = set()  # collections changed since open: flushed on close
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"store path {self.path} is a file, not a folder")
        if (self.path / "collections").exists() and not (self.path / "collections").is_dir():  # where every collection lives
            raise UserError(
                f"{self.path / 'collections'} is not a folder: this is not a whole store (move that file away, or use another --qdrant-path)"
            )
        if (
            must_exist and not (self.path / MARKER).is_file() and not (self.path / "collections").is_dir()
        ):  # a lost marker: written anew below
            raise UserError(f"no store at {self.path}: run `python cli.py ingest` first, or pass --qdrant-path / --qdrant-url")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot open store {self.path}: {e.strerror}") from None
        self._lock: int | None = None
        self._collection_locks: dict[str, int] = {}  # collection name -> its lock file, held while open
        self._lock = _take_lock(
            self.path / ".lock",
            f"the store {self.path} is in use by another process{{holder}}; the embedded store allows one at a time: wait for it to "
            "finish, or use a Qdrant server (--qdrant-url) for several processes",
        )
        marker = self.path / MARKER
        if not marker.is_file():
            try:
                _write_json(marker, {"engine": "qdrant-edge", "format": FORMAT, "created_with": f"qdrant-edge-py {edge_version()}"})
            except OSError as e:
                self.close()
                raise UserError(f"cannot write to store {self.path}: {e.strerror or e}") from None
        else:
            self._check_marker(marker)

    def _check_marker(self, marker: Path) -> None:
        try:
            data = _read_json(marker, "the store marker")
            version = data.get("format") if isinstance(data, dict) else None
        except (OSError, ValueError, UnsafeFile) as e:
            self.close()
            raise StoreDamaged(
                f"{marker} is damaged ({type(e).__name__}): it only marks the folder as a poster-search store; "
                "delete it and run again, and it is written anew"
            ) from None
        if not isinstance(version, int):
            self.close()
            raise StoreDamaged(f"{marker} records no store format (format {version!r}): delete it and run again, and it is written anew")
        if version > FORMAT:
            self.close()
            raise UserError(
                f"the store {self.path} has format {version}, made by a newer poster search; this version reads format {FORMAT}: upgrade"
            )

    def describe(self) -> str:
        return f"local store {self.path}"

    def close(self) -> None:
        for name, shard in self._shards.items():
            if name in self._written:
                shard.flush()  # so that the next open need not replay the WAL
                self._record_count(name, shard)
            shard.close()
        self._shards.clear()
        for fd in [*self._collection_locks.values(), *([self._lock] if self._lock is not None else [])]:
            os.close(fd)  # releases the flock; the file is left as it is (never truncated: it may not be ours)
        self._collection_locks.clear()
        self._lock = None

    def _claim(self, name: str) -> None:
        """Lock the collection itself, wherever its folder really is: `collections/` or the
        collection's folder may be a link into a store another process holds, whose lock on that
        store's .lock says nothing here. Its lock file lies in the real folder, so every path to it
        meets the same lock; a collection another process holds is refused before anything is read."""
        if name in self._collection_locks:
            return
        folder = self._dir(name)
        if not folder.is_dir():
            return  # nothing there yet: create_collection claims it once the folder exists
        self._collection_locks[name] = _take_lock(
            folder / ".lock",
            f"collection '{name}' ({folder.resolve()}) is in use by another process{{holder}}: {self.path} reaches it through a link; "
            "nothing was changed. Wait for that process to finish, or use another --collection",
        )

    # --- collections -------------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        check_collection_name(name)
        return self.path / "collections" / name

    def collection_names(self) -> list[str]:
        """Collections of the store, the damaged ones included (opening them says what is wrong)."""
        root = self.path / "collections"
        if not root.is_dir():
            return []
        return sorted(d.name for d in root.iterdir() if any((d / f).exists() for f in (CONFIG, BACKUP, "shard")))

    def collection_exists(self, name: str) -> bool:
        """True once the collection was made: its metadata, or a shard of stored points without it
        (an orphan: reading it then says what is damaged; it is never created over)."""
        folder = self._dir(name)
        return any((folder / f).is_file() for f in (CONFIG, BACKUP)) or self.orphaned(name)

    def orphaned(self, name: str) -> bool:
        """The collection's metadata is lost (both files gone or damaged) while its shard holds points."""
        folder = self._dir(name)
        if not (folder / "shard" / "edge_config.json").is_file():
            return False
        return all(_read_config(folder / f) is None for f in (CONFIG, BACKUP)) and not self._empty_shard(name)

    def _empty_shard(self, name: str) -> bool:
        """Whether the shard holds no point: a creation interrupted before the metadata (its last
        step), which create_collection then makes anew. A shard that cannot be read holds points."""
        from qdrant_edge import EdgeShard

        try:
            self._check_shard_files(name)
            shard = EdgeShard.load(str(self._dir(name) / "shard"))
        except Exception:
            return False
        try:
            return _points(shard) == 0
        except Exception:
            return False
        finally:
            shard.close()

    def _config(self, name: str) -> dict:
        """The collection's vectors and metadata: from collection.json, else from its backup (which
        then restores it); StoreDamaged, naming the files, when neither can be read."""
        folder = self._dir(name)
        self._claim(name)
        primary, backup = _read_config(folder / CONFIG), _read_config(folder / BACKUP)
        if primary is not None:
            if backup is None:
                self._save_config(name, primary)
            return primary
        if backup is not None:
            print(f"Note: {folder / CONFIG} was missing or damaged; restored it from {BACKUP}", file=sys.stderr)
            self._save_config(name, backup)
            return backup
        if self.orphaned(name):
            raise StoreDamaged(
                f"collection '{name}' in {self.path} is damaged: {folder / CONFIG} and its backup are missing or unreadable, "
                f"while {folder / 'shard'} holds its points; nothing was deleted. Run `python cli.py ingest` with the same "
                "catalog, --posters and --weights to rebuild them from the shard (it checks stored vectors against the posters first)"
            )
        raise UserError(f"no collection '{name}' in {self.describe()}")

    def _save_config(self, name: str, config: dict) -> None:
        folder = self._dir(name)
        _write_json(folder / CONFIG, config)
        _write_json(folder / BACKUP, config)  # second: at every moment one of the two is whole

    def adopt(self, name: str, metadata: dict) -> None:
        """Write the metadata of an orphaned collection anew: its vectors from the shard's own config,
        `metadata` from the caller, who has checked that the stored vectors are that embedding."""
        folder = self._dir(name)
        self._claim(name)
        try:
            shard_config = _read_json(folder / "shard" / "edge_config.json", "the shard's config")
            vectors = {vector: int(params["size"]) for vector, params in shard_config["vectors"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError, UnsafeFile) as e:
            raise StoreDamaged(
                f"cannot rebuild collection '{name}': its shard's config {folder / 'shard' / 'edge_config.json'} is unreadable ({type(e).__name__})"
            ) from None
        self._save_config(name, {"vectors": vectors, "metadata": metadata})

    def open_orphan(self, name: str) -> None:
        """Open an orphaned collection's shard without its metadata, to read what it holds (ingest/repair.py)."""
        from qdrant_edge import EdgeShard

        if name not in self._shards:
            self._claim(name)
            self._check_shard_files(name)
            check_free_space(self.path, open_bytes(self._dir(name) / "shard"), f"opening collection '{name}'")
            self._shards[name] = EdgeShard.load(str(self._dir(name) / "shard"))

    def shard_vectors(self, name: str) -> dict[str, int]:
        """The named vectors of a collection's shard (for an orphan, whose metadata is lost)."""
        path = self._dir(name) / "shard" / "edge_config.json"
        try:
            shard_config = _read_json(path, "the shard's config")
            return {vector: int(params["size"]) for vector, params in shard_config["vectors"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise StoreDamaged(f"collection '{name}': its shard's config {path} is unreadable ({type(e).__name__})") from None

    def create_collection(self, name: str, vectors: Sequence[VectorConfig], metadata: dict, sharding=None) -> None:
        from qdrant_edge import EdgeConfig, EdgeOptimizersConfig, EdgeShard, HnswIndexConfig

        folder = self._dir(name)
        self._claim(name)
        if self.orphaned(name):
            self._config(name)  # StoreDamaged: a shard of stored points is never created over
        if folder.exists():  # a half-made collection (interrupted before its metadata was written): nothing in it is stored
            shutil.rmtree(folder)
            lock = self._collection_locks.pop(name, None)  # its file went with the folder: claimed anew below
            if lock is not None:
                os.close(lock)
        check_free_space(self.path, 2 * MARGIN, f"creating collection '{name}'")
        config = EdgeConfig(
            vectors={v.name: _vector_params(v) for v in vectors},
            hnsw_config=HnswIndexConfig(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=FULL_SCAN_THRESHOLD_KB),
            optimizers=EdgeOptimizersConfig(indexing_threshold=INDEXING_THRESHOLD_KB),
        )
        shard = EdgeShard.create(str(folder / "shard"), config)
        self._shards[name] = shard
        self._claim(name)
        self.ensure_indexes(name)
        # the metadata last: a collection exists once it is complete
        self._save_config(name, {"vectors": {v.name: v.dim for v in vectors}, "metadata": metadata})

    def delete_collection(self, name: str) -> None:
        self._claim(name)  # never a collection another process holds
        shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        folder = self._dir(name)
        if folder.exists():
            for f in (CONFIG, BACKUP):  # no longer a collection, even if the rest fails
                (folder / f).unlink(missing_ok=True)
            shutil.rmtree(folder)
        lock = self._collection_locks.pop(name, None)
        if lock is not None:
            os.close(lock)

    def vectors(self, name: str) -> dict[str, int]:
        return dict(self._config(name)["vectors"])

    def metadata(self, name: str) -> dict:
        return dict(self._config(name).get("metadata") or {})

    def update_metadata(self, name: str, metadata: dict) -> None:
        config = self._config(name)
        if all(config.get("metadata", {}).get(k) == v for k, v in metadata.items()):
            return  # nothing new: no write (a read-only open on a full disk stays read-only)
        config["metadata"] = {**(config.get("metadata") or {}), **metadata}
        self._save_config(name, config)

    def add_vector(self, name: str, vector: VectorConfig) -> None:
        from qdrant_edge import Distance, UpdateOperation

        self._update(name, UpdateOperation.create_dense_vector(vector.name, vector.dim, Distance.Cosine), MARGIN)
        config = self._config(name)
        config["vectors"][vector.name] = vector.dim
        self._save_config(name, config)

    def payload_indexes(self, name: str) -> set[str]:
        return set(self._read(name, lambda shard: shard.info().payload_schema))

    def ensure_indexes(self, name: str) -> None:
        """Create the payload indexes poster search filters on; idempotent, so run on every open."""
        from qdrant_edge import UpdateOperation

        have = self.payload_indexes(name)
        for field_name, kind in INDEXED_FIELDS.items():
            if field_name not in have:
                self._update(name, UpdateOperation.create_field_index(field_name, _index_schema(kind)))

    def _update(self, name: str, operation, size: int = 0) -> None:
        """One write; `size`: about how many bytes it adds (its write-ahead-log entry and segment data)."""
        self._shard(name)  # opened first: its own space check, and a damaged collection said as such
        check_free_space(self.path, self._open_bytes(name) + 4 * size + MARGIN, f"writing to collection '{name}'", kept=True)
        self._read(name, lambda shard: shard.update(operation), "writing to")
        self._written.add(name)

    def _read(self, name: str, call, doing: str = "reading"):
        """call(shard): Edge reports files it cannot decode as plain exceptions, or as Rust panics
        (BaseException): both are damage to say in one line, not a traceback."""
        shard = self._shard(name)
        try:
            return call(shard)
        except (KeyboardInterrupt, SystemExit, UserError):
            raise
        except BaseException as e:
            reason = " ".join(str(e).split())[:200] or type(e).__name__
            raise StoreDamaged(
                f"Qdrant Edge failed {doing} collection '{name}' in {self.path} ({reason}): its files in "
                f"{self._dir(name) / 'shard'} may be damaged; restore them from a backup, or ingest into a new --collection"
            ) from None

    def _open_bytes(self, name: str) -> int:
        """What Edge may allocate to open a collection (store/space.py)."""
        return open_bytes(self._dir(name) / "shard")

    def _shard(self, name: str):
        from qdrant_edge import EdgeShard

        shard = self._shards.get(name)
        if shard is not None:
            return shard
        with self._opening:  # the web server's threads may ask for a collection at the same time
            shard = self._shards.get(name)
            if shard is not None:
                return shard
            self._config(name)  # a missing or damaged collection is one line, here
            self._check_shard_files(name)
            check_free_space(self.path, self._open_bytes(name), f"opening collection '{name}'")
            try:
                shard = EdgeShard.load(str(self._dir(name) / "shard"))
            except BaseException as e:  # Edge reports damaged files as errors, or as Rust panics (BaseException)
                if isinstance(e, (KeyboardInterrupt, SystemExit)):
                    raise
                raise StoreDamaged(
                    f"cannot open collection '{name}' in {self.describe()}: its shard {self._dir(name) / 'shard'} is damaged "
                    f"({str(e).splitlines()[0][:200] if str(e) else type(e).__name__}); nothing was deleted: restore the folder from a backup, "
                    "or ingest into a new --collection (or --recreate this one)"
                ) from None
            self._shards[name] = shard
            self.ensure_indexes(name)
            self._check_count(name, shard)
        return shard

    def _check_shard_files(self, name: str) -> None:
        """StoreDamaged unless the shard holds only folders and regular files: Edge reads what it
        finds, and a FIFO would hang it, /dev/zero fill the memory, a link lead anywhere."""
        shard = self._dir(name) / "shard"
        for root, folders, files in os.walk(shard):  # links to folders are listed, not followed
            for entry in (*folders, *files):
                path = Path(root) / entry
                mode = path.lstat().st_mode
                if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                    raise StoreDamaged(
                        f"cannot open collection '{name}': {path} is not a regular file (a link, a FIFO or a device), which a shard "
                        "never holds; nothing was read or deleted. Restore the folder from a backup, or ingest into a new --collection"
                    )

    def _record_count(self, name: str, shard) -> None:
        """How many points the collection held when this process last wrote it: fewer at the next
        open means files were lost or damaged (Edge opens what is left without a word)."""
        try:
            config = self._config(name)
            self._save_config(name, {**config, POINTS_AT_CLOSE: _points(shard)})
        except (OSError, UserError, StoreDamaged):
            pass  # best effort (a full disk): the check is then skipped, nothing else depends on it

    def _check_count(self, name: str, shard) -> None:
        """A note when the shard holds fewer points than when it was last written (see _record_count)."""
        recorded = self._config(name).get(POINTS_AT_CLOSE)
        if not isinstance(recorded, int):
            return
        held = _points(shard)
        if held < recorded:
            print(
                f"Note: collection '{name}' holds {held} points, {recorded} when it was last written: files of its shard "
                f"{self._dir(name) / 'shard'} may be lost or damaged; nothing was deleted. Restore the folder from a backup, or run "
                "`python cli.py ingest` with the same catalog to embed the missing posters again",
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

    def update_vectors(self, name: str, ids: Sequence[str], vector_name: str, vectors: np.ndarray) -> None:
        from qdrant_edge import PointVectors, UpdateOperation

        operation = UpdateOperation.update_vectors([PointVectors(i, {vector_name: v}) for i, v in zip(ids, as_vector_list(vectors))])
        self._update(name, operation, int(np.size(vectors)) * 4)

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
        valid = [i for i in ids if is_point_id(i)]  # Qdrant ids are UUIDs: anything else is simply not stored
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

    def count(self, name: str, filter: PointFilter = PointFilter()) -> int:
        from qdrant_edge import CountRequest

        request = CountRequest(exact=True, filter=edge_filter(filter))
        return self._read(name, lambda shard: shard.count(request))

    # --- search ------------------------------------------------------------------------------

    def query(self, name, vectors, vector_name, limit, filter, exact, with_payload, score_threshold=None) -> list[list[Hit]]:
        from qdrant_edge import Query, QueryBatchRequest, QueryRequest

        requests = [
            QueryRequest(
                limit=limit,
                query=Query.Nearest(v, using=vector_name),
                filter=edge_filter(filter),
                params=_search_params(exact),
                with_payload=_payload_selector(with_payload),
                score_threshold=score_threshold,
            )
            for v in as_vector_list(vectors)
        ]
        if len(requests) == 1:
            return [[_hit(p) for p in self._read(name, lambda shard: shard.query(requests[0]))]]
        return [[_hit(p) for p in found] for found in self._read(name, lambda shard: shard.query_batch(QueryBatchRequest(requests)))]

    def recommend(self, name, positive, negative, vector_name, limit, filter, with_payload) -> list[Hit]:
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

    def optimize(self, name: str) -> None:
        """Merge segments and build HNSW where a segment is over the indexing threshold. The optimiser
        writes new segments before it removes the old ones: without room for a copy it is left for
        later (searches stay exact scans meanwhile), with a note; the data is stored either way."""
        self._shard(name)
        needed = folder_bytes(self._dir(name) / "shard") + self._open_bytes(name)
        try:
            check_free_space(self.path, needed, "building the search index")
        except UserError as e:
            print(f"Note: {e}; the next ingest builds it", file=sys.stderr)
            return
        self._read(name, lambda shard: shard.optimize(), "optimising")
        self._written.add(name)


def edge_filter(f: PointFilter):
    """PointFilter -> a qdrant_edge Filter (None when there is no condition)."""
    if f.is_empty():
        return None
    from qdrant_edge import FieldCondition, Filter, HasIdCondition, HasVectorCondition, MatchText, MatchValue, RangeFloat

    must: list[ConditionType] = []
    must_not: list[ConditionType] = []
    if f.year_min is not None or f.year_max is not None:
        must.append(FieldCondition("year", range=RangeFloat(gte=f.year_min, lte=f.year_max)))
    if f.genre:
        must.append(FieldCondition("genres", match=MatchValue(f.genre)))
    if f.title_words:
        must.append(FieldCondition("title", match=MatchText(f.title_words)))
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
    return EdgeVectorParams(size=v.dim, distance=Distance.Cosine, memory=Memory.Cold)


def _index_schema(kind: str):
    from qdrant_edge import PayloadSchemaType, TextIndexParams, TokenizerType

    if kind == "text":  # title search: words, case- and accent-insensitive; mapped cold, as the vectors
        from qdrant_edge import Memory

        return TextIndexParams(tokenizer=TokenizerType.Word, lowercase=True, ascii_folding=True, memory=Memory.Cold)
    return {"integer": PayloadSchemaType.Integer, "keyword": PayloadSchemaType.Keyword}[kind]


def _search_params(exact: bool):
    from qdrant_edge import SearchParams

    return SearchParams(exact=True) if exact else SearchParams(hnsw_ef=HNSW_EF)


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


def _read_config(path: Path) -> dict | None:
    """A collection's metadata file, or None if it is missing or not what this module writes (a
    link, a FIFO, a device or a huge file is not read: the store may come from anywhere)."""
    try:
        data = _read_json(path, "collection metadata")
    except (OSError, ValueError, UnsafeFile):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("vectors"), dict) or not isinstance(data.get("metadata", {}), dict):
        return None
    return data


def _read_json(path: Path, what: str):
    """JSON from a regular file of at most MAX_METADATA_BYTES, not through a link."""
    return json.loads(read_regular(path, MAX_METADATA_BYTES, what))


def _take_lock(path: Path, busy: str) -> int:
    """The lock file at `path` (opened without following a link, never truncated), flocked by this
    process; UserError `busy` (its {holder}: the holder's pid, if known) when another holds it."""
    fd = open_lock_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 16, 0).decode("ascii", "replace").strip()
        os.close(fd)
        raise UserError(busy.format(holder=f" (pid {holder})" if holder.isdigit() else "")) from None
    info = os.fstat(fd)
    if info.st_nlink == 1 and info.st_size <= 16:  # the pid, for the message another process gets; a file with other
        try:  # names (a hard link planted in the store) or other content is not ours to change
            pid = str(os.getpid()).encode()
            os.pwrite(fd, pid.ljust(max(len(pid), info.st_size)), 0)
        except OSError:
            pass  # not worth failing for on a full disk
    return fd


def _points(shard) -> int:
    """The exact number of points an open shard holds."""
    from qdrant_edge import CountRequest

    return int(shard.count(CountRequest(exact=True, filter=None)))


def _write_json(path: Path, data: dict) -> None:
    """Atomically (safe_io.write_atomic: a crash leaves the old file or the new one, and a link
    planted at the path or at a temp name is replaced, never written through); a full disk is one line."""
    try:
        write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False))
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}; the file as it was is kept") from None
