"""Year regression on small real stores: split, baselines, head, saved model, prediction, CLI."""

import json

import numpy as np
import pytest

from embedding.spec import EmbeddingSpec
from errors import UserError
from ingest.catalog import read_catalog
from ingest.pipeline import ingest
from regression.baselines import knn_qdrant_baseline, mean_baseline, ridge_baseline
from regression.dataset import load_year_data, split_indices
from regression.metrics import year_metrics
from store.collection import PosterStore
from store.connection import StoreLocation
from store.schema import point_id
from tests.conftest import make_poster, run_cli

SPEC = EmbeddingSpec(weights="random")


def synthetic_store(path, n=300, seed=0, undated=0):
    """Non-negative unit vectors (like pooled ReLU features) whose year is a smooth function of them."""
    rng = np.random.default_rng(seed)
    raw = np.abs(rng.normal(size=(n + undated, 512))).astype(np.float32)
    vectors = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    signal = vectors[:, :8] @ rng.normal(size=8)  # the year is a linear function of 8 of the 512 features
    years = np.round(1940 + 80 * (signal - signal.min()) / (signal.max() - signal.min()))
    payloads = [{"title": f"F{i}", "year": int(years[i])} if i < n else {"title": f"U{i}"} for i in range(n + undated)]
    with PosterStore(StoreLocation(path=path)) as store:
        store.prepare(SPEC)
        store.upsert([point_id(str(i)) for i in range(n + undated)], vectors, payloads)
    return StoreLocation(path=path), vectors[:n], years[:n]


def test_split_is_deterministic_disjoint_and_complete():
    train, test = split_indices(100, 0.2, seed=7)
    assert len(test) == 20 and len(train) == 80
    assert not set(train) & set(test) and set(train) | set(test) == set(range(100))
    again = split_indices(100, 0.2, seed=7)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], test)
    assert not np.array_equal(split_indices(100, 0.2, seed=8)[1], test)
    with pytest.raises(UserError, match="between 0 and 1"):
        split_indices(100, 1.5, seed=0)


def test_data_comes_out_of_qdrant_sorted_with_undated_counted(tmp_path):
    location, vectors, years = synthetic_store(tmp_path / "s", n=40, undated=3)
    with PosterStore(location) as store:
        data = load_year_data(store)
    assert (len(data), data.undated) == (40, 3)
    assert list(data.ids) == sorted(data.ids)
    by_id = {point_id(str(i)): (vectors[i], years[i]) for i in range(40)}
    for pid, v, y in zip(data.ids, data.vectors, data.years):
        assert np.allclose(by_id[pid][0], v, atol=1e-6) and by_id[pid][1] == y


def test_too_few_dated_posters_is_a_clear_error(tmp_path):
    location, _, _ = synthetic_store(tmp_path / "s", n=5, undated=5)
    with PosterStore(location) as store, pytest.raises(UserError, match="5 dated posters: too few"):
        load_year_data(store)


def test_metrics_on_known_numbers():
    m = year_metrics(np.array([1950.0, 1960.0, 2000.0]), np.array([1955.0, 1960.0, 1990.0]))
    assert m["mae"] == pytest.approx(5.0)
    assert m["rmse"] == pytest.approx(np.sqrt(125 / 3))
    assert m["median_ae"] == pytest.approx(5.0)
    true = np.array([1950.0, 1960.0, 2000.0])
    assert m["r2"] == pytest.approx(1 - 125 / ((true - true.mean()) ** 2).sum())
    assert m["mae_by_decade"] == {1950: 5.0, 1960: 0.0, 2000: 10.0}


def test_mean_and_knn_baselines_compute_what_they_claim(tmp_path):
    location, vectors, years = synthetic_store(tmp_path / "s", n=200)
    train, test = split_indices(200, 0.25, seed=0)
    assert np.all(mean_baseline(years[train], 5) == years[train].mean())
    # k-NN through Qdrant equals brute-force cosine k-NN over the training posters only
    with PosterStore(location) as store:
        knn = knn_qdrant_baseline(store, vectors[test], {point_id(str(i)) for i in train}, k=5)
    sims = vectors[test] @ vectors[train].T
    expected = years[train][np.argsort(-sims, axis=1)[:, :5]].mean(axis=1)
    assert np.allclose(knn, expected)


