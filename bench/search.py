"""Search latency on the real store: nearest() with the model loaded, search by title, and the
CLI's cold start. (The engines side by side, and synthetic stores up to 100,000 points: bench/engines.py.)

    .venv/bin/python -m bench.search [--qdrant-path qdrant_data] [-n 50]

The real store is the one `python cli.py ingest` made (the README's quick start).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import POSTERS, ROOT, WEIGHTS, percentiles, require_data, timed
from poster_search.search.neighbours import PosterSearch, image_embedder
from poster_search.search.titles import find_film
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation


def cold_start(store_path: Path, title: str, runs: int = 5) -> float:
    command = [sys.executable, str(ROOT / "cli.py"), "search", "--title", title, "--qdrant-path", str(store_path)]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_real(store_path: Path, n: int) -> None:
    with PosterStore(StoreLocation(path=store_path), must_exist=True) as store:
        embedder = image_embedder(store, str(WEIGHTS))  # ONNX Runtime, as every query runs
        embedder.load()
        searcher = PosterSearch(store, embedder)
        films = list(store.points(with_vectors=False))[:n]
        searcher.by_image(POSTERS / films[0].payload["file"])  # warm-up
        by_image = timed(lambda f: searcher.by_image(POSTERS / f.payload["file"], k=3), films)
        by_title = timed(lambda f: searcher.by_point(find_film(store, title=f.payload["title"], year=f.payload.get("year")), k=3), films)
        count = store.count()
        title = films[0].payload["title"]
    print(f"real store ({count} posters, {store_path}):")
    print(f"  nearest(image), model loaded:  {percentiles(by_image)}")
    print(f"  search by title (no model):    {percentiles(by_title)}")
    print(f"  `cli.py search --title` cold:  {cold_start(store_path, title):7.2f} s (median of 5 processes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qdrant-path", type=Path, default=ROOT / "qdrant_data")
    parser.add_argument("-n", type=int, default=50, help="queries per measurement")
    args = parser.parse_args()
    require_data()
    if not args.qdrant_path.is_dir():
        sys.exit(f"no store at {args.qdrant_path}: run the README's quick start (python cli.py ingest ...) first")
    bench_real(args.qdrant_path, args.n)


if __name__ == "__main__":
    main()
