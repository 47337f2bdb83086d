"""How the 2,944-d style vector should be stored at scale (#36): fp32 as today, or int8 scalar
quantisation (Qdrant's, rescored with the originals), measured on n points.

    .venv/bin/python -m bench.style_quantization --source STORE --n 100000 --work /tmp/style-q

STORE holds posters with the style vector (`ingest --style`). Its style vectors are perturbed into
n points as bench/scale.py does (each a real poster's vector plus Gaussian noise of norm 0.35), and
each storage is built in a shard of its own by Qdrant Edge, the style vector alone, as the store
makes it (mapped cold). For each: the index build, the size on disk, the first query of a fresh
process and warm queries, and recall@10 against exact fp32 neighbours (numpy) on 200 queries.
Prints a Markdown table; the machine: `lscpu`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import numpy as np

from poster_search.store.engine import OVERSAMPLING

NOISE = 0.35
QUERIES = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, help="a store whose posters have the style vector (required)")
    parser.add_argument("--vector", default="vgg16_style", help="the stored vector to measure (vgg16: the main one)")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/style-quantization"))
    parser.add_argument("--query-worker", nargs=2, help=argparse.SUPPRESS)  # shard, queries.npy: one fresh process
    args = parser.parse_args()
    if args.query_worker:
        return query_worker(Path(args.query_worker[0]), Path(args.query_worker[1]))
    if args.source is None:
        parser.error("--source is required")
    args.work.mkdir(parents=True, exist_ok=True)
    vectors = scaled(args.source, args.n, args.vector)
    rng = np.random.default_rng(3)
    picked = rng.choice(len(vectors), QUERIES, replace=False)
    queries = vectors[picked] + rng.normal(size=(QUERIES, vectors.shape[1])).astype(np.float32) * (NOISE / np.sqrt(vectors.shape[1]))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    np.save(args.work / "queries.npy", queries)
    truth = exact_top10(vectors, queries)
    print(
        f"| {args.n:,} {args.vector} vectors ({vectors.shape[1]}-d) | index build | on disk | fresh process: first query | warm query | recall@10 |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name in ("fp32", "int8"):
        shard = args.work / name
        shutil.rmtree(shard, ignore_errors=True)
        build = build_shard(shard, vectors, name)
        print(f"{name}: index built in {build:.0f} s", file=sys.stderr, flush=True)
        size = sum(f.stat().st_size for f in shard.rglob("*") if f.is_file()) / 2**30
        out = subprocess.run(
            [sys.executable, "-m", "bench.style_quantization", "--query-worker", str(shard), str(args.work / "queries.npy")],
            capture_output=True,
            text=True,
            check=True,
        )
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        found = np.array(measured["ids"])
        recall = np.mean([len(set(found[i]) & set(truth[i])) / 10 for i in range(QUERIES)])
        print(
            f"| {name} | {build:.0f} s | {size:.2f} GB | {measured['first_ms']:.0f} ms | {measured['warm_ms']:.1f} ms | {recall:.3f} |",
            flush=True,
        )
        shutil.rmtree(shard, ignore_errors=True)


def scaled(source: Path, n: int, vector_name: str) -> np.ndarray:
    from poster_search.store.collection import PosterStore
    from poster_search.store.connection import StoreLocation

    with PosterStore(StoreLocation(path=source), must_exist=True) as store:
        real = np.stack([cast(np.ndarray, p.vector) for p in store.points(vector_name=vector_name)]).astype(np.float32)
    rng = np.random.default_rng(0)
    base = np.arange(n) % len(real)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, 8192):
        rows = base[start : start + 8192]
        noisy = real[rows] + rng.normal(size=(len(rows), real.shape[1])).astype(np.float32) * (NOISE / np.sqrt(real.shape[1]))
        out[start : start + len(rows)] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    return out


def exact_top10(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    scores = np.concatenate([queries @ vectors[s : s + 20_000].T for s in range(0, len(vectors), 20_000)], axis=1)
    return np.argsort(-scores, axis=1)[:, :10]


def build_shard(path: Path, vectors: np.ndarray, kind: str) -> float:
    from qdrant_edge import (
        Distance,
        EdgeConfig,
        EdgeShard,
        EdgeVectorParams,
        Memory,
        Point,
        ScalarQuantizationConfig,
        ScalarType,
        UpdateOperation,
    )

    quantization = ScalarQuantizationConfig(ScalarType.Int8, quantile=0.99, memory=Memory.Cold) if kind == "int8" else None
    params = EdgeVectorParams(size=vectors.shape[1], distance=Distance.Cosine, memory=Memory.Cold, quantization_config=quantization)
    path.mkdir(parents=True)
    shard = EdgeShard.create(str(path), EdgeConfig(vectors={"style": params}, on_disk_payload=True))
    for start in range(0, len(vectors), 1024):
        chunk = vectors[start : start + 1024]
        shard.update(UpdateOperation.upsert_points([Point(start + i, {"style": v.tolist()}, {}) for i, v in enumerate(chunk)]))
    started = time.perf_counter()
    shard.optimize()
    seconds = time.perf_counter() - started
    shard.close()
    return seconds


def query_worker(path: Path, queries_file: Path) -> None:
    from qdrant_edge import EdgeShard, QuantizationSearchParams, Query, QueryRequest, SearchParams

    queries = np.load(queries_file)
    shard = EdgeShard.load(str(path))
    params = SearchParams(quantization=QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING))

    def ask(v: np.ndarray) -> list[int]:
        return [int(p.id) for p in shard.query(QueryRequest(query=Query.Nearest(v.tolist(), using="style"), limit=10, params=params))]

    started = time.perf_counter()
    ids = [ask(queries[0])]
    first = time.perf_counter() - started
    started = time.perf_counter()
    ids += [ask(q) for q in queries[1:]]
    warm = (time.perf_counter() - started) / (len(queries) - 1)
    again = time.perf_counter()
    ask(queries[0])
    print(json.dumps({"first_ms": first * 1000, "warm_ms": warm * 1000, "again_ms": (time.perf_counter() - again) * 1000, "ids": ids}))


if __name__ == "__main__":
    main()
