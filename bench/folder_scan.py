"""Ingest without a catalog, with nothing to embed: scanning a large media-server tree.

    .venv/bin/python -m bench.folder_scan [-n 100000] [--work DIR] [--keep]

Builds a tree of n poster files (`Film k (year).jpg`, 100 to a folder, one folder in ten a
`Title (Year)/poster.jpg` folder with a movie.nfo: every naming rule runs) and a store that
already holds every one of them (random vectors, the payload folder ingest writes), then times:
- the scan alone (ingest/folder.read_folder: walk, names, .nfo files);
- planning against the store (ingest/plan.make_plan: one scroll of the payloads, every file hashed);
- the whole command, `python cli.py ingest --posters DIR` in a fresh process, which must find
  nothing to embed (target <= 30 s for 100,000 files on the project's 2-core CPU).
The files are small (one 1 KB JPEG each), so hashing measures file-system calls, not disk bandwidth.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import ROOT
from poster_search.embedding.embedders import make_embedder
from poster_search.embedding.spec import resolve_weights
from poster_search.ingest.folder import read_folder
from poster_search.ingest.plan import make_plan
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation

NFO = "<movie><title>Film {k}</title><year>{year}</year><genre>Drama</genre></movie>"


def build_tree(root: Path, n: int) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 30), (120, 40, 40)).save(buffer, "JPEG")
    data = buffer.getvalue()
    for k in range(n):
        year = 1930 + k % 90
        folder = root / f"part {k // 100:04d}"
        if k % 10 == 0:
            folder = folder / f"Film {k} ({year})"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "poster.jpg").write_bytes(data)
            (folder / "movie.nfo").write_text(NFO.format(k=k, year=year))
        else:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"Film {k} ({year}).jpg").write_bytes(data)


def fill_store(store_path: Path, root: Path) -> int:
    """Every poster of the tree stored already, as folder ingest would have stored it."""
    catalog = read_folder(root)
    embedder = make_embedder(resolve_weights("random"))
    rng = np.random.default_rng(0)
    with PosterStore(StoreLocation(path=store_path)) as store:
        store.prepare(embedder.spec)
        store.remember_posters_dir(root)
        for start in range(0, len(catalog.films), 2000):
            films = catalog.films[start : start + 2000]
            vectors = rng.random((len(films), 512), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            payloads = [dict(f.payload(), sha256=hashlib.sha256((root / f.file).read_bytes()).hexdigest()) for f in films]
            store.upsert([f.point_id for f in films], vectors, payloads)
        return store.count()


def _children_cpu() -> float:
    """CPU seconds (user + system) of finished child processes: on a shared machine the wall time
    is mostly waiting for a core; this is the work itself."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=None, help="Folder for the tree and the store (default: a temp folder).")
    parser.add_argument("--keep", action="store_true", help="Keep the tree and the store (a second run reuses them).")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="folder-scan-"))
    root, store_path = work / "posters", work / "store"
    try:
        if not (store_path / "collections").exists():
            started = time.perf_counter()
            build_tree(root, args.n)
            print(f"tree of {args.n:,} posters built in {time.perf_counter() - started:.1f}s")
            started = time.perf_counter()
            print(f"store filled with {fill_store(store_path, root):,} points in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        catalog = read_folder(root)
        scan = time.perf_counter() - started
        print(f"scan (read_folder): {len(catalog.films):,} posters, {len(catalog.notes)} notes in {scan:.2f}s")
        with PosterStore(StoreLocation(path=store_path)) as store:
            started = time.perf_counter()
            plan = make_plan(catalog.films, catalog.keys(), store, root)
            planned = time.perf_counter() - started
        print(f"plan (scroll + sha256 of every file): new {len(plan.new)}, unchanged {len(plan.unchanged):,} in {planned:.2f}s")
        started, cpu = time.perf_counter(), _children_cpu()
        command = [sys.executable, str(ROOT / "cli.py"), "ingest", "--posters", str(root), "--qdrant-path", str(store_path)]
        result = subprocess.run([*command, "--weights", "random", "--rejects", str(work / "rejects.csv")], capture_output=True, text=True)
        whole, cpu = time.perf_counter() - started, _children_cpu() - cpu
        print(result.stdout.strip() or result.stderr.strip())
        load = os.getloadavg()[0]
        print(
            f"python cli.py ingest --posters (nothing to embed), whole command: {whole:.1f}s wall, {cpu:.1f}s CPU (load average {load:.1f})"
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
