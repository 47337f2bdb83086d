"""The collection's schema, read and written only here. Users query it with Qdrant's own API, so
these names are stable; docs/store.md, *Schema*, is the public description.

Collection `posters` (configurable), one point per film:
- id: uuid5(POINT_NAMESPACE, catalog key), so the same film always gets the same point.
- vector `vgg16`: the L2-normalised 512-d VGG16 embedding, cosine distance.
- optional vector `vgg16_style`: the 2,944-d style embedding, cosine distance (ingest --style).
- payload: PosterPayload below (each field says since which schema version it exists).
- predicted year (`predict-year --stored`, regression/dating.py; absent until a year model dated
  the poster): predicted_year (int), predicted_low and predicted_high (ints: the model's
  calibrated 80 % range, rounded outwards), predicted_by (str: the model's identity,
  "year-model:<digest>", regression/model_file.model_identity). Written by default only for
  posters without a catalog `year`, and never into `year`: readers show it as "c. 1962,
  predicted", never as a catalog year; `--year-min`/`--year-max` filter on `year` alone.
  Re-embedding a replaced poster file drops them (the vector they came from is gone).
- collection metadata: CollectionMetadata below (the embedding each vector was made with, the
  posters folder, an int8 embedding's calibration, the schema version).

Schema versions: 1, the first release; 2 adds the optional predicted-year payload fields
(`predicted_year`, `predicted_low`, `predicted_high`, `predicted_by`), nothing else; 3 adds the
optional payload fields `source` (what wrote the film's fields: a catalog or a posters folder) and
`file_raw` (the bytes of a file name that is not UTF-8), and the metadata's `posters_dir_raw`; 4 adds
the derived payload fields `title_order` and `added` (the keys the page browses by, with Qdrant's
ordered scroll) and the `title` index's prefix tokenizer (suggestions from a few letters); 5 adds the
optional payload fields `file_size` and `file_mtime_ns` (a rerun of ingest trusts an unchanged pair
instead of hashing the file again), nothing else. A collection
of a newer version than this code reads is refused in one line; an older one is read through
`upgrade_metadata()` (one place), and recorded as the current version at the next ingest.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final, Literal

from ..errors import BadInput, Damaged
from ..text_out import as_text, from_raw, raw_name

if TYPE_CHECKING:
    from ..embedding.spec import EmbeddingSpec

DEFAULT_COLLECTION = "posters"
VECTOR_NAME: Final = "vgg16"  # Final: its literal type is a VectorName
STYLE_VECTOR_NAME: Final = "vgg16_style"  # optional second vector: the style embedding (ingest --style)
VectorName = Literal["vgg16", "vgg16_style"]  # the named vectors a collection may hold: the CLI's and the API's choices
VECTOR_NAMES: tuple[VectorName, ...] = (VECTOR_NAME, STYLE_VECTOR_NAME)
# Stored with int8 scalar quantisation too (Qdrant's, beside the fp32 originals; a search walks the
# graph on it and rescores the best with the originals): the 2,944-d style vector, 11.8 GB as fp32
# at 1M posters (its graph builds 3x faster, recall@10 1.000 at 100,000 rescoring 4x). Not vgg16: at 1M its
# recall@10 fell to 0.928 as int8 (0.9945 rescoring 4x), 1.000 as fp32 (docs/performance.md#quantisation).
QUANTIZED_VECTORS: frozenset[str] = frozenset({STYLE_VECTOR_NAME})
SCHEMA_VERSION = 5
POINT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "poster-search/posters")

# Payload indexes, created (idempotently) whenever a collection is opened: filters, title search,
# suggestions and browsing are evaluated by Qdrant with them. `title` is full-text with the prefix
# tokenizer: every word is indexed with its prefixes ("mus" finds "The Sound of Music"), while a
# query's words are matched whole, case- and accent-insensitive. Integer indexes order browsing.
INDEXED_FIELDS = {
    "year": "integer",
    "genres": "keyword",
    "sha256": "keyword",
    "key": "keyword",
    "title": "text",
    "title_order": "integer",
    "added": "integer",
    "predicted_year": "integer",
}
TOKEN_PREFIX_CHARS = 20  # the title index keeps each word's prefixes up to this length (longer words: their first 20 letters)


def point_id(key: str) -> str:
    """The point id of a catalog key: stable across runs, machines and stores."""
    return str(uuid.uuid5(POINT_NAMESPACE, key))


# Safe as a folder name (the embedded store keeps a folder per collection) and in a server's URL path.
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")


def check_collection_name(name: str) -> None:
    if not _COLLECTION_NAME.fullmatch(name or ""):
        raise BadInput(f"invalid collection name {name!r}: use 1-255 letters, digits, '_', '-' or '.', not starting with '.' or '-'")


_KIND_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "a list of strings"}


def _check_type(value: Any, kind: type, field: str, where: str, remedy: str) -> None:
    """Damaged, one line naming the field, for a value of another JSON type (a bool is not an
    integer here; a list must hold strings): stored records are written by poster search only in
    the right types, so another one was changed outside it."""
    if kind is list:
        fits = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    else:
        fits = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not fits:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise Damaged(
            f"{where}: field '{field}' is {shown} ({type(value).__name__}), not {_KIND_NAMES[kind]}: "
            f"it was changed outside poster search; {remedy}"
        )


# The payload fields `predict-year --stored` writes (schema version 2), all four or none; public,
# never mixed with `year`.
PREDICTED_YEAR = "predicted_year"
PREDICTED_LOW = "predicted_low"
PREDICTED_HIGH = "predicted_high"
PREDICTED_BY = "predicted_by"
PREDICTED_FIELDS = (PREDICTED_YEAR, PREDICTED_LOW, PREDICTED_HIGH, PREDICTED_BY)


@dataclass(frozen=True)
class PosterPayload:
    """A point's payload: what the catalog (or the posters folder) says about one film.

    A payload read with a field selection (`fields=[...]`) holds only those fields; the others
    are at their defaults. Fields written by a newer version are ignored on reading."""

    key: str = ""  # since 1: the catalog's identity for the film (its id column, else the poster file's path)
    title: str = ""  # since 1: the film's title (full-text indexed)
    year: int | None = None  # since 1: the catalog's release year; absent when unknown (integer index)
    file: str = ""  # since 1: the poster file, relative to the collection's posters folder
    sha256: str = ""  # since 1: of the poster file's bytes (keyword index): same content, same film
    genres: tuple[str, ...] = ()  # since 1: absent when the catalog has none (keyword index)
    # Since 2, written by `predict-year` for films without a catalog year (a catalog year is never
    # overwritten): the year model's estimate, the ends of its 80 % range, and its identity.
    predicted_year: int | None = None
    predicted_low: int | None = None
    predicted_high: int | None = None
    predicted_by: str | None = None  # the year model that predicted it (its model file's id)
    # Since 3: what wrote key, title, year and genres (SOURCES; absent in points written before):
    # a posters folder says less than a catalog, so a folder ingest never replaces a catalog's fields.
    source: str | None = None
    # Since 3, only for a file name that is not UTF-8: the path's bytes as base64 (`file` then
    # holds it as text, each byte that is not UTF-8 read as Windows-1252: text/text_out.py).
    file_raw: str | None = None
    # Since 4, derived (store/sort_keys.py; written by PosterStore with every payload, added to older
    # points by the next ingest): the title's sort key, and when the point was stored (microseconds
    # since 1970; points stored before 4 get their small ordinal). Qdrant orders browsing by them.
    title_order: int | None = None
    added: int | None = None
    # Since 5 (absent in points written before): the poster file's size and modification time
    # (nanoseconds) as ingest found them before reading it. A rerun that finds both unchanged
    # trusts `sha256` instead of reading the file again (`ingest --rehash` reads every one).
    file_size: int | None = None
    file_mtime_ns: int | None = None

    @property
    def path(self) -> str:
        """The poster file relative to the posters folder, as the file system names it (open this; show `file`)."""
        return from_raw(self.file_raw) if self.file_raw else self.file

    @classmethod
    def of_file(cls, path: str, **fields: Any) -> PosterPayload:
        """A payload for the poster file at `path` (a name in any encoding): `file` as text, its bytes kept when it is not."""
        return cls(file=as_text(path), file_raw=raw_name(path), **fields)

    @classmethod
    def from_dict(cls, data: dict, where: str = "a stored payload") -> PosterPayload:
        """The typed payload; Damaged naming `where` and the field for a value of the wrong type.
        Only the store reads payloads (PosterStore, store/collection.py): everything above it gets
        PosterPayloads, decoded once, under one policy."""
        if not isinstance(data, dict):
            raise Damaged(f"{where}: the payload is {type(data).__name__}, not an object")
        values: dict[str, Any] = {}
        prediction_damaged = False
        for name, value in data.items():  # a payload holds a few fields: the loop is over those
            kind = _PAYLOAD_KINDS.get(name)
            if kind is None or value is None:
                continue  # a field of a newer version, or an absent one
            if name in DERIVED_FIELDS:
                if type(value) is kind:  # derived, made again by the next ingest: a wrong one is none, not damage
                    values[name] = value
                continue
            if name in PREDICTED_FIELDS:
                # A prediction is derived data, made again by `predict-year --stored`: one that does not
                # check out is no prediction (shown as undated, re-dated by the next run), never an error.
                if type(value) is not kind:
                    prediction_damaged = True
                values[name] = value
                continue
            if type(value) is not kind or kind is list:  # exact types pass at once; the check names a wrong field
                _check_type(value, kind, name, where, "correct it, or ingest again (which rewrites it)")
            values[name] = tuple(value) if kind is list else value
        if "file_raw" in values:
            try:
                from_raw(values["file_raw"])
            except ValueError:
                raise Damaged(
                    f"{where}: field 'file_raw' is not base64: it was changed outside poster search; ingest again (which rewrites it)"
                ) from None
        if prediction_damaged or "predicted_year" not in values:
            for name in PREDICTED_FIELDS:
                values.pop(name, None)
        return cls(**values)

    def to_dict(self) -> dict:
        """As stored: key, title and file always; the others when present (an unknown year is absent)."""
        data: dict[str, Any] = {"key": self.key, "title": self.title, "file": self.file}
        if self.sha256:
            data["sha256"] = self.sha256
        if self.year is not None:
            data["year"] = self.year
        if self.genres:
            data["genres"] = list(self.genres)
        for name in (*PREDICTED_FIELDS, "source", "file_raw", *DERIVED_FIELDS, *FILE_STAT_FIELDS):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        return data


SOURCES = ("catalog", "folder")  # PosterPayload.source
DERIVED_FIELDS = ("title_order", "added")  # since 4: written by the store itself (store/sort_keys.py)
FILE_STAT_FIELDS = ("file_size", "file_mtime_ns")  # since 5: PosterPayload.file_size

# The JSON type of each payload field (genres: a list of strings).
_PAYLOAD_KINDS: dict[str, type] = {
    **{f.name: str for f in fields(PosterPayload)},
    **{"year": int, "predicted_year": int, "predicted_low": int, "predicted_high": int, "genres": list},
    **{"title_order": int, "added": int, "file_size": int, "file_mtime_ns": int},
}

# Where each vector's EmbeddingSpec is kept in the collection metadata.
EMBEDDING_KEY = {VECTOR_NAME: "embedding", STYLE_VECTOR_NAME: "style_embedding"}


@dataclass(frozen=True)
class CollectionMetadata:
    """The metadata Qdrant keeps with the collection (on a server, its collection metadata; in the
    embedded store, collection.json). All since schema version 1."""

    embedding: dict | None = None  # EmbeddingSpec.as_dict() of `vgg16`: the guard against mixing embeddings
    style_embedding: dict | None = None  # the same for `vgg16_style`, when the collection has it
    calibration: dict | None = None  # int8 only: the calibration posters (embedding/quantize.py) and their folder
    posters_dir: str | None = None  # the absolute folder the payloads' `file` is relative to (as text)
    posters_dir_raw: str | None = None  # since 3, for a folder name that is not UTF-8: its bytes as base64
    schema_version: int = SCHEMA_VERSION
    # written anew (a random token) before each change of the points poster search makes: what a
    # cache of a view of the whole collection (the poster map) is keyed on, so that telling whether
    # the collection changed reads no point. Optional: a collection without one has not changed since.
    state: str | None = None

    @classmethod
    def from_dict(cls, data: dict, where: str = "the collection metadata") -> CollectionMetadata:
        """Upgraded to this version and type-checked; BadInput (one line) for a newer version,
        Damaged for a field of the wrong type. Keys this version does not know are ignored."""
        if not isinstance(data, dict):
            raise Damaged(f"{where} is {type(data).__name__}, not an object: it was not made by poster search")
        data = upgrade_metadata(data, where)
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = data.get(f.name)
            if value is None or (f.name == "state" and not isinstance(value, str)):
                continue  # a state token of the wrong type only keys caches: read as none, replaced by the next write
            _check_type(value, _METADATA_KINDS.get(f.name, dict), f.name, where, _METADATA_REMEDY)
            values[f.name] = value
        if "posters_dir_raw" in values:
            try:
                from_raw(values["posters_dir_raw"])
            except ValueError:
                raise Damaged(f"{where}: field 'posters_dir_raw' is not base64: {_METADATA_REMEDY}") from None
        return cls(**values)

    @classmethod
    def changes(cls, **values: Any) -> dict:
        """A type-checked partial update, e.g. `changes(posters_dir="/x")`, for update_metadata."""
        names = {f.name for f in fields(cls)}
        for name, value in values.items():
            if name not in names:
                raise TypeError(f"the collection metadata has no field {name!r}")
            if value is None:
                continue  # unset (read as absent)
            _check_type(value, _METADATA_KINDS.get(name, dict), name, "a metadata update", _METADATA_REMEDY)
        return values

    def to_dict(self) -> dict:
        """As stored; absent fields are left out."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @property
    def posters_path(self) -> str | None:
        """The posters folder as the file system names it (recorded bytes that no longer match the
        text, left from an earlier folder, are not taken)."""
        if self.posters_dir_raw and self.posters_dir is not None:
            folder = from_raw(self.posters_dir_raw)
            if as_text(folder) == self.posters_dir:
                return folder
        return self.posters_dir

    @staticmethod
    def posters_dir_changes(folder: str) -> dict:
        """The update that records `folder` (a name in any encoding) as the posters folder."""
        raw = raw_name(folder)
        return CollectionMetadata.changes(posters_dir=as_text(folder), **({"posters_dir_raw": raw} if raw else {}))

    def embedding_of(self, vector_name: str) -> dict | None:
        """The recorded EmbeddingSpec (as a dict) of a named vector, if any."""
        return getattr(self, EMBEDDING_KEY[vector_name]) if vector_name in EMBEDDING_KEY else None

    def spec_of(self, vector_name: str, dim: int, where: str) -> EmbeddingSpec:
        """The embedding recorded for a named vector, checked against the size of the vectors held
        (`dim`); `where` names what recorded it ("collection 'posters'", an export file)."""
        from ..embedding.spec import EmbeddingSpec

        recorded = self.embedding_of(vector_name)
        if not recorded:
            raise BadInput(f"{where} records no embedding for '{vector_name}': it was not made by poster search")
        try:
            spec = EmbeddingSpec.from_dict(recorded)
        except ValueError as e:
            raise BadInput(f"{where} records a damaged embedding for '{vector_name}' ({e})") from None
        if spec.dim != dim:
            raise BadInput(f"{where} holds {dim}-d vectors but records a {spec.dim}-d embedding")
        return spec


