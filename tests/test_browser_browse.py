"""Issue 38's page, in a real headless browser (`python cli.py serve` on localhost, Debian's chromium
through chromedriver, as tests/test_browser.py): browsing every poster of a collection (sorted,
filtered, loaded as it is scrolled, the address restoring it), title suggestions as one types and
close matches after a title that names no film, the first screen of a phone, a refinement that
keeps its uploaded query, and one message for a file that is not an image.

The requests the page sends are read from chromium's own network log (no mock anywhere).
Skipped, with the reason, only where chromium or chromedriver is not installed.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest

from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.schema import point_id
from tests.conftest import BROWSER_ARTEFACTS as ARTEFACTS
from tests.conftest import CHROMEDRIVER, CHROMIUM, ingest, make_poster, needs_browser, serving, wait_for, write_csv

FILMS = [  # title, catalog year (None: undated), genre
    ("Gone with the Wind", 1939, "Drama"),
    ("The Sound of Music", 1965, "Musical"),
    ("Amélie", 2001, "Comedy"),
    ("Casablanca", 1942, "Drama"),
    ("Some Like It Hot", 1959, "Comedy"),
    ("À bout de souffle", 1960, "Drama"),
    ("The Third Man", 1949, "Thriller"),
    ("Metropolis", 1927, "Science Fiction"),
    ("Vertigo", 1958, "Thriller"),
    ("Psycho", 1960, "Horror"),
    ("Jaws", 1975, "Thriller"),
    ("Alien", 1979, "Horror"),
    ("Blade Runner", 1982, "Science Fiction"),
    ("Amadeus", 1984, "Drama"),
    ("Heat", 1995, "Thriller"),
    ("Fargo", 1996, "Thriller"),
    ("Titanic", 1997, "Drama"),
    ("Léon", 1994, "Thriller"),
    ("Oldboy", 2003, "Thriller"),
    ("Up", 2009, "Animation"),
    ("Her", 2013, "Drama"),
    ("Roma", 2018, "Drama"),
    ("Lost Reel", None, "Drama"),  # undated, with a predicted year
    ("Mystery Film", None, "Horror"),  # undated, no prediction
    ("Untitled Print", None, "Comedy"),  # undated, no prediction
    ("The Long Goodbye, a Very Long Title That Needs Three Lines on a Card", 1973, "Thriller"),
]
N = len(FILMS)
PREDICTED = {"22.jpg": (1962, 1954, 1971)}

pytestmark = [needs_browser, pytest.mark.e2e]  # a real server and a real browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """26 generated posters ingested with the CLI (seeded random VGG16), three undated, one of them
    with a predicted year in its payload as `predict-year --stored` writes it; `cli.py serve` on them."""
    tmp = tmp_path_factory.mktemp("browser_browse")
    rows = []
    for i, (title, year, genre) in enumerate(FILMS):
        make_poster(tmp / "posters" / f"{i}.jpg", seed=700 + i, size=(200, 300))
        rows.append([f"{i}.jpg", title, year or "", genre])
    catalog = write_csv(tmp / "movies.csv", ["filename", "title", "release_year", "genre"], rows)
    location = StoreLocation(path=tmp / "store")
    ingest(catalog, tmp / "posters", location.path)
    with PosterStore(location, must_exist=True) as store:
        changed = []
        for point in store.retrieve([point_id(name) for name in PREDICTED]):
            year, low, high = PREDICTED[point.payload["file"]]
            changed.append((point.id, {**point.payload, "predicted_year": year, "predicted_low": low, "predicted_high": high}))
        store.overwrite_payloads(changed)
    with serving(location.path, tmp / "serve.log", "--weights", "random") as (url, process, _):
        yield url, tmp
    assert process.returncode == 0


@pytest.fixture(scope="module")
def browser():
    """Headless chromium as conftest's, with its network log kept too: what the page asked for."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(argument)
    options.add_argument("--no-first-run")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.requests = []
    yield driver
    driver.quit()


