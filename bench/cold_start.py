"""Where a cold `search poster.jpg` spends its time, phase by phase, in fresh processes; and what
reading a collection's metadata costs on an open store.

    .venv/bin/python -m bench.cold_start --qdrant-path STORE [--image POSTER] [--runs 5]

Each run is a new interpreter doing what the command does, with a clock between the phases
(the interpreter's own start is not in it: `/usr/bin/time` on the whole command gives that).
The model's phase includes the check of what the cached model computes (embedding/model_check.py):
the test image's forward pass, the check's cost, has its own clock beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import POSTERS, ROOT, WEIGHTS, require_data

PHASES = r"""
import json, time
marks, last = {}, time.perf_counter()
def mark(name):
    global last
    now = time.perf_counter(); marks[name] = round(now - last, 3); last = now
import typer; mark("typer")
from poster_search import cli; mark("the CLI's module")
from poster_search.api import Posters; mark("the front object (NumPy, Pillow, the store's modules)")
posters = Posters(%(store)r, weights=%(weights)r); posters.store.stored_spec(); mark("store open")
from poster_search.embedding.openvino_embedder import import_openvino; import_openvino(); mark("OpenVINO import")
checked = []
try:  # the check's own time: every probe() the embedders run (none where the code has no check)
    import poster_search.embedding.onnx_embedder as ort_side, poster_search.embedding.openvino_embedder as ov_side
    def timed(probe):
        def run(*args, **kwargs):
            started = time.perf_counter(); found = probe(*args, **kwargs); checked.append(time.perf_counter() - started)
            return found
        return run
    for side in (ort_side, ov_side):
        side.probe = timed(side.probe)
except AttributeError:
    pass
posters._embedder(); mark("the compiled model from its cache (both caches' digests checked, what it computes checked)")
if checked:
    marks["  of which the check's test image (its forward pass)"] = round(sum(checked), 3)
posters.search(%(image)r, k=3); mark("decode, one forward pass, the query")
posters.close(); mark("close")
print(json.dumps(marks))
"""


def phases(store: Path, image: Path, runs: int) -> dict[str, float]:
    code = PHASES % {"store": str(store), "weights": str(WEIGHTS), "image": str(image)}
    found: dict[str, list[float]] = {}
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        for name, seconds in json.loads(done.stdout.strip().splitlines()[-1]).items():
            found.setdefault(name, []).append(seconds)
    return {name: statistics.median(values) for name, values in found.items()}


def metadata_reads(calls: int = 10_000) -> float:
    """Seconds for `calls` PosterStore.stored_spec() on a small embedded store (best of 3)."""
    import numpy as np

    from poster_search.embedding.spec import EmbeddingSpec
    from poster_search.store.collection import PosterStore
    from poster_search.store.connection import StoreLocation
    from poster_search.store.schema import point_id

    with tempfile.TemporaryDirectory() as folder:
        with PosterStore(StoreLocation(path=Path(folder))) as store:
            store.prepare(EmbeddingSpec(weights="random"))
            store.upsert([point_id(str(i)) for i in range(20)], np.eye(20, 512, dtype=np.float32), [{"key": str(i)} for i in range(20)])
        with PosterStore(StoreLocation(path=Path(folder)), must_exist=True) as store:
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                for _ in range(calls):
                    store.stored_spec()
                best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qdrant-path", type=Path, default=ROOT / "qdrant_data")
    parser.add_argument("--image", type=Path, default=None, help="the query (default: a poster of the shared collection)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    require_data()
    image = args.image or sorted(POSTERS.glob("*.jpg"))[0]
    print(f"a cold search of {image.name}, median of {args.runs} fresh processes:")
    for name, seconds in phases(args.qdrant_path, image, args.runs).items():
        print(f"  {seconds:6.3f} s  {name}")
    print(f"10,000 stored_spec() on an open embedded store: {metadata_reads():.2f} s (best of 3)")


if __name__ == "__main__":
    main()
