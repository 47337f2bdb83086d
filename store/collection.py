"""The poster collection: created for one embedding, refused to any other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from embedding.spec import EmbeddingSpec
from errors import UserError
from store.connection import StoreLocation, open_client
from store.schema import DEFAULT_COLLECTION, INDEXED_FIELDS, SCHEMA_VERSION, VECTOR_NAME


@dataclass
class StoredPoint:
    id: str
    payload: dict
    vector: np.ndarray | None = None


class PosterStore:
    """One Qdrant collection of poster embeddings. Use as a context manager (local mode holds a lock)."""

    def __init__(self, location: StoreLocation, collection: str = DEFAULT_COLLECTION, must_exist: bool = False):
        self.location = location
        self.collection = collection
        self.client = open_client(location, must_exist=must_exist)

    def __enter__(self) -> "PosterStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
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

    def prepare(self, spec: EmbeddingSpec, recreate: bool = False) -> None:
        """Make sure the collection exists for `spec`; an existing one must match it."""
        if recreate and self.exists():
            self.client.delete_collection(self.collection)
        if self.exists():
            self.check_spec(spec)
            return
        from qdrant_client import models

        self.client.create_collection(
            self.collection,
            vectors_config={VECTOR_NAME: models.VectorParams(size=spec.dim, distance=models.Distance.COSINE)},
            metadata={"embedding": spec.as_dict(), "schema_version": SCHEMA_VERSION},
        )
        if not self.location.is_local:  # local mode has no payload indexes (it warns if asked)
            for field, kind in INDEXED_FIELDS.items():
                self.client.create_payload_index(self.collection, field, models.PayloadSchemaType(kind))

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
            records = self.client.retrieve(self.collection, list(ids[start : start + chunk]), with_payload=False, with_vectors=False)
            found.update(str(r.id) for r in records)
        return found

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict]) -> None:
        """Write a batch and wait until Qdrant acknowledges it: what returns is stored."""
        from qdrant_client import models

        points = [
            models.PointStruct(id=i, vector={VECTOR_NAME: v.tolist()}, payload=p) for i, v, p in zip(ids, vectors, payloads)
        ]
        self.client.upsert(self.collection, points=points, wait=True)

    def points(self, with_vectors: bool = True, fields: list[str] | None = None, batch: int = 512) -> Iterator[StoredPoint]:
        """Every point (only the payload `fields`, if given), in batches, so memory stays bounded by the caller's use."""
        offset = None
        while True:
            records, offset = self.client.scroll(
                self.collection,
                limit=batch,
                offset=offset,
                with_payload=fields or True,
                with_vectors=[VECTOR_NAME] if with_vectors else False,
            )
            for r in records:
                vector = np.asarray(r.vector[VECTOR_NAME], dtype=np.float32) if with_vectors else None
                yield StoredPoint(str(r.id), r.payload or {}, vector)
            if offset is None:
                return

    def retrieve(self, ids: Iterable[str], with_vectors: bool = False) -> list[StoredPoint]:
        records = self.client.retrieve(self.collection, list(ids), with_payload=True, with_vectors=[VECTOR_NAME] if with_vectors else False)
        return [
            StoredPoint(str(r.id), r.payload or {}, np.asarray(r.vector[VECTOR_NAME], dtype=np.float32) if with_vectors else None)
            for r in records
        ]
