"""Year regression on small real stores: split, baselines, head, saved model, prediction, CLI."""

import json

import numpy as np
import pytest

from poster_search.embedding.spec import EmbeddingSpec
from poster_search.errors import PosterSearchError
from poster_search.ingest.catalog import read_catalog
from poster_search.ingest.pipeline import ingest
from poster_search.regression.baselines import knn_exact, knn_store_baseline, mean_baseline, ridge_baseline
from poster_search.regression.config import HeadTarget
from poster_search.regression.dataset import content_split, load_year_data
from poster_search.regression.metrics import year_metrics
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.schema import point_id
from tests.conftest import make_poster, run_cli

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer

SPEC = EmbeddingSpec(weights="random")


def synthetic_store(path, n=300, seed=0, undated=0, collection="posters", spec=SPEC, reverse=False):
    """Non-negative unit vectors (like pooled ReLU features) whose year is a smooth function of them.

    Every point has a distinct content hash (sha256 payload) unless the caller overwrites it."""
    rng = np.random.default_rng(seed)
    raw = np.abs(rng.normal(size=(n + undated, 512))).astype(np.float32)
    if reverse:
        raw[:, 10:20] += 3  # the other collection is recognisable (its "look")
    vectors = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    signal = vectors[:, :8] @ np.random.default_rng(0).normal(size=8)  # the year is a linear function of 8 of the 512 features
    signal = -signal if reverse else signal  # another collection's "look": the same features, the opposite trend
    years = np.round(1940 + 80 * (signal - signal.min()) / (signal.max() - signal.min()))
    payloads = [
        {"title": f"F{i}", "sha256": f"{collection}-{seed}-{i}"} | ({"year": int(years[i])} if i < n else {}) for i in range(n + undated)
    ]
    with PosterStore(StoreLocation(path=path), collection) as store:
        store.prepare(spec)
        store.upsert([point_id(f"{collection}-{i}") for i in range(n + undated)], vectors, payloads)
    return StoreLocation(path=path), vectors[:n], years[:n]


def test_split_is_deterministic_disjoint_and_complete():
    rows = [str(i) for i in range(1000)]
    train, test = content_split(rows, 0.2, seed=7)
    assert 160 <= len(test) <= 240 and len(train) + len(test) == 1000  # a hash decides: about 20 %
    assert not set(train) & set(test) and set(train) | set(test) == set(range(1000))
    again = content_split(rows, 0.2, seed=7)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], test)
    assert not np.array_equal(content_split(rows, 0.2, seed=8)[1], test)
    with pytest.raises(PosterSearchError, match="between 0 and 1"):
        content_split(rows, 1.5, seed=0)


def test_content_split_keeps_copies_together_and_old_posters_in_place():
    keys = [f"sha-{i}" for i in range(500)]
    copies = keys + keys[:50]  # 50 posters stored twice (same content, other rows)
    train, test = content_split(copies, 0.2, seed=1)
    side = {}
    for rows, name in ((train, "train"), (test, "test")):
        for r in rows:
            assert side.setdefault(copies[r], name) == name  # a copy never straddles train and test
    # adding posters (anywhere in the order) moves no old one between train and test
    grown = [f"new-{i}" for i in range(300)] + keys[::-1]
    grown_train, grown_test = content_split(grown, 0.2, seed=1)
    assert {grown[r] for r in grown_test} & set(keys) == {keys[r] for r in content_split(keys, 0.2, seed=1)[1]}


def test_data_comes_out_of_qdrant_sorted_with_undated_counted(tmp_path):
    location, vectors, years = synthetic_store(tmp_path / "s", n=40, undated=3)
    with PosterStore(location) as store:
        data = load_year_data(store)
    assert (len(data), data.undated) == (40, 3)
    assert list(data.ids) == sorted(data.ids)
    by_id = {point_id(f"posters-{i}"): (vectors[i], years[i], f"posters-0-{i}") for i in range(40)}
    for pid, v, y, key in zip(data.ids, data.vectors, data.years, data.keys):
        assert np.allclose(by_id[pid][0], v, atol=1e-6) and by_id[pid][1] == y and by_id[pid][2] == key


def test_too_few_dated_posters_is_a_clear_error(tmp_path):
    location, _, _ = synthetic_store(tmp_path / "s", n=5, undated=5)
    with PosterStore(location) as store, pytest.raises(PosterSearchError, match="5 dated posters: too few"):
        load_year_data(store)


