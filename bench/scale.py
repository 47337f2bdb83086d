"""Every command and the page's endpoints on a collection of n posters (#36): 3,748, 100k, 1M.

    .venv/bin/python -m bench.scale --source qdrant_data --n 100000 --work /tmp/scale [--skip duplicates]

The store of n points is built from real poster vectors the way a user moves a collection: the
source collection's vectors (the quick start's store) are perturbed into n points (each a real
poster's vector plus Gaussian noise, so copies of one poster are neighbours but not near-duplicates;
titles and years carried over; every copy of the first poster keeps its title, the others are
numbered, so one title is shared by n / 3,748 films and each title's words by as many), written as an
export file, loaded with `python cli.py import-embeddings --no-index`, then indexed with `index` (what a
default import does in one command, timed apart). Then
each command runs in its own process, cold (a fresh process, the store's files in the page
cache), timed with its peak memory (the process's max RSS, which counts the store's memory-mapped
files, and in brackets its peak heap, RssAnon sampled every 50 ms, its child processes' added), and the page is served and timed
over HTTP: the collection list, the first screen, warm searches by id while the poster map is
computed. Recall@10 of the (HNSW) search against exact search is measured on 200 queries.
Prints a Markdown table. The machine: see `lscpu`; the figures of docs/performance.md name it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import cast

import numpy as np

from bench.common import ROOT, WEIGHTS

PLANTED_EVERY = 1000  # every 1000th point is a near-copy (cosine ~0.995) of the one before: pairs duplicates must find
NOISE = 0.35  # norm of the noise added to a unit vector: copies of one poster are ~0.89 alike, under any duplicate threshold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=ROOT / "qdrant_data", help="store with the real posters (the quick start's)")
    parser.add_argument("--collection", default="posters")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/poster-scale"))
    parser.add_argument("--weights", type=Path, default=WEIGHTS, help="VGG16 weights the source was embedded with (for search by image)")
    parser.add_argument("--image", type=Path, help="a poster to search with (default: one of the source's)")
    parser.add_argument("--skip", nargs="*", default=[], help="steps to leave out: import duplicates export era map page recall image")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    store = args.work / f"store-{args.n}"
    rows: list[tuple[str, str, str]] = []

    if "import" not in args.skip:
        export = args.work / f"scaled-{args.n}.npz"
        started = time.perf_counter()
        sample = write_scaled_export(args.source, args.collection, args.n, export)
        print(f"wrote {export} ({export.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - started:.0f}s", flush=True)
        json.dump(sample, open(args.work / f"sample-{args.n}.json", "w"))
        # the two steps of a default import timed apart: writing the points, then the index build
        rows.append(run("import-embeddings --no-index", ["import-embeddings", export, "--no-index", "--qdrant-path", store]))
        rows.append(run("index (the build)", ["index", "--qdrant-path", store]))
    sample = json.load(open(args.work / f"sample-{args.n}.json"))
    on = ["--qdrant-path", store]

    rows.append(run("search --id", ["search", "--id", sample["id"], "-k", "10", "--json", *on]))
    rows.append(run("search --title (unique)", ["search", "--title", sample["unique_title"], "-k", "10", "--json", *on]))
    rows.append(run(f"search --title (shared by {sample['shared_count']})", ["search", "--title", sample["shared_title"], *on], ok=(1,)))
    rows.append(run("search --title (year given)", ["search", "--title", sample["shared_title"], "--year", sample["shared_year"], *on]))
    rows.append(run("search --id (unknown)", ["search", "--id", "00000000-0000-5000-8000-000000000000", *on], ok=(1,)))
    rows.append(run("search --title (unknown, typo)", ["search", "--title", sample["typo"], *on], ok=(1,)))
    if "image" not in args.skip:
        image = args.image or Path(sample["image"])
        rows.append(run("search poster.jpg", ["search", image, "-k", "10", "--weights", args.weights, *on]))
    if "era" not in args.skip:
        rows.append(run("era (defaults)", ["era", "--json", *on]))
    if "duplicates" not in args.skip:
        rows.append(run(f"duplicates ({sample['planted']} near-copies planted)", ["duplicates", *on], first_line=True))
    if "export" not in args.skip:
        rows.append(run("export-embeddings", ["export-embeddings", args.work / f"export-{args.n}.npz", *on]))
        (args.work / f"export-{args.n}.npz").unlink(missing_ok=True)
    if "recall" not in args.skip:
        rows.append(("recall@10, index vs exact (200 queries)", *recall(store, args.collection)))
    if "page" not in args.skip:
        rows += page(store, "map" not in args.skip)

    print(f"\n| {args.n:,} posters | wall | peak memory (heap) / result |\n| --- | --- | --- |")
    for name, wall, extra in rows:
        print(f"| {name} | {wall} | {extra} |")


def write_scaled_export(source: Path, collection: str, n: int, out: Path) -> dict:
    """An export file of n points made from the source collection's; what the timed commands ask for."""
    from poster_search.store.collection import PosterStore, StoredPoint
    from poster_search.store.connection import StoreLocation
    from poster_search.store.exchange import export_header, write_export
    from poster_search.store.schema import PosterPayload, point_id

    with PosterStore(StoreLocation(path=source), collection, must_exist=True) as store:
        points = sorted(store.points(with_vectors=True), key=lambda p: p.id)
        header = export_header(store)
        posters_dir = store.posters_dir()
    vectors = np.stack([cast(np.ndarray, p.vector) for p in points]).astype(np.float32)
    rng = np.random.default_rng(0)
    m, dim = vectors.shape

    def rows():
        for start in range(0, n, 4096):
            idx = np.arange(start, min(n, start + 4096))
            base = idx % m
            noisy = vectors[base] + rng.normal(size=(len(idx), dim)).astype(np.float32) * (NOISE / np.sqrt(dim))
            noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
            for k in np.flatnonzero((idx % PLANTED_EVERY == PLANTED_EVERY - 1) & (np.arange(len(idx)) > 0)):
                noisy[k] = noisy[k - 1] + rng.normal(size=dim).astype(np.float32) * (0.1 / np.sqrt(dim))  # a near-copy of the one before
                noisy[k] /= np.linalg.norm(noisy[k])
            batch = []
            for i, b, v in zip(idx, base, noisy):
                original = points[b].poster
                copy = int(i) // m
                title = (
                    original.title if b == 0 or copy == 0 else f"{original.title} ({copy})"
                )  # every copy of the first poster shares its title
                key = f"scaled/{i}"
                year = original.year + copy if b == 0 and original.year is not None else original.year  # the shared title: a remake a year
                poster = PosterPayload(key=key, title=title, year=year, file=original.file, sha256=f"{original.sha256}:{copy}")
                batch.append(StoredPoint(point_id(key), poster, v, poster.to_dict()))
            yield batch

    write_export(out, header, dim, rows())
    shared = points[0].poster
    return {
        "id": point_id(f"scaled/{n // 2}"),
        "unique_title": f"{points[1].poster.title} (1)" if n > m else points[1].poster.title,
        "shared_title": shared.title,
        "shared_year": str(shared.year),
        "shared_count": len(range(0, n, m)),
        "planted": sum(1 for i in range(n) if i % PLANTED_EVERY == PLANTED_EVERY - 1 and i % 4096 != 0),
        "typo": shared.title[:-2] + shared.title[-1:] + "x",
        "image": str((posters_dir or Path(".")) / points[2].poster.file),
    }


