"""Shared by the benchmarks and experiments: where the real data is, and a catalog of its first N films.

Every benchmark and experiment runs as a module from the project folder (`python -m bench.search`,
`python -m experiments.finetune`): Python then has that folder on its path, so they import the
project (`from store.collection import PosterStore`) and these helpers (`from bench.common import
WEIGHTS`) by name, with no path of their own. Child processes they start run there too (cwd=ROOT).
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DATA = ROOT.parent / "shared" / "data"
CATALOG = DATA / "posters-era" / "movies.csv"
POSTERS = DATA / "posters-era" / "posters"
WEIGHTS = DATA / "vgg16" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


def require_data() -> None:
    missing = [p for p in (CATALOG, POSTERS, WEIGHTS) if not p.exists()]
    if missing:
        sys.exit(f"benchmark skipped: {', '.join(map(str, missing))} not found (see ../shared/data/README.md)")


def first_n_catalog(n: int, out: Path) -> Path:
    """The first n rows of the shared catalog, as a catalog file of its own."""
    with open(CATALOG, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:n]
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def timed(fn: Callable, inputs: Iterable) -> list[float]:
    """Seconds of fn(x) for each input, one call at a time."""
    out = []
    for x in inputs:
        started = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - started)
    return out


def percentiles(seconds: list[float], high: int = 99) -> str:
    import numpy as np

    ms = np.array(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):7.2f} ms  p{high} {np.percentile(ms, high):7.2f} ms"
