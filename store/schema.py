"""The collection's schema. Users query it with Qdrant's own API, so these names are stable.

Collection `posters` (configurable), one point per film:
- id: uuid5(POINT_NAMESPACE, catalog key), so the same film always gets the same point.
- vector `vgg16`: the L2-normalised 512-d VGG16 embedding, cosine distance.
- payload: key, title, year (int; absent when unknown), file, sha256 (of the poster file),
  genres (list; when the catalog has them).
- collection metadata `embedding`: the EmbeddingSpec the vectors were made with.
"""

from __future__ import annotations

import uuid

DEFAULT_COLLECTION = "posters"
VECTOR_NAME = "vgg16"
SCHEMA_VERSION = 1
POINT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "poster-search/posters")

# Payload fields worth an index on a server (local mode has no payload indexes).
INDEXED_FIELDS = {"year": "integer", "genres": "keyword", "sha256": "keyword", "key": "keyword", "title": "keyword"}


def point_id(key: str) -> str:
    """The point id of a catalog key: stable across runs, machines and stores."""
    return str(uuid.uuid5(POINT_NAMESPACE, key))
