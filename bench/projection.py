"""Which 2-D projection for the poster map: PCA, openTSNE or UMAP, on real and on 100,000 vectors.

    .venv/bin/python -m bench.projection --qdrant-path STORE [--collection posters] [--sizes 100000] [--methods pca opentsne umap sampled]

`sampled` is what the poster map computes (search/poster_map.py's place(): t-SNE on a seeded
sample of 2,000, every other vector placed among its most similar sample vectors). For each
method: seconds, the process's peak memory, and how well it keeps neighbourhoods: the share of
each poster's 10 nearest neighbours (cosine, in the 512-d vectors) that are among its 10 nearest
on the map (on a sample of 2,000 posters). Real: the collection's stored `vgg16` vectors;
synthetic: clustered non-negative vectors shaped like VGG16 features (bench/engines.py). umap-learn
is not a dependency of the project: this bench installs it only to measure it
(`pip install umap-learn==0.5.12`).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT


def project(method: str, vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(2, random_state=seed).fit_transform(vectors)
    if method == "opentsne":
        from poster_search.search.poster_map import layout

        return layout(vectors, seed)
    if method == "sampled":  # what the poster map computes: t-SNE on a sample, the rest placed among their most similar
        from poster_search.search.poster_map import place

        return place(vectors, seed)
    if method == "umap":
        import umap

        return umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=seed).fit_transform(vectors)
    raise ValueError(method)


def kept_neighbours(vectors: np.ndarray, xy: np.ndarray, k: int = 10, sample: int = 2000, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), min(sample, len(vectors)), replace=False)
    high = vectors[rows] @ vectors.T
    high[np.arange(len(rows)), rows] = -np.inf
    low = -((xy[rows, None, :] - xy[None, :, :]) ** 2).sum(-1) if len(vectors) <= 20_000 else None
    shares = []
    for i, row in enumerate(rows):
        near_high = set(np.argpartition(-high[i], k)[:k])
        d = low[i] if low is not None else -((xy - xy[row]) ** 2).sum(-1)
        d[row] = -np.inf
        near_low = set(np.argpartition(-d, k)[:k])
        shares.append(len(near_high & near_low) / k)
    return float(np.mean(shares))


def measure(label: str, method: str, vectors: np.ndarray) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    xy = project(method, vectors)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kept = kept_neighbours(vectors, np.asarray(xy, np.float64))
    print(f"  {label:28} {method:9} {seconds:8.1f} s   peak {peak:7.0f} MB (+{peak - before:5.0f})   10-NN kept {kept:.1%}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qdrant-path", type=Path, default=ROOT / "qdrant_data")
    parser.add_argument("--collection", default="posters")
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument("--methods", nargs="*", default=["pca", "opentsne", "umap"])
    args = parser.parse_args()
    from poster_search.store.collection import PosterStore
    from poster_search.store.connection import StoreLocation
    from poster_search.store.embeddings import load_embeddings

    if args.qdrant_path.is_dir():
        with PosterStore(StoreLocation(path=args.qdrant_path), args.collection, must_exist=True) as store:
            real = load_embeddings(store).vectors
        print(f"real: {len(real)} stored vgg16 vectors of '{args.collection}'")
        for method in args.methods:
            measure(f"real {len(real)}", method, real)
    from bench.engines import poster_like

    for size in args.sizes:
        vectors = poster_like(np.random.default_rng(0), size, 512)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        print(f"synthetic: {size} vectors")
        for method in args.methods:
            if method == "pca" or size <= 200_000:
                measure(f"synthetic {size}", method, vectors)


if __name__ == "__main__":
    main()
