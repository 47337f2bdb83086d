"""The ONNX form of the embedder, derived from the Keras weights once and kept in a cache folder.

A user never runs an export step: the first query (or ingest) on a machine builds the graph from
the weights (embedding/onnx_graph.py, about 2 s; an int8 model also calibrates, embedding/quantize.py)
and writes it to the cache; later processes read it back. Each model is a folder keyed by what it
was made from (the weights' id, the export version, the variant: fp32, or int8 with its
calibration), with a record of what it was made from, each file's size and sha256, and the vectors
the freshly built model gave for a test image (embedding/model_check.py). A model that is missing,
made from something else, truncated or altered is rebuilt, never trusted; one whose files match a
record that was recomputed after they were altered is caught by what it computes, when the embedder
loads it (embedding/onnx_embedder.py). Where the cache cannot be written (a read-only or full disk),
the model is built in memory for this process and the reason is printed.

    $POSTER_SEARCH_CACHE, else $XDG_CACHE_HOME/poster-search, else ~/.cache/poster-search
      models/vgg16-<weights>-v<export>-<variant>/
        model.onnx        the graph
        model.onnx.data   its weights (ONNX external data: ONNX Runtime maps them instead of
                          copying them, a third less memory for a query process)
        made.json         what it was made from, each file's size and sha256, the test image's vectors
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

from ..errors import BadInput
from ..safe_io import checked_record, read_regular, regular_file_digest, replace_folder, write_atomic

CACHE_ENV = "POSTER_SEARCH_CACHE"
MAX_RECORD_BYTES = 4 * 1024 * 1024  # made.json, digests.json: kilobytes when this module writes them
# Changing the graph (its layers, outputs or preprocessing) must change this: every cached model
# of another version is then rebuilt instead of read. 2: any input height and width, and the test
# image's vectors in the record (issue 39).
EXPORT_VERSION = 2
MODEL, DATA, RECORD = "model.onnx", "model.onnx.data", "made.json"


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "poster-search"


@dataclass(frozen=True)
class CachedModel:
    """A model for ONNX Runtime or OpenVINO to load, and what the cache knows of it."""

    source: str | bytes  # the cached model.onnx's path, or the serialised model (the cache cannot be written)
    folder: Path | None  # its cache entry; None for a model held in memory
    probe: dict | None  # the test image's vectors, recorded when it was built (embedding/model_check.py)
    fresh: bool  # built by this process from the weights, not read back


def cached_model(
    weights_id: str,
    variant: str,
    build: Callable[[], onnx.ModelProto],
    probe: Callable[[str], dict],
    rebuild: bool = False,
) -> CachedModel:
    """What ONNX Runtime or OpenVINO loads for (weights, variant): the cached model.onnx when the
    cache holds it intact (unless `rebuild`), else `build()` (an onnx.ModelProto) cached first, with
    probe(path of the staged model.onnx), the test image's vectors from the model just built; the
    serialised model itself where the cache cannot be written."""
    folder = cache_dir() / "models" / f"vgg16-{_safe(weights_id)}-v{EXPORT_VERSION}-{_safe(variant)}"
    wanted = {"weights": weights_id, "export_version": EXPORT_VERSION, "variant": variant}
    record = None if rebuild else _intact(folder, wanted)
    if record is not None:
        return CachedModel(str(folder / MODEL), folder, record.get("probe"), fresh=False)
    model = build()
    try:
        _install(folder, model, wanted, probe)
    except OSError as e:  # `model` is still whole: _install saved a copy (saving moves its weights out to the data file)
        print(f"Note: cannot cache the ONNX model in {folder.parent} ({e.strerror or e}); it is rebuilt in each process", file=sys.stderr)
        return CachedModel(model.SerializeToString(), None, None, fresh=True)
    return CachedModel(str(folder / MODEL), folder, None, fresh=True)


def _intact(folder: Path, wanted: dict) -> dict | None:
    """The folder's record if it holds the model `wanted` as this module wrote it (else None):
    safe_io.checked_record, for a record of `wanted`'s fields and the two model files."""

    def fits(record: dict) -> bool:
        return all(record.get(k) == v for k, v in wanted.items()) and set(record["files"]) == {MODEL, DATA}

    return checked_record(folder, RECORD, MAX_RECORD_BYTES, "cached model record", fits)


def _install(folder: Path, model, wanted: dict, probe: Callable[[str], dict]) -> None:
    """Write the model into a new folder beside `folder`, then rename it into place: a concurrent
    reader sees the old model, the new one or none, never half of one. The record holds what the
    staged model computes for the test image, before anything else can have touched it."""
    import onnx

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        # A copy: save_model with external data rewrites the proto it is given, its weights moved out
        # to a file that a full disk may leave unwritten, and the in-memory fallback needs them in it.
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        onnx.save_model(
            copy, str(staging / MODEL), save_as_external_data=True, all_tensors_to_one_file=True, location=DATA, size_threshold=1024
        )
        files = {name: list(regular_file_digest(staging / name)) for name in (MODEL, DATA)}
        record = {**wanted, "files": files, "probe": probe(str(staging / MODEL))}
        (staging / RECORD).write_text(json.dumps(record, indent=2))
        replace_folder(staging, folder, lambda: _intact(folder, wanted) is not None)  # a stale or damaged one moved aside first
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remembered(path: Path, what: str, compute: Callable[[], str]) -> str:
    """compute(), a digest of the file at `path`, remembered while the file is unchanged.

    Unchanged means the same inode, size, modification and change time (what git and make go by);
    the change time cannot be set back by a user, so a rewritten file is always hashed again.
    """
    try:
        info = path.stat()
    except OSError:
        return compute()  # let compute() raise its own error
    key = f"{what}:{path.resolve()}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"
    memo_path = cache_dir() / "digests.json"
    try:
        memo = json.loads(read_regular(memo_path, MAX_RECORD_BYTES, "digest cache"))
        if not isinstance(memo, dict):
            memo = {}
        if isinstance(memo.get(key), str):
            return memo[key]
    except (OSError, ValueError, BadInput):
        memo = {}
    value = compute()
    try:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        memo = {k: v for k, v in memo.items() if not k.startswith(f"{what}:{path.resolve()}:")}  # only the latest per file
        write_atomic(memo_path, json.dumps({**memo, key: value}, indent=1))
    except (OSError, AttributeError):
        pass  # not remembered: hashed again next time
    return value


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)
