"""Screenshots of the page on real posters, for docs/ (one of each view, looked at before they are kept).

    .venv/bin/python -m bench.screenshots --qdrant-path STORE [--model-dir year_model] --out docs/

Starts `cli.py serve` on the store, drives Debian's headless chromium (as tests/test_browser.py
does) and writes: web-landing.png (the collection before any search), web-search.png (a title
search: the query poster beside its results), web-page.png (an upload's results and its predicted year), web-maps.png (a
result's similarity map and the side-by-side view), web-poster-map.png (the poster map with a
hover card), web-timeline.png (the era timeline), each as a 256-colour PNG (about 200 kB). Also
times the page's interactions (map redraw on zoom, hover, overlay toggle) in the browser and prints them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.common import POSTERS, ROOT, WEIGHTS


def save(browser, path: Path) -> None:
    """A screenshot as a 256-colour PNG: a fifth of the size, no visible loss on a page of flat colours and posters."""
    from PIL import Image

    browser.save_screenshot(str(path))
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qdrant-path", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--query", type=Path, default=POSTERS / "770.jpg", help="the poster uploaded (default: Gone with the Wind)")
    parser.add_argument("--title", default="Casablanca", help="the film searched by title")
    args = parser.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.conftest import free_port

    chromium = shutil.which("chromium")
    if chromium is None:  # checked before the server starts: it would be left running
        sys.exit("needs Debian's chromium and chromedriver (apt-get install chromium chromium-driver)")
    port = free_port()
    command = [
        sys.executable,
        str(ROOT / "cli.py"),
        "serve",
        "--qdrant-path",
        str(args.qdrant_path),
        "--port",
        str(port),
        "--weights",
        str(WEIGHTS),
    ]
    command += ["--model-dir", str(args.model_dir)] if args.model_dir else []
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--no-first-run",
        "--disable-background-networking",
    ):
        options.add_argument(a)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    wait = lambda condition, timeout=300: WebDriverWait(browser, timeout, poll_frequency=0.2).until(condition)  # noqa: E731
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/api/collections", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.3)
        args.out.mkdir(parents=True, exist_ok=True)
        browser.get(url + "/")
        wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#landing .start-row img"))
        landing_images = "return [...document.querySelectorAll('#landing img')].slice(0, 24).every(i => i.complete && i.naturalWidth > 0)"
        wait(lambda d: d.execute_script(landing_images))
        browser.execute_script("document.getElementById('landing').scrollIntoView()")  # the grid itself, below the search form
        time.sleep(0.5)
        save(browser, args.out / "web-landing.png")
        browser.execute_script("window.scrollTo(0, 0)")

        browser.find_element(By.ID, "title").send_keys(args.title, Keys.ENTER)
        wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid .card")) == 12)
        wait(
            lambda d: d.execute_script(
                "return [...document.querySelectorAll('#grid img, #query-image')].every(i => i.complete && i.naturalWidth > 0)"
            )
        )
        browser.execute_script("document.getElementById('title').blur(); window.scrollTo(0, 0)")
        save(browser, args.out / "web-search.png")

        browser.find_element(By.ID, "file").send_keys(str(args.query))
        wait(
            lambda d: (
                d.find_element(By.ID, "results-title").text == f"Posters like {args.query.name}"
                and len(d.find_elements(By.CSS_SELECTOR, "#grid .card")) == 12
            )
        )
        if args.model_dir:
            wait(lambda d: "Predicted release year" in d.find_element(By.ID, "prediction").text)
        wait(lambda d: d.find_element(By.CSS_SELECTOR, "#grid .card button.why").is_enabled())
        wait(lambda d: d.execute_script("return [...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)"))
        browser.execute_script("window.scrollTo(0, 0)")
        save(browser, args.out / "web-page.png")

        first = browser.find_elements(By.CSS_SELECTOR, "#grid .card")
        # click to map drawn: the request (one forward pass over that poster) and the drawing
        overlay = (
            "const done = arguments[arguments.length - 1], card = document.querySelectorAll('#grid .card')[arguments[0]], t = performance.now();"
            " card.querySelector('button.why').click();"
            " (function poll() { if (card.querySelector('canvas.heat')) done(performance.now() - t); else setTimeout(poll, 2); })();"
        )
        browser.set_script_timeout(120)
        toggle_ms = [browser.execute_async_script(overlay, i) for i in range(3)]
        browser.execute_script("document.querySelector('#grid .card button.why').click()")  # off; on again: the page holds the map
        again_ms = browser.execute_async_script(overlay, 0)
        browser.execute_script("document.querySelector('#results-title').scrollIntoView()")
        first[0].find_element(By.CSS_SELECTOR, "button.compare").click()
        wait(lambda d: d.find_element(By.ID, "compare").get_attribute("open") is not None)
        time.sleep(0.5)
        save(browser, args.out / "web-maps.png")
        browser.find_element(By.CSS_SELECTOR, "#compare form button").click()

        browser.find_element(By.CSS_SELECTOR, "#map-panel summary").click()
        wait(lambda d: "posters," in d.find_element(By.ID, "map-status").text, timeout=900)
        status = browser.find_element(By.ID, "map-status").text
        browser.execute_script("document.getElementById('map-panel').scrollIntoView()")
        zoom_ms = browser.execute_script(
            "const c = document.getElementById('map-canvas'); const t = performance.now();"
            "for (let i = 0; i < 5; i++) c.dispatchEvent(new WheelEvent('wheel', {deltaY: -100, clientX: c.getBoundingClientRect().left + 450, clientY: c.getBoundingClientRect().top + 320, cancelable: true}));"
            "return (performance.now() - t) / 5;"
        )
        browser.find_element(By.ID, "map-reset").click()
        canvas = browser.find_element(By.ID, "map-canvas")
        x, y = browser.execute_script(
            "const [x, y] = screen(Math.floor(map.data.n / 3)); const c = document.getElementById('map-canvas');"
            " const b = c.getBoundingClientRect(); return [x * b.width / c.width, y * b.height / c.height];"
        )
        t = time.perf_counter()
        ActionChains(browser).move_to_element_with_offset(
            canvas, int(x - canvas.size["width"] / 2) + 1, int(y - canvas.size["height"] / 2) + 1
        ).perform()
        wait(lambda d: d.find_element(By.ID, "map-tip").is_displayed())
        hover_ms = 1000 * (time.perf_counter() - t)
        time.sleep(0.8)  # the thumbnail
        save(browser, args.out / "web-poster-map.png")
        # in the page, without WebDriver's round trips: a pointer move over another poster until its
        # title card shows (the nearest-point lookup, one redraw, one small request)
        hover_page = (
            "const done = arguments[arguments.length - 1], c = document.getElementById('map-canvas'), b = c.getBoundingClientRect();"
            " const i = arguments[0] % map.data.n, [x, y] = screen(i), tip = document.getElementById('map-tip'); tip.hidden = true;"
            " const t = performance.now();"
            " c.dispatchEvent(new PointerEvent('pointermove', {clientX: b.left + x * b.width / c.width, clientY: b.top + y * b.height / c.height}));"
            " (function poll() { if (!tip.hidden) done(performance.now() - t); else setTimeout(poll, 1); })();"
        )
        page_hover_ms = sorted(browser.execute_async_script(hover_page, (n * 7919) % 3000) for n in range(1, 11))

        browser.find_element(By.CSS_SELECTOR, "#era-panel summary").click()
        wait(lambda d: d.find_elements(By.CSS_SELECTOR, ".timeline .decade"), timeout=600)
        time.sleep(2)
        browser.execute_script("document.querySelector('.timeline').scrollIntoView()")
        time.sleep(1)
        save(browser, args.out / "web-timeline.png")
        print(f"map: {status}")
        print(
            f"page interactions (in the browser): a card's map, click to drawn {', '.join(f'{t:.0f}' for t in toggle_ms)} ms (first three cards), "
            f"off and on again {again_ms:.1f} ms, map zoom redraw {zoom_ms:.1f} ms, "
            f"hover to card shown {hover_ms:.0f} ms through WebDriver, in the page median {page_hover_ms[5]:.1f} ms, max {page_hover_ms[-1]:.1f} ms (10 posters)"
        )
    finally:
        browser.quit()
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
