"""The paths that keep commands bounded on a large collection (#36), each checked on a small real
store: a title shared by more films than one page of matches, a sample drawn by the store, and
damage counted by Qdrant rather than found by reading every payload."""

from __future__ import annotations

import json

import numpy as np

from poster_search.embedding.spec import EmbeddingSpec
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.engine import PointFilter
from poster_search.store.integrity import damage
from poster_search.store.schema import point_id
from tests.conftest import one_line_error, run_cli

N = 1300


def build(path, titles: list[str], years: list[int]) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(titles), 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with PosterStore(StoreLocation(path=path)) as store:
        store.prepare(EmbeddingSpec(weights="random"))
        payloads = [
            {"key": str(i), "title": t, "file": f"{i}.jpg", "sha256": f"h{i}", "year": y} for i, (t, y) in enumerate(zip(titles, years))
        ]
        store.upsert([point_id(str(i)) for i in range(len(titles))], vectors, payloads)


def test_a_title_shared_by_many_films_among_many_more_with_its_word(tmp_path):
    # 1,200 films with the word "House" in the title (more than a page of full-text matches), 12 titled "House" exactly
    titles = [f"House of Film {i}" for i in range(N - 100)] + ["House"] * 12 + [f"Film {i}" for i in range(88)]
    years = [1950 + i % 70 for i in range(N)]
    build(tmp_path / "s", titles, years)
    store = ["--qdrant-path", tmp_path / "s"]
    many = run_cli("search", "--title", "House", *store)
    one_line_error(many, r"12 films are titled 'House'.*give the year too")
    house = years[N - 100 : N - 88]
    found = run_cli("search", "--title", "house", "--year", house[3], "--json", *store)  # up to case, narrowed by the year
    assert found.returncode == 0, found.output
    one_line_error(run_cli("search", "--title", "Hous", *store), r"no film titled 'Hous'; close matches: House")


def test_the_store_draws_a_seeded_sample_without_reading_every_point(tmp_path):
    build(tmp_path / "s", [f"Film {i}" for i in range(N)], [1900 + i % 100 for i in range(N)])
    with PosterStore(StoreLocation(path=tmp_path / "s")) as store:
        drawn = store.sample(200, seed=1, filter=PointFilter(year_min=1950), fields=["year"], vector_name="vgg16")
        again = store.sample(200, seed=1, filter=PointFilter(year_min=1950), fields=["year"], vector_name="vgg16")
    assert [p.id for p in drawn] == [p.id for p in again] and len({p.id for p in drawn}) == 200
    assert all(p.poster.year >= 1950 and p.vector is not None for p in drawn)
    # a random sample: its years spread like the collection's (uniform over 1950-1999: mean 1974.5, sd 14.4)
    assert abs(np.mean([p.poster.year for p in drawn]) - 1974.5) < 4


def test_damage_is_counted_by_qdrant(tmp_path):
    build(tmp_path / "s", [f"Film {i}" for i in range(20)], [1950] * 20)
    with PosterStore(StoreLocation(path=tmp_path / "s")) as store:
        assert not damage(store)
        store.engine.overwrite_payloads(store.collection, [(point_id("3"), {}), (point_id("4"), {})])
        store.set_payloads([(point_id("5"), {"genres": ["Drama"]})])  # a payload changed, not lost
        found = damage(store)
    assert (found.points, found.without_payload, found.without_vector) == (20, 2, 0)


def test_a_year_model_reads_a_seeded_sample_of_a_collection_past_its_limit(tmp_path):
    from poster_search.regression.dataset import load_year_data

    build(tmp_path / "s", [f"Film {i}" for i in range(300)], [1900 + i % 100 for i in range(300)])
    with PosterStore(StoreLocation(path=tmp_path / "s")) as store:
        whole = load_year_data(store)
        sampled = load_year_data(store, at_most=100)
        again = load_year_data(store, at_most=100)
        stored = store.vectors_of(list(sampled.ids[:5]), ["vgg16"])
    assert len(whole) == 300 and len(sampled) == 100 and list(sampled.ids) == list(again.ids) == sorted(sampled.ids)
    assert all(np.allclose(stored[i]["vgg16"], v) for i, v in zip(sampled.ids[:5], sampled.vectors[:5]))
    by_id = dict(zip(whole.ids, whole.years))
    assert all(by_id[i] == y for i, y in zip(sampled.ids, sampled.years))


def test_past_the_indexing_threshold_searches_walk_the_graph_the_style_vector_quantised_and_find_the_true_neighbours(tmp_path):
    # 6,000 posters (12 MB of 512-d vectors, 7 MB of 300-d style ones: past Edge's indexing threshold),
    # 300 looks of 20 posters each, as real posters cluster: optimize() builds both graphs, the style
    # vector's on its int8 quantisation (store/schema.py QUANTIZED_VECTORS)
    rng = np.random.default_rng(5)

    def clustered(dim: int) -> np.ndarray:
        looks = rng.normal(size=(300, dim)).astype(np.float32)
        v = looks[np.arange(6000) % 300] / np.sqrt(dim) + rng.normal(size=(6000, dim)).astype(np.float32) * (0.35 / np.sqrt(dim))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    vectors, style = clustered(512), clustered(300)
    ids = [point_id(str(i)) for i in range(6000)]
    with PosterStore(StoreLocation(path=tmp_path / "s")) as store:
        store.prepare(EmbeddingSpec(weights="random"), style_spec=EmbeddingSpec(weights="random", layer="style", pooling="style", dim=300))
        payloads = [{"key": str(i), "title": f"Film {i}", "file": f"{i}.jpg", "year": 1900 + i % 100} for i in range(6000)]
        store.upsert(ids, vectors, payloads, style)
        store.optimize()
        recalls = []
        for name, stored in (("vgg16", vectors), ("vgg16_style", style)):
            queries = list(stored[:40] + rng.normal(size=(40, stored.shape[1])).astype(np.float32) * (0.2 / np.sqrt(stored.shape[1])))
            graph = store.nearest(queries, 10, PointFilter(year_min=1950), vector_name=name)
            exact = store.nearest(queries, 10, PointFilter(year_min=1950), vector_name=name, exact=True)
            recalls.append(np.mean([len({h.id for h in g} & {h.id for h in e}) / 10 for g, e in zip(graph, exact)]))
    assert min(recalls) >= 0.95, recalls
    shard = tmp_path / "s/collections/posters/shard"
    built = [json.loads(f.read_text())["config"]["vector_data"] for f in shard.glob("segments/*/segment.json")]
    indexed = [v for v in built if v["vgg16"]["index"]["type"] == "hnsw"]
    assert indexed and all(v["vgg16"]["quantization_config"] is None for v in indexed), built
    assert all(
        v["vgg16_style"]["index"]["type"] == "hnsw" and v["vgg16_style"]["quantization_config"]["scalar"]["type"] == "int8" for v in indexed
    )
