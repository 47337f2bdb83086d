"""Dating many posters: `predict-year --stored` over a collection, and images in one cold call.

    .venv/bin/python -m bench.predict_year [-n 3748] [--images 20] [--work DIR]

- stored: a collection of n posters with both stored vectors (vgg16 512-d and vgg16_style
  2,944-d, as `ingest --style` makes them; random unit vectors, a fifth of them undated) and a
  year model of the default architecture (bins head, five members of 512 and 128 units, on both
  vectors; trained for a few epochs only: its cost per poster is the architecture's, not the
  training's), then `python cli.py predict-year --stored` as fresh processes: the undated ones,
  a rerun (nothing to do), and `--all`. No poster is decoded: the cost is reading the vectors,
  the head in NumPy and the payload writes. Target: <= 10 s for the 3,748 shared posters.
- images: the first `--images` shared posters in one cold `python cli.py predict-year` call (ONNX
  Runtime, the real weights when present; the ONNX graph cache warm, as after a first query).
  Target: <= 5 s for 20.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import POSTERS, ROOT, WEIGHTS
from poster_search.embedding.embedders import make_embedder
from poster_search.embedding.spec import resolve_weights
from poster_search.regression.config import HeadConfig
from poster_search.regression.dataset import load_year_data
from poster_search.regression.train import train_year_model
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.schema import STYLE_VECTOR_NAME, VECTOR_NAME, point_id


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = np.abs(rng.normal(size=(n, d))).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def cli(*args: str) -> tuple[float, str]:
    """Run `python cli.py ARGS` in a fresh process: its wall time, and its output with its CPU time
    and the load average (on a shared machine the wall time is mostly waiting for a core)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(args)}\n{result.stderr}")
    return seconds, f"{cpu:.1f}s CPU, load average {os.getloadavg()[0]:.1f}; " + result.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=3748)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument(
        "--work", type=Path, default=None, help="Folder for the store and the model, kept (default: a temp folder, removed)."
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="predict-year-"))
    weights = str(WEIGHTS) if WEIGHTS.is_file() else "random"
    embedder = make_embedder(resolve_weights(weights), style=True)
    rng = np.random.default_rng(0)
    location = StoreLocation(path=work / "store")
    try:
        started = time.perf_counter()
        base, style = unit(rng, args.n, embedder.spec.dim), unit(rng, args.n, embedder.style_spec.dim)
        years = 1940 + (base[:, :8].sum(axis=1) * 200) % 80
        with PosterStore(location) as store:
            store.prepare(embedder.spec, style_spec=embedder.style_spec)
            for start in range(0, args.n, 500):
                rows = range(start, min(args.n, start + 500))
                payloads = [
                    {"key": f"p{i}", "title": f"Film {i}", "sha256": f"s{i}"} | ({"year": int(years[i])} if i % 5 else {}) for i in rows
                ]
                store.upsert([point_id(f"p{i}") for i in rows], base[rows.start : rows.stop], payloads, style[rows.start : rows.stop])
            data = load_year_data(store, (VECTOR_NAME, STYLE_VECTOR_NAME))
        config = HeadConfig(epochs=3, patience=1)
        train_year_model(data, work / "model", config=config, knn_k=3, progress=False)
        print(f"setup: {args.n} posters, both vectors, default-architecture head ({weights}) in {time.perf_counter() - started:.0f}s")
        store_args = ["--model-dir", str(work / "model"), "--qdrant-path", str(location.path)]
        for label, extra in (("undated", []), ("rerun, nothing to do", []), ("--all", ["--all"])):
            seconds, out = cli("predict-year", "--stored", *extra, *store_args)
            print(f"predict-year --stored {label}: {seconds:.2f}s  [{out}]")
        images = sorted(POSTERS.glob("*.jpg"))[: args.images] if POSTERS.is_dir() else []
        if images:
            cli("predict-year", str(images[0]), "--model-dir", str(work / "model"), "--weights", weights)  # builds the ONNX cache once
            seconds, out = cli("predict-year", *map(str, images), "--model-dir", str(work / "model"), "--weights", weights)
            print(
                f"predict-year with {len(images)} images, one cold process: {seconds:.2f}s ({len(images) / seconds:.1f} posters/s)  [{out}]"
            )
        else:
            print("images: skipped (no shared posters)")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
