"""Ingest throughput: each stage's ceiling measured alone, then end to end, and a no-op rerun.

    .venv/bin/python -m bench.ingest [-n 500] [--batch-size N] [--backend auto] [--precision auto] [--workers N] [--qdrant-url URL]

Prints, on the machine it runs on:
- decode only: posters/s of the worker pool (files -> uint8 224x224), nothing else running;
- model only: posters/s of VGG16 on uint8 batches already in memory (measured before and after
  the end-to-end run; their mean is the ceiling, since a shared machine's load drifts);
- store only: points/s of acknowledged upserts (512-d vectors and payloads) into the store;
- end to end: `ingest()` into a fresh store, as a ratio of the lowest ceiling (named) and of
  model only; and the per-stage busy figures the ingest summary prints;
- a no-op rerun, in process and as `python cli.py ingest`.

Real posters from ../shared/data when present (else generated ones) and the real weights when
present (else seeded random ones: the speed is the same). Targets: on a 2-core CPU end to end
>= 90 % of model only; on one H100-class GPU with 16 cores >= 70 % of the lowest ceiling and
>= 1,000 posters/s into the embedded store.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import CATALOG, POSTERS, ROOT, WEIGHTS, first_n_catalog
from poster_search.embedding.backend import usable_cores
from poster_search.embedding.embedders import make_embedder
from poster_search.ingest.catalog import read_catalog
from poster_search.ingest.decode import MAX_CHUNK, DecodePool
from poster_search.ingest.pipeline import ingest
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation


def posters_and_catalog(n: int, tmp: Path) -> tuple[Path, Path, str]:
    """(catalog, posters folder, what they are): the shared posters, or n generated ones."""
    if CATALOG.is_file() and POSTERS.is_dir():
        return first_n_catalog(n, tmp / "movies.csv"), POSTERS, "real posters (../shared/data/posters-era)"
    from tests.conftest import make_poster, write_csv

    rows = []
    for i in range(n):
        make_poster(tmp / "posters" / f"{i}.jpg", seed=i, size=(600, 900))
        rows.append([f"{i}.jpg", f"Film {i}", 1950 + i % 70])
    return write_csv(tmp / "movies.csv", ["filename", "title", "release_year"], rows), tmp / "posters", "generated 600x900 JPEGs"


def decode_only(paths: list[str], workers: int, chunk: int) -> tuple[float, np.ndarray]:
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    with DecodePool(workers) as pool:
        for _ in pool.decode(chunks[:1]):  # workers started and warm: not what we measure
            pass
        started = time.perf_counter()
        pixels = [c.pixels for c in pool.decode(chunks)]
        seconds = time.perf_counter() - started
    return seconds, np.concatenate(pixels)


def model_only(embedder, pixels: np.ndarray, batch_size: int) -> float:
    embedder.embed_pixels(pixels[:batch_size])  # build, compile, warm up: not what we measure
    started = time.perf_counter()
    for i in range(0, len(pixels), batch_size):
        embedder.embed_pixels(pixels[i : i + batch_size])
    return time.perf_counter() - started


def store_only(location: StoreLocation, n: int, batch_size: int, spec) -> float:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    import uuid

    ids = [str(uuid.UUID(int=i + 1)) for i in range(n)]
    payloads = [{"key": f"{i}.jpg", "title": f"Film {i}", "year": 1950 + i % 70, "file": f"{i}.jpg", "sha256": "0" * 64} for i in range(n)]
    with PosterStore(location, "bench_store_only") as store:
        store.prepare(spec, recreate=True)
        started = time.perf_counter()
        for i in range(0, n, batch_size):
            store.upsert(ids[i : i + batch_size], vectors[i : i + batch_size], payloads[i : i + batch_size])
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the device's (32 on a CPU)")
    parser.add_argument("--backend", default=None, help="auto (default), onnxruntime, openvino, tensorflow, jax, torch")
    parser.add_argument("--precision", default="auto", help="auto (default), fp32, bf16, int8")
    parser.add_argument("--workers", type=int, default=None, help="decode processes (default: the usable cores)")
    parser.add_argument("--weights", default=None, help="default: the shared real weights when present, else random")
    parser.add_argument("--qdrant-url", default=None, help="a Qdrant server instead of a temporary embedded store")
    parser.add_argument("--no-cli", action="store_true", help="skip the `python cli.py ingest` no-op rerun")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    catalog_csv, posters, source = posters_and_catalog(args.n, tmp)
    catalog = read_catalog(catalog_csv, posters)
    weights = args.weights or (str(WEIGHTS) if WEIGHTS.is_file() else "random")
    embedder = make_embedder(None if weights == "random" else weights, backend=args.backend, precision=args.precision)
    if getattr(embedder, "needs_calibration", False):  # int8: calibrated as ingest does, on this catalog's posters
        from poster_search.embedding.quantize import choose_calibration

        embedder.calibrate_with(choose_calibration([f.file for f in catalog.films], posters), posters)
    from poster_search.embedding.backend import default_batch_size

    batch = args.batch_size or default_batch_size(embedder.runtime)
    workers = usable_cores() if args.workers is None else args.workers
    n = len(catalog.films)
    print(
        f"{n} {source}; {embedder.runtime.describe()}; batch {batch}; {workers} decode workers; {usable_cores()} usable cores; weights {embedder.spec.weights}"
    )

    decode_s, pixels = decode_only([str(posters / f.file) for f in catalog.films], workers, max(1, min(MAX_CHUNK, batch)))
    model_s = model_only(embedder, pixels, batch)
    location = StoreLocation(url=args.qdrant_url) if args.qdrant_url else StoreLocation(path=tmp / "store")
    store_s = store_only(location, n, batch, embedder.spec)
    ceilings = {"decode": n / decode_s, "model": n / model_s, "store": n / store_s}

    with PosterStore(location, "bench_ingest") as store:
        first = ingest(catalog, posters, store, embedder, batch_size=batch, workers=workers, progress=False, recreate=True)
        noop = ingest(read_catalog(catalog_csv, posters), posters, store, embedder, progress=False)
    # Model only once more, after end to end: on a shared machine the load drifts, and the
    # mean of the two brackets the end-to-end run.
    model_after_s = model_only(embedder, pixels, batch)
    model_s = (model_s + model_after_s) / 2
    ceilings["model"] = n / model_s
    assert first.ingested == n and noop.ingested == 0, (first.summary(), noop.summary())
    e2e = n / first.pipeline_seconds  # from the model ready to the last write: what the stages sustain
    e2e_run = n / first.seconds  # the whole call, model load included

    lowest = min(ceilings, key=ceilings.__getitem__)
    print(f"decode only ({workers} workers):        {decode_s:7.1f}s  {ceilings['decode']:8.1f} posters/s")
    print(
        f"model only (uint8 batches in memory): {model_s:7.1f}s  {ceilings['model']:8.1f} posters/s"
        f"  (mean of before and after end to end: {n / (2 * model_s - model_after_s):.1f} and {n / model_after_s:.1f})"
    )
    print(
        f"store only ({'server' if args.qdrant_url else 'embedded'}, acknowledged upserts): {store_s:7.1f}s  {ceilings['store']:8.1f} points/s"
    )
    print(
        f"end to end (decode + model + store):  {first.pipeline_seconds:7.1f}s  {e2e:8.1f} posters/s"
        f" = {100 * e2e / ceilings[lowest]:.0f}% of the lowest ceiling ({lowest}), {100 * e2e / ceilings['model']:.0f}% of model only"
    )
    print(f"  whole ingest() call, model load included: {first.seconds:.1f}s ({e2e_run:.1f} posters/s)")
    print(f"  {first.stages()}")
    print(f"no-op rerun, in process:              {noop.seconds:7.2f}s  = {100 * noop.seconds / first.seconds:.1f}% of the first run")
    if not args.no_cli and not args.qdrant_url:
        command = [sys.executable, str(ROOT / "cli.py"), "ingest", "--catalog", str(catalog_csv), "--posters", str(posters)]
        command += ["--qdrant-path", str(location.path), "--collection", "bench_ingest", "--weights", weights]
        command += ["--rejects", str(tmp / "rejects.csv"), "--backend", embedder.runtime.backend, "--precision", embedder.runtime.precision]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        noop_process = time.perf_counter() - started
        print(f"no-op rerun, `python cli.py ingest`:  {noop_process:7.2f}s  = {100 * noop_process / first.seconds:.1f}% of the first run")


if __name__ == "__main__":
    main()
