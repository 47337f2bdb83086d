"""Browsing a whole collection and suggestions from a few letters, on a real Edge store: every
order reaches every poster exactly once, ties included; filters count what they show; a store
written before schema 4 is browsed whole at once and given its sort keys by the next ingest."""

from __future__ import annotations

import numpy as np
import pytest

from poster_search import Posters
from poster_search.embedding.spec import EmbeddingSpec
from poster_search.errors import BadInput
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.engine import Record
from poster_search.store.schema import point_id
from poster_search.store.sort_keys import prefix_range, sort_title, title_order

TITLES = [
    "The Sound of Music",
    "Amélie",
    "Gone with the Wind",
    "Heat",
    "Heaters",
    "Sounds",
    "Music Man",
    "The Third Man",
    "Zorro",
    "alien",
    "Rear Window",
]
N = 70


def dataset() -> list[dict]:
    """Titles with accents, articles and shared words; 1999 for 15 films (ties past a page); some
    undated, some of those with a predicted year; a damaged payload is added by the test that needs it."""
    rows = []
    for i in range(N):
        row: dict[str, object] = {
            "key": f"{i}",
            "title": TITLES[i % len(TITLES)] + (f" {i}" if i >= len(TITLES) else ""),
            "file": f"{i}.jpg",
            "sha256": f"h{i}",
        }
        if i % 5:
            row["year"] = 1999 if i % 4 == 1 else 1930 + (i * 7) % 90
        elif i % 10:
            row.update(predicted_year=1970, predicted_low=1960, predicted_high=1985, predicted_by="year-model:x")
        row["genres"] = ["Drama"] if i % 3 else ["Comedy", "Drama"]
        rows.append(row)
    return rows