def run(name: str, argv: list, ok: tuple[int, ...] = (0,), first_line: bool = False) -> tuple[str, str, str]:
    """One command in a fresh process: wall seconds and that process's peak memory (os.wait4)."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "cli.py", *map(str, argv)], cwd=ROOT, stdout=out, stderr=err)
        heap = AnonPeak(process.pid)
        _, status, usage = os.wait4(process.pid, 0)  # reaped here, so its own rusage is known
        heap.stop()
        wall = time.perf_counter() - started
        process.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    peak = f"{usage.ru_maxrss / 2**20:.2f} GB (heap {heap.peak / 2**20:.2f})"
    last = (stderr.strip().splitlines() or [""])[-1] if code else stdout.strip().splitlines()[-1:] or [""]
    last = last if isinstance(last, str) else last[0]
    flag = "" if code in ok else f" **exit {code}: {last[:200]}**"
    print(f"{name}: {wall:.2f}s, {peak}, exit {code}{flag} | {last[:160]}", flush=True)
    if code not in ok:
        print(stderr[-2000:], flush=True)
    said = f"; {stdout.strip().splitlines()[0][:100]}" if first_line and stdout.strip() else ""
    return name, f"{wall:.2f} s", f"{peak}{said}{flag}"


class AnonPeak:
    """A process's peak anonymous memory (RssAnon, sampled every 50 ms), its child processes' added
    (a large index build runs in one: store/edge_build.py): its own heap, without the store's
    memory-mapped files, which max RSS counts too but the kernel can drop and share."""

    def __init__(self, pid: int) -> None:
        import threading

        self.peak = 0  # KiB
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(pid,), daemon=True)
        self._thread.start()

    def _watch(self, pid: int) -> None:
        while not self._done.wait(0.05):
            self.peak = max(self.peak, sum(_anon(p) for p in _with_descendants(pid)))

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def _anon(pid: int) -> int:
    """RssAnon of a process, KiB (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("RssAnon:")), 0)


