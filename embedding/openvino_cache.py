"""OpenVINO's compiled-model cache (its CACHE_DIR), kept in the project's cache folder, never trusted.

Compiling VGG16 for the CPU (bf16 or int8 kernels, weights repacked) takes 0.4-1.2 s; read back
from OpenVINO's cache it takes a fraction of that, which is most of a cold query's set-up. The
cache folder may come from elsewhere (a copied home, a shared machine), so it is handled like the
ONNX models beside it (embedding/onnx_cache.py):

    <cache>/openvino/<onnx model folder>-ov<version>-<precision>-<outputs>/
        <hash>.blob ...   what OpenVINO wrote
        made.json         each file's size and sha256, written once the folder was complete

A folder is used only when it is a real folder (not a link), holds nothing but regular files, and
every file has its recorded size and digest; otherwise OpenVINO compiles into a fresh private
folder (created exclusively), which is recorded and renamed into place: a link planted in the
cache is never written through, and a damaged or altered blob is rebuilt, not loaded.
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

from ..errors import BadInput
from ..safe_io import regular_file_digest, replace_folder

RECORD = "made.json"
MAX_RECORD_BYTES = 1024 * 1024
MAX_FILES = 64  # OpenVINO writes one blob per compiled model


def compiled_with_cache(key: str, compile_model: Callable[[str | None], object]) -> object:
    """compile_model(cache_dir) with a checked cache folder for `key`, or compile_model(None) where
    there can be none (an unwritable cache: said once, on stderr)."""
    from .onnx_cache import cache_dir

    root = cache_dir() / "openvino"
    folder = root / re.sub(r"[^A-Za-z0-9_.-]", "-", key)
    try:
        _real_folder(root)
        if _checks_out(folder):
            return compile_model(str(folder))
        staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{folder.name}."))  # exclusive, private
    except OSError as e:
        print(f"Note: cannot use OpenVINO's model cache in {root} ({e.strerror or e}); VGG16 is compiled in each process", file=sys.stderr)
        return compile_model(None)
    try:
        model = compile_model(str(staging))
        try:
            _record(staging)
            replace_folder(staging, folder, lambda: _checks_out(folder))
        except OSError:
            pass  # compiled; only the cache could not be kept (a full disk, a race lost): compiled again next time
        return model
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _real_folder(path: Path) -> None:
    """Create `path` (and its parents) if missing; OSError if it is a link or not a folder."""
    path.mkdir(parents=True, exist_ok=True)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise OSError(f"{path} is not a folder of its own (a link?)")


def _checks_out(folder: Path) -> bool:
    from ..safe_io import read_regular

    try:
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode):  # a link, a file
            return False
        record = json.loads(read_regular(folder / RECORD, MAX_RECORD_BYTES, "OpenVINO cache record"))
        names = set(os.listdir(folder)) - {RECORD}
        files = record["files"]
        if not isinstance(files, dict) or not files or set(files) != names or len(names) > MAX_FILES:
            return False
        return all(regular_file_digest(folder / name, int(size)) == (size, digest) for name, (size, digest) in files.items())
    except (OSError, ValueError, KeyError, TypeError, BadInput):
        return False


def _record(staging: Path) -> None:
    from ..safe_io import write_atomic

    names = sorted(os.listdir(staging))
    if not names:
        raise OSError("OpenVINO wrote no cache file")
    write_atomic(staging / RECORD, json.dumps({"files": {name: list(regular_file_digest(staging / name)) for name in names}}, indent=1))