def test_metrics_on_known_numbers():
    m = year_metrics(np.array([1950.0, 1960.0, 2000.0]), np.array([1955.0, 1960.0, 1990.0]))
    assert m["mae"] == pytest.approx(5.0)
    assert m["rmse"] == pytest.approx(np.sqrt(125 / 3))
    assert m["median_ae"] == pytest.approx(5.0)
    true = np.array([1950.0, 1960.0, 2000.0])
    assert m["r2"] == pytest.approx(1 - 125 / ((true - true.mean()) ** 2).sum())
    assert m["mae_by_decade"] == {1950: 5.0, 1960: 0.0, 2000: 10.0}
    assert m["bias"] == pytest.approx(-5 / 3) and m["bias_by_decade"] == {1950: 5.0, 1960: 0.0, 2000: -10.0}
    assert m["n"] == 3 and m["n_by_decade"] == {1950: 1, 1960: 1, 2000: 1}


def test_conformal_ranges_hold_their_coverage_on_new_draws_and_widen_where_errors_are_larger():
    from poster_search.regression.conformal import calibrate, coverage, ranges

    rng = np.random.default_rng(0)

    def draw(n):  # errors grow with the prediction and are skewed: a single symmetric range would be wrong
        predicted = rng.uniform(1930, 2020, n)
        spread = 2 + 0.2 * (predicted - 1930)
        return predicted + spread * (rng.standard_normal(n) + 0.5 * rng.exponential(1, n)), predicted

    true, predicted = draw(3000)
    calibration = calibrate(true, predicted, coverage=0.8)
    assert calibration["n_calibration"] == 3000 and len(calibration["by_bin"]) == 6
    widths = [high - low for low, high in calibration["by_bin"]]
    assert widths == sorted(widths) and widths[-1] > 3 * widths[0]
    new_true, new_predicted = draw(20000)
    low, high = ranges(calibration, new_predicted)
    assert 0.78 <= coverage(new_true, low, high) <= 0.83
    for part in (new_predicted < 1960, new_predicted > 1990):  # it holds per bin, not only on average
        assert 0.76 <= coverage(new_true[part], low[part], high[part]) <= 0.85
    # a tiny calibration set gives one conservative range (finite-sample correction), not a crash
    small = calibrate(true[:9], predicted[:9])
    assert len(small["by_bin"]) == 1 and small["overall"] == [
        float((true[:9] - predicted[:9]).min()),
        float((true[:9] - predicted[:9]).max()),
    ]


def test_conformalised_quantiles_widen_too_narrow_ranges_to_the_stated_coverage():
    from poster_search.regression.conformal import calibrate_quantiles, coverage, ranges

    rng = np.random.default_rng(0)

    def draw(n):  # a model whose raw 10-90 % ranges are half as wide as they should be, and whose doubt varies by poster
        spread = rng.uniform(2, 15, n)
        predicted = rng.uniform(1940, 2020, n)
        true = predicted + rng.normal(0, spread)
        return true, predicted, np.stack([predicted - 0.64 * spread, predicted + 0.64 * spread], axis=1)

    true, predicted, quantiles = draw(3000)
    assert coverage(true, quantiles[:, 0], quantiles[:, 1]) < 0.6
    calibration = calibrate_quantiles(true, quantiles)
    assert calibration["correction"] > 0 and calibration["n_calibration"] == 3000
    new_true, new_predicted, new_quantiles = draw(20000)
    low, high = ranges(calibration, new_predicted, new_quantiles)
    assert 0.78 <= coverage(new_true, low, high) <= 0.83
    with pytest.raises(ValueError, match="quantiles"):
        ranges(calibration, new_predicted)


def test_mean_and_knn_baselines_compute_what_they_claim(tmp_path):
    location, vectors, years = synthetic_store(tmp_path / "s", n=200)
    train, test = content_split([str(i) for i in range(200)], 0.25, seed=0)
    assert np.all(mean_baseline(years[train], 5) == years[train].mean())
    # k-NN through Qdrant equals brute-force cosine k-NN over the training posters only
    sims = vectors[test] @ vectors[train].T
    expected = years[train][np.argsort(-sims, axis=1)[:, :5]].mean(axis=1)
    assert np.allclose(knn_exact(vectors[train], years[train], vectors[test], k=5), expected)
    # the store's exact search finds the same neighbours, never a test poster
    knn = knn_store_baseline(location, vectors[test], {"posters": {point_id(f"posters-{i}") for i in train}}, k=5)
    assert np.allclose(knn, expected)


