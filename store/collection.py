"""The poster collection: created for one embedding, refused to any other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from embedding.spec import EmbeddingSpec
from errors import UserError
from store.connection import StoreLocation, open_client
from store.retry import with_retries
from store.schema import DEFAULT_COLLECTION, INDEXED_FIELDS, SCHEMA_VERSION, VECTOR_NAME


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
    id: str
    payload: dict
    vector: np.ndarray | None = None


class PosterStore:
    """One Qdrant collection of poster embeddings. Use as a context manager (local mode holds a lock)."""

    retry_attempts = 5
    retry_wait = 0.5  # seconds before the first retry, doubling after each

    def __init__(self, location: StoreLocation, collection: str = DEFAULT_COLLECTION, must_exist: bool = False):
        self.location = location
        self.collection = collection
        self.client = open_client(location, must_exist=must_exist)
        self._owns_client = True

    def other_collection(self, collection: str) -> "PosterStore":
        """Another collection of the same store, on the same client (an embedded folder allows one)."""
        other = object.__new__(PosterStore)
        other.location, other.collection, other.client, other._owns_client = self.location, collection, self.client, False
        return other

    def _retry(self, what: str, call):
        return with_retries(call, f"{what} on {self.location.describe()}", self.retry_attempts, self.retry_wait)

    def __enter__(self) -> "PosterStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    # --- the collection and its embedding -------------------------------------------------

    def exists(self) -> bool:
        return self.client.collection_exists(self.collection)

    def stored_spec(self) -> EmbeddingSpec:
        """The embedding the collection was made with; UserError if there is no such collection."""
        if not self.exists():
            raise UserError(f"no collection '{self.collection}' in {self.location.describe()}: run `python cli.py ingest` first")
        info = self.client.get_collection(self.collection)
        vectors = info.config.params.vectors
        if not isinstance(vectors, dict) or VECTOR_NAME not in vectors:
            raise UserError(f"collection '{self.collection}' has no '{VECTOR_NAME}' vector: it was not made by poster search")
        metadata = (info.config.metadata or {}).get("embedding")
        if not metadata:
            raise UserError(f"collection '{self.collection}' records no embedding: it was not made by poster search")
        spec = EmbeddingSpec.from_dict(metadata)
        if vectors[VECTOR_NAME].size != spec.dim:
            raise UserError(
                f"collection '{self.collection}' holds {vectors[VECTOR_NAME].size}-d vectors but records a {spec.dim}-d embedding"
            )
        return spec

    def check_spec(self, spec: EmbeddingSpec) -> None:
        stored = self.stored_spec()
        if stored != spec:
            if stored.dim != spec.dim:
                what = f"holds {stored.dim}-d vectors, this embedding makes {spec.dim}-d vectors"
            else:
                differing = [k for k, v in spec.as_dict().items() if stored.as_dict()[k] != v]
                what = "differs in " + ", ".join(f"{k} (stored {stored.as_dict()[k]}, now {spec.as_dict()[k]})" for k in differing)
            raise UserError(
                f"collection '{self.collection}' was made with another embedding: {what}; "
                "use the same --weights, another --collection, or --recreate to start over"
            )

    def prepare(self, spec: EmbeddingSpec, recreate: bool = False, sharding: Sharding = Sharding()) -> None:
        """Make sure the collection exists for `spec`; an existing one must match it."""
        from qdrant_client import models

        self.check_sharding(sharding)
        if recreate and self.exists():
            self.client.delete_collection(self.collection)
        if self.exists():
            self.check_spec(spec)
            return
        vectors = {VECTOR_NAME: models.VectorParams(size=spec.dim, distance=models.Distance.COSINE)}
        self.create(vectors, {"embedding": spec.as_dict(), "schema_version": SCHEMA_VERSION}, sharding)

    def check_sharding(self, sharding: Sharding) -> None:
        if self.location.is_local and not sharding.is_default():
            raise UserError(
                "--shards, --replicas and --write-consistency need a Qdrant server or cluster (--qdrant-url): "
                "the embedded store is a single shard"
            )

    def create(self, vectors_config: dict, metadata: dict, sharding: Sharding = Sharding()) -> None:
        """Create the collection with these named vectors and metadata, and its payload indexes."""
        from qdrant_client import models

        self.check_sharding(sharding)
        self.client.create_collection(
            self.collection,
            vectors_config=vectors_config,
            metadata=metadata,
            shard_number=sharding.shards,
            replication_factor=sharding.replicas,
            write_consistency_factor=sharding.write_consistency,
        )
        if not self.location.is_local:  # local mode has no payload indexes (it warns if asked)
            for field, kind in INDEXED_FIELDS.items():
                self.client.create_payload_index(self.collection, field, models.PayloadSchemaType(kind), wait=True)

    def remember_posters_dir(self, posters_dir: Path) -> None:
        """Record where the poster files are, so contact sheets can find them later."""
        self.client.update_collection(self.collection, metadata={"posters_dir": str(Path(posters_dir).resolve())})

    def posters_dir(self) -> Path | None:
        folder = (self.client.get_collection(self.collection).config.metadata or {}).get("posters_dir")
        return Path(folder) if folder else None

    # --- points -----------------------------------------------------------------------------

    def count(self) -> int:
        return self.client.count(self.collection, exact=True).count if self.exists() else 0

    def existing_ids(self, ids: Sequence[str], chunk: int = 1000) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), chunk):
            part = list(ids[start : start + chunk])
            records = self._retry("reading ids", lambda: self.client.retrieve(self.collection, part, with_payload=False, with_vectors=False))
            found.update(str(r.id) for r in records)
        return found

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict]) -> None:
        """Write a batch and wait until Qdrant acknowledges it: what returns is stored."""
        from qdrant_client import models

        points = [
            models.PointStruct(id=i, vector={VECTOR_NAME: v.tolist()}, payload=p) for i, v, p in zip(ids, vectors, payloads)
        ]
        self._retry("an upsert", lambda: self.client.upsert(self.collection, points=points, wait=True))

    def upsert_records(self, records: list) -> None:
        """Write Qdrant Records as they are (all named vectors, payload, id), e.g. from another store."""
        from qdrant_client import models

        points = [models.PointStruct(id=r.id, vector=r.vector, payload=r.payload) for r in records]
        self._retry("an upsert", lambda: self.client.upsert(self.collection, points=points, wait=True))

    def points(self, with_vectors: bool = True, fields: list[str] | None = None, batch: int = 512) -> Iterator[StoredPoint]:
        """Every point (only the payload `fields`, if given), in batches, so memory stays bounded by the caller's use."""
        for records in self.scroll_batches(with_vectors=[VECTOR_NAME] if with_vectors else False, fields=fields, batch=batch):
            for r in records:
                vector = np.asarray(r.vector[VECTOR_NAME], dtype=np.float32) if with_vectors else None
                yield StoredPoint(str(r.id), r.payload or {}, vector)

    def scroll_batches(self, with_vectors: bool | list[str] = True, fields: list[str] | None = None, batch: int = 512) -> Iterator[list]:
        """Qdrant Records, a batch at a time (all named vectors with with_vectors=True)."""
        offset = None
        while True:
            records, offset = self._retry(
                "a scroll",
                lambda: self.client.scroll(self.collection, limit=batch, offset=offset, with_payload=fields or True, with_vectors=with_vectors),
            )
            yield records
            if offset is None:
                return

    def retrieve(self, ids: Iterable[str], with_vectors: bool = False) -> list[StoredPoint]:
        records = self.client.retrieve(self.collection, list(ids), with_payload=True, with_vectors=[VECTOR_NAME] if with_vectors else False)
        return [
            StoredPoint(str(r.id), r.payload or {}, np.asarray(r.vector[VECTOR_NAME], dtype=np.float32) if with_vectors else None)
            for r in records
        ]
