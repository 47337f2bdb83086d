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
from store.schema import DEFAULT_COLLECTION, INDEXED_FIELDS, SCHEMA_VERSION, STYLE_VECTOR_NAME, VECTOR_NAME


# Where each vector's EmbeddingSpec is kept in the collection metadata.
_METADATA_KEY = {VECTOR_NAME: "embedding", STYLE_VECTOR_NAME: "style_embedding"}


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

    def stored_spec(self, vector_name: str = VECTOR_NAME) -> EmbeddingSpec:
        """The embedding a vector of the collection was made with; UserError if there is none."""
        if not self.exists():
            raise UserError(f"no collection '{self.collection}' in {self.location.describe()}: run `python cli.py ingest` first")
        info = self.client.get_collection(self.collection)
        vectors = info.config.params.vectors
        if not isinstance(vectors, dict) or VECTOR_NAME not in vectors:
            raise UserError(f"collection '{self.collection}' has no '{VECTOR_NAME}' vector: it was not made by poster search")
        if vector_name not in vectors:
            hint = " (ingest with --style adds it)" if vector_name == STYLE_VECTOR_NAME else ""
            raise UserError(f"collection '{self.collection}' has no '{vector_name}' vector{hint}")
        metadata = (info.config.metadata or {}).get(_METADATA_KEY.get(vector_name, vector_name))
        if not metadata:
            raise UserError(f"collection '{self.collection}' records no embedding for '{vector_name}': it was not made by poster search")
        spec = EmbeddingSpec.from_dict(metadata)
        if vectors[vector_name].size != spec.dim:
            raise UserError(
                f"collection '{self.collection}' holds {vectors[vector_name].size}-d vectors but records a {spec.dim}-d embedding"
            )
        return spec

    def has_vector(self, vector_name: str) -> bool:
        vectors = self.client.get_collection(self.collection).config.params.vectors
        return isinstance(vectors, dict) and vector_name in vectors

    def check_spec(self, spec: EmbeddingSpec, vector_name: str = VECTOR_NAME) -> None:
        stored = self.stored_spec(vector_name)
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

    def prepare(
        self, spec: EmbeddingSpec, recreate: bool = False, sharding: Sharding = Sharding(), style_spec: EmbeddingSpec | None = None
    ) -> None:
        """Make sure the collection exists for `spec` (and `style_spec`); existing vectors must match.

        A style vector asked for on a collection without one is added to it, empty: ingest then
        fills it in for the posters already stored.
        """
        from qdrant_client import models

        self.check_sharding(sharding)
        if recreate and self.exists():
            self.client.delete_collection(self.collection)
        if not self.exists():
            vectors = {VECTOR_NAME: models.VectorParams(size=spec.dim, distance=models.Distance.COSINE)}
            metadata = {"embedding": spec.as_dict(), "schema_version": SCHEMA_VERSION}
            if style_spec:
                vectors[STYLE_VECTOR_NAME] = models.VectorParams(size=style_spec.dim, distance=models.Distance.COSINE)
                metadata[_METADATA_KEY[STYLE_VECTOR_NAME]] = style_spec.as_dict()
            self.create(vectors, metadata, sharding)
            return
        self.check_spec(spec)
        if not style_spec:
            return
        if self.has_vector(STYLE_VECTOR_NAME):
            self.check_spec(style_spec, STYLE_VECTOR_NAME)
            return
        config = models.DenseVectorConfig(size=style_spec.dim, distance=models.Distance.COSINE)
        self.client.create_vector_name(self.collection, STYLE_VECTOR_NAME, models.DenseVectorNameConfig(dense=config))
        self.client.update_collection(self.collection, metadata={_METADATA_KEY[STYLE_VECTOR_NAME]: style_spec.as_dict()})

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

    def upsert(
        self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict], style_vectors: np.ndarray | None = None
    ) -> None:
        """Write a batch and wait until Qdrant acknowledges it: what returns is stored."""
        from qdrant_client import models

        named = [{VECTOR_NAME: v.tolist()} for v in vectors]
        if style_vectors is not None:
            for entry, style in zip(named, style_vectors):
                entry[STYLE_VECTOR_NAME] = style.tolist()
        points = [models.PointStruct(id=i, vector=v, payload=p) for i, v, p in zip(ids, named, payloads)]
        self._retry("an upsert", lambda: self.client.upsert(self.collection, points=points, wait=True))

    def set_vectors(self, ids: Sequence[str], vector_name: str, vectors: np.ndarray) -> None:
        """Set one named vector of stored points; their payloads and other vectors stay as they are."""
        from qdrant_client import models

        points = [models.PointVectors(id=i, vector={vector_name: v.tolist()}) for i, v in zip(ids, vectors)]
        self._retry("a vector update", lambda: self.client.update_vectors(self.collection, points=points, wait=True))

    def ids_without(self, vector_name: str) -> set[str]:
        """Ids of stored points that lack this named vector (e.g. stored before it was added)."""
        from qdrant_client import models

        if not self.has_vector(vector_name):
            return set()
        missing, offset = set(), None
        lacking = models.Filter(must_not=[models.HasVectorCondition(has_vector=vector_name)])
        while True:
            records, offset = self._retry(
                "a scroll", lambda: self.client.scroll(self.collection, scroll_filter=lacking, limit=2048, offset=offset, with_payload=False)
            )
            missing.update(str(r.id) for r in records)
            if offset is None:
                return missing

    def upsert_records(self, records: list) -> None:
        """Write Qdrant Records as they are (all named vectors, payload, id), e.g. from another store."""
        from qdrant_client import models

        points = [models.PointStruct(id=r.id, vector=r.vector, payload=r.payload) for r in records]
        self._retry("an upsert", lambda: self.client.upsert(self.collection, points=points, wait=True))

    def points(
        self, with_vectors: bool = True, fields: list[str] | None = None, batch: int = 512, vector_name: str = VECTOR_NAME
    ) -> Iterator[StoredPoint]:
        """Every point (only the payload `fields`, if given; `vector_name` as its vector), in batches.

        Points that lack the named vector are skipped when vectors are asked for."""
        for records in self.scroll_batches(with_vectors=[vector_name] if with_vectors else False, fields=fields, batch=batch):
            for r in records:
                if with_vectors and vector_name not in (r.vector or {}):
                    continue
                vector = np.asarray(r.vector[vector_name], dtype=np.float32) if with_vectors else None
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
