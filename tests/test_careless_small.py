"""Issue 39: small things a careless user meets, each through the real parts (a real Qdrant Edge
store in a temp folder, generated posters, the CLI as a user runs it, the web app, a real chromium).
Each test fails on the code before its fix.

1. A shared link `?collection=toString` (or `__proto__`, `constructor`): the page claimed the store
   was empty (a plain object as the map of collections); now the default collection, said so, as
   for any name the store does not hold.
2. A catalog whose first line is Excel's `sep=;`: refused ("no poster file or id column"); now
   that separator, the line skipped, file line numbers kept.
3. `migrate` of an int8 collection onto a float32 one: "has {'vgg16': 512}, source {'vgg16': 512}";
   now it says what differs.
4. `search --id` on a store with a truncated vector file: "no film with id"; now the damage, in
   the same words as `search --title` (and the web's 503).
5. `ingest` on a store whose vectors were all flagged deleted: "already stored", the store left
   unsearchable; now those posters are embedded again, and what cannot be is named.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from uuid import UUID

import numpy as np
import pytest

from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.schema import point_id
from tests.conftest import NOTES, make_poster, needs_browser, one_line_error, payloads, run_cli, serving, wait_for, write_csv

pytestmark = pytest.mark.e2e  # the CLI, a server and a browser as a user runs them

HEADER = ["filename", "title", "release_year"]


def small_catalog(folder: Path, n: int = 4, seed: int = 0) -> tuple[Path, Path]:
    """n generated posters in folder/posters and their catalog: Film i, 1950 + 3i."""
    rows = []
    for i in range(n):
        make_poster(folder / "posters" / f"{i}.jpg", seed=seed + i)
        rows.append([f"{i}.jpg", f"Film {i}", 1950 + 3 * i])
    return write_csv(folder / "movies.csv", HEADER, rows), folder / "posters"


def ingested(catalog: Path, posters: Path, store: Path, *extra: object) -> str:
    made = run_cli("ingest", "--catalog", catalog, "--posters", posters, "--qdrant-path", store, "--weights", "random", *extra)
    assert made.returncode == 0, (made.stdout[-1000:], made.stderr[-2000:])
    return made.stdout


# --- 1. the page: a collection named like an object's property ------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One normal collection ("posters", 6 generated posters of three decades), served by `cli.py serve`."""
    tmp = tmp_path_factory.mktemp("careless_page")
    rows = []
    for i in range(6):
        make_poster(tmp / "posters" / f"{i}.jpg", seed=700 + i, size=(200, 300))
        rows.append([f"{i}.jpg", f"Film {i}", 1951 + 7 * i])
    catalog = write_csv(tmp / "movies.csv", HEADER, rows)
    ingested(catalog, tmp / "posters", tmp / "store")
    with serving(tmp / "store", tmp / "serve.log", "--weights", "random") as (url, process, collections):
        assert [c["name"] for c in collections["collections"]] == ["posters"]
        yield url
    assert process.returncode == 0


@needs_browser
@pytest.mark.parametrize("name", ["toString", "__proto__", "constructor", "hasOwnProperty", "no-such-collection"])
def test_a_link_to_a_collection_the_store_lacks_shows_the_default_one_and_says_so(server, browser, name):
    """Before: `"toString" in {}` is true, so the page looked for a collection of that name, found
    none in the list and said "This store has no poster collection yet"; an unknown name fell back
    to the default one without a word."""
    from urllib.parse import parse_qs, quote, urlparse

    from selenium.webdriver.common.by import By

    def info(driver) -> str:
        return driver.find_element(By.ID, "collection-info").text

    browser.get(f"{server}/?collection={quote(name)}")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#landing .start-row"), what="the default collection's rows")
    assert "no poster collection yet" not in info(browser)
    assert info(browser).startswith(f"This store has no collection “{name}”: showing “posters”. 6 posters"), info(browser)
    assert browser.find_element(By.ID, "collection").get_attribute("value") == "posters"
    assert "collection" not in parse_qs(urlparse(browser.current_url).query)  # the address now says what is shown
    # a search in such a link runs in the default collection too
    browser.get(f"{server}/?collection={quote(name)}&q=Film+2")
    wait_for(
        browser,
        lambda d: (
            d.find_element(By.ID, "results-title").text == "Posters like Film 2 (1965)"
            and len(d.find_elements(By.CSS_SELECTOR, "#grid .card")) == 5
        ),
        what="the title search in the default collection",
    )
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"]
    assert not errors, errors


@needs_browser
def test_the_collection_of_a_link_that_names_it_is_shown_without_a_note(server, browser):
    """The control: a link that names the store's own collection shows it, with no note."""
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/?collection=posters")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#landing .start-row"), what="the collection's rows")
    assert browser.find_element(By.ID, "collection-info").text.startswith("6 posters, dated 1951–1986")


# --- 2. Excel's sep= line ---------------------------------------------------------------------


