"""Re-adopt an orphaned collection: its shard holds the points, but its metadata (collection.json
and the backup) is lost, so nothing says which embedding the vectors are.

That cannot be read off the vectors, so ingest checks it: it embeds a few stored posters (their
files, by the payload's `file`) with the embedding it was asked for, and only when each comes out
as the vector stored for it does it write the metadata anew (the vectors from the shard's own
config, the embedding, the posters folder). Otherwise nothing is written and one line says why.

Only the embedded store (store/edge.py) can orphan a collection: it keeps the metadata in its own
files beside the shard, where a server keeps it inside Qdrant. So this works on an EdgeEngine,
explicitly, through its orphan methods, which are not part of the Engine protocol.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..embedding.images import ImageError, decode_poster
from ..errors import Damaged
from ..store.collection import PosterStore
from ..store.edge import EdgeEngine
from ..store.engine import PointFilter
from ..store.schema import STYLE_VECTOR_NAME, VECTOR_NAME, CollectionMetadata, PosterPayload

SAMPLE = 4  # stored posters re-embedded
MIN_COSINE = {"fp32": 0.9999, "bf16": 0.999}  # what runtimes agree to (tests/test_onnx.py, tests/test_backends.py)


def readopt_orphan(store: PosterStore, embedder, posters_dir: Path) -> str | None:
    """If the collection is orphaned, check the embedder against stored vectors and rebuild its
    metadata; returns what was done (None when the collection is not orphaned). Damaged otherwise."""
    engine = store.engine
    if not isinstance(engine, EdgeEngine) or not engine.orphaned(store.collection):
        return None
    name, where = store.collection, engine.path / "collections" / store.collection
    refuse = f"collection '{name}' lost its metadata ({where / 'collection.json'}) and cannot be rebuilt"
    precision = embedder.runtime.precision if getattr(embedder, "runtime", None) else "fp32"
    if precision not in MIN_COSINE or getattr(embedder, "calibration", None) is not None:
        raise Damaged(
            f"{refuse} in {precision}: an int8 model's calibration was part of the lost metadata; restore the file, or --recreate"
        )
    vectors = engine.shard_vectors(name)
    if STYLE_VECTOR_NAME in vectors and embedder.style_spec is None:
        raise Damaged(f"{refuse} without --style: its shard holds '{STYLE_VECTOR_NAME}' vectors; run the same ingest with --style")
    engine.open_orphan(name)
    records, _ = engine.scroll(name, PointFilter(), SAMPLE, None, True, list(vectors))
    checked = []
    for record in records:
        try:
            file = PosterPayload.from_dict(record.payload, f"point {record.id}").path
            pixels = decode_poster(Path(posters_dir) / file).pixels
        except ImageError as e:
            raise Damaged(f"{refuse} from {posters_dir}: stored poster {e}; run ingest with the --posters it was made from") from None
        base, style = embedder.embed_both(pixels[None])
        made = {VECTOR_NAME: base[0], STYLE_VECTOR_NAME: None if style is None else style[0]}
        checked += [float(np.dot(made[v], record.vectors[v])) for v in vectors if v in record.vectors]
    lowest = min(checked, default=0.0)
    if not records or lowest < MIN_COSINE[precision]:
        why = "it holds no points" if not records else f"stored vectors differ from this embedding (cosine {lowest:.4f})"
        raise Damaged(f"{refuse}: {why}; run ingest with the --weights (and --style) it was made with, or restore the file")
    style = embedder.style_spec.as_dict() if STYLE_VECTOR_NAME in vectors else None
    engine.adopt(name, CollectionMetadata(embedder.spec.as_dict(), style, posters_dir=str(Path(posters_dir).resolve())).to_dict())
    return f"rebuilt the lost metadata of collection '{name}' from its shard: {len(records)} stored posters re-embedded to their stored vectors (cosine >= {lowest:.5f})"
