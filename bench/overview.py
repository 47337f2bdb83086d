"""The collection at a glance at scale: the poster map, the era timeline and near-duplicates on the
real store and on a synthetic one of 100,000 posters.

    .venv/bin/python -m bench.overview [--real STORE] [--size 100000] [--threshold 0.95]

For each store: seconds and peak memory (of this process, measured around each step) to compute
the poster map (t-SNE, search/poster_map.py) and to read it back from the cache, the size of what
the page downloads for it (JSON, and gzipped as the server sends it), the era timeline's
seconds, and near-duplicates' seconds and pairs found (exact search through the store). The
synthetic posters: clustered non-negative 512-d vectors shaped like VGG16 features
(bench/engines.py), years 1920-2020, with one copy of every 1,000th poster planted under another
id (a known set of duplicates to find).
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_store(folder: Path, n: int):
    from bench.engines import poster_like
    from poster_search.embedding.spec import EmbeddingSpec
    from poster_search.store.collection import PosterStore
    from poster_search.store.connection import StoreLocation
    from poster_search.store.schema import point_id

    location = StoreLocation(path=folder)
    rng = np.random.default_rng(0)
    with PosterStore(location) as store:
        store.prepare(EmbeddingSpec(weights="random"))
        for start in range(0, n, 2048):
            count = min(2048, n - start)
            vectors = poster_like(rng, count, 512)
            ids = [point_id(f"s{i}") for i in range(start, start + count)]
            payloads = [
                {
                    "key": f"s{i}",
                    "title": f"Synthetic film {i}",
                    "year": int(1920 + (i * 7919) % 101),
                    "file": f"{i}.jpg",
                    "sha256": f"h{i}",
                }
                for i in range(start, start + count)
            ]
            copies = [j for j in range(count) if (start + j) % 1000 == 0]
            store.upsert(ids, vectors, payloads)
            if copies:  # the same poster under another key: a pair to find
                store.upsert(
                    [point_id(f"copy{start + j}") for j in copies],
                    vectors[copies],
                    [{**payloads[j], "key": f"copy{start + j}", "title": f"Copy of {start + j}"} for j in copies],
                )
        store.optimize()
    return location


def measure(label: str, location, threshold: float) -> None:
    from poster_search.search.duplicates import near_duplicates
    from poster_search.search.poster_map import poster_map
    from poster_search.search.timeline import era_timeline
    from poster_search.store.collection import PosterStore

    with PosterStore(location, must_exist=True) as store:
        n = store.count()
        started, before = time.perf_counter(), peak_mb()
        result = poster_map(store)
        computed, after = time.perf_counter() - started, peak_mb()
        started = time.perf_counter()
        poster_map(store)
        cached = time.perf_counter() - started
        body = json.dumps(result.as_json()).encode()
        started = time.perf_counter()
        steps = era_timeline(store)
        timeline = time.perf_counter() - started
        started = time.perf_counter()
        pairs = near_duplicates(store, threshold, progress=True)
        duplicates = time.perf_counter() - started
    print(f"{label}: {n:,} posters")
    print(
        f"  poster map: computed in {computed:.1f} s (this process's peak {before:.0f} -> {after:.0f} MB), from the cache in {cached:.2f} s"
    )
    print(f"  the page downloads {len(body) / 1e6:.2f} MB of JSON for it, {len(gzip.compress(body)) / 1e6:.2f} MB gzipped (as served)")
    print(f"  era timeline: {len(steps)} decades in {timeline:.1f} s")
    print(f"  near-duplicates at {threshold}: {len(pairs)} pairs ({sum(p.identical for p in pairs)} identical files) in {duplicates:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=None, help="a store made by the quick start")
    parser.add_argument("--size", type=int, default=100_000, help="synthetic posters (0: none)")
    parser.add_argument("--threshold", type=float, default=0.95)
    args = parser.parse_args()
    import os

    os.environ.setdefault("POSTER_SEARCH_CACHE", tempfile.mkdtemp(prefix="bench-overview-cache-"))  # a cold map cache
    if args.real:
        from poster_search.store.connection import StoreLocation

        measure(f"real store {args.real}", StoreLocation(path=args.real), args.threshold)
    if args.size:
        with tempfile.TemporaryDirectory(prefix="bench-overview-") as tmp:
            started = time.perf_counter()
            location = synthetic_store(Path(tmp) / "store", args.size)
            print(f"(synthetic store of {args.size:,} posters written and indexed in {time.perf_counter() - started:.0f} s)")
            measure(f"synthetic store, {args.size:,} posters", location, args.threshold)


if __name__ == "__main__":
    main()