def test_ridge_recovers_a_linear_rule_from_training_data_only():
    rng = np.random.default_rng(0)
    vectors = np.abs(rng.normal(size=(1500, 512)))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    years = 1940 + 300 * vectors[:, :8] @ rng.normal(size=8)
    train, test = np.arange(1200), np.arange(1200, 1500)
    ridge, alpha = ridge_baseline(vectors[train], years[train], vectors[test])
    assert np.abs(ridge - years[test]).mean() < 0.05 * np.abs(mean_baseline(years[train], 300) - years[test]).mean()
    assert alpha > 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small head trained through the whole pipeline on a synthetic store."""
    from regression.head import HeadConfig
    from regression.train import train_year_model

    tmp = tmp_path_factory.mktemp("year")
    location, _, _ = synthetic_store(tmp / "s", n=1500)
    config = HeadConfig(hidden=(64, 16), members=2, epochs=150, patience=15)
    with PosterStore(location) as store:
        report = train_year_model(store, tmp / "model", test_size=0.2, seed=3, config=config, knn_k=5, progress=False)
    return tmp, location, report


def test_head_learns_and_the_run_is_reported_and_saved(trained):
    tmp, _, report = trained
    head, mean = report.results["Keras head"], report.results["mean of training years"]
    assert (report.n_train, report.n_test) == (1200, 300)
    assert head["mae"] < 0.75 * mean["mae"]  # about 0.6 when it learns, 1.0 when it does not
    assert {"Keras head", "mean of training years", "5-NN via Qdrant"} <= set(report.results)
    assert any(name.startswith("ridge") for name in report.results)
    for f in ("model.keras", "model.json", "predicted_vs_true.png", "error_by_decade.png"):
        assert (tmp / "model" / f).stat().st_size > 0
    meta = json.loads((tmp / "model" / "model.json").read_text())
    assert meta["embedding"] == SPEC.as_dict() and meta["vector_name"] == "vgg16" and meta["collection"] == "posters"
    assert meta["split"] == {"seed": 3, "test_size": 0.2, "n_train": 1200, "n_test": 300, "undated_left_out": 0}
    assert set(meta["target_scaling"]) == {"mean", "std"} and meta["test"]["Keras head"]["mae"] == head["mae"]
    low, high = meta["uncertainty"]["overall"]
    assert low < 0 < high


def test_saved_model_reloads_and_predicts_the_same(trained):
    from regression.head import predict_years
    from regression.model_file import YearModel

    tmp, location, _ = trained
    with PosterStore(location) as store:
        data = load_year_data(store)
    first = YearModel.load(tmp / "model").predict(data.vectors[:20])
    again = YearModel.load(tmp / "model")
    assert np.allclose(again.predict(data.vectors[:20]), first, atol=1e-4)
    assert np.allclose(predict_years(again.model, data.vectors[:20]), first, atol=1e-4)
    assert first.min() > 1900 and first.max() < 2050  # years, not standardised values
    low, high = again.range_for(1980.0)
    assert low < 1980.0 < high


def test_missing_and_broken_models_are_clear_errors(tmp_path):
    from regression.model_file import YearModel

    with pytest.raises(UserError, match="no year model in"):
        YearModel.load(tmp_path)
    (tmp_path / "model.keras").write_text("junk")
    (tmp_path / "model.json").write_text("{}")
    with pytest.raises(UserError, match="cannot load the year model"):
        YearModel.load(tmp_path)


def test_predict_year_on_a_new_poster_and_its_errors(tmp_path, random_embedder, poster_set):
    """Through the CLI: a store of generated posters, a model, a poster that was never ingested."""
    catalog, posters = poster_set(24, start_year=1950)
    location = StoreLocation(path=tmp_path / "store")
    with PosterStore(location) as store:
        ingest(read_catalog(catalog, posters), posters, store, random_embedder, progress=False)
    result = run_cli("train-year", "--members", "1", "--epochs", "5", "--knn-k", "3", "--qdrant-path", location.path, "--model-dir", tmp_path / "m")
    assert result.returncode == 0, result.stderr
    assert "Keras head" in result.stdout and "3-NN via Qdrant" in result.stdout

    new = make_poster(tmp_path / "new.jpg", seed=999)
    result = run_cli("predict-year", new, "--model-dir", tmp_path / "m", "--weights", "random", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"image", "year", "low", "high", "coverage", "test_mae"}
    # the range is the prediction plus the held-out residual quantiles (this tiny model's may not straddle 0)
    ranges = json.loads((tmp_path / "m" / "model.json").read_text())["uncertainty"]
    offsets = [ranges["overall"], *ranges["by_predicted_decade"].values()]
    assert any(np.allclose([data["low"] - data["year"], data["high"] - data["year"]], o, atol=1e-3) for o in offsets)
    assert data["low"] < data["high"] and data["coverage"] == 0.8

    (tmp_path / "other.h5").write_bytes(b"other weights")
    for args, message in [
        ([new, "--model-dir", tmp_path / "nothing"], "no year model in"),
        ([new, "--model-dir", tmp_path / "m", "--weights", tmp_path / "other.h5"], "trained on embedding"),
        ([catalog, "--model-dir", tmp_path / "m", "--weights", "random"], "not an image"),
    ]:
        result = run_cli("predict-year", *args)
        assert result.returncode == 1 and "Traceback" not in result.stderr and message in result.stderr, result.stderr