_METADATA_KINDS = {"schema_version": int, "posters_dir": str, "posters_dir_raw": str, "state": str}  # others: dict
_METADATA_REMEDY = "correct it, or ingest into a new --collection (or --recreate)"


def upgrade_metadata(data: dict, where: str = "the collection metadata") -> dict:
    """Collection metadata of any earlier schema version, as this version's; BadInput for a newer one.

    Version 1 (and collections that record none: the first release wrote it from the start, so
    none means 1) differs from 2 only in the payload fields it cannot hold (predicted_*, optional):
    the metadata carries over as it is."""
    version = data.get("schema_version", 1)
    if version is None:
        version = 1
    _check_type(version, int, "schema_version", where, _METADATA_REMEDY)
    if version > SCHEMA_VERSION:
        if version > 10**6:  # no release numbers its schema so: a 401-digit number is not echoed
            raise Damaged(f"{where} has schema version {str(version)[:12]}... ({len(str(version))} digits): no poster search wrote it")
        raise BadInput(
            f"{where} has schema version {version}, made by a newer poster search; this version reads up to {SCHEMA_VERSION}: upgrade"
        )
    if version < 1:
        shown = version if version > -(10**6) else f"{str(version)[:12]}... ({len(str(version)) - 1} digits)"
        raise Damaged(f"{where} has schema version {shown}: no poster search wrote it")
    return {**data, "schema_version": SCHEMA_VERSION}