@pytest.mark.parametrize("first_line, separator", [("sep=;", ";"), ("sep=,", ","), ("sep=\t", "\t"), ("sep=|", "|"), ('"sep=;"', ";")])
def test_a_catalog_whose_first_line_is_excels_sep_line_is_read_with_that_separator(tmp_path, first_line, separator):
    """Before: the `sep=` line was read as the header: "has no poster file or id column (columns: sep=)"."""
    for i in range(3):
        make_poster(tmp_path / "posters" / f"{i}.jpg", seed=i)
    comma = "," if separator != "," else ""  # a comma inside a title, where the separator is not one
    rows = [HEADER, ["0.jpg", f"Film{comma} the first", "1950"], ["1.jpg", "Film 1", "1953"], ["2.jpg", "Film 2", "19x"]]
    catalog = tmp_path / "movies.csv"
    catalog.write_text(first_line + "\r\n" + "".join(separator.join(r) + "\r\n" for r in rows), encoding="utf-8", newline="")
    store, rejects = tmp_path / "store", tmp_path / "rejects.csv"
    out = ingested(catalog, tmp_path / "posters", store, "--rejects", rejects)
    assert "ingested 2, already stored 0, rejected 1 of 3 catalog rows" in out, out
    assert {(p["title"], p["year"]) for p in payloads(store).values()} == {(f"Film{comma} the first", 1950), ("Film 1", 1953)}
    assert rejects.read_text().splitlines()[1].startswith("5,2.jpg,2.jpg,unparseable year")  # a file line: sep= is line 1


def test_a_sep_line_that_names_no_separator_is_one_line(tmp_path):
    for i in range(2):
        make_poster(tmp_path / "posters" / f"{i}.jpg", seed=i)
    catalog = tmp_path / "movies.csv"
    catalog.write_text("sep=;,\nfilename;title\n0.jpg;Film 0\n")
    refused = run_cli(
        "ingest", "--catalog", catalog, "--posters", tmp_path / "posters", "--qdrant-path", tmp_path / "s", "--weights", "random"
    )
    one_line_error(refused, r"its first line 'sep=;,' names no one-character separator")
    assert not (tmp_path / "s" / "collections" / "posters").exists()


# --- 3. migrate: int8 onto float32 ------------------------------------------------------------


def test_migrate_of_an_int8_collection_onto_a_float32_one_says_what_differs(tmp_path, monkeypatch):
    """Before: "exists with other vectors or another embedding (has {'vgg16': 512}, source {'vgg16': 512})"."""
    monkeypatch.setenv("POSTER_SEARCH_CACHE", str(tmp_path / "cache"))  # the int8 model is built here, not in the user's cache
    catalog, posters = small_catalog(tmp_path, 4)
    ingested(catalog, posters, tmp_path / "int8", "--precision", "int8")
    ingested(catalog, posters, tmp_path / "fp32", "--precision", "fp32")
    refused = run_cli("migrate", "--qdrant-path", tmp_path / "int8", "--to-path", tmp_path / "fp32")
    line = one_line_error(refused, r"destination collection 'posters' exists with another embedding: its vectors are float32", ignore=NOTES)
    assert "the source's int8 (quantization int8-qdq-v1:calibration-" in line and "choose another --to-collection" in line, line
    back = one_line_error(
        run_cli("migrate", "--qdrant-path", tmp_path / "fp32", "--to-path", tmp_path / "int8"), "another embedding", ignore=NOTES
    )
    assert "its vectors are int8 (quantization int8-qdq-v1:" in back and "the source's float32" in back, back
    with PosterStore(StoreLocation(path=tmp_path / "fp32")) as fp32:  # nothing was written
        assert fp32.count() == 4 and not fp32.stored_spec().quantization


# --- 4. search --id on a truncated vector file ------------------------------------------------


def _truncate_vectors(store: Path) -> None:
    [chunk] = (store / "collections" / "posters" / "shard").rglob("vector_storage-vgg16/vectors/chunk_0.mmap")
    os.truncate(chunk, 1000)  # shorter than the vectors it holds


def _truncate_payloads(store: Path) -> None:
    [page] = (store / "collections" / "posters" / "shard").rglob("payload_storage/page_0.dat")
    os.truncate(page, 100)  # shorter than the payloads it holds