def test_store_knn_merges_the_neighbours_of_several_collections(tmp_path):
    """Two collections of one store (with the same point ids in both): one ranking over their union."""
    location, a, years_a = synthetic_store(tmp_path / "s", n=120, seed=1, collection="a")
    _, b, years_b = synthetic_store(tmp_path / "s", n=80, seed=2, collection="b", reverse=True)
    queries, train_a, train_b = a[:20], np.arange(20, 120), np.arange(0, 60)
    train_vectors = np.concatenate([a[train_a], b[train_b]])
    train_years = np.concatenate([years_a[train_a], years_b[train_b]])
    expected = knn_exact(train_vectors, train_years, queries, k=7)
    ids = {"a": {point_id(f"a-{i}") for i in train_a}, "b": {point_id(f"b-{i}") for i in train_b}}
    assert np.allclose(knn_store_baseline(location, queries, ids, k=7), expected)
    only_a = knn_store_baseline(location, queries, {"a": ids["a"]}, k=7)
    assert np.allclose(only_a, knn_exact(a[train_a], years_a[train_a], queries, k=7)) and not np.allclose(only_a, expected)


def test_exact_knn_never_uses_a_copy_of_the_query():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 16)).astype(np.float32)
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    years = np.arange(1950.0, 2000.0)
    query = train[[7]]  # an exact copy of training poster 7, with the same content key
    keys = np.array([f"k{i}" for i in range(50)])
    assert knn_exact(train, years, query, k=1)[0] == 1957.0  # without keys the copy is its own nearest neighbour
    assert knn_exact(train, years, query, k=1, train_keys=keys, test_keys=np.array(["k7"]))[0] != 1957.0


def test_ridge_recovers_a_linear_rule_from_training_data_only():
    rng = np.random.default_rng(0)
    vectors = np.abs(rng.normal(size=(1500, 512)))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    years = 1940 + 300 * vectors[:, :8] @ rng.normal(size=8)
    train, test = np.arange(1200), np.arange(1200, 1500)
    ridge, alpha = ridge_baseline(vectors[train], years[train], vectors[test])
    assert np.abs(ridge - years[test]).mean() < 0.05 * np.abs(mean_baseline(years[train], 300) - years[test]).mean()
    assert alpha > 0


def test_soft_labels_are_ordered_distributions_whose_expected_value_is_the_year():
    from poster_search.regression.head import bin_centres, soft_labels

    years = np.array([1941.0, 1977.0, 2024.0])
    centres = bin_centres(years, 5.0)
    assert centres[0] < 1941 - 2.5 and centres[-1] > 2024 + 2.5 and np.allclose(np.diff(centres), 5.0)
    labels = soft_labels(years, centres, sigma=7.0)
    assert np.allclose(labels.sum(axis=1), 1.0) and (labels >= 0).all()
    assert abs(centres[labels[1].argmax()] - 1977) <= 2.5  # the mass sits at the true year
    assert labels[1][np.abs(centres - 1977) < 10].sum() > 0.8  # and spreads to neighbouring years, not to far ones
    assert abs(labels[1] @ centres - 1977) < 0.5  # away from the ends the expected value is the year itself


def train_small_head(tmp, target: HeadTarget):
    """A small head of `target` trained through the whole pipeline on a synthetic store of 1,500 points."""
    from poster_search.regression.config import HeadConfig
    from poster_search.regression.train import train_year_model

    location, _, _ = synthetic_store(tmp / "s", n=1500)
    # Keras spends about 0.1 s on each epoch whatever its size: a higher learning rate than the
    # default's learns this rule in 40 epochs (MAE about 0.65 of the mean's, as with 150 at 1e-3).
    config = HeadConfig(hidden=(64, 16), members=2, epochs=40, patience=8, learning_rate=5e-3, target=target)
    with PosterStore(location) as store:
        data = load_year_data(store)
    report = train_year_model(data, tmp / "model", test_size=0.2, seed=3, config=config, knn_k=5, progress=False)
    return location, data, report


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("year")
    location, _, report = train_small_head(tmp, "regression")
    return tmp, location, report


