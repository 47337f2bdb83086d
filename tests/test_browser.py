"""End to end in a real headless browser: `python cli.py serve` on localhost, Debian's chromium
driven through chromedriver (Selenium). Load the page, upload a poster, see result cards, click
one ("more like this"), like one and refine, and keep a screenshot as a test artefact
(results/browser/, git-ignored) for a person to look at.

Skipped, with the reason, only where chromium or chromedriver is not installed (`.ci/run`
installs them with apt when it can).
"""

from __future__ import annotations

import pytest

from poster_search.store.connection import StoreLocation
from tests.conftest import BROWSER_ARTEFACTS as ARTEFACTS
from tests.conftest import make_poster, needs_browser, run_cli, serving, wait_for, write_csv

N = 30  # posters in the store
HOSTILE_TITLE = '<img src=x onerror="window.pwned=1">Film 29<script>window.pwned=2</script>'

pytestmark = [needs_browser, pytest.mark.e2e]  # a real server and a real browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A store of 30 generated posters, a small year model, and `cli.py serve` on them, on
    127.0.0.1 and a free port: made with the CLI, as a user would (seeded random VGG16 weights)."""
    tmp = tmp_path_factory.mktemp("browser")
    rows = [[f"{i}.jpg", f"Film {i}", 1940 + 3 * i, ["Drama", "Comedy", "Horror"][i % 3]] for i in range(N)]
    rows[-1][1] = HOSTILE_TITLE  # a catalog may hold anything: the page must show it as text
    for i in range(N):
        make_poster(tmp / "posters" / f"{i}.jpg", seed=500 + i, size=(200, 300))
    catalog = write_csv(tmp / "movies.csv", ["filename", "title", "release_year", "genre"], rows)
    location = StoreLocation(path=tmp / "store")
    for command in [
        ["ingest", "--catalog", catalog, "--posters", tmp / "posters", "--weights", "random"],
        [
            "train-year",
            "--vector",
            "vgg16",
            "--members",
            "1",
            "--epochs",
            "5",
            "--knn-k",
            "3",
            "--test-size",
            "0.3",
            "--seed",
            "3",
            "--model-dir",
            tmp / "model",
        ],
        # (the split is by content hash: seed 3 leaves these 30 posters 16 to fit, 5 to calibrate, 9 to test)
    ]:
        made = run_cli(*command, "--qdrant-path", location.path)
        assert made.returncode == 0, made.stderr
    with serving(location.path, tmp / "serve.log", "--weights", "random", "--model-dir", tmp / "model", "--era-sample", "20") as (
        url,
        process,
        _,
    ):
        yield url, tmp, location
    assert process.returncode == 0 and (tmp / "serve.log").read_text().strip().endswith("poster search: stopped")


def cards(driver):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#grid .card")


def test_upload_see_cards_click_one_refine_and_screenshot(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, tmp, _ = server
    browser.get(url + "/")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#collection option"), what="the collection list")
    assert f"{N} posters" in browser.find_element(By.ID, "collection-info").text

    # upload a poster that is not in the store (drag and drop and the chooser share this input)
    query = make_poster(tmp_path / "my poster.png", seed=77, size=(200, 300))
    browser.find_element(By.ID, "file").send_keys(str(query))
    wait_for(browser, lambda d: len(cards(d)) == 12, timeout=120, what="12 result cards (the model loads on the first upload)")
    assert browser.find_element(By.ID, "results-title").text == "Posters like my poster.png"
    first = cards(browser)[0]
    assert first.find_element(By.CSS_SELECTOR, ".t").text.startswith("Film ")
    assert "sim " in first.text
    wait_for(
        browser,
        lambda d: d.execute_script("return [...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth === 200)"),
        what="the thumbnails",
    )
    assert browser.find_element(By.ID, "query-preview").get_attribute("src").startswith("blob:")
    wait_for(browser, lambda d: "Predicted release year: " in d.find_element(By.ID, "prediction").text, what="the predicted year")
    predicted = int(browser.find_element(By.CSS_SELECTOR, "#prediction strong").text)
    assert 1800 < predicted < 2200 and "% range" in browser.find_element(By.ID, "prediction").text

    # click a result: more like this, from its stored vector
    clicked = first.find_element(By.CSS_SELECTOR, ".t").text
    first.find_element(By.CSS_SELECTOR, "button.open").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "results-title").text.startswith(f"More like {clicked} ("), what="more like this")
    titles = [c.find_element(By.CSS_SELECTOR, ".t").text for c in cards(browser)]
    assert len(titles) == 12 and clicked not in titles  # the clicked poster itself is excluded

    # like one, dislike another, refine
    cards(browser)[0].find_element(By.CSS_SELECTOR, "button.like").click()
    cards(browser)[3].find_element(By.CSS_SELECTOR, "button.dislike").click()
    assert cards(browser)[0].find_element(By.CSS_SELECTOR, "button.like").get_attribute("aria-pressed") == "true"
    browser.find_element(By.ID, "recommend").click()
    # the query poster stays liked beside the liked result (issue 38)
    wait_for(browser, lambda d: d.find_element(By.ID, "results-title").text == "Refined: 2 liked, 1 disliked", what="recommendations")
    assert len(cards(browser)) == 12

    # a filter narrows the same search: posters from 1970 on
    year_min = browser.find_element(By.ID, "year-min")
    year_min.send_keys("1970")
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", year_min)
    wait_for(
        browser,
        lambda d: cards(d) and all(int(c.find_element(By.CSS_SELECTOR, ".meta span:nth-child(2)").text) >= 1970 for c in cards(d)),
        what="filtered results",
    )

    # the era panel draws its charts
    browser.find_element(By.CSS_SELECTOR, "#era-panel summary").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#era-body svg rect"), what="the era chart")

    # a bad upload is a message on the page, not a broken page
    (tmp_path / "notes.txt").write_text("not an image")
    browser.find_element(By.ID, "file").send_keys(str(tmp_path / "notes.txt"))
    wait_for(browser, lambda d: "not an image" in d.find_element(By.ID, "status").text, what="the error message")

    # back to a good result page, no filter, for the screenshot
    year_min.clear()
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", year_min)
    browser.find_element(By.ID, "file").send_keys(str(query))
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "results-title").text == "Posters like my poster.png" and len(cards(d)) == 12,
        what="results again",
    )
    wait_for(browser, lambda d: "Predicted release year: " in d.find_element(By.ID, "prediction").text, what="the predicted year again")
    browser.execute_script("window.scrollTo(0, 0)")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / "page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    # no script errors (answers with 4xx, expected above, are network entries)
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"]
    assert not errors, errors


def test_the_page_works_with_the_keyboard_and_on_a_phone(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, _, _ = server
    browser.set_window_size(390, 844)  # a phone
    try:
        browser.get(url + "/")
        wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#collection option"), what="the collection list")
        title = browser.find_element(By.ID, "title")
        title.send_keys("film 3", Keys.ENTER)
        wait_for(browser, lambda d: d.find_element(By.ID, "results-title").text == "Posters like Film 3 (1949)", what="title search")
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )  # no sideways scrolling
        # Tab reaches a result's "more like this" button; Enter opens it
        browser.execute_script("document.getElementById('title').focus()")
        for _ in range(40):
            browser.switch_to.active_element.send_keys(Keys.TAB)
            if "open" in (browser.switch_to.active_element.get_attribute("class") or ""):
                break
        focused = browser.switch_to.active_element
        assert focused.get_attribute("aria-label").startswith("More like ")
        focused.send_keys(Keys.ENTER)
        wait_for(
            browser, lambda d: d.find_element(By.ID, "results-title").text.startswith("More like Film "), what="more like this by keyboard"
        )
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTEFACTS / "phone.png"))
    finally:
        browser.set_window_size(1280, 1100)


def test_other_commands_say_the_store_is_in_use_while_serving(server):
    _, _, location = server
    result = run_cli("search", "--title", "Film 1", "--qdrant-path", location.path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "in use by another process" in result.stderr


def test_a_title_holding_html_is_shown_as_text_and_never_run(server, browser):
    """The stored titles come from a catalog: one holding markup is drawn as its characters on a
    card, and neither its image handler nor its script runs (text, never HTML; and the page's CSP)."""
    from selenium.webdriver.common.by import By

    url, _, _ = server
    browser.get(url + "/")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#collection option"), what="the collection list")
    k = browser.find_element(By.ID, "k")
    k.clear()
    k.send_keys(str(N - 1))  # every other poster: the hostile one among them
    browser.find_element(By.ID, "title").send_keys("Film 3")
    browser.find_element(By.CSS_SELECTOR, "#title-form button").click()
    wait_for(browser, lambda d: len(cards(d)) == N - 1, what="all the other posters")
    titles = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#grid .card .t")]
    assert HOSTILE_TITLE in titles
    assert browser.execute_script(
        "return window.pwned === undefined && !document.querySelector('img[src=\"x\"]') && !document.querySelector('#grid script')"
    )


def test_similarity_maps_the_poster_map_and_the_timeline(server, browser):
    """Issue 21 in the page: a card's map over its poster and the side-by-side view; the poster map
    draws every poster, hover names one, a click searches by it, the year filter dims the rest; the
    era panel shows the timeline."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    url, _, _ = server
    browser.get(url + "/")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#collection option"), what="the collection list")
    browser.find_element(By.ID, "title").send_keys("Film 3")
    browser.find_element(By.CSS_SELECTOR, "#title-form button").click()
    wait_for(browser, lambda d: len(cards(d)) == 12, what="title search results")
    wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#grid .card button.why").is_enabled(), what="the Why? buttons")
    first = cards(browser)[0]
    first.find_element(By.CSS_SELECTOR, "button.why").click()  # computed now: one forward pass over this card's poster
    heat = wait_for(
        browser, lambda d: first.find_elements(By.CSS_SELECTOR, ".open canvas.heat"), timeout=120, what="the card's similarity map"
    )
    assert heat and heat[0].get_attribute("width") == "7" and heat[0].size["height"] > 100  # 7x7 cells over the whole poster
    first.find_element(By.CSS_SELECTOR, "button.compare").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "compare").get_attribute("open") is not None, what="the side-by-side view")
    assert "the sum of 49 cells" in browser.find_element(By.ID, "compare-text").text
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTEFACTS / "compare.png"))
    browser.find_element(By.CSS_SELECTOR, "#compare form button").click()

    browser.find_element(By.CSS_SELECTOR, "#map-panel summary").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "map-status").text.startswith(f"{N} posters"), timeout=120, what="the poster map")
    coloured = (
        "return (() => { const d = document.getElementById('map-canvas').getContext('2d').getImageData(0, 0, 900, 640).data; let n = 0;"
        " for (let i = 0; i < d.length; i += 4) if (d[i] !== d[i + 1] || d[i + 1] !== d[i + 2]) n++; return n; })()"
    )
    drawn = browser.execute_script(coloured)
    assert drawn >= 3 * N  # every poster a coloured dot of 2x2 pixels (greys are the background, the dimmed and the path)
    canvas = browser.find_element(By.ID, "map-canvas")
    x, y = browser.execute_script(
        "const [x, y] = screen(5); const c = document.getElementById('map-canvas'); const b = c.getBoundingClientRect();"
        " return [x * b.width / c.width, y * b.height / c.height];"
    )
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(x - canvas.size["width"] / 2) + 1, int(y - canvas.size["height"] / 2) + 1
    ).perform()
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "map-tip").is_displayed() and "Film" in d.find_element(By.ID, "map-tip").text,
        what="the hover card",
    )
    hovered = browser.find_element(By.ID, "map-tip").text.split(" (")[0]
    browser.save_screenshot(str(ARTEFACTS / "map.png"))
    ActionChains(browser).click().perform()
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "results-title").text.startswith(f"More like {hovered}"),
        what="more like the clicked poster",
    )
    year_from = browser.find_element(By.ID, "map-from")
    year_from.send_keys("2000")  # only a few posters are that recent: the rest are dimmed
    wait_for(browser, lambda d: d.execute_script(coloured) < drawn / 2, what="the year filter dimming the rest")
    year_from.clear()
    browser.execute_script("drawMap()")
    # issue 38: the decade labels (1940s to 2020s) placed with no two overlapping; zoomed in, the posters themselves

    def labels_apart() -> bool:
        boxes = browser.execute_script("return window.mapLabelBoxes")
        return all(
            a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"] or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"]
            for i, a in enumerate(boxes)
            for b in boxes[i + 1 :]
        )

    assert len(browser.execute_script("return window.mapLabelBoxes")) >= 5 and labels_apart()
    assert browser.execute_script("return window.mapPostersDrawn") == 0  # the overview is dots
    browser.execute_script(
        "const c = document.getElementById('map-canvas'), b = c.getBoundingClientRect(), [x, y] = screen(5);"
        " for (let i = 0; i < 3; i++) c.dispatchEvent(new WheelEvent('wheel', {deltaY: -100, bubbles: true, cancelable: true,"
        " clientX: b.left + x * b.width / c.width, clientY: b.top + y * b.height / c.height}));"
    )
    wait_for(browser, lambda d: d.execute_script("return window.mapPostersDrawn") >= 3, what="posters drawn on the zoomed-in map")
    assert labels_apart()
    browser.execute_script("document.getElementById('map-canvas').scrollIntoView()")
    browser.find_element(By.ID, "map-canvas").screenshot(str(ARTEFACTS / "map-posters.png"))

    browser.find_element(By.CSS_SELECTOR, "#era-panel summary").click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".timeline .decade")) >= 5, timeout=120, what="the era timeline")
    assert browser.find_elements(By.CSS_SELECTOR, ".timeline .decade img")
    browser.save_screenshot(str(ARTEFACTS / "timeline.png"))
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"]
    assert not errors, errors
