"""The poster map's first draw, uncached: how long the page waits for it, and whether searches
answer meanwhile.

    .venv/bin/python -m bench.map_first_draw --qdrant-path STORE [--collection posters] [--browser FOLDER]

The store is copied to a temporary folder first (the original is never opened) and the map cache
is a fresh temporary folder, so every run computes the map. The app (web/app.py) is driven by
FastAPI's TestClient as the page drives it: GET /api/map every 0.25 s until it answers 200 (a
server that computes inside the request answers the first GET only when done). Meanwhile another
thread asks GET /api/search/id/{id} twice a second and keeps each answer's time: the slowest of
them says whether the map held other requests up. Then the cached map once more, and how many of
each poster's 10 nearest neighbours (cosine, 512-d) are among its 10 nearest on the map
(bench/projection.py's measure, on 2,000 posters).

With --browser FOLDER, the page itself instead (uvicorn on a free port, Debian's chromium through
Selenium): from the click that opens the map panel to the map drawn (its status line saying how
many posters), then the map and a zoomed-in view of it saved in FOLDER as PNGs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qdrant-path", type=Path, default=ROOT / "qdrant_data")
    parser.add_argument("--collection", default="posters")
    parser.add_argument("--browser", type=Path, help="measure in chromium instead, and keep its screenshots here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        shutil.copytree(args.qdrant_path, store)
        os.environ["POSTER_SEARCH_CACHE"] = str(Path(tmp) / "cache")
        if args.browser:
            in_browser(store, args.collection, args.browser)
        else:
            run(store, args.collection)


def run(store: Path, collection: str) -> None:
    from fastapi.testclient import TestClient

    from bench.projection import kept_neighbours
    from poster_search import Posters
    from poster_search.store.embeddings import load_embeddings
    from poster_search.web.app import create_app

    with Posters(store, collection) as posters, TestClient(create_app(posters), base_url="http://localhost") as client:
        some_id = next(posters.store.points(with_vectors=False)).id
        client.get(f"/api/search/id/{some_id}", params={"collection": collection})  # warm: the store opened, routes imported
        searches: list[float] = []
        done = threading.Event()

        def search_meanwhile() -> None:
            while not done.is_set():
                started = time.perf_counter()
                assert client.get(f"/api/search/id/{some_id}", params={"collection": collection}).status_code == 200
                searches.append(time.perf_counter() - started)
                done.wait(0.5)

        searcher = threading.Thread(target=search_meanwhile)
        started = time.perf_counter()
        searcher.start()
        polls = 0
        while True:
            answer = client.get("/api/map", params={"collection": collection})
            polls += 1
            if answer.status_code != 202:
                break
            time.sleep(0.25)
        first = time.perf_counter() - started
        done.set()
        searcher.join()
        assert answer.status_code == 200, answer.text
        data = answer.json()
        started = time.perf_counter()
        client.get("/api/map", params={"collection": collection}).raise_for_status()
        cached = time.perf_counter() - started
        embeddings = load_embeddings(posters.store)
    order = {i: k for k, i in enumerate(embeddings.ids)}
    ids = data.get("ids")
    rows = [order[i] for i in ids] if ids else list(range(len(embeddings.ids)))  # the old map: in id order, no ids sent
    xy = np.stack([data["x"], data["y"]], axis=1).astype(np.float64)
    kept = kept_neighbours(embeddings.vectors[rows], xy)
    slowest = max(searches) if searches else float("nan")
    print(f"{data['n']} posters: first map answer after {first:.1f} s ({polls} GETs; computed_seconds {data.get('computed_seconds')})")
    print(f"searches meanwhile: {len(searches)}, slowest {slowest * 1000:.0f} ms, median {np.median(searches) * 1000:.0f} ms")
    print(f"cached map: {cached * 1000:.0f} ms; 10-NN kept on the map: {kept:.1%}")


def in_browser(store: Path, collection: str, out: Path) -> None:
    import socket

    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from poster_search import Posters
    from poster_search.web.app import create_app

    out.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Posters(store, collection) as posters:
        server = uvicorn.Server(uvicorn.Config(create_app(posters), host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or ""
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1100"):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        try:
            driver.get(f"http://127.0.0.1:{port}/?collection={collection}")
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#collection option"))
            panel = driver.find_element(By.ID, "map-panel")
            driver.execute_script("arguments[0].scrollIntoView()", panel)
            started = time.perf_counter()
            panel.find_element(By.TAG_NAME, "summary").click()
            WebDriverWait(driver, 300, poll_frequency=0.05).until(lambda d: " posters" in d.find_element(By.ID, "map-status").text)
            first = time.perf_counter() - started
            status = driver.find_element(By.ID, "map-status").text
            canvas = driver.find_element(By.ID, "map-canvas")
            driver.execute_script("arguments[0].scrollIntoView()", canvas)
            canvas.screenshot(str(out / "map.png"))
            labels = driver.execute_script("return window.mapLabelBoxes.length")
            steps = 0
            while driver.execute_script("return map.thumbs.length") == 0 and steps < 20:  # zoom in on the middle until posters show
                driver.execute_script("zoomMap(1.25, 0, 0)")
                steps += 1
            WebDriverWait(driver, 60).until(lambda d: d.execute_script("return window.mapPostersDrawn") > 0)
            time.sleep(2)  # the rest of the thumbnails
            driver.execute_script("drawMap()")
            canvas.screenshot(str(out / "map-zoomed.png"))
            drawn = driver.execute_script("return window.mapPostersDrawn")
        finally:
            driver.quit()
            server.should_exit = True
    print(f"in chromium: the map drawn {first:.1f} s after the panel opened; {status!r}")
    print(f"{labels} decade labels placed; zoomed in x{1.25**steps:.1f}: {drawn} posters drawn; {out}/map.png, {out}/map-zoomed.png")


if __name__ == "__main__":
    main()