def test_head_learns_and_the_run_is_reported_and_saved(trained):
    tmp, _, report = trained
    head, mean = report.results["Keras head"], report.results["mean of training years"]
    assert report.n_train + report.n_test == 1500 and 240 <= report.n_test <= 360
    assert 0.1 * report.n_train < report.n_calibration < 0.2 * report.n_train
    assert head["mae"] < 0.75 * mean["mae"]  # about 0.6 when it learns, 1.0 when it does not
    assert {"Keras head", "mean of training years", "ridge", "5-NN"} <= set(report.results)
    assert report.results["5-NN"]["detail"] == "vgg16, Qdrant exact search" and report.results["ridge"]["detail"].startswith("alpha ")
    assert 0.72 < head["coverage"] < 0.88 and head["stated_coverage"] == 0.8  # about 3 standard errors of 300 test posters
    for f in ("model.keras", "model.json", "predicted_vs_true.png", "error_by_decade.png"):
        assert (tmp / "model" / f).stat().st_size > 0
    meta = json.loads((tmp / "model" / "model.json").read_text())
    assert meta["version"] == 2 and meta["embeddings"] == {"vgg16": SPEC.as_dict()}
    assert meta["vector_names"] == ["vgg16"] and meta["collections"] == ["posters"]
    assert not {"vector_name", "embedding", "collection"} & set(meta)  # one key for each thing, no old spellings beside it
    split = meta["split"]
    assert (split["seed"], split["n_train"], split["n_test"], split["n_calibration"]) == (
        3,
        report.n_train,
        report.n_test,
        report.n_calibration,
    )
    assert set(meta["target_scaling"]) == {"mean", "std"} and meta["test"]["Keras head"]["mae"] == head["mae"]
    low, high = meta["uncertainty"]["overall"]
    assert low < 0 < high and meta["uncertainty"]["n_calibration"] == report.n_calibration
    trained_on = (tmp / "model" / "trained_on.txt").read_text().split()
    assert len(trained_on) == report.n_train  # every poster fitted or calibrated on, by content key


def test_the_knn_baseline_of_a_training_run_is_the_stores_exact_search(trained):
    tmp, location, report = trained
    with PosterStore(location) as store:
        data = load_year_data(store)
    train, test = content_split(data.keys, 0.2, seed=3)
    numpy_knn = knn_exact(data.vectors[train], data.years[train], data.vectors[test], 5, data.keys[train], data.keys[test])
    expected, found = year_metrics(data.years[test], numpy_knn), report.results["5-NN"]
    assert (found["n"], found["mae"], found["bias"]) == (expected["n"], pytest.approx(expected["mae"]), pytest.approx(expected["bias"]))


def test_saved_model_reloads_and_predicts_the_same(trained):
    from poster_search.embedding.model import import_keras
    from poster_search.regression.head import predict_years
    from poster_search.regression.model_file import YearModel

    tmp, location, _ = trained
    with PosterStore(location) as store:
        data = load_year_data(store)
    first = YearModel.load(tmp / "model").predict(data.vectors[:20])
    again = YearModel.load(tmp / "model")
    assert np.allclose(again.predict(data.vectors[:20]), first, atol=1e-4)
    keras_model = import_keras().saving.load_model(tmp / "model" / "model.keras")  # what NumPy evaluates, by Keras itself
    assert np.allclose(predict_years(keras_model, data.vectors[:20]), first, atol=1e-3)
    assert first.min() > 1900 and first.max() < 2050  # years, not standardised values
    years, low, high = again.predict_with_ranges(data.vectors[:20])
    assert np.allclose(years, first, atol=1e-4) and (low < years).all() and (years < high).all()


@pytest.fixture(scope="module")
def trained_bins(tmp_path_factory):
    """The bins head (the CLI's default): its ranges are each poster's own."""
    tmp = tmp_path_factory.mktemp("bins")
    _, data, report = train_small_head(tmp, "bins")
    return tmp, data, report


