"""The two embedded engines side by side: Qdrant Edge (the default) and qdrant-client's local mode
(what earlier versions used), on the real store and on synthetic ones.

    .venv/bin/python -m bench.engines [--real /tmp/era_store] [--sizes 3748,100000] [--style-sizes 3748,100000]
                                    [--engines edge,local-mode] [--local-mode-max 100000] [-n 200] [--local-mode-n 20]

For each engine and size: open (a fresh process's first answer, lock included), write (points/s,
batches of 256, every batch on disk before the next), index (Edge builds HNSW after an ingest),
nearest k=10 (p50/p99), nearest with a year-range filter, title search (find_film), and HNSW
recall@10 against exact search. With --real (a store made by `cli.py ingest --style`): the same
searches on the real posters, and cold `cli.py search --title` / `cli.py search poster.jpg`
processes with where their time goes. Synthetic points: clustered non-negative vectors (see
`poster_like`), generated titles, years and genres; local mode above --local-mode-max points is
skipped (minutes to open).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import POSTERS, ROOT, WEIGHTS, timed
from bench.common import percentiles as ms
from poster_search.embedding.spec import EmbeddingSpec
from poster_search.search.neighbours import Filters, PosterSearch
from poster_search.search.titles import find_film
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.engine import PointFilter
from poster_search.store.migrate import migrate
from poster_search.store.schema import STYLE_VECTOR_NAME, point_id

STYLE_DIM = 2944
GENRES = ["Drama", "Comedy", "Horror", "Western", "Romance", "Thriller"]


def make_folder(engine: str, root: Path) -> StoreLocation:
    path = root / engine
    if engine == "local-mode":  # a folder as earlier versions made it: opened through qdrant-client
        from qdrant_client import QdrantClient

        QdrantClient(path=str(path)).close()
    return StoreLocation(path=path)


def poster_like(rng, n, dim, clusters=2000):
    """Vectors shaped like VGG16 features: non-negative (after ReLU), in clusters (posters of a
    kind), each a cluster centre times log-normal noise (cosine to its centre about 0.8). Uniform
    random vectors would be a poor stand-in: in 512-d they are all nearly equidistant, which no
    real collection is and which defeats any approximate index."""
    centres = np.random.default_rng(99).normal(size=(clusters, dim)).astype(np.float32) ** 2
    v = centres[rng.integers(0, clusters, n)] * np.exp(0.5 * rng.normal(size=(n, dim))).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def write_synthetic(location: StoreLocation, n_points: int, style: bool) -> tuple[float, float]:
    """Fill a store; returns (points/s of the writes, seconds of the index build after them)."""
    rng = np.random.default_rng(0)
    spec, style_spec = EmbeddingSpec(weights="random"), EmbeddingSpec(weights="random", layer="style", pooling="style", dim=STYLE_DIM)
    batches = []
    for start in range(0, n_points, 256):  # generated before the clock starts
        ids = range(start, min(start + 256, n_points))
        payloads = [
            {
                "key": f"{i}.jpg",
                "title": f"Synthetic film {i}",
                "year": int(1930 + i % 95),
                "file": f"{i}.jpg",
                "sha256": f"{i:064x}",
                "genres": [GENRES[i % len(GENRES)]],
            }
            for i in ids
        ]
        batches.append(
            (
                [point_id(f"{i}.jpg") for i in ids],
                poster_like(rng, len(ids), 512),
                payloads,
                poster_like(rng, len(ids), STYLE_DIM) if style else None,
            )
        )
    with PosterStore(location) as store:
        store.prepare(spec, style_spec=style_spec if style else None)
        started = time.perf_counter()
        for point_ids, vectors, payloads, style_vectors in batches:
            store.upsert(point_ids, vectors, payloads, style_vectors)
        rate = n_points / (time.perf_counter() - started)
        started = time.perf_counter()
        store.optimize()
        return rate, time.perf_counter() - started


def open_in_fresh_process(location: StoreLocation, runs: int = 3) -> float:
    """Median seconds from PosterStore() to the first answer (a count), in a new process each time."""
    code = (  # noqa: UP031
        "import time; t=time.perf_counter()\n"
        "from poster_search.store.collection import PosterStore; from poster_search.store.connection import StoreLocation\n"
        "s=PosterStore(StoreLocation(path=%r), must_exist=True); s.count(); print(time.perf_counter()-t); s.close()"
    ) % (str(location.path),)
    times = [
        float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()[-1])
        for _ in range(runs)
    ]
    return statistics.median(times)


def searches(location: StoreLocation, n: int, titles: list[str], label: str) -> dict:
    rng = np.random.default_rng(1)
    with PosterStore(location, must_exist=True) as store:
        dim = store.vectors()["vgg16"]
        queries = list(poster_like(rng, n, dim))
        search = PosterSearch(store)
        out: dict[str, Any] = {
            "nearest": timed(lambda v: store.nearest([v], 10), queries),
            "filtered": timed(lambda v: store.nearest([v], 10, PointFilter(year_min=1950, year_max=1959)), queries),
            "search by title": timed(lambda t: search.by_point(find_film(store, title=t), 10, Filters()), titles[:n]),
        }
        approx = [[h.id for h in store.nearest([v], 10)[0]] for v in queries[:50]]
        exact = [[h.id for h in store.nearest([v], 10, exact=True)[0]] for v in queries[:50]]
        out["recall@10"] = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)]))
        out["count"] = store.count()
        if store.has_vector(STYLE_VECTOR_NAME):
            style_queries = list(poster_like(rng, n, store.vectors()[STYLE_VECTOR_NAME]))
            out["style nearest"] = timed(lambda v: store.nearest([v], 10, vector_name=STYLE_VECTOR_NAME), style_queries)
    style = f" | style nearest {ms(out['style nearest'])}" if "style nearest" in out else ""
    print(
        f"  {label:44s} nearest {ms(out['nearest'])} | year-filtered {ms(out['filtered'])} | "
        f"title search {ms(out['search by title'])} | HNSW recall@10 {out['recall@10']:.3f}{style}",
        flush=True,
    )
    return out


def cold_cli(args: list[str], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


PHASES = r"""
import time, json; t = [time.perf_counter()]; marks = {}
def mark(name): t.append(time.perf_counter()); marks[name] = round(t[-1] - t[-2], 3)
from poster_search import cli; mark("python + cli imports")
from poster_search.store.collection import PosterStore; from poster_search.store.connection import StoreLocation
from poster_search.search.neighbours import PosterSearch, image_embedder; import onnxruntime; mark("ONNX Runtime import")
s = PosterStore(StoreLocation(path=%(store)r), must_exist=True); s.count(); mark("store open")
e = image_embedder(s, %(weights)r); e.load(); mark("model from the cache + session")
PosterSearch(s, e).by_image(%(image)r, 3); mark("decode + embed + query")
print(json.dumps(marks))
"""


def image_search_phases(store: Path, image: Path) -> dict:
    code = PHASES % {"weights": str(WEIGHTS), "store": str(store), "image": str(image)}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def bench_real(real: Path, engines: list[str], n: int, root: Path) -> None:
    with PosterStore(StoreLocation(path=real), must_exist=True) as store:
        points = list(store.points(with_vectors=False, fields=["title", "year", "file"]))
    counts = Counter(p.payload["title"] for p in points)
    unique = [p.payload["title"] for p in points if counts[p.payload["title"]] == 1][:n]  # find_film needs no --year
    print(f"real store {real}: {len(points)} posters")
    for engine in engines:
        location = StoreLocation(path=real)
        if engine == "local-mode":
            location = make_folder("local-mode", root / "real")
            with PosterStore(StoreLocation(path=real)) as source, PosterStore(location) as target:
                migrate(source, target, progress=False)
        print(f"  {engine}: open {open_in_fresh_process(location):.3f} s (fresh process, median of 3)")
        searches(location, n, unique, f"{engine}, {len(points)} real posters")
        film = points[0].payload
        print(
            f"  {engine}: cold `cli.py search --title`: {cold_cli(['search', '--title', unique[0], '--qdrant-path', str(location.path)]):.2f} s"
        )
        image = POSTERS / film["file"]
        search_image = ["search", str(image), "--weights", str(WEIGHTS), "--qdrant-path", str(location.path)]
        print(
            f"  {engine}: cold `cli.py search poster.jpg`: {cold_cli(search_image):.2f} s; phases {image_search_phases(location.path, image)}"
        )


def bench_synthetic(sizes: list[int], style_sizes: list[int], engines: list[str], n: int, root: Path, local_max: int, local_n: int) -> None:
    for style in (False, True):
        for size in style_sizes if style else sizes:
            for engine in engines:
                label = f"{engine}, {size:,} points, 512-d{' + 2,944-d style' if style else ''}"
                if engine == "local-mode" and size > local_max:
                    print(f"  {label}: skipped (over --local-mode-max {local_max:,})")
                    continue
                location = make_folder(engine, root / f"{size}-{int(style)}")
                rate, index_s = write_synthetic(location, size, style)
                opened = open_in_fresh_process(location)
                print(f"  {label}: write {rate:,.0f} points/s, index build {index_s:.1f} s, open {opened:.3f} s", flush=True)
                queries = min(n, local_n) if engine == "local-mode" else n  # local mode: seconds per query at this size
                titles = [f"Synthetic film {i}" for i in np.random.default_rng(2).integers(0, size, queries)]
                searches(location, queries, titles, label)
                shutil.rmtree(location.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, help="a store made by `cli.py ingest --style` on ../shared/data/posters-era")
    parser.add_argument("--sizes", default="3748,100000", help="synthetic stores with the 512-d vector")
    parser.add_argument("--style-sizes", default="3748,100000", help="synthetic stores with both vectors")
    parser.add_argument("--engines", default="edge,local-mode")
    parser.add_argument("--local-mode-max", type=int, default=100_000, help="largest synthetic local-mode store")
    parser.add_argument("-n", type=int, default=200, help="queries per measurement")
    parser.add_argument("--local-mode-n", type=int, default=20, help="queries per measurement on synthetic local-mode stores")
    args = parser.parse_args()
    engines = args.engines.split(",")
    root = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        if args.real:
            bench_real(args.real, engines, args.n, root)
        to_ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
        bench_synthetic(to_ints(args.sizes), to_ints(args.style_sizes), engines, args.n, root, args.local_mode_max, args.local_mode_n)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
