"""Screenshots of the page on real posters, for docs/ (one of each view, looked at before they are kept).

    .venv/bin/python -m bench.screenshots --qdrant-path STORE [--model-dir year_model] --out docs/

Starts `cli.py serve` on the store, drives Debian's headless chromium (as tests/test_browser.py
does), sets each viewport exactly (Chrome's device metrics: a desktop 1280 x 900, a phone 390 x 844
at 2 x pixels) and writes, each as a 256-colour PNG (about 200 kB, at most 300 kB), every
screenshot the docs use. In OUT (docs/): web-landing.png (the collection before any search),
web-search.png (a title search: the query poster beside its results), web-page.png (an upload's
results and its predicted year), web-maps.png (a result's similarity map and the side-by-side
view), web-poster-map.png (the poster map with a hover card), web-timeline.png (the era
timeline). In OUT/screenshots/: first-screen-desktop.png and first-screen-phone.png (the page
before any search), browse-desktop.png and browse-phone.png (Browse all, by year, the 1950s:
/?browse=1&sort=year&decade=1950), search-desktop.png and search-phone.png (a title search from
its address, /?q=Casablanca), suggestions-desktop.png (the suggestions for "the thi" typed in the
title field) and map-zoomed.png (the poster map zoomed in until it draws the posters themselves).
Also times the page's interactions (map redraw on zoom, hover, overlay toggle) in the browser and prints them.
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

DESKTOP = (1280, 900, 1)  # CSS pixels wide, high, device pixels per CSS pixel
PHONE = (390, 844, 2)
MAX_BYTES = 300_000
# every image the viewport shows (the grids' images load lazily: those below it need not be there) is loaded
IMAGES_SHOWN = (
    "const shown = [...document.querySelectorAll('img')].filter(i => { if (!i.getAttribute('src')) return false;"
    " const b = i.getBoundingClientRect(); return b.width > 0 && b.height > 0 && b.bottom > 0 && b.right > 0"
    " && b.top < innerHeight && b.left < innerWidth; });"
    " return shown.length > 0 && shown.every(i => i.complete && i.naturalWidth > 0);"
)


def save(browser, path: Path, height: int | None = None) -> None:
    """A screenshot as a 256-colour PNG: a fifth of the size, no visible loss on a page of flat colours and posters.

    `height` (CSS pixels) keeps only the top of the window; fewer colours only if 256 would pass MAX_BYTES."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(path))
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    if height is not None:
        scale = browser.execute_script("return window.devicePixelRatio")
        rgb = rgb.crop((0, 0, rgb.width, min(rgb.height, round(height * scale))))
    tried = []
    for colours in (256, 192, 128):
        rgb.quantize(colours, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        tried.append(f"{colours} colours {path.stat().st_size // 1000} kB")
        if path.stat().st_size <= MAX_BYTES:
            break
    note = "" if len(tried) == 1 else f" (to stay under {MAX_BYTES // 1000} kB: {', '.join(tried)})"
    print(f"{path}: {rgb.width} x {rgb.height}, {path.stat().st_size // 1000} kB{note}")


def viewport(browser, size: tuple[int, int, int]) -> None:
    """The page's viewport exactly this size (a phone's: touch-sized, its viewport meta obeyed)."""
    width, height, scale = size
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": scale > 1}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qdrant-path", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--query", type=Path, default=POSTERS / "770.jpg", help="the poster uploaded (default: Gone with the Wind)")
    parser.add_argument("--title", default="Casablanca", help="the film searched by title")
    parser.add_argument("--typed", default="the thi", help="the letters typed for the suggestions")
    parser.add_argument("--map-poster", type=int, default=-1, help="the map's poster zoomed in on (its index; default: a third of the way)")
    args = parser.parse_args()
    from urllib.parse import quote

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
    shots = args.out / "screenshots"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1100",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-background-networking",
    ):
        options.add_argument(a)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    wait = lambda condition, timeout=300: WebDriverWait(browser, timeout, poll_frequency=0.2).until(condition)  # noqa: E731
    shown_loaded = lambda: wait(lambda d: d.execute_script(IMAGES_SHOWN))  # noqa: E731

    def still() -> None:
        """Until the page stops scrolling (a phone scrolls its results into view) and its images are in."""
        last = None
        while (now := browser.execute_script("return window.scrollY")) != last:
            last = now
            time.sleep(0.4)
        shown_loaded()

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
        search_url = f"{url}/?q={quote(args.title)}"
        browse_url = f"{url}/?browse=1&sort=year&decade=1950"

        # --- the desktop's first screens (1280 x 900) ---
        viewport(browser, DESKTOP)
        browser.get(url + "/")
        wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#landing .start-row img"))
        still()
        save(browser, shots / "first-screen-desktop.png")

        title = browser.find_element(By.ID, "title")
        title.send_keys(args.typed)
        wait(
            lambda d: d.execute_script("const l = document.getElementById('title-suggestions'); return !l.hidden && l.children.length > 0")
        )
        wait(
            lambda d: d.execute_script(
                "return [...document.querySelectorAll('#title-suggestions img')].every(i => i.complete && i.naturalWidth > 0)"
            )
        )
        time.sleep(0.3)
        bottom = browser.execute_script("return document.getElementById('title-suggestions').getBoundingClientRect().bottom")
        save(browser, shots / "suggestions-desktop.png", height=min(DESKTOP[1], int(bottom) + 24))

        browser.get(browse_url)
        wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#browse-grid li")) >= 12)
        wait(lambda d: "match" in d.find_element(By.ID, "browse-count").text)
        still()
        save(browser, shots / "browse-desktop.png")

        browser.get(search_url)
        wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid .card")) == 12)
        wait(
            lambda d: d.execute_script(
                "return document.getElementById('query-image').complete && !document.getElementById('query-card').hidden"
            )
        )
        still()
        save(browser, shots / "search-desktop.png")

        # --- a phone (390 x 844, 2 x pixels): the first screen, browsing, a search ---
        viewport(browser, PHONE)
        browser.get(url + "/")
        wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#landing .start-row img"))
        still()
        save(browser, shots / "first-screen-phone.png")
        browser.get(browse_url)
        wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#browse-grid li")) >= 12)
        still()
        save(browser, shots / "browse-phone.png")
        browser.get(search_url)
        wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid .card")) == 12)
        still()
        save(browser, shots / "search-phone.png")

        # --- the page's views as before (1280 x 900 again) ---
        viewport(browser, DESKTOP)
        browser.get(url + "/")
        wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#landing .start-row img"))
        browser.execute_script("document.getElementById('landing').scrollIntoView()")  # the grid itself, below the search form
        still()
        # two whole decades (three, cut off, would pass 300 kB at 256 colours)
        rows = "return document.querySelectorAll('#landing .start-row')[1].getBoundingClientRect().bottom"
        save(browser, args.out / "web-landing.png", height=min(DESKTOP[1], int(browser.execute_script(rows)) + 6))
        browser.execute_script("window.scrollTo(0, 0)")

        browser.find_element(By.ID, "title").send_keys(args.title, Keys.ENTER)
        wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid .card")) == 12)
        wait(
            lambda d: d.execute_script(
                "return [...document.querySelectorAll('#grid img, #query-image')].every(i => i.complete && i.naturalWidth > 0)"
            )
        )
        browser.execute_script("document.getElementById('title').blur(); window.scrollTo(0, 0)")
        wait(lambda d: not d.find_element(By.ID, "title-suggestions").is_displayed())
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
        still()
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
        wait(
            lambda d: d.execute_script("return [...document.querySelectorAll('#compare img')].every(i => i.complete && i.naturalWidth > 0)")
        )
        time.sleep(0.5)
        save(browser, args.out / "web-maps.png")
        browser.find_element(By.CSS_SELECTOR, "#compare form button").click()

        # the poster map: computed in the background (GET /api/map answers 202 with its progress,
        # the page polls); drawn once the status names its posters and the decade labels are placed
        browser.find_element(By.CSS_SELECTOR, "#map-panel summary").click()
        map_drawn = (
            "return typeof map !== 'undefined' && map.data !== null && window.mapLabelBoxes.length > 0"
            " && /^\\d+ posters/.test(document.getElementById('map-status').textContent)"
        )
        wait(lambda d: d.execute_script(map_drawn), timeout=900)
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
        wait(
            lambda d: d.execute_script("return [...document.querySelectorAll('#map-tip img')].every(i => i.complete && i.naturalWidth > 0)")
        )
        time.sleep(0.3)
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

        # zoomed in: the map centred on a poster (as a drag would), then wheel events on the canvas
        # until few enough posters are on screen that it draws them, and every thumbnail is in
        browser.find_element(By.ID, "map-reset").click()  # the pointer leaves the canvas: no hover card
        browser.execute_script(
            "const c = document.getElementById('map-canvas'), [x, y] = screen(arguments[0] >= 0 ? arguments[0] % map.data.n : Math.floor(map.data.n / 3));"
            " map.view.dx -= x - c.width / 2; map.view.dy -= y - c.height / 2; drawMap();",
            args.map_poster,
        )
        wheel = (
            "const c = document.getElementById('map-canvas'), b = c.getBoundingClientRect();"
            " c.dispatchEvent(new WheelEvent('wheel', {deltaY: -100, bubbles: true, cancelable: true,"
            " clientX: b.left + b.width / 2, clientY: b.top + b.height / 2}));"
            " return [map.view.scale, onScreen().length];"
        )
        for _ in range(30):
            scale, on_screen = browser.execute_script(wheel)
            if scale >= 1.5 and on_screen <= 90:
                break
        wait(lambda d: d.execute_script("return window.mapPostersDrawn > 0 && window.mapPostersDrawn === map.thumbs.length"), timeout=120)
        time.sleep(0.3)
        drawn = browser.execute_script("return window.mapPostersDrawn")
        browser.execute_script("document.getElementById('map-panel').scrollIntoView()")
        save(browser, shots / "map-zoomed.png")

        browser.find_element(By.CSS_SELECTOR, "#era-panel summary").click()
        wait(lambda d: d.find_elements(By.CSS_SELECTOR, ".timeline .decade"), timeout=600)
        time.sleep(2)
        browser.execute_script("document.querySelector('.timeline').scrollIntoView()")
        wait(lambda d: d.execute_script(IMAGES_SHOWN))
        time.sleep(0.5)
        save(browser, args.out / "web-timeline.png")

        print(f"map: {status}; zoomed in {scale:.2f} x: {on_screen} posters on screen, {drawn} drawn")
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
