"""The store through qdrant-client: a Qdrant server or cluster by URL, and, read and written the
same way, folders made by earlier versions of poster search in qdrant-client's local mode.

Every call goes through `_call`, so transient server failures (reset, timeout, 429/5xx, gRPC
unavailable) are retried with backoff and a permanent one is one clear line (store/retry.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import cast

import numpy as np

from ..errors import BadInput, InUse
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
from .retry import with_retries
from .schema import INDEXED_FIELDS, TOKEN_PREFIX_CHARS

HNSW_EF = 128


class ServerEngine:
    """A qdrant-client connection: `url` for a server or cluster, or `path` for a local-mode folder.
    Local mode takes one call at a time (`_calls`, a TurnLock, held around each call as in
    store/edge.py); a server answers many at once."""

    retry_attempts = 5
    retry_wait = 0.5  # seconds before the first retry, doubling after each

    def __init__(
        self, url: str | None = None, path: Path | None = None, api_key: str | None = None, timeout: float = 30.0, grpc: bool = False
    ):
        from qdrant_client import QdrantClient

        self.url, self.path = url, path
        self._calls: AbstractContextManager = TurnLock() if path is not None else nullcontext()
        if path is not None:
            try:
                self.client = QdrantClient(path=str(path))
            except RuntimeError as e:
                if "already accessed" in str(e):
                    raise InUse(
                        f"the store {path} is in use by another process (the embedded store allows one at a time); "
                        "wait for it to finish, or use a Qdrant server (--qdrant-url)"
                    ) from None
                raise
            except PermissionError as e:
                raise BadInput(f"cannot open store {path}: {e.strerror}") from None
            return
        # check_compatibility would print its own warning for an unreachable server; the pinned
        # versions (requirements.txt, docker-compose.yml) keep client and server in step. httpx
        # takes fractional timeouts; only the gRPC channel needs whole seconds.
        self.client = QdrantClient(
            url=url,
            api_key=api_key,
            timeout=max(1, round(timeout)) if grpc else timeout,  # type: ignore[arg-type]  # annotated int, but httpx takes a float
            prefer_grpc=grpc,
            check_compatibility=False,
        )
        try:
            self.client.get_collections()  # the client connects lazily: fail here, clearly, not mid-ingest
        except Exception as e:
            self.client.close()
            raise BadInput(f"cannot reach Qdrant at {url}: {_reason(e)}") from None

    @property
    def is_local_mode(self) -> bool:
        return self.path is not None

    def describe(self) -> str:
        return self.url if self.url else f"local store {self.path} (qdrant-client local mode)"

    @serialised
    def close(self) -> None:
        self.client.close()

    def _call(self, what: str, call):
        with self._calls:
            return with_retries(call, f"{what} on {self.describe()}", self.retry_attempts, self.retry_wait)

    # --- collections -------------------------------------------------------------------------

    def collection_names(self) -> list[str]:
        return sorted(c.name for c in self._call("listing collections", self.client.get_collections).collections)

    def collection_exists(self, name: str) -> bool:
        return self._call("a collection check", lambda: self.client.collection_exists(name))

    def _info(self, name: str):
        return self._call("reading the collection", lambda: self.client.get_collection(name))

    def create_collection(self, name: str, vectors: Sequence[VectorConfig], metadata: dict, sharding=None) -> None:
        from qdrant_client import models

        self._call(
            "creating the collection",
            lambda: self.client.create_collection(
                name,
                vectors_config={
                    v.name: models.VectorParams(size=v.dim, distance=models.Distance.COSINE, quantization_config=_quantization(v))
                    for v in vectors
                },
                metadata=metadata,
                shard_number=getattr(sharding, "shards", None),
                replication_factor=getattr(sharding, "replicas", None),
                write_consistency_factor=getattr(sharding, "write_consistency", None),
            ),
        )
        self.ensure_indexes(name)

    def delete_collection(self, name: str) -> None:
        self._call("deleting the collection", lambda: self.client.delete_collection(name))

    def vectors(self, name: str) -> dict[str, int]:
        vectors = self._info(name).config.params.vectors
        if not isinstance(vectors, dict):  # one unnamed vector: not a poster search collection
            return {"": vectors.size} if vectors is not None else {}
        return {k: v.size for k, v in vectors.items()}

    def metadata(self, name: str) -> dict:
        return dict(self._info(name).config.metadata or {})

    def update_metadata(self, name: str, metadata: dict) -> None:
        self._call("updating metadata", lambda: self.client.update_collection(name, metadata=metadata))

    def add_vector(self, name: str, vector: VectorConfig) -> None:
        from qdrant_client import models

        # as on Edge, a vector added to an existing collection is not quantised (the call takes no quantisation)
        config = models.DenseVectorNameConfig(dense=models.DenseVectorConfig(size=vector.dim, distance=models.Distance.COSINE))
        self._call("adding a vector", lambda: self.client.create_vector_name(name, vector.name, config))

    def payload_indexes(self, name: str) -> set[str]:
        return set(self._info(name).payload_schema or {})

    def ensure_indexes(self, name: str) -> None:
        """Create missing payload indexes (and a title index of schema 3 or before again, with the
        prefix tokenizer); local mode has none (it evaluates filters in Python: whole words only)."""
        from qdrant_client import models

        if self.is_local_mode:
            return
        have = self._info(name).payload_schema or {}
        for field_name, kind in INDEXED_FIELDS.items():
            schema: models.TextIndexParams | models.PayloadSchemaType
            if kind == "text":
                schema = models.TextIndexParams(
                    type=models.TextIndexType.TEXT,
                    tokenizer=models.TokenizerType.PREFIX,
                    lowercase=True,
                    ascii_folding=True,
                    max_token_len=TOKEN_PREFIX_CHARS,
                )
                if field_name in have and getattr(have[field_name].params, "tokenizer", None) != models.TokenizerType.PREFIX:
                    self._call("replacing a payload index", lambda: self.client.delete_payload_index(name, field_name, wait=True))  # noqa: B023 (called at once)
                elif field_name in have:
                    continue
            elif field_name in have:
                continue
            else:
                schema = models.PayloadSchemaType(kind)
            self._call("creating a payload index", lambda: self.client.create_payload_index(name, field_name, schema, wait=True))  # noqa: B023 (called at once, inside the loop)

    # --- points ------------------------------------------------------------------------------

    def upsert(self, name: str, records: Sequence[Record]) -> None:
        """Wait until Qdrant acknowledges the batch: what returns is stored."""
        from qdrant_client import models

        points = [
            models.PointStruct(
                id=r.id, vector={k: np.asarray(v, dtype=np.float32).tolist() for k, v in r.vectors.items()}, payload=r.payload
            )
            for r in records
        ]
        self._call("an upsert", lambda: self.client.upsert(name, points=points, wait=True))

    def update_vectors(self, name: str, ids: Sequence[str], vector_name: str, vectors: np.ndarray) -> None:
        from qdrant_client import models

        points = [models.PointVectors(id=i, vector={vector_name: v}) for i, v in zip(ids, as_vector_list(vectors))]
        self._call("a vector update", lambda: self.client.update_vectors(name, points=points, wait=True))

    def overwrite_payloads(self, name: str, items: Sequence[tuple[str, dict]]) -> None:
        for point_id, payload in items:
            self._call("a payload update", lambda: self.client.overwrite_payload(name, payload=payload, points=[point_id], wait=True))  # noqa: B023 (called at once, inside the loop)

    def set_payloads(self, name: str, items: Sequence[tuple[str, dict]]) -> None:
        """Set the given keys of each point's payload (its other keys stay), in one request per 256 points."""
        from qdrant_client import models

        for start in range(0, len(items), 256):
            operations = [
                models.SetPayloadOperation(set_payload=models.SetPayload(payload=payload, points=[point_id]))
                for point_id, payload in items[start : start + 256]
            ]
            self._call("a payload update", lambda: self.client.batch_update_points(name, operations, wait=True))  # noqa: B023 (called at once, inside the loop)

    def delete(self, name: str, ids: Sequence[str]) -> None:
        from qdrant_client import models

        self._call("a delete", lambda: self.client.delete(name, points_selector=models.PointIdsList(points=list(ids)), wait=True))

    def retrieve(self, name, ids, with_payload, with_vectors) -> list[Record]:
        valid = [i for i in ids if is_point_id(i)]  # Qdrant rejects ids that are neither UUIDs nor integers
        if not valid:
            return []
        records = self._call("a retrieve", lambda: self.client.retrieve(name, valid, with_payload=with_payload, with_vectors=with_vectors))
        return [_record(r) for r in records]

    def scroll(self, name, filter, limit, offset, with_payload, with_vectors):
        records, next_offset = self._call(
            "a scroll",
            lambda: self.client.scroll(
                name, scroll_filter=client_filter(filter), limit=limit, offset=offset, with_payload=with_payload, with_vectors=with_vectors
            ),
        )
        return [_record(r) for r in records], next_offset

    def scroll_ordered(self, name, filter, key, descending, start_from, limit, with_payload) -> list[Record]:  # as Engine's
        from qdrant_client import models

        direction = models.Direction.DESC if descending else models.Direction.ASC
        order = models.OrderBy(key=key, direction=direction, start_from=start_from)
        records, _ = self._call(
            "an ordered scroll",
            lambda: self.client.scroll(name, scroll_filter=client_filter(filter), limit=limit, order_by=order, with_payload=with_payload),
        )
        return [_record(r) for r in records]

    def facet(self, name: str, key: str, filter: PointFilter, limit: int) -> list[tuple[str | int, int]]:
        found = self._call(
            "a facet count", lambda: self.client.facet(name, key=key, facet_filter=client_filter(filter), limit=limit, exact=True)
        )
        return [(hit.value, hit.count) for hit in found.hits]

    def count(self, name: str, filter: PointFilter = PointFilter()) -> int:
        return self._call("a count", lambda: self.client.count(name, count_filter=client_filter(filter), exact=True)).count

    # --- search ------------------------------------------------------------------------------

    def query(self, name, vectors, vector_name, limit, filter, exact, with_payload, score_threshold=None, hnsw_ef=None) -> list[list[Hit]]:
        from qdrant_client import models

        # local mode always scans exactly (and warns about search params)
        rescored = models.QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING)  # ignored where not quantised
        search = models.SearchParams(exact=True) if exact else models.SearchParams(hnsw_ef=hnsw_ef or HNSW_EF, quantization=rescored)
        params = None if self.is_local_mode else search
        requests = [
            models.QueryRequest(
                query=v,
                using=vector_name,
                limit=limit,
                filter=client_filter(filter),
                params=params,
                with_payload=with_payload,
                score_threshold=score_threshold,
            )
            for v in as_vector_list(vectors)
        ]
        responses = self._call("a query", lambda: self.client.query_batch_points(name, requests))
        return [[_hit(p) for p in r.points] for r in responses]

    def recommend(self, name, positive, negative, vector_name, limit, filter, with_payload) -> list[Hit]:
        from qdrant_client import models

        query = models.RecommendQuery(
            recommend=models.RecommendInput(
                positive=cast(list[models.VectorInput], as_vector_list(positive)),
                negative=cast(list[models.VectorInput], as_vector_list(negative)),
                strategy=models.RecommendStrategy.BEST_SCORE,
            )
        )
        response = self._call(
            "a recommend query",
            lambda: self.client.query_points(
                name, query=query, using=vector_name, limit=limit, query_filter=client_filter(filter), with_payload=with_payload
            ),
        )
        return [_hit(p) for p in response.points]

    def optimize(self, name: str, progress: bool = False) -> None:
        """A server optimises in the background by itself."""

    def index_waiting(self, name: str) -> bool:
        """Never here: a server indexes in the background by itself."""
        return False


