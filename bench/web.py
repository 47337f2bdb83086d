"""Latency of the web API, through real HTTP on localhost: `python cli.py serve` in its own process.

    .venv/bin/python -m bench.web [--qdrant-path qdrant_data] [--collection posters] [-n 50] [-k 12]

Measures, warm (after the first image search has loaded VGG16): search by image upload, by
stored id, by title, recommend, a poster file, the page, the poster map, a map hover, the era
timeline and the similarity maps of a search's results; and cold: how soon the server answers
after it starts, the first image search (which loads the model) and the first era figures. The store is the one
`python cli.py ingest` made (the README's quick start); uploads are posters of the shared data.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import POSTERS, ROOT, WEIGHTS, percentiles, require_data
from bench.common import timed as timed_calls


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summary(seconds: list[float]) -> str:
    return f"{percentiles(seconds, high=95)}   (n={len(seconds)})"


def timed(call, inputs) -> list[float]:
    """Seconds of each HTTP call (bench/common.timed), raising on an error response."""
    return timed_calls(lambda x: call(x).raise_for_status(), inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qdrant-path", default="qdrant_data")
    parser.add_argument("--collection", default="posters")
    parser.add_argument("-n", type=int, default=50, help="queries per row")
    parser.add_argument("-k", type=int, default=12, help="results per search (the page's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", default=str(WEIGHTS), help="the weights the store was made with")
    args = parser.parse_args()
    require_data()
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        str(ROOT / "cli.py"),
        "serve",
        "--qdrant-path",
        args.qdrant_path,
        "--collection",
        args.collection,
        "--port",
        str(port),
        "--weights",
        args.weights,
    ]
    # a fresh cache for the poster map (its first request computes it), the ONNX models of the usual one
    from poster_search.embedding.onnx_cache import CACHE_ENV, cache_dir

    fresh = Path(tempfile.mkdtemp(prefix="bench-web-cache-"))
    (cache_dir() / "models").mkdir(parents=True, exist_ok=True)
    (fresh / "models").symlink_to(cache_dir() / "models")
    started = time.perf_counter()
    server = subprocess.Popen(
        command, cwd=ROOT, stderr=subprocess.PIPE, text=True, start_new_session=True, env={**os.environ, CACHE_ENV: str(fresh)}
    )
    assert server.stderr is not None  # a pipe
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            while True:
                try:
                    client.get("/api/collections").raise_for_status()
                    break
                except httpx.TransportError:
                    if server.poll() is not None:
                        sys.exit(f"the server stopped: {server.stderr.read()[-1000:]}")
                    time.sleep(0.05)
            first_answer = time.perf_counter() - started
            info = client.get(f"/api/collections/{args.collection}").json()
            rng = random.Random(args.seed)
            files = rng.sample(sorted(POSTERS.iterdir()), args.n + 1)
            uploads = [(f.name, f.read_bytes()) for f in files]
            params = {"collection": args.collection, "k": args.k}

            def upload(item):
                name, data = item
                return client.post("/api/search/image", params=params, files={"file": (name, data, "image/jpeg")})

            first_image = timed(upload, uploads[:1])[0]  # loads VGG16
            image = timed(upload, uploads[1:])
            # stored ids and titles from what the searches returned
            results = [r for item in uploads[1 : 1 + args.n] for r in upload(item).json()["results"]]
            by_id = {r["id"]: r for r in results}
            ids = rng.sample(sorted(by_id), min(args.n, len(by_id)))
            stored = timed(lambda i: client.get(f"/api/search/id/{i}", params=params), ids)
            titled = [by_id[i] for i in ids if by_id[i]["year"] is not None]
            title = timed(lambda r: client.get("/api/search/title", params={**params, "title": r["title"], "year": r["year"]}), titled)
            recommend = timed(
                lambda i: client.post(
                    "/api/recommend", json={**params, "positive": [ids[i], ids[(i + 1) % len(ids)]], "negative": [ids[(i + 2) % len(ids)]]}
                ),
                range(len(ids)),
            )
            poster = timed(lambda i: client.get(f"/api/posters/{args.collection}/{i}"), ids)
            page = timed(lambda _: client.get("/"), range(args.n))
            era_first = timed(lambda _: client.get("/api/era", params={"collection": args.collection, "k": 3}), range(1))[0]
            era_cached = timed(lambda _: client.get("/api/era", params={"collection": args.collection, "k": 3}), range(args.n))
            # the collection-wide views and the similarity maps (issue 21)
            where = {"collection": args.collection}
            map_started = time.perf_counter()
            while client.get("/api/map", params=where).status_code == 202:  # computed in the background: the page polls
                time.sleep(0.2)
            map_first = time.perf_counter() - map_started
            map_body = client.get("/api/map", params=where, headers={"Accept-Encoding": "gzip"})
            map_cached = timed(lambda _: client.get("/api/map", params=where), range(10))
            hover = timed(lambda i: client.get(f"/api/map/{(i * 7919) % info['count']}", params=where), range(args.n))
            timeline_first = timed(lambda _: client.get("/api/timeline", params=where), range(1))[0]
            timeline_cached = timed(lambda _: client.get("/api/timeline", params=where), range(10))
            # one card's map as the page asks for it (a click): first for posters whose grids the
            # server has not computed yet (the query's and the neighbour's), then again (cached)
            others = [client.get(f"/api/search/id/{i}", params=params).json() for i in ids[10:20]]
            one_map = timed(
                lambda s: client.post("/api/explain", json={**where, "query_id": s["query"]["id"], "ids": [s["results"][0]["id"]]}), others
            )
            one_again = timed(
                lambda s: client.post("/api/explain", json={**where, "query_id": s["query"]["id"], "ids": [s["results"][0]["id"]]}), others
            )
            searches = [client.get(f"/api/search/id/{i}", params=params).json() for i in ids[:10]]
            maps = timed(
                lambda s: client.post("/api/explain", json={**where, "query_id": s["query"]["id"], "ids": [r["id"] for r in s["results"]]}),
                searches,
            )
            # browsing the whole collection and suggestions from a few letters (issue 38)
            collection = f"/api/collections/{args.collection}"
            facets = timed(lambda _: client.get(f"{collection}/facets"), range(args.n))
            sorts = [{"sort": sort, "order": order} for sort in ("title", "year", "added") for order in ("asc", "desc")]
            browse_first = timed(lambda o: client.get(f"{collection}/browse", params=o), sorts * max(1, args.n // len(sorts)))
            cursors, deep = [], []
            for options in sorts:  # ten pages on in each order, following the cursors as the page does
                after = None
                for _ in range(10):
                    asked = {**options, **({"after": after} if after else {})}
                    deep += timed(lambda o: client.get(f"{collection}/browse", params=o), [asked])
                    after = client.get(f"{collection}/browse", params=asked).json()["next"]
                    cursors.append(after)
            filtered = timed(
                lambda o: client.get(f"{collection}/browse", params=o),
                [{"sort": "year", "decade": d, "status": "catalog"} for d in range(1930, 2030, 10)] * max(1, args.n // 10),
            )
            typed = [by_id[i]["title"][:n] for i in ids for n in (2, 3, 5)]
            suggest = timed(lambda q: client.get(f"{collection}/suggest", params={"q": q}), typed)
            thumb = timed(lambda i: client.get(f"/api/posters/{args.collection}/{i}", params={"w": 240}), ids)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)

    print(f"web API on {args.qdrant_path} ({info['count']} posters), k={args.k}, through HTTP on localhost; {os.cpu_count()} CPUs")
    print(f"  server answers after start      {first_answer:7.2f} s   (store opened; no model yet)")
    print(f"  first image search (loads VGG16) {first_image:6.2f} s")
    print(f"  search by image upload           {summary(image)}")
    print(f"  search by stored id              {summary(stored)}")
    print(f"  search by title (and year)       {summary(title)}")
    print(f"  recommend (2 liked, 1 disliked)  {summary(recommend)}")
    print(f"  poster file                      {summary(poster)}")
    print(f"  the page (index.html)            {summary(page)}")
    print(
        f"  poster map, first (in the background, polled; or the disk cache) {map_first:6.2f} s; then {summary(map_cached)}; "
        f"{len(map_body.content) / 1e3:.0f} kB of JSON, sent as {map_body.headers.get('content-encoding', 'identity')} ({len(gzip.compress(map_body.content)) / 1e3:.0f} kB gzipped)"
    )
    print(f"  map hover (one poster's title)   {summary(hover)}")
    print(f"  era timeline, first {timeline_first:6.2f} s; then {summary(timeline_cached)}")
    print(f"  similarity maps of a search's {args.k} results (one request) {summary(maps)}")
    print(f"  similarity map of one result     {summary(one_map)}   (first: 2 grids computed)")
    print(f"  the same map again               {summary(one_again)}   (grids cached)")
    print(f"  era figures, first (k=3, 1,000 sampled posters) {era_first:6.2f} s; then cached: {summary(era_cached)}")
    print(f"  browse filter counts (facets)    {summary(facets)}")
    print(f"  browse, first page (48)          {summary(browse_first)}   (6 orders)")
    print(f"  browse, pages 1-10 by cursor     {summary(deep)}")
    print(f"  browse, a decade, catalog years  {summary(filtered)}")
    print(f"  title suggestions (2, 3, 5 letters) {summary(suggest)}")
    print(f"  poster thumbnail (w=240)         {summary(thumb)}")


if __name__ == "__main__":
    main()