def _with_descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            pass
    return found


def recall(store: Path, collection: str) -> tuple[str, str]:
    from poster_search.store.collection import PosterStore
    from poster_search.store.connection import StoreLocation

    with PosterStore(StoreLocation(path=store), collection, must_exist=True) as db:
        queries = [cast(np.ndarray, p.vector) for p in db.sample(200, seed=7, vector_name="vgg16")]
        started = time.perf_counter()
        approx = db.nearest(queries, 10, fields=[])
        index_s = time.perf_counter() - started
        started = time.perf_counter()
        exact = db.nearest(queries, 10, exact=True, fields=[])
        exact_s = time.perf_counter() - started
    hits = [len({m.id for m in a} & {m.id for m in e}) / max(1, len(e)) for a, e in zip(approx, exact)]
    return f"{index_s / len(queries) * 1000:.1f} ms a query (exact: {exact_s / len(queries) * 1000:.0f} ms)", f"recall {np.mean(hits):.3f}"


def page(store: Path, with_map: bool) -> list[tuple[str, str, str]]:
    """The page's endpoints over HTTP, `python cli.py serve` in its own process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "cli.py", "serve", "--qdrant-path", str(store), "--port", str(port)],
        env={**os.environ, "POSTER_SEARCH_CACHE": tempfile.mkdtemp(prefix="scale-cache-")},  # the map uncached, each run
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        started = time.perf_counter()
        while True:
            try:
                get(base + "/api/collections")
                break
            except OSError:
                if time.perf_counter() - started > 300:
                    raise
                time.sleep(0.2)
        rows.append(("serve: first answer", f"{time.perf_counter() - started:.2f} s", ""))
        for name, path in (
            ("page: collection list", "/api/collections"),
            ("page: first screen (overview)", "/api/collections/posters/overview"),
            ("page: first screen again", "/api/collections/posters/overview"),
            ("page: browse, first page", "/api/collections/posters/browse"),
        ):
            t = time.perf_counter()
            status = get(base + path)
            rows.append((name, f"{time.perf_counter() - t:.2f} s", f"HTTP {status}"))
        ids = [h["id"] for h in json.loads(urllib.request.urlopen(base + "/api/collections/posters/browse?limit=60").read())["posters"]]
        warm = timed_searches(base, ids)
        rows.append(
            ("page: search by id, warm p50 / p95", f"{np.percentile(warm, 50):.0f} / {np.percentile(warm, 95):.0f} ms", f"n={len(warm)}")
        )
        # the timeline asked for by one user while another searches: what a search waits for meanwhile
        timeline: list[float] = []
        asking = threading.Thread(target=lambda: timeline.append(timed(base + "/api/timeline?collection=posters")))
        asking.start()
        during_timeline: list[float] = []
        while asking.is_alive() or not during_timeline:
            during_timeline += timed_searches(base, ids[:5])
        asking.join()
        rows.append(("page: era timeline (searches running meanwhile)", f"{timeline[0]:.2f} s", ""))
        rows.append(("page: search by id while the timeline is computed, p50 / p95 / slowest", *spread(during_timeline)))
        if with_map:
            t = time.perf_counter()
            get(base + "/api/map?collection=posters")  # starts it in the background
            during = timed_searches(base, ids)
            while get(base + "/api/map?collection=posters") == 202:
                during += timed_searches(base, ids[:10])
            rows.append(("page: poster map, uncached", f"{time.perf_counter() - t:.1f} s", ""))
            rows.append(("page: search by id while the map is computed, p50 / p95 / slowest", *spread(during)))
        rss = int(open(f"/proc/{server.pid}/status").read().split("VmHWM:")[1].split()[0])
        rows.append(("page: the server's peak memory", "", f"{rss / 2**20:.2f} GB"))
    finally:
        server.terminate()
        server.wait()
    return rows


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=600) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code


def timed(url: str) -> float:
    t = time.perf_counter()
    get(url)
    return time.perf_counter() - t


def spread(ms: list[float]) -> tuple[str, str]:
    return f"{np.percentile(ms, 50):.0f} / {np.percentile(ms, 95):.0f} / {max(ms):.0f} ms", f"n={len(ms)}"


def timed_searches(base: str, ids: list[str]) -> list[float]:
    out = []
    for pid in ids:
        t = time.perf_counter()
        get(f"{base}/api/search/id/{pid}?collection=posters&k=12")
        out.append((time.perf_counter() - t) * 1000)
    return out


if __name__ == "__main__":
    main()