def client_filter(f: PointFilter):
    """PointFilter -> a qdrant_client models.Filter (None when there is no condition)."""
    if f.is_empty():
        return None
    from qdrant_client import models

    must: list[models.Condition] = []
    must_not: list[models.Condition] = []
    if f.year_min is not None or f.year_max is not None:
        must.append(models.FieldCondition(key="year", range=models.Range(gte=f.year_min, lte=f.year_max)))
    if f.genre:
        must.append(models.FieldCondition(key="genres", match=models.MatchValue(value=f.genre)))
    if f.sha256:
        must.append(models.FieldCondition(key="sha256", match=models.MatchValue(value=f.sha256)))
    if f.title_words:
        must.append(models.FieldCondition(key="title", match=models.MatchText(text=f.title_words)))
    for field_name, low, high in f.ranges:
        must.append(models.FieldCondition(key=field_name, range=models.Range(gte=low, lte=high)))
    must.extend(models.IsEmptyCondition(is_empty=models.PayloadField(key=field_name)) for field_name in f.missing)
    must_not.extend(models.IsEmptyCondition(is_empty=models.PayloadField(key=field_name)) for field_name in f.present)
    if f.has_vector:
        must.append(models.HasVectorCondition(has_vector=f.has_vector))
    if f.lacks_vector:
        must_not.append(models.HasVectorCondition(has_vector=f.lacks_vector))
    if f.exclude_ids:
        must_not.append(models.HasIdCondition(has_id=[i for i in f.exclude_ids if is_point_id(i)]))
    if f.exclude_sha256:
        must_not.append(models.FieldCondition(key="sha256", match=models.MatchValue(value=f.exclude_sha256)))
    return models.Filter(must=must or None, must_not=must_not or None)


def _quantization(v: VectorConfig):
    """As Edge's (store/edge.py): int8, quantile 0.99, kept on disk beside the originals."""
    from qdrant_client import models

    if not v.quantized:
        return None
    return models.ScalarQuantization(
        scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=QUANTILE, always_ram=False)
    )


def _record(r) -> Record:
    vectors = {k: np.asarray(v, dtype=np.float32) for k, v in r.vector.items()} if isinstance(r.vector, dict) else {}
    return Record(str(r.id), dict(r.payload or {}), vectors)


def _hit(p) -> Hit:
    return Hit(str(p.id), float(p.score), dict(p.payload or {}))


def _reason(error: Exception) -> str:
    """The first line that says why: gRPC errors put the reason after a generic header."""
    status = getattr(error, "status_code", None)
    if status in (401, 403):
        return f"HTTP {status}, check QDRANT_API_KEY"
    details = getattr(error, "details", None)
    if callable(details):  # grpc.RpcError
        try:
            return f"{error.code().name}: {details()}"[:300]  # type: ignore[attr-defined]  # a grpc.RpcError is also a grpc.Call
        except Exception:
            pass
    text = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return " ".join(text)[:300] if text else type(error).__name__
