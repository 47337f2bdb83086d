"""bf16 against fp32 on real posters: per-poster cosine, neighbour agreement, and speed.

    .venv/bin/python -m bench.precision [-n 320] [--backend auto]

Embeds every (3748 // n)-th poster of ../shared/data with the real weights in fp32 and in bf16
(both the vgg16 and the style vector) and prints how close the vectors are, how many of each
poster's 10 nearest neighbours (among the n) stay the same, and posters/s of each precision.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import POSTERS, WEIGHTS, require_data
from poster_search.embedding.images import decode_poster
from poster_search.embedding.model import Embedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=320)
    parser.add_argument("--backend", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    require_data()
    files = sorted(POSTERS.iterdir())
    files = files[:: max(1, len(files) // args.n)][: args.n]
    n = len(files)
    pixels = np.stack([decode_poster(f).pixels for f in files])
    out = {}
    for precision in ("fp32", "bf16"):
        embedder = Embedder(str(WEIGHTS), style=True, backend=args.backend, precision=precision)
        embedder.embed_both(pixels[: args.batch_size])  # build and warm up
        started = time.perf_counter()
        parts = [embedder.embed_both(pixels[i : i + args.batch_size]) for i in range(0, n, args.batch_size)]
        seconds = time.perf_counter() - started
        out[precision] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        print(f"{precision}: {n / seconds:.2f} posters/s ({embedder.runtime.describe()}, vgg16 + style vector)")
    for k, name in ((0, "vgg16"), (1, "vgg16_style")):
        c = np.sum(out["fp32"][k] * out["bf16"][k], axis=1)
        print(
            f"{name}: cosine bf16 vs fp32 over {n} posters: min {c.min():.6f}, 1st percentile {np.percentile(c, 1):.6f}, median {np.median(c):.6f}"
        )
    a, b = out["fp32"][0], out["bf16"][0]
    sa, sb = a @ a.T, b @ b.T
    np.fill_diagonal(sa, -9)
    np.fill_diagonal(sb, -9)
    ta, tb = np.argsort(-sa, 1)[:, :10], np.argsort(-sb, 1)[:, :10]
    overlap = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(ta, tb)])
    print(
        f"10 nearest neighbours the same in bf16 as in fp32: {100 * overlap:.1f} %; the nearest: {100 * np.mean(ta[:, 0] == tb[:, 0]):.1f} %"
    )


if __name__ == "__main__":
    main()