def test_bins_head_gives_each_poster_its_own_calibrated_range(trained_bins):
    from poster_search.regression.conformal import CQR
    from poster_search.regression.model_file import YearModel

    tmp, data, report = trained_bins
    head = report.results["Keras head"]
    assert head["mae"] < 0.75 * report.results["mean of training years"]["mae"]
    assert 0.72 < head["coverage"] < 0.88  # the stated 80 %, on test posters the calibration never saw
    model = YearModel.load(tmp / "model")
    assert model.file.uncertainty["method"] == CQR and model.file.head["output"] == "median"
    out = model.outputs(data.vectors)
    years, quantiles = out[:, 0], out[:, 1:3]
    assert (quantiles[:, 0] <= years + 1e-3).all() and (years <= quantiles[:, 1] + 1e-3).all()
    again, low, high = model.predict_with_ranges(data.vectors)
    correction = model.file.uncertainty["correction"]
    assert np.allclose(again, years) and np.allclose(low, quantiles[:, 0] - correction) and np.allclose(high, quantiles[:, 1] + correction)
    widths = high - low
    assert widths.max() > 1.5 * widths.min()  # the width follows the model's doubt about each poster


def test_missing_and_broken_models_are_clear_errors(tmp_path):
    from poster_search.regression.model_file import YearModel

    with pytest.raises(PosterSearchError, match="no year model in"):
        YearModel.load(tmp_path)
    (tmp_path / "model.json").write_text("{ garbage")
    with pytest.raises(PosterSearchError, match="model.json is not a readable year model file"):
        YearModel.load(tmp_path)
    (tmp_path / "model.json").write_text("{}")
    with pytest.raises(PosterSearchError, match="model.json lacks embeddings, collections, store"):
        YearModel.load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"version": 9}))
    with pytest.raises(PosterSearchError, match="format version 9; this version of poster search reads up to 2"):
        YearModel.load(tmp_path)


def test_predict_year_on_a_new_poster_and_its_errors(tmp_path, random_embedder, poster_set):
    """Through the CLI: a store of generated posters, a model, a poster that was never ingested."""
    catalog, posters = poster_set(24, start_year=1950)
    location = StoreLocation(path=tmp_path / "store")
    with PosterStore(location) as store:
        ingest(read_catalog(catalog, posters), posters, store, random_embedder, progress=False)
    train = ["train-year", "--members", "1", "--epochs", "5", "--knn-k", "3", "--qdrant-path", location.path, "--model-dir", tmp_path / "m"]
    result = run_cli(*train, "--vector", "vgg16")
    assert result.returncode == 0, result.stderr
    assert (
        "Keras head" in result.stdout
        and "3-NN" in result.stdout
        and "vgg16, Qdrant exact search" in result.stdout
        and "ranges of the head hold" in result.stdout
    )
    result = run_cli(*train, "--vector", "vgg16_style")  # this store has no style vectors
    assert result.returncode == 1 and "no vector 'vgg16_style'" in result.stderr and "Traceback" not in result.stderr

    new = make_poster(tmp_path / "new.jpg", seed=999)
    # fp32, as the reference vector below is: bf16 (auto on a CPU with bf16) moves the year by ~0.01
    result = run_cli(
        "predict-year", new, "--model-dir", tmp_path / "m", "--weights", "random", "--json", env={"POSTER_SEARCH_PRECISION": "fp32"}
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"image", "year", "low", "high", "coverage", "test_mae"}
    # the same year and calibrated range as the saved model gives in Python for the same poster's vector
    from poster_search.regression.model_file import YearModel

    model = YearModel.load(tmp_path / "m")
    assert model.file.uncertainty["method"].startswith("conformalised quantiles")  # the default head's per-poster ranges
    year, low, high = model.predict_with_ranges(random_embedder.embed([new]))
    assert np.allclose([data["year"], data["low"], data["high"]], [year[0], low[0], high[0]], atol=1e-3)
    assert data["low"] < data["high"] and data["coverage"] == 0.8

    (tmp_path / "other.h5").write_bytes(b"other weights")
    for args, message in [
        ([new, "--model-dir", tmp_path / "nothing"], "no year model in"),
        ([new, "--model-dir", tmp_path / "m", "--weights", tmp_path / "other.h5"], "trained on embedding"),
        ([catalog, "--model-dir", tmp_path / "m", "--weights", "random"], "not an image"),
    ]:
        result = run_cli("predict-year", *args)
        assert result.returncode == 1 and "Traceback" not in result.stderr and message in result.stderr, result.stderr


def two_collection_store(tmp_path, n=(600, 400)):
    """One store, two collections with different year rules (two 'looks'), one poster stored in both."""
    location, _, _ = synthetic_store(tmp_path / "s", n=n[0], seed=1, collection="a")
    synthetic_store(tmp_path / "s", n=n[1], seed=2, collection="b", reverse=True)
    with PosterStore(location, "a") as a:
        shared = a.retrieve([point_id("a-0")], with_vectors=True)[0]
    with PosterStore(location, "b") as b:  # the same poster file ingested into b as well
        b.upsert([point_id("b-copy")], shared.vector[None], [shared.payload])
    return location


