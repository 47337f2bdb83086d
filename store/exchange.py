"""The export file of `export-embeddings` and `import-embeddings`: written and read only here,
streamed both ways, so memory is bounded by a batch, not by the collection.

The file is a .npz (a zip numpy's `np.load` opens), format FORMAT, version VERSION:
- `embeddings`: (n, d) float32, L2-normalised: the vector named in `export.json`, stored uncompressed;
- `ids`, `keys`, `titles`, `files`, `sha256` (str) and `years`, `predicted_years`, `predicted_low`,
  `predicted_high` (float64, NaN where none): row i describes vector i;
- `payloads.jsonl`: row i's payload as stored, one JSON object a line (genres, source, a file
  name's raw bytes...): what an import writes. Without it, an import builds payloads from the columns;
- `export.json`: the format and its version, the vector's name, the collection it came from and its
  metadata (the embedding spec: an import into a collection of another embedding is refused).

An export scrolls the collection a batch at a time into private files in a folder beside the
output (so it needs about the vectors' size in free space there, once more, while it runs), then
copies them into the zip, which is renamed into place; an import reads every member a batch at a
time. Exports written before version 1 have no `export.json`: they are refused in one line.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..embedding.spec import EmbeddingSpec
from ..errors import BadInput, Damaged, command
from ..safe_io import open_regular, output_path
from .collection import PosterStore, Sharding
from .engine import is_point_id
from .integrity import check_intact
from .schema import PREDICTED_HIGH, PREDICTED_LOW, PREDICTED_YEAR, VECTOR_NAME, CollectionMetadata, PosterPayload, point_id

FORMAT = "poster-search-export"
VERSION = 1
HEADER = "export.json"
PAYLOADS = "payloads.jsonl"
STRING_COLUMNS = ("ids", "keys", "titles", "files", "sha256")
FLOAT_COLUMNS = ("years", "predicted_years", "predicted_low", "predicted_high")
_STRING_FIELDS = {"keys": "key", "titles": "title", "files": "file", "sha256": "sha256"}
_FLOAT_FIELDS = {"years": "year", "predicted_years": PREDICTED_YEAR, "predicted_low": PREDICTED_LOW, "predicted_high": PREDICTED_HIGH}
BATCH = 1024
CHUNK_ROWS = 16_384  # rows per write when the spooled columns are copied into the zip
MAX_HEADER_BYTES = 1 << 20
MAX_PAYLOAD_LINE = 1 << 20  # a payload is a few hundred bytes; a longer line was not written here
MAX_FILE_BYTES = 1 << 42
PAYLOAD_BYTES = 1024  # a payload and its columns, generously: for the free-space check
NAMED_AT_MOST = 10  # rows left out are named one by one up to this many, then counted

log = logging.getLogger("poster_search")


@dataclass
class ExportReport:
    path: Path
    rows: int
    dim: int
    vector: str
    seconds: float

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.dim)


@dataclass
class ImportReport:
    path: Path
    collection: str
    imported: int
    left_out: int
    count: int  # points in the collection afterwards
    seconds: float
    index_seconds: float | None  # of `seconds`: building the search index at the end (None: left for later, --no-index)

    def summary(self) -> str:
        left = f"; {self.left_out} rows left out (named above)" if self.left_out else ""
        index = (
            f"its search index built in {self.index_seconds:.1f}s"
            if self.index_seconds is not None
            else f"its search index is not built yet: searches scan every poster until {command('index')} builds it"
        )
        return f"imported {self.imported} posters from {self.path} into collection '{self.collection}' in {self.seconds:.1f}s (it holds {self.count}; {index}){left}"


# --- export ------------------------------------------------------------------------------------


def export_target(path: Path) -> Path:
    """The file an export writes (a symlink's target: the link stays a link), or BadInput: the
    export is renamed into place, which would replace a device or a FIFO by a file."""
    path = Path(path).resolve() if Path(path).is_symlink() else Path(path)
    if not path.parent.is_dir():
        raise BadInput(f"cannot write {path}: folder {path.parent} does not exist")
    if path.exists() and not path.is_file():
        raise BadInput(f"cannot write {path}: it is not a regular file (a device, a FIFO or a folder); give a file name")
    return path


def export_header(store: PosterStore, vector_name: str = VECTOR_NAME) -> dict:
    """What `export.json` says of a collection (the rows' count is added when it is known)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "vector": vector_name,
        "collection": store.collection,
        "metadata": {**store.metadata(), **store.collection_metadata().to_dict()},
    }


def export_npz(store: PosterStore, path: Path, vector_name: str = VECTOR_NAME, progress: bool = False) -> ExportReport:
    """Write the collection's `vector_name` vectors and payloads as one export file (see the module)."""
    from tqdm import tqdm

    started = time.perf_counter()
    path = export_target(path)
    spec = store.stored_spec(vector_name)
    check_intact(store)  # points whose vector or payload was lost would be left out without a word
    total = store.count(store.having(vector_name))
    _check_room(path, total * (8 * spec.dim + 2 * PAYLOAD_BYTES))
    with tqdm(total=total, unit="poster", desc="exporting", disable=not progress) as bar:
        points = store.points(with_vectors=True, vector_name=vector_name, batch=BATCH)
        rows = write_export(path, export_header(store, vector_name), spec.dim, _batched(points, BATCH, bar.update))
    return ExportReport(path, rows, spec.dim, vector_name, time.perf_counter() - started)


def write_export(path: Path, header: dict, dim: int, batches: Iterable[Sequence[Any]]) -> int:
    """Write an export file of the rows in `batches` (objects with `id`, `vector`, `poster` (a
    PosterPayload) and `payload`, as PosterStore.points() yields them); how many rows."""
    try:
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as folder, output_path(path) as staged:
            with _Spool(Path(folder), dim) as spool:
                for batch in batches:
                    spool.add(batch)
            with open(staged, "wb") as f, zipfile.ZipFile(f, "w", allowZip64=True) as zf:
                spool.write_zip(zf, {**header, "rows": spool.rows})
    except OSError as e:  # the spool folder beside the output: a full disk, a read-only place
        raise BadInput(f"cannot write {path}: {e.strerror or e}") from None
    return spool.rows


def _batched(items: Iterable[Any], size: int, done: Callable[[int], Any]) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            done(len(batch))
            batch = []
    if batch:
        yield batch
        done(len(batch))


def _check_room(path: Path, needed: int) -> None:
    """BadInput before the work when the export cannot fit beside `path` (its spool and the file)."""
    import shutil

    free = shutil.disk_usage(path.parent).free
    if free < needed:
        raise BadInput(
            f"cannot write {path}: not enough free space ({free // 2**20:,} MB free, the export needs about {needed // 2**20 + 1:,} MB)"
        )


class _Spool:
    """Each column of the export in a private file, a batch at a time, until the row count is known."""

    def __init__(self, folder: Path, dim: int) -> None:
        self.folder, self.dim, self.rows = folder, dim, 0
        self.widths = dict.fromkeys(STRING_COLUMNS, 1)
        self._files: dict[str, IO] = {}

    def __enter__(self) -> _Spool:
        for name in ("embeddings", *FLOAT_COLUMNS):
            self._files[name] = open(self.folder / name, "xb")
        for name in (*STRING_COLUMNS, PAYLOADS):
            self._files[name] = open(self.folder / name, "x", encoding="ascii")  # JSON escapes the rest
        return self

    def __exit__(self, *exc: object) -> None:
        for f in self._files.values():
            f.close()

    def add(self, points: Sequence[Any]) -> None:
        if not points:
            return
        self._files["embeddings"].write(np.stack([p.vector for p in points]).astype("<f4").tobytes())
        for column, name in _FLOAT_FIELDS.items():
            values = [getattr(p.poster, name) for p in points]
            self._files[column].write(np.array([math.nan if v is None else v for v in values], "<f8").tobytes())
        for column in STRING_COLUMNS:
            values = [p.id for p in points] if column == "ids" else [getattr(p.poster, _STRING_FIELDS[column]) for p in points]
            self.widths[column] = max(self.widths[column], *(len(v) for v in values))
            self._files[column].write("".join(json.dumps(v) + "\n" for v in values))
        self._files[PAYLOADS].write("".join(json.dumps(p.payload) + "\n" for p in points))
        self.rows += len(points)

    def write_zip(self, zf: zipfile.ZipFile, header: dict) -> None:
        n = self.rows
        _npy_member(zf, "embeddings", np.dtype("<f4"), (n, self.dim), _raw_chunks(self.folder / "embeddings", 4 * self.dim), False)
        for column in FLOAT_COLUMNS:
            _npy_member(zf, column, np.dtype("<f8"), (n,), _raw_chunks(self.folder / column, 8), True)
        for column in STRING_COLUMNS:
            dtype = np.dtype(f"<U{self.widths[column]}")
            _npy_member(zf, column, dtype, (n,), _string_chunks(self.folder / column, dtype), True)
        zf.write(self.folder / PAYLOADS, PAYLOADS, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(HEADER, json.dumps(header, indent=1), compress_type=zipfile.ZIP_DEFLATED)


def _raw_chunks(path: Path, row_bytes: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_ROWS * row_bytes):
            yield chunk


def _string_chunks(path: Path, dtype: np.dtype) -> Iterator[bytes]:
    with open(path, encoding="ascii") as f:
        lines: list[str] = []
        for line in f:
            lines.append(json.loads(line))
            if len(lines) == CHUNK_ROWS:
                yield np.array(lines, dtype).tobytes()
                lines = []
        if lines:
            yield np.array(lines, dtype).tobytes()


def _npy_member(zf: zipfile.ZipFile, name: str, dtype: np.dtype, shape: tuple[int, ...], chunks: Iterator[bytes], compress: bool) -> None:
    info = zipfile.ZipInfo(f"{name}.npy", date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zf.open(info, "w", force_zip64=True) as out:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_2_0(out, header)
        for chunk in chunks:
            out.write(chunk)


# --- import ------------------------------------------------------------------------------------


class ExportFile:
    """An export file opened for reading a batch at a time; BadInput (one line) for anything that
    is not one: its header, every member's shape and type are checked before a row is read."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._file = open_regular(self.path, MAX_FILE_BYTES, "the export file", follow_links=True)
        except FileNotFoundError:
            raise BadInput(f"no file {self.path}") from None
        try:
            self._zip = zipfile.ZipFile(self._file)
            self.header = self._read_header()
            self._columns = self._read_columns()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            self.close()
            raise BadInput(f"{self.path} is not an export of poster search: {e}") from None
        except BaseException:
            self.close()
            raise
        self.rows, self.dim = self._columns["embeddings"][1]

    def __enter__(self) -> ExportFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "_zip", None) is not None:
            self._zip.close()
        self._file.close()

    def _read_header(self) -> dict:
        names = set(self._zip.namelist())
        if HEADER not in names:
            raise BadInput(
                f"{self.path} has no {HEADER}: it was written by an earlier poster search or by hand, and does not say which embedding "
                "its vectors are; export the collection again with this version"
            )
        info = self._zip.getinfo(HEADER)
        if info.file_size > MAX_HEADER_BYTES:
            raise BadInput(f"{self.path}: {HEADER} is {info.file_size:,} bytes, more than an export writes")
        try:
            header = json.loads(self._zip.read(HEADER))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BadInput(f"{self.path}: {HEADER} is not JSON ({e})") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise BadInput(f"{self.path}: {HEADER} does not describe a {FORMAT} file")
        version = header.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version > VERSION:
            raise BadInput(f"{self.path} is export format version {str(version)[:20]}; this poster search reads up to {VERSION}: upgrade")
        if not isinstance(header.get("metadata"), dict) or not isinstance(header.get("vector"), str):
            raise BadInput(f"{self.path}: {HEADER} lacks the collection metadata or the vector's name")
        return header

    def _read_columns(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        names = set(self._zip.namelist())
        columns: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
        for name in ("embeddings", *STRING_COLUMNS, *FLOAT_COLUMNS):
            if f"{name}.npy" not in names:
                continue
            with self._zip.open(f"{name}.npy") as f:
                columns[name] = _npy_header(f, name)
        if "embeddings" not in columns:
            raise BadInput(f"{self.path} has no 'embeddings' array")
        dtype, shape = columns["embeddings"]
        if len(shape) != 2 or dtype.kind != "f":
            raise BadInput(f"{self.path}: 'embeddings' is {dtype} of shape {shape}, not a (n, d) float array")
        for name, (dtype, their) in columns.items():
            if name != "embeddings" and (their != (shape[0],) or dtype.kind not in ("U", "f")):
                raise BadInput(f"{self.path}: '{name}' is {dtype} of shape {their}; the file has {shape[0]} rows of strings or numbers")
        if "ids" not in columns and "keys" not in columns and PAYLOADS not in names:
            raise BadInput(f"{self.path} has neither 'ids' nor 'keys': a row's point cannot be named")
        return columns

    def spec(self) -> EmbeddingSpec:
        where = f"{self.path}: {HEADER}"
        return CollectionMetadata.from_dict(self.header["metadata"], where).spec_of(self.header["vector"], self.dim, where)

    def batches(self, size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
        """Rows, `size` at a time: each a dict of its columns' values, `vector`, and `payload` when the file has them."""
        readers = {
            name: _NpyReader(self._zip.open(f"{name}.npy"), dtype, shape, self.path) for name, (dtype, shape) in self._columns.items()
        }
        payloads = self._zip.open(PAYLOADS) if PAYLOADS in self._zip.namelist() else None
        try:
            for start in range(0, self.rows, size):
                count = min(size, self.rows - start)
                values = {name: reader.read(count) for name, reader in readers.items()}
                rows = [{name: column[i] for name, column in values.items() if name != "embeddings"} for i in range(count)]
                for i, row in enumerate(rows):
                    row["vector"] = values["embeddings"][i]
                    if payloads is not None:
                        row["payload"] = _payload_line(payloads, start + i)
                yield rows
        finally:
            for reader in readers.values():
                reader.close()
            if payloads is not None:
                payloads.close()


def _npy_header(f: IO[bytes], name: str) -> tuple[np.dtype, tuple[int, ...]]:
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read(f, max_header_size=MAX_HEADER_BYTES)
    if fortran or dtype.hasobject:
        raise BadInput(f"'{name}' is {'in Fortran order' if fortran else 'of Python objects'}: not written by an export")
    return dtype, shape


class _NpyReader:
    """One array member, read `count` rows at a time."""

    def __init__(self, f: IO[bytes], dtype: np.dtype, shape: tuple[int, ...], path: Path) -> None:
        self._f, self.path = f, path
        _npy_header(f, "")
        self.dtype, self.row_shape = dtype, shape[1:]
        self.row_bytes = dtype.itemsize * int(np.prod(self.row_shape, dtype=np.int64))

    def read(self, count: int) -> np.ndarray:
        data = self._f.read(count * self.row_bytes)
        if len(data) != count * self.row_bytes:
            raise BadInput(f"{self.path} ends before its last row: it is truncated; export it again")
        return np.frombuffer(data, self.dtype).reshape((count, *self.row_shape))

    def close(self) -> None:
        self._f.close()


def _payload_line(f: IO[bytes], row: int) -> Any:
    line = f.readline(MAX_PAYLOAD_LINE)
    if not line.endswith(b"\n") and len(line) == MAX_PAYLOAD_LINE:
        raise BadInput(f"{PAYLOADS}: row {row} is longer than {MAX_PAYLOAD_LINE:,} bytes: not written by an export")
    try:
        return json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # named with its row by _row


def import_npz(store: PosterStore, path: Path, posters_dir: Path | None = None, progress: bool = False, index: bool = True) -> ImportReport:
    """Add the rows of an export file to the collection (created with the file's metadata if it
    does not exist; an existing one must hold the same embedding), then build its search index
    (`index=False`: later, once for several imports). Rows whose point is stored already are
    written again, so a rerun after an interruption completes the import. A row that does not
    decode is named and left out; the rest are imported."""
    from tqdm import tqdm

    from .migrate import prepare_target

    started = time.perf_counter()
    store.check_writable()
    with ExportFile(path) as file:
        if file.header["vector"] != VECTOR_NAME:
            raise BadInput(
                f"{file.path} holds '{file.header['vector']}' vectors: a collection's points need their '{VECTOR_NAME}' vector, "
                f"so import an export of '{VECTOR_NAME}'"
            )
        spec = file.spec()
        recorded = file.header["metadata"]
        metadata = {**recorded, **CollectionMetadata.from_dict(recorded, f"{file.path}: {HEADER}").to_dict()}  # upgraded
        metadata.pop("style_embedding", None)  # the file holds one vector; a style vector is added by ingest --style
        for key in ("posters_dir", "posters_dir_raw"):
            metadata.pop(key, None)  # a folder of the machine it was exported on; --posters says where they are here
        if posters_dir is not None:
            metadata.update(CollectionMetadata.posters_dir_changes(str(Path(posters_dir).resolve())))
        prepare_target(store, {VECTOR_NAME: spec.dim}, metadata, Sharding(), "another --collection")
        imported = left_out = 0
        with tqdm(total=file.rows, unit="poster", desc="importing", disable=not progress) as bar:
            for rows in file.batches():
                accepted = []
                for row in rows:
                    made = _row(row, file.path)
                    if isinstance(made, str):
                        left_out += 1
                        if left_out <= NAMED_AT_MOST:
                            log.warning("%s (left out)", made)
                        continue
                    accepted.append(made)
                if accepted:
                    ids, vectors, payloads = zip(*accepted)
                    store.upsert(list(ids), np.stack(vectors), list(payloads))
                imported += len(accepted)
                bar.update(len(rows))
        if left_out > NAMED_AT_MOST:
            log.warning("%s: %d more rows left out", file.path, left_out - NAMED_AT_MOST)
    indexing = time.perf_counter()
    if index:
        store.optimize(progress)  # the index is built before the command returns
    finished = time.perf_counter()
    built = finished - indexing if index else None
    return ImportReport(Path(path), store.collection, imported, left_out, store.count(), finished - started, built)


def _row(row: dict[str, Any], path: Path) -> tuple[str, np.ndarray, dict] | str:
    """(point id, vector, payload) of one row, or why it is left out."""
    payload = row.get("payload") if "payload" in row else _payload_from_columns(row)
    where = f"{path}: row with key {str(row.get('keys') or '')[:80]!r}"
    if not isinstance(payload, dict):
        return f"{where}: its line of {PAYLOADS} is not a JSON object"
    key = payload.get("key") or str(row.get("keys") or "") or payload.get("file") or str(row.get("files") or "")
    if not isinstance(key, str) or not key:
        return f"{where}: it has no id, no key and no file to name its point by"
    payload = {**payload, "key": key}
    try:
        PosterPayload.from_dict(payload, f"{path}: row with key {key[:80]!r}")
    except Damaged as e:
        return str(e)
    pid = str(row.get("ids") or "") or point_id(key)
    if not is_point_id(pid):
        return f"{path}: row with key {key[:80]!r} has id {pid[:80]!r}, not a UUID"
    vector = np.asarray(row["vector"], dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0:
        return f"{path}: row with key {key[:80]!r} has a vector of zeros or of values that are not numbers"
    return pid, vector / norm, payload


def _payload_from_columns(row: dict[str, Any]) -> dict:
    """The payload of a file without payloads.jsonl, from its columns (the year model's
    predictions stay behind: the columns do not say which model made them)."""
    payload: dict[str, Any] = {field: str(row.get(column, "")) for column, field in _STRING_FIELDS.items()}
    year = row.get("years")
    if year is not None and np.isfinite(year):
        payload["year"] = int(year)
    return {k: v for k, v in payload.items() if v != "" or k in ("title", "file")}
