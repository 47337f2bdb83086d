"""Ingest throughput on the real posters: embedding alone, end to end, and a no-op rerun.

    .venv/bin/python bench/ingest.py [-n 500] [--batch-size 32]

Targets (2-core machine): end to end >= 90 % of the embedding-only rate; a no-op rerun of
500 posters < 5 % of the first run's time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import POSTERS, ROOT, WEIGHTS, first_n_catalog, require_data  # noqa: E402  (sets sys.path)
from embedding.images import decode_poster  # noqa: E402
from embedding.model import Embedder  # noqa: E402
from ingest.catalog import read_catalog  # noqa: E402
from ingest.pipeline import ingest  # noqa: E402
from store.collection import PosterStore  # noqa: E402
from store.connection import StoreLocation  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    require_data()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    catalog_csv = first_n_catalog(args.n, tmp / "movies.csv")
    catalog = read_catalog(catalog_csv, POSTERS)

    embedder = Embedder(str(WEIGHTS))
    embedder.embed_pixels(np.zeros((2, 224, 224, 3), np.float32))  # load and warm up the model: not what we measure

    pixels = np.stack([decode_poster(POSTERS / f.file).pixels for f in catalog.films])
    started = time.perf_counter()
    for i in range(0, len(pixels), args.batch_size):
        embedder.embed_pixels(pixels[i : i + args.batch_size])
    embed_only = time.perf_counter() - started

    location = StoreLocation(path=tmp / "store")
    with PosterStore(location) as store:
        first = ingest(catalog, POSTERS, store, embedder, batch_size=args.batch_size, progress=False)
        noop = ingest(read_catalog(catalog_csv, POSTERS), POSTERS, store, embedder, progress=False)
    assert first.ingested == args.n and noop.ingested == 0

    command = [sys.executable, str(ROOT / "cli.py"), "ingest", "--catalog", str(catalog_csv), "--posters", str(POSTERS)]
    command += ["--qdrant-path", str(location.path), "--weights", str(WEIGHTS)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    noop_process = time.perf_counter() - started

    rate_embed, rate_e2e = args.n / embed_only, args.n / first.seconds
    print(f"posters: {args.n}, batch size {args.batch_size}")
    print(f"embedding only (decoded in advance): {embed_only:7.1f}s  {rate_embed:6.2f} posters/s")
    print(f"end to end (decode + embed + store): {first.seconds:7.1f}s  {rate_e2e:6.2f} posters/s  "
          f"= {100 * rate_e2e / rate_embed:.0f}% of embedding only (target >= 90%)")
    print(f"  of which inside VGG16:             {first.embed_seconds:7.1f}s")
    print(f"no-op rerun, in process:             {noop.seconds:7.2f}s  = {100 * noop.seconds / first.seconds:.1f}% of the first run")
    print(f"no-op rerun, `python cli.py ingest`: {noop_process:7.2f}s  = {100 * noop_process / first.seconds:.1f}% (target < 5%)")


if __name__ == "__main__":
    main()
