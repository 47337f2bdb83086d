"""Browsing and suggestions at scale: a synthetic collection of n posters, through the library.

    .venv/bin/python -m bench.browse --n 100000 [--store DIR]

Builds (or reuses, with --store) an embedded store of n points whose titles are the real
catalog's titles (each with a number after the first copy: many share their first letters),
years 1900-2025 (a tenth undated, half of those with a predicted year) and a few genres, written
through PosterStore as ingest writes them (random unit vectors: browsing reads no vector). Then
times, warm, through `Posters` (what the page's routes call): the filter counts, the first page of
each order, ten pages on by cursor, a decade, and suggestions from 2, 3 and 5 letters, with the
peak memory of the process.
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import CATALOG, percentiles, require_data, timed


def build(path: Path, n: int, seed: int = 0) -> None:
    from poster_search.embedding.spec import EmbeddingSpec
    from poster_search.store.collection import PosterStore
    from poster_search.store.connection import StoreLocation
    from poster_search.store.schema import point_id

    with open(CATALOG, encoding="utf-8", newline="") as f:
        titles = [row["title"] for row in csv.DictReader(f)]
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    with PosterStore(StoreLocation(path=path)) as store:
        store.prepare(EmbeddingSpec(weights="random"))
        for start in range(0, n, 2048):
            rows = range(start, min(n, start + 2048))
            vectors = rng.normal(size=(len(rows), 512)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            payloads = []
            for i in rows:
                copy, title = divmod(i, len(titles))
                payload: dict = {
                    "key": str(i),
                    "title": titles[title] + (f" {copy}" if copy else ""),
                    "file": f"{i}.jpg",
                    "sha256": f"{i:064x}",
                }
                if i % 10:
                    payload["year"] = 1900 + int(rng.integers(0, 126))
                elif i % 20:
                    payload.update(predicted_year=1970, predicted_low=1955, predicted_high=1985, predicted_by="year-model:bench")
                payload["genres"] = [["Drama", "Comedy", "Horror", "Western", "Romance"][i % 5]]
                payloads.append(payload)
            store.upsert([point_id(str(i)) for i in rows], vectors, payloads)
        store.optimize()
    print(f"built {n:,} posters in {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--store", type=Path, default=None, help="reuse (or make) this store folder")
    parser.add_argument("--queries", type=int, default=30)
    args = parser.parse_args()
    require_data()
    from poster_search import Posters
    from poster_search.results import Sort

    path = args.store or Path(tempfile.mkdtemp(prefix="bench-browse-")) / "store"
    if not path.exists():
        build(path, args.n)
    rng = random.Random(0)
    with Posters(path) as posters:
        count = posters.count()
        opened = time.perf_counter()
        posters.facets()
        first_facets = time.perf_counter() - opened
        facets = timed(lambda _: posters.facets(), range(args.queries))
        sorts: tuple[Sort, ...] = ("title", "year", "added")
        orders = [(sort, down) for sort in sorts for down in (False, True)]
        first = timed(lambda o: posters.browse(o[0], descending=o[1]), orders * max(1, args.queries // 6))
        deep: list[float] = []
        for sort, down in orders:
            after = None
            for _ in range(10):
                t = time.perf_counter()
                page = posters.browse(sort, descending=down, after=after)
                deep.append(time.perf_counter() - t)
                after = page.next
        decade = timed(
            lambda d: posters.browse("year", decade=d, status="catalog"), [rng.randrange(1900, 2030, 10) for _ in range(args.queries)]
        )
        titles = [p.poster.title for p in posters.browse("added", limit=200).posters]
        typed = [rng.choice(titles)[:k] for k in (2, 3, 5) for _ in range(args.queries)]
        suggest = timed(posters.suggest, typed)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{count:,} posters, warm, through Posters (the page's routes add the HTTP round trip)")
    print(f"  filter counts (facets)           first {first_facets * 1000:.0f} ms; then {percentiles(facets, high=95)}")
    print(f"  browse, first page (48)          {percentiles(first, high=95)}   (6 orders)")
    print(f"  browse, pages 1-10 by cursor     {percentiles(deep, high=95)}")
    print(f"  browse, a decade (catalog years) {percentiles(decade, high=95)}")
    print(f"  suggestions (2, 3, 5 letters)    {percentiles(suggest, high=95)}")
    print(f"  peak memory of this process      {peak:,.0f} MB")


if __name__ == "__main__":
    main()