def read_collections(location, collections, vector="auto"):
    """regression.dataset.load_collections on a store opened for the call."""
    from poster_search.regression.dataset import load_collections

    with PosterStore(location, must_exist=True) as store:
        return load_collections(store, collections, vector)


def test_several_collections_are_read_as_one_dataset_with_copies_on_one_side(tmp_path):
    location = two_collection_store(tmp_path)
    data = read_collections(location, ["a", "b"])
    assert len(data) == 1001 and sorted(set(data.collections)) == ["a", "b"]
    assert (data.collections == "a").sum() == 600 and (data.collections == "b").sum() == 401
    copies = np.flatnonzero(data.keys == "a-1-0")
    assert len(copies) == 2 and set(data.collections[copies]) == {"a", "b"}
    for seed in range(5):
        train, test = content_split(data.keys, 0.2, seed)
        assert np.isin(copies, test).all() or np.isin(copies, train).all()
    with pytest.raises(PosterSearchError, match="named twice"):
        read_collections(location, ["a", "a"])
    with pytest.raises(PosterSearchError, match="vgg16_style"):
        read_collections(location, ["a"], ("vgg16", "vgg16_style"))
    synthetic_store(tmp_path / "s", n=50, collection="c", spec=EmbeddingSpec(weights="other"))
    with pytest.raises(PosterSearchError, match="embedded differently"):
        read_collections(location, ["a", "c"])


