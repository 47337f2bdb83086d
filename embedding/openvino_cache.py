"""OpenVINO's compiled-model cache (its CACHE_DIR), kept in the project's cache folder, never trusted.

Compiling VGG16 for the CPU (bf16 or int8 kernels, weights repacked) takes 0.4-1.2 s; read back
from OpenVINO's cache it takes a fraction of that, which is most of a cold query's set-up. The
cache folder may come from elsewhere (a copied home, a shared machine), so it is handled like the
ONNX models beside it (embedding/onnx_cache.py):

    <cache>/openvino/<onnx model folder>-ov<version>-<precision>-<outputs>/
        <hash>.blob ...   what OpenVINO wrote
        made.json         each file's size and sha256, and the compiled model's vectors for the test
                          image (embedding/model_check.py), written once the folder was complete

A folder is used only when it is a real folder (not a link), holds nothing but regular files, and
every file has its recorded size and digest; otherwise OpenVINO compiles into a fresh private
folder (created exclusively), which is recorded and renamed into place: a link planted in the
cache is never written through, and a damaged or altered blob is rebuilt, not loaded. A blob
altered with its record recomputed passes those checks, not the next: the model read back must
give the test image the vectors it gave when it was compiled. A model compiled from a cached ONNX
graph that this process did not build must first agree with the vectors that graph recorded
(GraphDisagrees otherwise: the caller builds the graph again).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..safe_io import regular_file_digest, replace_folder
from .model_check import agreement, as_record, mismatch, note_rebuilt, tolerance, usable

RECORD = "made.json"
MAX_RECORD_BYTES = 1024 * 1024
MAX_FILES = 64  # OpenVINO writes one blob per compiled model


class GraphDisagrees(Exception):
    """A cached ONNX graph that this process did not build is not what it recorded: a model compiled
    from it does not give the test image the graph's recorded vectors, or it cannot be read."""


def compiled_with_cache(
    key: str,
    compile_model: Callable[[str | None], Any],
    probe: Callable[[Any], dict[str, np.ndarray]],
    by: str,
    reference: dict | None,
) -> tuple[Any, Path | None]:
    """compile_model(cache_dir) with a checked cache folder for `key`, or compile_model(None) where
    there can be none (an unwritable cache: said once, on stderr); and the folder when the model was
    read back from it (None when it was compiled here).

    probe(model): the model's vectors for the test image; `by`: who computes them (runtime-precision);
    `reference`: the vectors recorded by the ONNX graph being compiled, None for a graph built by
    this process (nothing to check it against: it was made from the weights just now)."""
    from .onnx_cache import cache_dir

    root = cache_dir() / "openvino"
    folder = root / re.sub(r"[^A-Za-z0-9_.-]", "-", key)
    try:
        _real_folder(root)
        record = _checks_out(folder)
        if record is not None:
            recorded = record.get("probe")
            needed = tolerance(recorded, by)
            try:
                model = compile_model(str(folder))
                agree = agreement(recorded, probe(model))
                if agree >= needed:
                    return model, folder
                why = mismatch(agree, needed)
            except RuntimeError:  # OpenVINO's errors: a blob it cannot read is rebuilt like one that computes wrongly
                why = "cannot be loaded"
            note_rebuilt(f"the compiled VGG16 cached in {folder}", why, "compiled again")
        staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{folder.name}."))  # exclusive, private
    except OSError as e:
        print(f"Note: cannot use OpenVINO's model cache in {root} ({e.strerror or e}); VGG16 is compiled in each process", file=sys.stderr)
        model = compile_model(None)
        _against_graph(probe(model), by, reference)
        return model, None
    try:
        model = compile_model(str(staging))
        found = probe(model)
        _against_graph(found, by, reference)
        if usable(found):  # NaN in this precision only is never recorded: the embedder's vectors say it, in one line
            try:
                _record(staging, as_record(found, by))
                replace_folder(staging, folder, lambda: _checks_out(folder) is not None)
            except OSError:
                pass  # compiled; only the cache could not be kept (a full disk, a race lost): compiled again next time
        return model, None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _against_graph(found: dict[str, np.ndarray], by: str, reference: dict | None) -> None:
    """GraphDisagrees unless a model compiled from a cached graph gives what the graph recorded."""
    if reference is None:
        return
    needed = tolerance(reference, by)
    agree = agreement(reference, found)
    if agree < needed:
        raise GraphDisagrees(mismatch(agree, needed))


def _real_folder(path: Path) -> None:
    """Create `path` (and its parents) if missing; OSError if it is a link or not a folder."""
    path.mkdir(parents=True, exist_ok=True)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise OSError(f"{path} is not a folder of its own (a link?)")


def _checks_out(folder: Path) -> dict | None:
    """The folder's record if it is as this module wrote it (a real folder of regular files of the
    recorded sizes and digests, safe_io.checked_record), else None."""
    from ..safe_io import checked_record

    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):  # a link, a file
            return None
    except OSError:
        return None

    def fits(record: dict) -> bool:
        files, names = record["files"], set(os.listdir(folder)) - {RECORD}
        return isinstance(files, dict) and bool(files) and set(files) == names and len(names) <= MAX_FILES

    return checked_record(folder, RECORD, MAX_RECORD_BYTES, "OpenVINO cache record", fits)


def _record(staging: Path, probe: dict) -> None:
    from ..safe_io import write_atomic

    names = sorted(os.listdir(staging))
    if not names:
        raise OSError("OpenVINO wrote no cache file")
    files = {name: list(regular_file_digest(staging / name)) for name in names}
    write_atomic(staging / RECORD, json.dumps({"files": files, "probe": probe}, indent=1))
