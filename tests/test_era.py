"""Era coherence on stores whose answer is known: vectors clustered by era, and pure noise."""

import numpy as np
import pytest

from poster_search.embedding.spec import EmbeddingSpec
from poster_search.search.era import era_coherence, nearest_dated_years
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.schema import point_id
from tests.conftest import run_cli


def build_store(path, vectors, years, sha=None):
    with PosterStore(StoreLocation(path=path)) as store:
        store.prepare(EmbeddingSpec(weights="random"))
        payloads = []
        for i, y in enumerate(years):
            p = {"title": f"F{i}", "sha256": sha[i] if sha else f"h{i}"}
            if y is not None:
                p["year"] = int(y)
            payloads.append(p)
        store.upsert([point_id(str(i)) for i in range(len(years))], vectors, payloads)


def unit(v):
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_clustered_by_era_matches_brute_force(tmp_path):
    rng = np.random.default_rng(0)
    years = np.repeat([1950, 1980, 2010], 20) + rng.integers(0, 5, 60)
    centres = rng.normal(size=(3, 512))
    vectors = unit(np.repeat(centres, 20, axis=0) + 0.3 * rng.normal(size=(60, 512)))
    build_store(tmp_path / "s", vectors, years)
    with PosterStore(StoreLocation(path=tmp_path / "s")) as store:
        report = era_coherence(store, k=3, progress=False)
    # brute force: the 3 most similar others of each poster
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :3]
    expected = np.abs(years[top] - years[:, None]).mean()
    assert report.posters == 60
    assert report.neighbour_mean == pytest.approx(expected, abs=1e-9)
    assert report.neighbour_mean < 5 < 20 < report.random_mean
    assert [r.decade for r in report.by_decade] == [1950, 1980, 2010]
    assert sum(r.posters for r in report.by_decade) == 60


def test_noise_gives_no_era_signal_and_undated_copies_are_skipped(tmp_path):
    rng = np.random.default_rng(1)
    years = list(rng.integers(1940, 2020, 300))
    vectors = unit(rng.normal(size=(302, 512)))
    vectors[301] = vectors[0]  # an identical copy of poster 0 (same content hash) ...
    sha = [f"h{i}" for i in range(301)] + ["h0"]
    build_store(tmp_path / "s", vectors, years + [None, 1700], sha=sha)  # ... with an absurd year, and an undated poster
    with PosterStore(StoreLocation(path=tmp_path / "s")) as store:
        report = era_coherence(store, k=5, progress=False)
        sample = era_coherence(store, k=5, sample=50, seed=3, progress=False)
        [poster0] = store.retrieve([point_id("0")], with_vectors=True)
        assert {h.id for h in store.nearest([poster0.vector], 2, exact=True)[0]} == {point_id("0"), point_id("301")}  # a tie
        assert 1700 not in nearest_dated_years(store, [poster0], k=5)[0]  # its identical copy is not its neighbour
    assert report.posters == 301  # the undated poster is not a query
    assert 0.8 < report.neighbour_mean / report.random_mean < 1.2
    assert sample.posters == 50
    with PosterStore(
        StoreLocation(path=tmp_path / "s")
    ) as store:  # drawn by the store, seeded: the same draw again, another with another seed
        drawn = [{p.id for p in store.sample(50, seed, fields=["year"])} for seed in (3, 3, 4)]
    assert drawn[0] == drawn[1] != drawn[2] and len(drawn[0]) == 50


def test_era_cli_json(tmp_path):
    rng = np.random.default_rng(2)
    build_store(tmp_path / "s", unit(rng.normal(size=(30, 512))), rng.integers(1950, 2000, 30))
    import json

    result = run_cli("era", "-k", "2", "--json", "--qdrant-path", tmp_path / "s")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["k"] == 2 and data["posters"] == 30 and {"neighbour_mean", "random_mean", "by_decade"} <= set(data)
