"""The embedded store: Qdrant Edge, the Qdrant engine itself running in this process.

A store is a folder; each collection is one Edge shard in it:

    qdrant_data/
      poster-search-store.json         marks the folder as an Edge store (format, Edge version)
      .lock                            held (flock) by the one process using the store
      collections/<name>/collection.json   vectors, and the metadata Qdrant keeps per collection
      collections/<name>/shard/        the shard: Qdrant's own segment and WAL files

Edge has no collections or collection metadata of its own (a shard is what a server keeps per
collection), so this module adds the thin layer a server would: the folder per collection and a
JSON file with its vectors and metadata (the embedding it was made with). Search, filters,
payload indexes (including the full-text index on `title`), recommend and HNSW are Qdrant's.

Search parameters (README, *Store*): collections are exact-scanned until a segment holds more
than INDEXING_THRESHOLD_KB of one vector (about 5,000 posters of 512-d); then `optimize()`, run
at the end of an ingest, builds an HNSW graph (m=16, ef_construct=100: Qdrant's defaults) and
interactive queries use it with hnsw_ef=128. Evaluations (era, k-NN baselines) ask for exact search.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from errors import UserError
from store.engine import Hit, PointFilter, Record, VectorConfig, as_vector_list, is_point_id
from store.schema import INDEXED_FIELDS, check_collection_name

MARKER = "poster-search-store.json"
FORMAT = 1
HNSW_M = 16  # Qdrant's default
HNSW_EF_CONSTRUCT = 100  # Qdrant's default
HNSW_EF = 128
INDEXING_THRESHOLD_KB = 10_000
FULL_SCAN_THRESHOLD_KB = 10_000  # a filter matching fewer vectors than this is answered by exact scan


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
        if must_exist and not (self.path / MARKER).is_file():
            raise UserError(f"no store at {self.path}: run `python cli.py ingest` first, or pass --qdrant-path / --qdrant-url")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.path / ".lock", "a+")
        except OSError as e:
            raise UserError(f"cannot open store {self.path}: {e.strerror}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.seek(0)
            holder = self._lock.read().strip()
            self._lock.close()
            raise UserError(
                f"the store {self.path} is in use by another process{f' (pid {holder})' if holder else ''}; the embedded store "
                "allows one at a time: wait for it to finish, or use a Qdrant server (--qdrant-url) for several processes"
            ) from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(str(os.getpid()))
        self._lock.flush()
        marker = self.path / MARKER
        if not marker.is_file():
            _write_json(marker, {"engine": "qdrant-edge", "format": FORMAT, "created_with": f"qdrant-edge-py {edge_version()}"})

    def describe(self) -> str:
        return f"local store {self.path}"

    def close(self) -> None:
        for name, shard in self._shards.items():
            if name in self._written:
                shard.flush()  # so that the next open need not replay the WAL
            shard.close()
        self._shards.clear()
        if not self._lock.closed:
            self._lock.seek(0)
            self._lock.truncate()
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    # --- collections -------------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        check_collection_name(name)
        return self.path / "collections" / name

    def collection_names(self) -> list[str]:
        root = self.path / "collections"
        return sorted(d.name for d in root.iterdir() if (d / "collection.json").is_file()) if root.is_dir() else []

    def collection_exists(self, name: str) -> bool:
        return (self._dir(name) / "collection.json").is_file()

    def _config(self, name: str) -> dict:
        return json.loads((self._dir(name) / "collection.json").read_text())

    def create_collection(self, name: str, vectors: Sequence[VectorConfig], metadata: dict, sharding=None) -> None:
        from qdrant_edge import EdgeConfig, EdgeOptimizersConfig, EdgeShard, HnswIndexConfig

        folder = self._dir(name)
        if folder.exists():  # a half-made collection (interrupted create): nothing in it is complete
            shutil.rmtree(folder)
        config = EdgeConfig(
            vectors={v.name: _vector_params(v) for v in vectors},
            hnsw_config=HnswIndexConfig(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=FULL_SCAN_THRESHOLD_KB),
            optimizers=EdgeOptimizersConfig(indexing_threshold=INDEXING_THRESHOLD_KB),
        )
        shard = EdgeShard.create(str(folder / "shard"), config)
        self._shards[name] = shard
        self.ensure_indexes(name)
        # collection.json last: a collection exists once it is complete
        _write_json(folder / "collection.json", {"vectors": {v.name: v.dim for v in vectors}, "metadata": metadata})

    def delete_collection(self, name: str) -> None:
        shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        folder = self._dir(name)
        if folder.exists():
            (folder / "collection.json").unlink(missing_ok=True)  # no longer a collection, even if the rest fails
            shutil.rmtree(folder)

    def vectors(self, name: str) -> dict[str, int]:
        return dict(self._config(name)["vectors"])

    def metadata(self, name: str) -> dict:
        return dict(self._config(name).get("metadata") or {})

    def update_metadata(self, name: str, metadata: dict) -> None:
        config = self._config(name)
        config["metadata"] = {**(config.get("metadata") or {}), **metadata}
        _write_json(self._dir(name) / "collection.json", config)

    def add_vector(self, name: str, vector: VectorConfig) -> None:
        from qdrant_edge import Distance, UpdateOperation

        self._update(name, UpdateOperation.create_dense_vector(vector.name, vector.dim, Distance.Cosine))
        config = self._config(name)
        config["vectors"][vector.name] = vector.dim
        _write_json(self._dir(name) / "collection.json", config)

    def payload_indexes(self, name: str) -> set[str]:
        return set(self._shard(name).info().payload_schema)

    def ensure_indexes(self, name: str) -> None:
        """Create the payload indexes poster search filters on; idempotent, so run on every open."""
        from qdrant_edge import UpdateOperation

        have = self.payload_indexes(name)
        for field_name, kind in INDEXED_FIELDS.items():
            if field_name not in have:
                self._update(name, UpdateOperation.create_field_index(field_name, _index_schema(kind)))

    def _update(self, name: str, operation) -> None:
        self._shard(name).update(operation)
        self._written.add(name)

    def _shard(self, name: str):
        from qdrant_edge import EdgeShard

        shard = self._shards.get(name)
        if shard is not None:
            return shard
        with self._opening:  # the web server's threads may ask for a collection at the same time
            shard = self._shards.get(name)
            if shard is not None:
                return shard
            if not self.collection_exists(name):
                raise UserError(f"no collection '{name}' in {self.describe()}")
            try:
                shard = EdgeShard.load(str(self._dir(name) / "shard"))
            except Exception as e:
                raise UserError(f"cannot open collection '{name}' in {self.describe()}: {str(e).splitlines()[0][:200]}") from None
            self._shards[name] = shard
            self.ensure_indexes(name)
        return shard

    # --- points ------------------------------------------------------------------------------

    def upsert(self, name: str, records: Sequence[Record]) -> None:
        from qdrant_edge import Point, UpdateOperation

        points = [Point(r.id, {k: np.asarray(v, dtype=np.float32).tolist() for k, v in r.vectors.items()}, r.payload) for r in records]
        # Durable once update() returns: Edge writes the WAL first, and replays it on the next
        # open after a crash (kill -9 included). Segments are flushed on close().
        self._update(name, UpdateOperation.upsert_points(points))

    def update_vectors(self, name: str, ids: Sequence[str], vector_name: str, vectors: np.ndarray) -> None:
        from qdrant_edge import PointVectors, UpdateOperation

        self._update(name, UpdateOperation.update_vectors([PointVectors(i, {vector_name: v}) for i, v in zip(ids, as_vector_list(vectors))]))

    def overwrite_payloads(self, name: str, items: Sequence[tuple[str, dict]]) -> None:
        from qdrant_edge import UpdateOperation

        for point_id, payload in items:
            self._update(name, UpdateOperation.overwrite_payload([point_id], payload))

    def delete(self, name: str, ids: Sequence[str]) -> None:
        from qdrant_edge import UpdateOperation

        self._update(name, UpdateOperation.delete_points(list(ids)))

    def retrieve(self, name: str, ids: Sequence[str], with_payload: bool | list[str], with_vectors: bool | list[str]) -> list[Record]:
        valid = [i for i in ids if is_point_id(i)]  # Qdrant ids are UUIDs: anything else is simply not stored
        if not valid:
            return []
        records = self._shard(name).retrieve(valid, with_payload=_payload_selector(with_payload), with_vector=with_vectors)
        return [_record(r) for r in records]

    def scroll(self, name, filter, limit, offset, with_payload, with_vectors):
        from qdrant_edge import ScrollRequest

        request = ScrollRequest(
            offset=offset, limit=limit, filter=edge_filter(filter), with_payload=_payload_selector(with_payload), with_vector=with_vectors
        )
        records, next_offset = self._shard(name).scroll(request)
        return [_record(r) for r in records], next_offset

    def count(self, name: str, filter: PointFilter = PointFilter()) -> int:
        from qdrant_edge import CountRequest

        return self._shard(name).count(CountRequest(exact=True, filter=edge_filter(filter)))

    # --- search ------------------------------------------------------------------------------

    def query(self, name, vectors, vector_name, limit, filter, exact, with_payload) -> list[list[Hit]]:
        from qdrant_edge import Query, QueryBatchRequest, QueryRequest

        requests = [
            QueryRequest(
                limit=limit,
                query=Query.Nearest(v, using=vector_name),
                filter=edge_filter(filter),
                params=_search_params(exact),
                with_payload=_payload_selector(with_payload),
            )
            for v in as_vector_list(vectors)
        ]
        shard = self._shard(name)
        if len(requests) == 1:
            return [[_hit(p) for p in shard.query(requests[0])]]
        return [[_hit(p) for p in found] for found in shard.query_batch(QueryBatchRequest(requests))]

    def recommend(self, name, positive, negative, vector_name, limit, filter, with_payload) -> list[Hit]:
        from qdrant_edge import Query, QueryRequest, RecommendQuery

        query = Query.RecommendBestScore(RecommendQuery(positives=as_vector_list(positive), negatives=as_vector_list(negative)), using=vector_name)
        request = QueryRequest(
            limit=limit, query=query, filter=edge_filter(filter), params=_search_params(False), with_payload=_payload_selector(with_payload)
        )
        return [_hit(p) for p in self._shard(name).query(request)]

    def optimize(self, name: str) -> None:
        """Merge segments and build HNSW where a segment is over the indexing threshold."""
        self._shard(name).optimize()
        self._written.add(name)


def edge_filter(f: PointFilter):
    """PointFilter -> a qdrant_edge Filter (None when there is no condition)."""
    if f.is_empty():
        return None
    from qdrant_edge import FieldCondition, Filter, HasIdCondition, HasVectorCondition, MatchText, MatchValue, RangeFloat

    must, must_not = [], []
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
    from qdrant_edge import Distance, EdgeVectorParams

    return EdgeVectorParams(size=v.dim, distance=Distance.Cosine)


def _index_schema(kind: str):
    from qdrant_edge import PayloadSchemaType, TextIndexParams, TokenizerType

    if kind == "text":  # title search: words, case- and accent-insensitive
        return TextIndexParams(tokenizer=TokenizerType.Word, lowercase=True, ascii_folding=True)
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


def _write_json(path: Path, data: dict) -> None:
    """Atomically: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    os.replace(tmp, path)