def test_train_on_several_collections_and_evaluate_on_each_through_the_cli(tmp_path):
    location = two_collection_store(tmp_path, n=(600, 400))
    store = ["--qdrant-path", location.path]
    common = ["--members", "1", "--epochs", "20", "--knn-k", "5", "--vector", "vgg16", *store]
    result = run_cli("train-year", *common, "--collection", "a", "--collection", "b", "--model-dir", tmp_path / "ab", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["by_collection"]) == {"a", "b"}
    assert sum(r["Keras head"]["n"] for r in report["by_collection"].values()) == report["n_test"]
    meta = json.loads((tmp_path / "ab" / "model.json").read_text())
    assert meta["collections"] == ["a", "b"]

    # evaluate on b: only the posters of b the model never saw, against both means
    result = run_cli("evaluate-year", "--model-dir", tmp_path / "ab", *store, "--collection", "b", "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert {"n", "mae", "median_ae", "rmse", "bias", "coverage", "stated_coverage", "by_decade", "baselines"} <= set(scores)
    assert scores["collections"] == ["b"] and scores["n"] + scores["left_out_trained_on"] == 401
    assert 0.7 * 401 < scores["left_out_trained_on"] < 0.9 * 401  # the training part of b (80 %, by content)
    assert scores["mae"] < scores["baselines"]["training_mean"]["mae"]
    assert sum(d["n"] for d in scores["by_decade"].values()) == scores["n"]
    everything = json.loads(
        run_cli("evaluate-year", "--model-dir", tmp_path / "ab", *store, "--collection", "b", "--include-trained", "--json").stdout
    )
    assert everything["n"] == 401 and everything["left_out_trained_on"] == 0

    # a model trained on a alone, evaluated on b (the opposite year trend): far worse than inside a
    result = run_cli("train-year", *common, "--collection", "a", "--model-dir", tmp_path / "a", "--json")
    assert result.returncode == 0, result.stderr
    inside = json.loads(result.stdout)["results"]["Keras head"]["mae"]
    across = json.loads(run_cli("evaluate-year", "--model-dir", tmp_path / "a", *store, "--collection", "b", "--json").stdout)
    assert across["n"] in (400, 401)  # only the copy of a's poster can have been trained on
    assert across["mae"] > inside and across["mae"] > across["baselines"]["store_mean"]["mae"]  # worse than knowing b's mean
    assert across["coverage"] < 0.6
    table = run_cli("evaluate-year", "--model-dir", tmp_path / "a", *store, "--collection", "b").stdout
    assert "always the training mean" in table and "ranges hold" in table

    # a store made with other weights is refused, in one line
    synthetic_store(tmp_path / "s", n=30, collection="other", spec=EmbeddingSpec(weights="other"))
    result = run_cli("evaluate-year", "--model-dir", tmp_path / "a", *store, "--collection", "other")
    assert result.returncode == 1 and "same weights" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("evaluate-year", "--model-dir", tmp_path / "a", *store, "--collection", "missing")
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_embeddings_are_compared_as_specs_so_a_jax_or_bf16_store_is_the_same_embedding(tmp_path):
    """The bug of the untyped model file: evaluate-year and multi-collection train-year compared the
    spec dicts, backend and precision included, and refused stores that predict-year accepted."""
    from poster_search.regression.evaluate import evaluate_model
    from poster_search.regression.model_file import YearModel

    location, _, _ = synthetic_store(tmp_path / "s", n=400, seed=1, collection="tf")
    jax_bf16 = EmbeddingSpec(weights="random", backend="jax", precision="bf16")
    synthetic_store(tmp_path / "s", n=200, seed=2, collection="gpu", spec=jax_bf16)
    data = read_collections(location, ["tf", "gpu"], "vgg16")  # one model from both: the same embedding
    assert len(data) == 600
    made = run_cli(
        "train-year",
        "--members",
        "1",
        "--epochs",
        "5",
        "--vector",
        "vgg16",
        "--qdrant-path",
        location.path,
        "--collection",
        "tf",
        "--model-dir",
        tmp_path / "m",
    )
    assert made.returncode == 0, made.stderr
    scored = run_cli("evaluate-year", "--model-dir", tmp_path / "m", "--qdrant-path", location.path, "--collection", "gpu", "--json")
    assert scored.returncode == 0, scored.stderr  # refused before: "needs 'vgg16' made with ... but this store has embedding {...'jax'...}"
    assert json.loads(scored.stdout)["n"] == 200
    model = YearModel.load(tmp_path / "m")
    other = EmbeddingSpec(weights="other")
    synthetic_store(tmp_path / "s", n=20, collection="other", spec=other)
    with pytest.raises(PosterSearchError, match="needs 'vgg16' made with"):
        evaluate_model(model, read_collections(location, ["other"], "vgg16"))


def test_a_model_file_of_the_first_format_is_upgraded_on_reading(trained, tmp_path):
    """model.json as version 1 wrote it (old and new keys side by side, no version): read through upgrade()."""
    import shutil

    from poster_search.regression.model_file import FORMAT_VERSION, YearModel

    tmp, location, _ = trained
    shutil.copytree(tmp / "model", tmp_path / "old")
    current = json.loads((tmp_path / "old" / "model.json").read_text())
    old = {k: v for k, v in current.items() if k not in ("version", "embeddings", "vector_names", "collections", "training_mean")}
    old |= {"embedding": current["embeddings"]["vgg16"], "vector_name": "vgg16", "collection": "posters"}
    (tmp_path / "old" / "model.json").write_text(json.dumps(old))
    model = YearModel.load(tmp_path / "old")
    assert model.file.version == FORMAT_VERSION and model.vector_names == ("vgg16",) and model.file.collections == ("posters",)
    assert model.specs["vgg16"] == SPEC and model.file.training_mean == current["target_scaling"]["mean"]
    with PosterStore(location) as store:
        vectors = load_year_data(store).vectors[:10]
    assert np.allclose(model.predict(vectors), YearModel.load(tmp / "model").predict(vectors))


def test_the_calibration_posters_hold_exactly_the_stated_share(trained_bins):
    """Split conformal's own guarantee, checked where it is exact (on the calibration posters the
    correction was chosen on): at least 80 %, and no more than the finite-sample rounding allows.
    A calibration bug (a wrong quantile, the wrong posters) fails here, whatever the test draw."""
    from poster_search.regression.dataset import calibration_split
    from poster_search.regression.model_file import YearModel
    from poster_search.regression.train import CALIBRATION_SHARE

    tmp, data, report = trained_bins
    model = YearModel.load(tmp / "model")
    train, _ = content_split(data.keys, 0.2, seed=3)
    _, calibration = calibration_split(data.keys[train], CALIBRATION_SHARE, 3)
    rows = train[calibration]
    assert len(rows) == report.n_calibration
    _, low, high = model.predict_with_ranges(data.vectors[rows])
    inside = np.mean((data.years[rows] >= low - 1e-3) & (data.years[rows] <= high + 1e-3))
    assert 0.8 <= inside <= 0.8 + 2 / len(rows) + 1e-9, inside
