"""Copy a poster collection to another store without re-embedding: embedded folder -> server or
cluster and back, and a folder made by an earlier version (qdrant-client local mode) -> Qdrant Edge.

Why not qdrant-client's own `migrate()`: it deletes and recreates the destination collection on
every run and copies the source's shard layout. Here the destination is created once (with the
shards and replicas asked for) and then only upserted to, with the same point ids: a rerun, or a
run after an interruption, completes the copy and never deletes what the destination holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..embedding.spec import EmbeddingSpec
from ..errors import BadInput
from .collection import PosterStore, Sharding
from .connection import StoreLocation
from .engine import VectorConfig
from .integrity import check_intact
from .schema import CollectionMetadata

SPOT_CHECKS = 20  # points whose vectors and payloads are compared after the copy


@dataclass
class MigrateReport:
    copied: int
    source_count: int
    target_count: int
    seconds: float

    def summary(self) -> str:
        return (
            f"copied {self.copied} points in {self.seconds:.1f}s; source holds {self.source_count}, "
            f"destination holds {self.target_count}; vectors and payloads of {min(SPOT_CHECKS, self.copied)} points checked equal"
        )


def migrate(
    source: PosterStore, target: PosterStore, batch_size: int = 256, sharding: Sharding = Sharding(), progress: bool = True
) -> MigrateReport:
    """Copy every point (all named vectors, payload, id) and the collection's schema and metadata."""
    from tqdm import tqdm

    if same_store(source.location, target.location) and source.collection == target.collection:
        raise BadInput("source and destination are the same collection")
    started = time.perf_counter()
    source.stored_spec()  # a clear error if the source is not a poster collection (or of a newer schema)
    check_intact(source)  # a damaged source is said as such, never copied and reported "checked equal"
    # keys this version does not know travel as they are; the known ones as this version writes them
    metadata = {**source.metadata(), **source.collection_metadata().to_dict()}
    prepare_target(target, source.vectors(), metadata, sharding, "another --to-collection")

    total = source.count()
    copied = 0
    with tqdm(total=total, unit="point", desc="migrating", disable=not progress) as bar:
        for records in source.records(with_vectors=True, batch=batch_size):
            if records:
                target.upsert_records(records)
            copied += len(records)
            bar.update(len(records))
    target.optimize(progress)  # an embedded destination builds its search index now (a server does so by itself)
    report = MigrateReport(copied, source.count(), target.count(), time.perf_counter() - started)
    if report.target_count < report.source_count:
        raise BadInput(f"destination holds {report.target_count} points, source {report.source_count}: run migrate again")
    _spot_check(source, target)
    return report


def same_store(source: StoreLocation, target: StoreLocation) -> bool:
    """Whether two locations are one store (another spelling of a folder is the same folder); a
    folder inside the other store is refused: Edge's files and a store's own would mix."""
    if source.url or target.url:
        return source == target
    a, b = source.path.resolve(), target.path.resolve()
    if a == b:
        return True
    if b.is_relative_to(a) or a.is_relative_to(b):
        raise BadInput(
            f"the destination {target.path} and the source {source.path} are one inside the other: give a folder outside the source store"
        )
    return False


def prepare_target(target: PosterStore, vectors: dict[str, int], metadata: dict, sharding: Sharding, choose: str) -> None:
    """Create the destination collection, or check that the existing one holds the same vectors,
    embedding and posters folder (`choose`: what the user can do instead, e.g. "another --collection")."""
    target.check_sharding(sharding)
    if not target.exists():
        target.create([VectorConfig(name, dim) for name, dim in vectors.items()], metadata, sharding)
        return
    have, want, source = target.vectors(), vectors, CollectionMetadata.from_dict(metadata)
    here, copied = target.stored_spec(), EmbeddingSpec.from_dict(source.embedding or {})
    if have != want or here != copied:
        # say what differs: equal vector names and sizes say nothing of int8 vectors copied onto float32 ones
        what = [_vectors_differ(have, want)] if have != want else []
        what += [_embeddings_differ(here, copied)] if here != copied else []
        raise BadInput(f"destination collection '{target.collection}' exists with another embedding: {'; '.join(what)}; choose {choose}")
    theirs, mine = target.collection_metadata().posters_dir, source.posters_dir
    if theirs and mine and theirs != mine and target.count():
        # One collection, one posters folder (as ingest keeps it): `file` is relative to it, so the
        # destination's posters would point into the wrong folder, and same-named files collide.
        raise BadInput(
            f"destination collection '{target.collection}' holds posters from {theirs}, the source's are from {mine}: use {choose}"
        )
    if not sharding.is_default():
        raise BadInput("destination collection exists already: --shards/--replicas/--write-consistency only apply when it is created")
    target.update_metadata(metadata)  # e.g. a newer posters_dir


def _vectors_differ(have: dict[str, int], want: dict[str, int]) -> str:
    def named(vectors: dict[str, int]) -> str:
        return ", ".join(f"{name} ({dim}-d)" for name, dim in sorted(vectors.items()))

    return f"its named vectors are {named(have)}, the source's {named(want)}"


def _embeddings_differ(have: EmbeddingSpec, want: EmbeddingSpec) -> str:
    """What differs, field by field (the fields store/collection.py's check_spec compares)."""
    mine, theirs = have.compared(), want.compared()
    differing = [k for k in mine if mine[k] != theirs.get(k)]
    return "; ".join(
        f"its vectors are {_datatype(mine[k])}, the source's {_datatype(theirs.get(k, ''))}"
        if k == "quantization"
        else f"its {k} is {mine[k]!r}, the source's {theirs.get(k)!r}"
        for k in differing
    )


def _datatype(quantization: str) -> str:
    """The stored vectors' datatype as a quantization names it ("" for a float model)."""
    if not quantization:
        return "float32 (not quantised)"
    return f"int8 (quantization {quantization})" if quantization.startswith("int8") else f"quantised ({quantization})"


def _spot_check(source: PosterStore, target: PosterStore) -> None:
    """Compare a seeded sample of points: the copy must be exact, not merely the same count."""
    ids = [p.id for p in source.points(with_vectors=False, fields=["key"])]
    sample = [ids[i] for i in np.random.default_rng(0).choice(len(ids), min(SPOT_CHECKS, len(ids)), replace=False)] if ids else []
    mine = {r.id: r for r in source.engine.retrieve(source.collection, sample, True, True)}
    theirs = {r.id: r for r in target.engine.retrieve(target.collection, sample, True, True)}
    for pid in sample:
        a, b = mine[pid], theirs.get(pid)
        if b is None or a.payload != b.payload or set(a.vectors) != set(b.vectors):
            raise BadInput(f"point {pid} differs between source and destination after the copy")
        for name in a.vectors:
            if not np.allclose(a.vectors[name], b.vectors[name], atol=1e-6):
                raise BadInput(f"vector '{name}' of point {pid} differs between source and destination")