@pytest.mark.parametrize("damage", [_truncate_vectors, _truncate_payloads], ids=["vectors", "payloads"])
def test_search_by_id_names_a_truncated_store_file_as_search_by_title_does(tmp_path, damage):
    """Before: with the vectors truncated, --id said "no film with id ..." (the damage, raised by the
    read, was taken for an id Qdrant refuses) where --title named the file; with the payloads
    truncated, --id named it only through a second scan (another line). Now the very line --title gives."""
    from fastapi.testclient import TestClient

    from poster_search import Posters
    from poster_search.web.app import create_app

    catalog, posters = small_catalog(tmp_path, 4)
    store = tmp_path / "store"
    ingested(catalog, posters, store)
    damage(store)
    pattern = r"Qdrant Edge failed reading collection 'posters' .* may be damaged; restore them from a backup"
    by_title = one_line_error(run_cli("search", "--title", "Film 1", "--qdrant-path", store), pattern)
    by_id = one_line_error(run_cli("search", "--id", point_id("1.jpg"), "--qdrant-path", store), pattern)
    assert by_id == by_title
    with Posters(store, weights="random") as library:
        client = TestClient(create_app(library), raise_server_exceptions=True, base_url="http://localhost")
        for answer in (client.get(f"/api/search/id/{point_id('1.jpg')}"), client.get("/api/search/title", params={"title": "Film 1"})):
            # (the web cuts a detail at 300 characters)
            assert answer.status_code == 503 and answer.json()["detail"].startswith("Qdrant Edge failed reading collection 'posters'"), (
                answer.text
            )


# --- 5. ingest on a store whose vectors were lost ---------------------------------------------


def _delete_vectors(store: Path, ids: list[str]) -> None:
    """What a damaged segment looks like from Qdrant: vectors flagged deleted, the count of points kept."""
    from qdrant_edge import EdgeShard, UpdateOperation

    shard = EdgeShard.load(str(store / "collections" / "posters" / "shard"))
    try:
        shard.update(UpdateOperation.delete_vectors(list[str | int | UUID](ids), ["vgg16"]))
        shard.flush()
    finally:
        shard.close()


def _vectors(store: Path) -> dict[str, np.ndarray]:
    with PosterStore(StoreLocation(path=store)) as s:
        return {p.id: p.vector for p in s.points(with_vectors=True) if p.vector is not None}


def test_ingest_embeds_again_the_posters_whose_vectors_were_lost_and_names_what_it_cannot(tmp_path):
    """Before: "ingested 0, already stored 5", and every search then refused the store as damaged."""
    catalog, posters = small_catalog(tmp_path, 5)
    store = tmp_path / "store"
    ingested(catalog, posters, store)
    before_vectors, before_payloads = _vectors(store), payloads(store)
    ids = [point_id(f"{i}.jpg") for i in range(5)]
    _delete_vectors(store, ids)
    named = r"collection 'posters' is damaged: 5 of its 5 points have lost their 'vgg16' vector"
    one_line_error(run_cli("search", "--title", "Film 1", "--qdrant-path", store), named)

    # a catalog that names four of them: those four embedded again, the fifth named
    with open(catalog) as f:
        four = tmp_path / "four.csv"
        four.write_text("".join(f.readlines()[:5]))
    out = ingested(four, posters, store)
    assert "ingested 0, already stored 0, rejected 0 of 4 catalog rows" in out, out
    assert "repaired 4 stored posters that had lost their 'vgg16' vector (a damaged store): embedded again" in out, out
    assert (
        "collection 'posters' is still damaged: 1 of its 5 points have lost their 'vgg16' vector; those are not in this catalog (or past its --limit)"
        in out
    )
    one_line_error(run_cli("search", "--title", "Film 4", "--qdrant-path", store), r"1 of its 5 points have lost their 'vgg16' vector")

    # the whole catalog: the store is whole again, as it was
    out = ingested(catalog, posters, store)
    assert "repaired 1 stored posters" in out and "still damaged" not in out, out
    after = _vectors(store)
    assert set(after) == set(before_vectors) and all(float(np.dot(after[i], before_vectors[i])) > 0.9999 for i in after)
    assert payloads(store) == before_payloads  # the payloads were kept, not rewritten
    found = run_cli("search", "--title", "Film 1", "--json", "--qdrant-path", store)
    assert found.returncode == 0 and len(json.loads(found.stdout)["neighbours"]) == 3, found.stderr
    again = ingested(catalog, posters, store)
    assert "already stored 5" in again and "repaired" not in again and "damaged" not in again, again


def test_ingest_with_style_sets_both_vectors_of_a_poster_whose_vgg16_vector_was_lost(tmp_path):
    """--style on a collection with the style vector: the lost vgg16 vector is set, the style one kept equal."""
    catalog, posters = small_catalog(tmp_path, 3)
    store = tmp_path / "store"
    ingested(catalog, posters, store, "--style")
    _delete_vectors(store, [point_id("0.jpg")])
    out = ingested(catalog, posters, store, "--style")
    assert "already stored 2" in out and "repaired 1 stored posters" in out and "style vector added" not in out, out
    with PosterStore(StoreLocation(path=store)) as s:
        assert s.count() == 3 and not s.ids_without("vgg16") and not s.ids_without("vgg16_style")
    shutil.rmtree(tmp_path / "posters")  # the vectors are read from the store now, not the files
    found = run_cli("search", "--title", "Film 0", "--vector", "vgg16_style", "--json", "--qdrant-path", store)
    assert found.returncode == 0, found.stderr
