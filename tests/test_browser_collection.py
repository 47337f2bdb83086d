"""The page before and between searches, in a real headless browser (`python cli.py serve` on
localhost, Debian's chromium through chromedriver, as tests/test_browser.py): the collection is
shown before any search, a search shows its query poster beside its results, every search is a
URL (reload, back, forward and a pasted link give the same results; an upload cannot be one),
and undated posters show their predicted year, marked.

Skipped, with the reason, only where chromium or chromedriver is not installed.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.schema import point_id
from tests.conftest import BROWSER_ARTEFACTS as ARTEFACTS
from tests.conftest import ingest, make_poster, needs_browser, serving, wait_for, write_csv

DATED = 18  # Film 0..17, 1941..1975: four decades
PREDICTED = {"u0.jpg": (1962, 1954, 1971), "u1.jpg": (1931, 1922, 1940)}  # undated posters: file -> predicted year, low, high
UNKNOWN = "u2.jpg"  # undated, no prediction

pytestmark = [needs_browser, pytest.mark.e2e]  # a real server and a real browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """21 generated posters ingested with the CLI (seeded random VGG16), three of them then made
    undated, two with a predicted year in their payload as `predict-year --stored` writes it; then
    `cli.py serve` on 127.0.0.1 and a free port."""
    tmp = tmp_path_factory.mktemp("browser_collection")
    rows = []
    for i in range(DATED):
        make_poster(tmp / "posters" / f"{i}.jpg", seed=600 + i, size=(200, 300))
        rows.append([f"{i}.jpg", f"Film {i}", 1941 + 2 * i])
    undated = [*PREDICTED, UNKNOWN]
    for j, name in enumerate(undated):
        make_poster(tmp / "posters" / name, seed=650 + j, size=(200, 300))
        rows.append([name, f"Undated {j}", 2000])
    catalog = write_csv(tmp / "movies.csv", ["filename", "title", "release_year"], rows)
    location = StoreLocation(path=tmp / "store")
    ingest(catalog, tmp / "posters", location.path)
    with PosterStore(location, must_exist=True) as store:
        changed = []
        for point in store.retrieve([point_id(name) for name in undated]):
            payload = {k: v for k, v in point.payload.items() if k != "year"}
            name = point.payload["file"]
            if name in PREDICTED:
                year, low, high = PREDICTED[name]
                payload.update(predicted_year=year, predicted_low=low, predicted_high=high, predicted_by="year-model:test")
            changed.append((point.id, payload))
        store.overwrite_payloads(changed)
    with serving(location.path, tmp / "serve.log", "--weights", "random") as (url, process, _):
        yield url, tmp
    assert process.returncode == 0


def titles(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [t.text for t in driver.find_elements(By.CSS_SELECTOR, "#grid .card .t")]


def heading(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "results-title").text


def landing_shown(driver) -> bool:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "landing").is_displayed() and len(driver.find_elements(By.CSS_SELECTOR, "#landing .start-row")) == 5


def params(driver) -> dict[str, list[str]]:
    return parse_qs(urlparse(driver.current_url).query)


def no_script_errors(driver) -> None:
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"]
    assert not errors, errors


def test_the_collection_is_shown_before_any_search(server, browser):
    from selenium.webdriver.common.by import By

    url, _ = server
    browser.get(url + "/")
    wait_for(browser, landing_shown, what="the collection's rows")
    rows = browser.find_elements(By.CSS_SELECTOR, "#landing .start-row")
    labels = [r.find_element(By.CSS_SELECTOR, ".start-label strong").text for r in rows]
    assert labels == ["1940s", "1950s", "1960s", "1970s", "Undated"]
    assert rows[0].find_element(By.CSS_SELECTOR, ".start-label .muted").text == "5 posters"  # 1941..1949
    assert all(len(r.find_elements(By.CSS_SELECTOR, ".start")) >= 3 for r in rows)
    assert not browser.find_element(By.ID, "results").is_displayed()  # nothing searched yet
    wait_for(
        browser,
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('#landing img')].every(i => i.complete && i.naturalWidth === 200)"
        ),
        what="the posters",
    )
    # the technical details are there for the curious, not on the first screen
    tech = browser.find_element(By.ID, "tech")
    assert tech.get_attribute("open") is None and not browser.find_element(By.ID, "tech-body").is_displayed()
    assert "weights" not in browser.find_element(By.ID, "collection-info").text
    tech.find_element(By.TAG_NAME, "summary").click()
    assert (
        "weights random" in browser.find_element(By.ID, "tech-body").text
        and "layer block5_pool" in browser.find_element(By.ID, "tech-body").text
    )
    tech.find_element(By.TAG_NAME, "summary").click()
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTEFACTS / "landing.png"))

    # "more like this" on a poster of the 1960s: its results, beside it
    first = rows[2].find_element(By.CSS_SELECTOR, ".start")
    name = first.find_element(By.CSS_SELECTOR, ".t").text
    first.find_element(By.CSS_SELECTOR, "button.more").click()
    wait_for(browser, lambda d: heading(d).startswith(f"More like {name} (196") and len(titles(d)) == 12, what="more like this")
    assert browser.find_element(By.ID, "query-title").text == name and name not in titles(browser)
    assert params(browser)["id"] == [first.get_attribute("data-id")]
    assert not browser.find_element(By.ID, "landing").is_displayed()
    browser.back()  # back to the collection
    wait_for(browser, landing_shown, what="the collection again after back")
    assert urlparse(browser.current_url).query == ""
    no_script_errors(browser)


def test_a_title_search_shows_its_query_and_is_a_url_for_reload_back_forward_and_a_pasted_link(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, _ = server
    browser.get(url + "/")
    wait_for(browser, landing_shown, what="the collection")
    k = browser.find_element(By.ID, "k")
    k.clear()
    k.send_keys("7")
    browser.find_element(By.ID, "title").send_keys("Film 3", Keys.ENTER)
    wait_for(browser, lambda d: heading(d) == "Posters like Film 3 (1947)" and len(titles(d)) == 7, what="the title search")
    found = titles(browser)
    # the query poster beside its neighbours: its own poster file, not among the results
    card = browser.find_element(By.ID, "query-card")
    assert card.is_displayed() and browser.find_element(By.ID, "query-title").text == "Film 3"
    assert browser.find_element(By.ID, "query-year").text == "1947"
    assert browser.find_element(By.ID, "query-image").get_attribute("src").endswith(f"/api/posters/posters/{point_id('3.jpg')}")
    assert browser.execute_script("return document.getElementById('query-image').naturalWidth") == 200
    assert "Film 3" not in found
    assert card.location["x"] < browser.find_element(By.CSS_SELECTOR, "#grid .card").location["x"]  # beside, to the left
    assert params(browser) == {"q": ["Film 3"], "k": ["7"]}
    searched = browser.current_url
    browser.save_screenshot(str(ARTEFACTS / "title-search.png"))

    browser.refresh()  # reload: the same search
    wait_for(browser, lambda d: heading(d) == "Posters like Film 3 (1947)" and titles(d) == found, what="the search after a reload")
    assert (
        browser.find_element(By.ID, "title").get_attribute("value") == "Film 3"
        and browser.find_element(By.ID, "k").get_attribute("value") == "7"
    )

    # more like a result, then back and forward
    clicked = found[0]
    browser.find_elements(By.CSS_SELECTOR, "#grid .card button.open")[0].click()
    wait_for(browser, lambda d: heading(d).startswith(f"More like {clicked} ("), what="more like this")
    other = titles(browser)
    assert "id" in params(browser) and params(browser)["k"] == ["7"]
    browser.back()
    wait_for(browser, lambda d: heading(d) == "Posters like Film 3 (1947)" and titles(d) == found, what="the title search after back")
    assert browser.current_url == searched
    browser.forward()
    wait_for(browser, lambda d: heading(d).startswith(f"More like {clicked} (") and titles(d) == other, what="more like this after forward")
    browser.back()
    browser.back()
    wait_for(browser, landing_shown, what="the collection, two steps back")

    # a pasted link, in a fresh page: the same results
    browser.get("about:blank")
    browser.get(searched)
    wait_for(browser, lambda d: heading(d) == "Posters like Film 3 (1947)" and titles(d) == found, what="the pasted link's results")
    # a filter is part of the address too
    year_min = browser.find_element(By.ID, "year-min")
    year_min.send_keys("1960")
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", year_min)
    wait_for(browser, lambda d: params(d).get("year_min") == ["1960"] and set(titles(d)) != set(found), what="the filtered search")
    filtered = titles(browser)
    browser.refresh()
    wait_for(browser, lambda d: titles(d) == filtered and d.find_element(By.ID, "year-min").get_attribute("value") == "1960", what="reload")
    no_script_errors(browser)


def test_a_refinement_is_a_url_too(server, browser):
    from selenium.webdriver.common.by import By

    url, _ = server
    browser.get(f"{url}/?q=Film+5&k=6")
    wait_for(browser, lambda d: heading(d) == "Posters like Film 5 (1951)" and len(titles(d)) == 6, what="the title search")
    cards = browser.find_elements(By.CSS_SELECTOR, "#grid .card")
    liked, disliked = cards[0].get_attribute("data-id"), cards[2].get_attribute("data-id")
    cards[0].find_element(By.CSS_SELECTOR, "button.like").click()
    cards[2].find_element(By.CSS_SELECTOR, "button.dislike").click()
    browser.find_element(By.ID, "recommend").click()
    # the query (Film 5) stays a liked example beside the liked result (issue 38)
    wait_for(browser, lambda d: heading(d) == "Refined: 2 liked, 1 disliked" and len(titles(d)) == 6, what="the refinement")
    refined = titles(browser)
    assert params(browser) == {"like": [f"{point_id('5.jpg')},{liked}"], "dislike": [disliked], "k": ["6"]}
    browser.refresh()
    wait_for(browser, lambda d: heading(d) == "Refined: 2 liked, 1 disliked" and titles(d) == refined, what="the refinement after a reload")
    assert browser.find_element(By.ID, "votes").text == "2 liked, 1 disliked:"  # the marks come back with it
    # the query card shows what the refinement started from
    examples = browser.find_elements(By.CSS_SELECTOR, "#query-examples img")
    assert [e.get_attribute("class") for e in examples] == ["liked", "liked", "disliked"]
    assert examples[1].get_attribute("src").endswith(f"/api/posters/posters/{liked}?w=240")
    wait_for(
        browser,
        lambda d: d.execute_script("return document.querySelector('#query-examples img').naturalWidth") == 200,
        what="the liked poster",
    )
    browser.save_screenshot(str(ARTEFACTS / "refined.png"))
    no_script_errors(browser)


def test_undated_posters_show_their_predicted_year_marked(server, browser):
    from selenium.webdriver.common.by import By

    url, _ = server
    browser.get(url + "/")
    wait_for(browser, landing_shown, what="the collection")
    undated = browser.find_elements(By.CSS_SELECTOR, "#landing .start-row")[-1]
    years = {
        s.find_element(By.CSS_SELECTOR, ".t").text: s.find_element(By.CSS_SELECTOR, ".y")
        for s in undated.find_elements(By.CSS_SELECTOR, ".start")
    }
    assert years["Undated 0"].text == "c. 1962, predicted" and "predicted" in years["Undated 0"].get_attribute("class")
    assert "80 % range 1954–1971" in years["Undated 0"].get_attribute("title")
    assert years["Undated 1"].text == "c. 1931, predicted"
    assert years["Undated 2"].text == "year unknown" and "predicted" not in years["Undated 2"].get_attribute("class")

    # searched by it: the query card says the same; a result undated with a prediction too
    browser.get(f"{url}/?id={point_id('u0.jpg')}&k=20")
    wait_for(
        browser,
        lambda d: heading(d) == "More like Undated 0 (c. 1962, predicted)" and len(titles(d)) == 20,
        what="the undated poster's search",
    )
    assert browser.find_element(By.ID, "query-year").text == "c. 1962, predicted"
    cards = {
        c.find_element(By.CSS_SELECTOR, ".t").text: c.find_element(By.CSS_SELECTOR, ".y").text
        for c in browser.find_elements(By.CSS_SELECTOR, "#grid .card")
    }
    assert cards["Undated 1"] == "c. 1931, predicted" and cards["Undated 2"] == "year unknown" and cards["Film 0"] == "1941"
    browser.save_screenshot(str(ARTEFACTS / "predicted.png"))
    no_script_errors(browser)


def test_an_upload_is_not_a_url_and_the_page_says_so(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, _ = server
    browser.get(url + "/")
    wait_for(browser, landing_shown, what="the collection")
    query = make_poster(tmp_path / "mine.png", seed=77, size=(200, 300))
    browser.find_element(By.ID, "file").send_keys(str(query))
    wait_for(browser, lambda d: heading(d) == "Posters like mine.png" and len(titles(d)) == 12, timeout=120, what="the upload's results")
    uploaded = titles(browser)
    assert browser.find_element(By.ID, "query-image").get_attribute("src").startswith("blob:")
    assert "not part of the page's address" in browser.find_element(By.ID, "query-note").text
    assert urlparse(browser.current_url).query == ""
    # back and forward return to it while the page holds it
    browser.find_elements(By.CSS_SELECTOR, "#grid .card button.open")[0].click()
    wait_for(browser, lambda d: heading(d).startswith("More like "), what="more like this")
    browser.back()
    wait_for(browser, lambda d: heading(d) == "Posters like mine.png" and titles(d) == uploaded, timeout=120, what="the upload after back")
    # a reload cannot: the collection, and why
    browser.refresh()
    wait_for(browser, landing_shown, what="the collection after reloading an upload")
    assert "no longer held by this page" in browser.find_element(By.ID, "landing-info").text
    no_script_errors(browser)