def vectors(n: int) -> np.ndarray:
    v = np.random.default_rng(1).normal(size=(n, 512)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    location = StoreLocation(path=tmp_path_factory.mktemp("browse") / "store")
    rows = dataset()
    with PosterStore(location) as store:
        store.prepare(EmbeddingSpec(weights="random"))
        store.upsert([point_id(r["key"]) for r in rows], vectors(N), rows)
    with Posters(location) as posters:
        yield posters, rows


def every_page(posters: Posters, limit: int = 6, **options) -> list:
    seen, after = [], None
    while True:
        page = posters.browse(limit=limit, after=after, **options)
        assert len(page.posters) <= limit
        seen += page.posters
        after = page.next
        if after is None:
            return seen


@pytest.mark.parametrize("descending", [False, True])
def test_every_order_reaches_every_poster_once_in_order(library, descending):
    posters, rows = library
    by_title = every_page(posters, sort="title", descending=descending)
    assert len(by_title) == N and len({p.id for p in by_title}) == N
    keys = [sort_title(p.poster.title) for p in by_title]
    assert keys == sorted(keys, reverse=descending)  # "The Third Man" among the T's of "third", Amélie among the A's
    by_year = every_page(posters, sort="year", descending=descending)
    years = [p.poster.year for p in by_year]
    dated = [y for y in years if y is not None]
    assert len({p.id for p in by_year}) == N and years[: len(dated)] == sorted(dated, reverse=descending)  # ties of 1999 paged through
    assert years.count(1999) == sum(r.get("year") == 1999 for r in rows) > 6
    by_added = every_page(posters, sort="added", descending=descending, limit=200)
    order = [p.poster.key for p in by_added]
    assert order == [r["key"] for r in (reversed(rows) if descending else rows)]  # stored in catalog order, one microsecond apart


def test_filters_show_and_count_only_what_matches(library):
    posters, rows = library
    cases = [
        ({"decade": 1990}, lambda r: 1990 <= r.get("year", 0) <= 1999),
        ({"genre": "Comedy"}, lambda r: "Comedy" in r["genres"]),
        ({"status": "catalog"}, lambda r: "year" in r),
        ({"status": "predicted"}, lambda r: "year" not in r and "predicted_year" in r),
        ({"status": "none", "genre": "Drama"}, lambda r: "year" not in r and "predicted_year" not in r),
    ]
    for options, wanted in cases:
        shown = every_page(posters, sort="year", limit=4, **options)
        expected = {point_id(r["key"]) for r in rows if wanted(r)}
        assert {p.id for p in shown} == expected and posters.browse(**options).total == len(expected), options
    facets = posters.facets()
    assert facets.status == {
        "catalog": sum("year" in r for r in rows),
        "predicted": sum("year" not in r and "predicted_year" in r for r in rows),
        "none": sum("year" not in r and "predicted_year" not in r for r in rows),
    }
    assert dict(facets.decades)[1990] == sum(1990 <= r.get("year", 0) <= 1999 for r in rows)
    assert dict(facets.genres) == {"Drama": N, "Comedy": sum("Comedy" in r["genres"] for r in rows)}


def test_bad_options_are_one_line(library):
    posters, _ = library
    for options, fragment in [
        ({"after": "e30"}, "browse cursor"),
        ({"after": "!!"}, "browse cursor"),
        ({"decade": 1995}, "ending in 0"),
        ({"status": "maybe"}, "status"),
        ({"sort": "colour"}, "sort"),
        ({"limit": 0}, "limit"),
    ]:
        with pytest.raises(BadInput, match=fragment):
            posters.browse(**options)


@pytest.mark.parametrize(
    "typed, first",
    [
        ("sou", "Sounds"),
        ("the sou", "The Sound of Music"),
        ("sound of mus", "The Sound of Music"),
        ("mus", "Music Man"),
        ("amel", "Amélie"),
        ("AMÉ", "Amélie"),
        ("gone wi", "Gone with the Wind"),
        ("heat", "Heat"),
        ("third", "The Third Man"),
        ("Alien", "alien"),
        ("wind", "Gone with the Wind"),  # a whole word before the beginning of one (Rear Window, shorter, comes after)
    ],
)
def test_suggestions_from_a_few_letters(library, typed, first):
    posters, _ = library
    found = posters.suggest(typed, limit=5).posters
    assert found and found[0].poster.title == first
    assert len(found) == 5  # the film, then the others sharing its title words


def test_suggestions_never_show_what_does_not_fit(library):
    posters, _ = library
    assert posters.suggest("xyz").posters == [] and posters.suggest("…").posters == []
    assert all("heat" in p.poster.title.lower() for p in posters.suggest("heat", limit=50).posters)


def test_sort_keys_order_as_people_sort_titles():
    ordered = sorted(["Zorro", "The Third Man", "Amélie", "a", "Heat 2", "Heat", "Heaters", "2001: A Space Odyssey"], key=title_order)
    assert ordered == ["2001: A Space Odyssey", "a", "Amélie", "Heat", "Heat 2", "Heaters", "The Third Man", "Zorro"]
    low, high = prefix_range("the thi")
    assert low <= title_order("The Third Man") <= high and not low <= title_order("Thaw") <= high
    assert title_order("x" * 500) < 2**53  # exact as a float: Qdrant's ranges and JSON


def test_a_store_of_schema_3_is_browsed_whole_and_the_next_ingest_adds_its_keys(tmp_path):
    """Points written before schema 4 lack the sort keys, and the title index was whole words: the
    index is made again on open (suggestions work at once), browsing shows every poster (those
    without keys last), and `serve` (or the next ingest) gives them their keys, in stored order."""
    from qdrant_edge import TextIndexParams, TokenizerType, UpdateOperation

    location = StoreLocation(path=tmp_path / "store")
    rows = dataset()[:20]
    with PosterStore(location) as store:
        store.prepare(EmbeddingSpec(weights="random"))
        store.upsert([point_id(r["key"]) for r in rows], vectors(20), rows)
        engine = store.engine
        engine.overwrite_payloads("posters", [(point_id(r["key"]), r) for r in rows])  # as schema 3 wrote them: no derived fields
        engine._write("posters", UpdateOperation.delete_field_index("title"))
        engine._write("posters", UpdateOperation.create_field_index("title", TextIndexParams(tokenizer=TokenizerType.Word, lowercase=True)))
    with Posters(location) as posters:
        assert [p.poster.title for p in posters.suggest("mus").posters][:1] == ["Music Man"]  # the prefix index, made on open
        seen = every_page(posters, sort="title", limit=7)
        assert len({p.id for p in seen}) == 20 and all(p.poster.title_order is None for p in seen)
    with Posters(location) as posters:
        assert posters.add_sort_keys() == 20 and posters.add_sort_keys() == 0  # what `serve` does first (and ingest's prepare)
    with PosterStore(location) as store:
        store.prepare(EmbeddingSpec(weights="random"))  # ingest's first step: nothing left to give
        stored = {p.poster.key: p.poster for p in store.points(with_vectors=False)}
    assert {k: p.title_order for k, p in stored.items()} == {r["key"]: title_order(r["title"]) for r in rows}
    assert sorted(p.added for p in stored.values()) == list(range(1, 21))  # before any point stored since


def test_a_payload_that_does_not_decode_is_left_out_and_the_rest_is_browsed(tmp_path, caplog):
    location = StoreLocation(path=tmp_path / "store")
    rows = dataset()[:12]
    with PosterStore(location) as store:
        store.prepare(EmbeddingSpec(weights="random"))
        store.upsert([point_id(r["key"]) for r in rows], vectors(12), rows)
        bad = store.retrieve([point_id("3")])[0].payload
        store.engine.upsert("posters", [Record(point_id("3"), {**bad, "year": "1999"}, {"vgg16": vectors(12)[3]})])
    with Posters(location) as posters:
        seen = every_page(posters, sort="title", limit=5)
    assert {p.id for p in seen} == {point_id(r["key"]) for r in rows} - {point_id("3")}
    assert "field 'year'" in caplog.text


def test_a_mistyped_title_finds_its_film_among_a_bounded_few(library):
    """What a title search that found nothing offers past 20,000 posters (search/titles.py): the
    films starting as the text does and those with a word starting as each typed word does, from
    the indexes, a bounded number, never every title."""
    from poster_search.search.titles import near_titles

    posters, _ = library
    for typed, meant in [("Gone wiht the Wind", "Gone with the Wind"), ("Amelei", "Amélie"), ("The Thrid Man", "The Third Man")]:
        found = near_titles(posters.store, typed, per_word=8)
        assert meant in {p.poster.title for p in found} and len(found) <= 8 * 5, typed
