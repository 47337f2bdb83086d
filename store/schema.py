"""The collection's schema. Users query it with Qdrant's own API, so these names are stable.

Collection `posters` (configurable), one point per film:
- id: uuid5(POINT_NAMESPACE, catalog key), so the same film always gets the same point.
- vector `vgg16`: the L2-normalised 512-d VGG16 embedding, cosine distance.
- payload: key, title, year (int; absent when unknown), file, sha256 (of the poster file),
  genres (list; when the catalog has them).
- predicted year (`predict-year --stored`, regression/dating.py; absent until a year model dated
  the poster): predicted_year (int), predicted_low and predicted_high (ints: the model's
  calibrated 80 % range, rounded outwards), predicted_by (str: the model's identity,
  "year-model:<digest>", regression/model_file.model_identity). Written by default only for
  posters without a catalog `year`, and never into `year`: readers show it as "c. 1962,
  predicted", never as a catalog year; `--year-min`/`--year-max` filter on `year` alone.
  Re-embedding a replaced poster file drops them (the vector they came from is gone).
- optional vector `vgg16_style`: the 2,944-d style embedding, cosine distance (ingest --style).
- collection metadata `embedding`: the EmbeddingSpec the vectors were made with, and
  `style_embedding` for `vgg16_style` when present; `calibration` for an int8 embedding (the
  posters its model was calibrated on, embedding/quantize.py).
"""

from __future__ import annotations

import re
import uuid

from errors import UserError

DEFAULT_COLLECTION = "posters"
VECTOR_NAME = "vgg16"
STYLE_VECTOR_NAME = "vgg16_style"  # optional second vector: the style embedding (ingest --style)
SCHEMA_VERSION = 1
CALIBRATION_KEY = "calibration"  # collection metadata of an int8 embedding
# Payload fields of a predicted year (predict-year --stored): public, never mixed with `year`.
PREDICTED_YEAR = "predicted_year"
PREDICTED_LOW = "predicted_low"
PREDICTED_HIGH = "predicted_high"
PREDICTED_BY = "predicted_by"
PREDICTED_FIELDS = (PREDICTED_YEAR, PREDICTED_LOW, PREDICTED_HIGH, PREDICTED_BY)
POINT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "poster-search/posters")

# Payload indexes, created (idempotently) whenever a collection is opened: filters and title
# search are evaluated by Qdrant with them. `title` is full-text (words, case-insensitive).
INDEXED_FIELDS = {"year": "integer", "genres": "keyword", "sha256": "keyword", "key": "keyword", "title": "text"}


def point_id(key: str) -> str:
    """The point id of a catalog key: stable across runs, machines and stores."""
    return str(uuid.uuid5(POINT_NAMESPACE, key))


# Safe as a folder name (the embedded store keeps a folder per collection) and in a server's URL path.
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")


def check_collection_name(name: str) -> None:
    if not _COLLECTION_NAME.fullmatch(name or ""):
        raise UserError(f"invalid collection name {name!r}: use 1-255 letters, digits, '_', '-' or '.', not starting with '.' or '-'")
