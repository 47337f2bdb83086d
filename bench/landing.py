"""The page's landing grid (GET /api/collections/{name}/overview): how long choosing each decade's
most typical posters takes the first time, and each later request (the choice kept, the payloads
read again), on a real store and on synthetic ones.

    .venv/bin/python -m bench.landing [--real STORE] [--sizes 3748 20000] [-n 20]

The synthetic posters are bench/overview.py's (clustered 512-d vectors shaped like VGG16 features,
years 1920-2020). Through the front object the server runs (poster_search.Posters), without HTTP.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def measure(label: str, location, n: int) -> None:
    from poster_search import Posters

    with Posters(location) as posters:
        posters.info()  # what the page asks first; not part of the figure
        started = time.perf_counter()
        first = posters.starts()
        cold = time.perf_counter() - started
        times = []
        for _ in range(n):
            started = time.perf_counter()
            posters.starts()
            times.append(time.perf_counter() - started)
    shown = sum(len(g.ids) for g in first.groups)
    times.sort()
    print(
        f"{label}: {sum(g.count for g in first.groups):,} posters, {len(first.groups)} groups, {shown} shown;"
        f" first request {cold:.2f} s (choosing {first.seconds:.2f} s),"
        f" then median {1000 * statistics.median(times):.1f} ms, max {1000 * times[-1]:.1f} ms ({n} requests)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=None, help="a store made by the quick start")
    parser.add_argument("--sizes", type=int, nargs="*", default=[3748, 20000], help="synthetic posters")
    parser.add_argument("-n", type=int, default=20, help="requests after the first")
    args = parser.parse_args()
    if args.real:
        from poster_search.store.connection import StoreLocation

        measure(f"real store {args.real}", StoreLocation(path=args.real), args.n)
    for size in args.sizes:
        from bench.overview import synthetic_store

        with tempfile.TemporaryDirectory(prefix="bench-landing-") as tmp:
            measure(f"synthetic store, {size:,} posters", synthetic_store(Path(tmp) / "store", size), args.n)


if __name__ == "__main__":
    main()