def requests(driver) -> list[dict]:
    """Every request the page sent so far (url, method, postData), kept across calls."""
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            driver.requests.append(message["params"]["request"])
        elif message["method"] == "Network.responseReceived":
            driver.requests.append({"answered": message["params"]["response"]["url"], "status": message["params"]["response"]["status"]})
    return driver.requests


def params(driver) -> dict[str, list[str]]:
    return parse_qs(urlparse(driver.current_url).query)


def browse_cards(driver) -> list[dict]:
    """The cards shown in the grid (a card in the page but not displayed is not shown)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#browse-grid .start')].filter(c => c.offsetParent !== null).map(c => ({id: c.dataset.id,"
        " title: c.querySelector('.t').textContent, year: c.querySelector('.y').textContent}))"
    )


def result_titles(driver) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('#grid .card .t')].map(t => t.textContent)")


def heading(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "results-title").text


def choose(driver, select_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, select_id)).select_by_value(value)


def no_script_errors(driver) -> None:
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"]
    assert not errors, errors


def browse_done(driver, n: int) -> bool:
    from selenium.webdriver.common.by import By

    return len(browse_cards(driver)) == n and driver.find_element(By.ID, "browse-status-line").text.startswith("All ")


def test_browse_sorts_filters_and_is_an_address(server, browser):
    from selenium.webdriver.common.by import By

    url, _ = server
    open_page(browser, url)
    link = browser.find_element(By.ID, "browse-link")
    assert link.is_displayed() and link.text == "Browse all posters"
    link.click()
    wait_for(browser, lambda d: browse_done(d, N), what="every poster in the grid")
    assert params(browser) == {"browse": ["1"]} and not browser.find_element(By.ID, "landing").is_displayed()
    assert browser.find_element(By.ID, "browse-count").text == f"{N} posters"
    shown = browse_cards(browser)
    assert len({c["id"] for c in shown}) == N
    titles = [c["title"] for c in shown]
    assert titles.index("Alien") < titles.index("Amadeus") < titles.index("Amélie") < titles.index("Blade Runner")  # by title
    assert "c. 1962, predicted" in [c["year"] for c in shown]
    # thumbnails, not the poster files: loaded, and a long title clamped to two lines with the whole of it on hover
    assert browser.execute_script("return [...document.querySelectorAll('#browse-grid img')].every(i => i.src.endsWith('?w=240'))")
    long_title = browser.find_element(By.CSS_SELECTOR, f"#browse-grid .start[data-id='{point_id('25.jpg')}'] .t")
    assert long_title.get_attribute("title") == FILMS[25][0]
    line = float(browser.execute_script("return parseFloat(getComputedStyle(arguments[0]).lineHeight)", long_title))
    assert long_title.size["height"] <= 2 * line + 1 < browser.execute_script("return arguments[0].scrollHeight", long_title)

    # sort by year, newest first: the catalog years in order, the undated after them
    choose(browser, "browse-sort", "year-desc")
    wait_for(
        browser, lambda d: params(d).get("sort") == ["year"] and params(d).get("order") == ["desc"] and browse_done(d, N), what="by year"
    )
    years = [c["year"] for c in browse_cards(browser)]
    dated = [int(y) for y in years if y.isdigit()]
    assert dated == sorted((y for _, y, _ in FILMS if y), reverse=True)
    assert years[len(dated) :] and all(not y.isdigit() for y in years[len(dated) :])

    # filters: a decade, then a genre beside it; the count says how many match
    choose(browser, "browse-decade", "1960")
    wait_for(browser, lambda d: params(d).get("decade") == ["1960"] and browse_done(d, 3), what="the 1960s")
    assert sorted(c["title"] for c in browse_cards(browser)) == ["Psycho", "The Sound of Music", "À bout de souffle"]
    assert browser.find_element(By.ID, "browse-count").text == f"3 of {N} posters match"
    assert "1960s (3)" in browser.find_element(By.ID, "browse-decade").text  # the menus count their posters
    choose(browser, "browse-genre", "Drama")
    wait_for(browser, lambda d: params(d).get("genre") == ["Drama"] and browse_done(d, 1), what="the 1960s' dramas")
    assert browse_cards(browser)[0]["title"] == "À bout de souffle"
    address = browser.current_url

    # reload, more like a card, back: the same grid, its sort and filters
    browser.refresh()
    wait_for(browser, lambda d: browse_done(d, 1), what="the grid after a reload")
    assert [browser.find_element(By.ID, i).get_attribute("value") for i in ("browse-sort", "browse-decade", "browse-genre")] == [
        "year-desc",
        "1960",
        "Drama",
    ]
    choose(browser, "browse-genre", "")
    wait_for(browser, lambda d: browse_done(d, 3), what="the 1960s again")
    psycho = next(c for c in browse_cards(browser) if c["title"] == "Psycho")
    browser.find_element(By.CSS_SELECTOR, f"#browse-grid .start[data-id='{psycho['id']}'] button.more").click()
    wait_for(browser, lambda d: heading(d) == "More like Psycho (1960)" and len(result_titles(d)) == 12, what="more like a browsed poster")
    assert params(browser) == {"id": [psycho["id"]]} and not browser.find_element(By.ID, "browse").is_displayed()
    browser.back()
    wait_for(browser, lambda d: browse_done(d, 3), what="the grid after back")
    assert params(browser) == {"browse": ["1"], "sort": ["year"], "order": ["desc"], "decade": ["1960"]}
    browser.back()  # a filter changes the address in place: back leaves browsing
    wait_for(browser, lambda d: d.find_element(By.ID, "landing").is_displayed(), what="the collection")
    browser.get(address)  # a pasted link
    wait_for(browser, lambda d: browse_done(d, 1) and browse_cards(d)[0]["title"] == "À bout de souffle", what="the pasted link")
    browser.find_element(By.ID, "browse-clear").click()
    wait_for(browser, lambda d: browse_done(d, N), what="no filter")
    assert params(browser) == {"browse": ["1"], "sort": ["year"], "order": ["desc"]}
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTEFACTS / "browse.png"))
    no_script_errors(browser)


def test_suggestions_as_one_types_and_close_matches_after_nothing(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, _ = server
    open_page(browser, url)
    title = browser.find_element(By.ID, "title")

    def suggested(d) -> list[str]:
        return (
            [t.text for t in d.find_elements(By.CSS_SELECTOR, "#title-suggestions li .t")]
            if d.find_element(By.ID, "title-suggestions").is_displayed()
            else []
        )

    title.send_keys("sou")  # a word inside the title, not its start
    wait_for(browser, lambda d: "The Sound of Music" in suggested(d), what="The Sound of Music suggested")
    assert title.get_attribute("aria-expanded") == "true"
    title.send_keys(Keys.ESCAPE)  # closes the list, keeps the text
    wait_for(browser, lambda d: not suggested(d), what="the list closed")
    assert title.get_attribute("value") == "sou"

    title.clear()
    title.send_keys("ame")  # without its accent
    wait_for(browser, lambda d: "Amélie" in suggested(d), what="Amélie suggested")
    # the keyboard: down to Amélie, Enter
    for _ in range(suggested(browser).index("Amélie") + 1):
        title.send_keys(Keys.ARROW_DOWN)
    active = title.get_attribute("aria-activedescendant")
    assert active and browser.find_element(By.ID, active).get_attribute("aria-selected") == "true"
    assert browser.find_element(By.ID, active).find_element(By.CSS_SELECTOR, ".t").text == "Amélie"
    title.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: heading(d) == "More like Amélie (2001)" and len(result_titles(d)) == 12, what="more like Amélie")
    assert params(browser) == {"id": [point_id("2.jpg")]} and not suggested(browser)

    title = browser.find_element(By.ID, "title")
    title.send_keys("GONE W")  # case ignored; a click
    wait_for(browser, lambda d: "Gone with the Wind" in suggested(d), what="Gone with the Wind suggested")
    next(li for li in browser.find_elements(By.CSS_SELECTOR, "#title-suggestions li") if "Gone with the Wind" in li.text).click()
    wait_for(browser, lambda d: heading(d) == "More like Gone with the Wind (1939)", what="more like the clicked suggestion")

    # a title that names no film: the close matches, to click
    title = browser.find_element(By.ID, "title")
    title.send_keys("Sound of Musik", Keys.ENTER)
    wait_for(browser, lambda d: d.find_element(By.ID, "status").get_attribute("class") == "error", what="no such film")
    matches = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#close-matches button"), what="the close matches")
    assert heading(browser) == "“Sound of Musik”" and not result_titles(browser)
    next(b for b in matches if b.text == "The Sound of Music (1965)").click()
    wait_for(browser, lambda d: heading(d) == "More like The Sound of Music (1965)", what="more like the close match")
    assert not browser.find_element(By.ID, "close-matches").is_displayed()
    no_script_errors(browser)


def test_a_phone_sees_posters_first_and_results_in_view(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, _ = server
    browser.set_window_size(390, 844)
    try:
        browser.get(url + "/")
        wait_for(
            browser,
            lambda d: d.execute_script("return [...document.querySelectorAll('#landing img')].some(i => i.complete && i.naturalWidth > 0)"),
            what="the collection's posters",
        )
        # the first screen holds a whole poster (the options folded, the drop zone one row)
        height = browser.execute_script("return window.innerHeight")
        assert height <= 844
        inside = browser.execute_script(
            "return [...document.querySelectorAll('#landing img')].filter(i => { const b = i.getBoundingClientRect();"
            " return b.width > 50 && b.top >= 0 && b.bottom <= arguments[0]; }).length",
            height,
        )
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTEFACTS / "phone-first-screen.png"))
        assert inside >= 1, inside
        assert browser.find_element(By.ID, "options").get_attribute("open") is None
        assert browser.find_element(By.ID, "browse-link").is_displayed()
        assert browser.execute_script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth")

        # a search: its results scrolled into view
        browser.find_element(By.ID, "title").send_keys("Casablanca", Keys.ENTER)
        wait_for(browser, lambda d: heading(d) == "Posters like Casablanca (1942)", what="the title search")
        wait_for(
            browser,
            lambda d: d.execute_script(
                "const b = document.getElementById('results').getBoundingClientRect(); return b.top > -2 && b.top < 60"
            ),
            what="the results in view",
        )
        first = browser.find_element(By.CSS_SELECTOR, "#grid .card img").rect
        assert first["y"] - browser.execute_script("return window.scrollY") < height

        # browsing on a phone: a page that fills the screen, the next one as it is scrolled to
        requests(browser)
        browser.requests = []  # from here on
        browser.execute_script("window.scrollTo(0, 0)")
        browser.find_element(By.ID, "browse-link").click()
        wait_for(browser, lambda d: len(browse_cards(d)) >= 12, what="the first page")
        browser.save_screenshot(str(ARTEFACTS / "phone-browse.png"))
        browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
        wait_for(browser, lambda d: browse_done(d, N), what="every poster after scrolling")
        assert len({c["id"] for c in browse_cards(browser)}) == N
        pages = [parse_qs(urlparse(r["url"]).query) for r in requests(browser) if "/browse?" in r.get("url", "")]
        assert len(pages) == 2 and "after" not in pages[0] and "after" in pages[1], pages
        assert 12 <= int(pages[0]["limit"][0]) < N  # the first page: what fills a phone's screen, not the whole collection
        no_script_errors(browser)
    finally:
        browser.set_window_size(1280, 900)


def open_page(browser, url: str) -> None:
    """The first screen at desktop width, the requests logged so far dropped."""
    from selenium.webdriver.common.by import By

    browser.set_window_size(1280, 900)
    browser.get(url + "/")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#landing .start"), what="the collection")
    requests(browser)
    browser.requests = []  # from here on


def test_a_refinement_keeps_its_query(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, _ = server
    open_page(browser, url)
    query = make_poster(tmp_path / "mine.png", seed=77, size=(200, 300))
    browser.find_element(By.ID, "file").send_keys(str(query))
    wait_for(
        browser, lambda d: heading(d) == "Posters like mine.png" and len(result_titles(d)) == 12, timeout=120, what="the upload's results"
    )
    card = browser.find_elements(By.CSS_SELECTOR, "#grid .card")[0]
    liked = card.get_attribute("data-id")
    card.find_element(By.CSS_SELECTOR, "button.like").click()
    browser.find_element(By.ID, "recommend").click()
    wait_for(
        browser, lambda d: heading(d) == "Refined: mine.png, 1 liked, 0 disliked" and len(result_titles(d)) == 12, what="the refinement"
    )
    sent = [json.loads(r["postData"]) for r in requests(browser) if r.get("url", "").endswith("/api/recommend") and r.get("postData")]
    assert len(sent) == 1 and sent[0]["positive"] == [liked] and sent[0]["negative"] == []
    assert len(sent[0]["query_token"]) >= 16  # the upload, by the token its search returned
    examples = browser.find_elements(By.CSS_SELECTOR, "#query-examples img")
    assert [e.get_attribute("class") for e in examples] == ["liked query", "liked"]
    assert examples[0].get_attribute("src").startswith("blob:") and examples[1].get_attribute("src").endswith(f"/{liked}?w=240")
    wait_for(
        browser,
        lambda d: d.execute_script("return document.querySelector('#query-examples img.query').naturalWidth") == 200,
        what="the upload",
    )
    assert urlparse(browser.current_url).query == ""  # an upload's refinement is no address either
    assert "not part of the page's address" in browser.find_element(By.ID, "query-note").text

    # a stored query: its id joins the liked ones, in the address
    gone = point_id("0.jpg")
    browser.get(f"{url}/?id={gone}")
    wait_for(browser, lambda d: heading(d) == "More like Gone with the Wind (1939)" and len(result_titles(d)) == 12, what="more like this")
    card = browser.find_elements(By.CSS_SELECTOR, "#grid .card")[1]
    disliked = card.get_attribute("data-id")
    card.find_element(By.CSS_SELECTOR, "button.dislike").click()
    assert browser.find_element(By.ID, "recommend").is_enabled()  # the query is the liked example
    browser.find_element(By.ID, "recommend").click()
    wait_for(browser, lambda d: heading(d) == "Refined: 1 liked, 1 disliked" and len(result_titles(d)) == 12, what="the stored refinement")
    assert params(browser) == {"like": [gone], "dislike": [disliked]}
    examples = browser.find_elements(By.CSS_SELECTOR, "#query-examples img")
    assert [e.get_attribute("class") for e in examples] == ["liked query", "disliked"] and examples[0].get_attribute(
        "title"
    ) == "the query: Gone with the Wind (1939)"
    assert "Gone with the Wind" not in result_titles(browser)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTEFACTS / "refined-query.png"))
    no_script_errors(browser)


def test_a_file_that_is_not_an_image_is_one_message(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, _ = server
    open_page(browser, url)
    (tmp_path / "x.jpg").write_text("not a poster at all, only text\n")
    browser.find_element(By.ID, "file").send_keys(str(tmp_path / "x.jpg"))
    wait_for(browser, lambda d: "not an image" in d.find_element(By.ID, "status").text, what="the message")
    # the year prediction was asked beside the search: wait for its answer, then look at the page
    wait_for(
        browser,
        lambda d: any(r.get("answered", "").endswith("/api/predict-year") for r in requests(d)),
        what="the year prediction's answer",
    )
    said = browser.execute_script(
        "return [...document.querySelectorAll('main *')].filter(e => e.offsetParent !== null && e.children.length === 0"
        " && /not an image|no year prediction|cannot/i.test(e.textContent)).map(e => e.textContent)"
    )
    assert len(said) == 1 and said[0].startswith("x.jpg: not an image"), said
    assert not browser.find_element(By.ID, "prediction").is_displayed()
    broken = browser.execute_script(
        "return [...document.querySelectorAll('img')].filter(i => i.offsetParent !== null && i.getAttribute('src')"
        " && i.complete && i.naturalWidth === 0).map(i => i.id || i.src)"
    )
    assert broken == []
    assert heading(browser) == "x.jpg" and not result_titles(browser)
    browser.save_screenshot(str(ARTEFACTS / "bad-upload.png"))
    no_script_errors(browser)
