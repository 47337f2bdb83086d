"""The year model that ships with poster search (regression/shipped/): its record, that every
command dates posters with it until a model is trained, and the command that rebuilds it."""

import json
import os

import pytest

from poster_search.embedding.spec import EmbeddingSpec, spec_for_weights
from poster_search.regression.model_file import YearModel
from poster_search.regression.shipped import SHIPPED_DIR
from tests.conftest import catalog_rows, generated_catalog, ingest, one_line_error, payloads, real_subset, run_cli


def test_the_shipped_model_reads_the_default_vector_and_records_its_unseen_source_figures():
    model = YearModel.load(SHIPPED_DIR)
    assert model.vector_names == ("vgg16",)  # what every ingest stores: no --style, no re-embedding
    assert model.specs["vgg16"].same_values(spec_for_weights("imagenet"))  # Keras' own download, or the shared copy
    assert not model.specs["vgg16"].same_values(spec_for_weights(None))  # random weights are another embedding
    assert (SHIPPED_DIR / "model.keras").stat().st_size < 8 * 2**20  # the head alone, without optimizer state
    assert set(model.file.collections) == {"posters-era", "posters-imdb"}
    directions = model.file.cross_source["directions"]
    assert set(directions) == {"posters-era -> posters-imdb", "posters-imdb -> posters-era"}
    for d in directions.values():
        assert d["n"] > 3000 and 0 < d["mae"] < d["training_mean_mae"]  # better than knowing nothing, on a source it never saw
        assert 0.5 < d["coverage_calibrated_on_other_direction"] < 1
    assert model.file.uncertainty["correction"] == model.file.cross_source["correction"]
    assert model.file.uncertainty["correction"] > model.file.uncertainty["in_source"]["correction"]  # wider for unseen sources
    assert len(model.trained_on) == model.file.split["n_train"]


def test_spec_equality_counts_the_shared_weights_file_as_imagenet_only_for_the_year_model():
    shared, keras = EmbeddingSpec(weights="sha256:5ffcc3e2b95af530"), EmbeddingSpec(weights="imagenet")
    assert shared.same_values(keras) and keras.same_values(shared)
    assert shared != keras  # a store still records which file made its vectors
    assert not EmbeddingSpec(weights="sha256:0123456789abcdef").same_values(keras)
    assert not shared.same_values(None)


@pytest.mark.e2e
def test_predict_year_uses_the_shipped_model_until_one_is_trained(tmp_path, era_data, real_weights):
    rows = catalog_rows(era_data[0])[:4]
    catalog, posters = real_subset(era_data, rows, tmp_path / "mine")
    store = tmp_path / "store"
    ingest(catalog, posters, store, weights=real_weights)
    shipped = YearModel.load(SHIPPED_DIR)
    env = {**os.environ, "VGG16_WEIGHTS": str(real_weights)}

    result = run_cli("predict-year", "--stored", "--all", "--qdrant-path", store, "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1]["summary"]["dated"] == 4
    for p in payloads(store).values():
        assert p["predicted_by"] == shipped.identity and p["predicted_low"] <= p["predicted_year"] <= p["predicted_high"]
        assert 1900 <= p["predicted_year"] <= 2030

    image = posters / rows[0]["filename"]
    result = run_cli("predict-year", image, "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["test_mae"] == pytest.approx(shipped.file.test_mae)

    # ./year_model, once there, is the model: a damaged one is said, never silently replaced
    (tmp_path / "year_model").mkdir()
    (tmp_path / "year_model" / "model.json").write_text("{")
    result = run_cli("predict-year", image, cwd=tmp_path, env=env)
    assert "year_model" in one_line_error(result, "not a readable year model file")


@pytest.mark.e2e
def test_the_shipped_model_refuses_vectors_of_other_weights_in_one_line(tmp_path):
    catalog, posters = generated_catalog(tmp_path / "c", 3)
    ingest(catalog, posters, tmp_path / "store")  # seeded random weights
    result = run_cli("predict-year", "--stored", "--qdrant-path", tmp_path / "store", cwd=tmp_path)
    assert "the year model needs 'vgg16' made with" in one_line_error(result, "same weights")


@pytest.mark.e2e
def test_the_build_command_ingests_both_sources_and_their_views_and_writes_a_model(tmp_path):
    from poster_search.regression.ship import main

    data = tmp_path / "data"
    generated_catalog(data / "posters-era", 14, seed=0, start_year=1940)
    generated_catalog(data / "posters-imdb", 14, seed=100, start_year=1960)
    out, store = tmp_path / "model", tmp_path / "store"
    args = ["--data", str(data), "--weights", "random", "--qdrant-path", str(store), "--out", str(out), "--members", "1", "--epochs", "2"]
    main(args)
    record = json.loads((out / "model.json").read_text())
    assert record["collections"] == ["posters-era", "posters-imdb"] and record["vector_names"] == ["vgg16"]
    assert record["augmented"]["collections"] == ["posters-era-views", "posters-imdb-views"]
    assert set(record["cross_source"]["directions"]) == {"posters-era -> posters-imdb", "posters-imdb -> posters-era"}
    assert record["uncertainty"]["correction"] == record["cross_source"]["correction"]
    assert len(payloads(store, "posters-imdb-views")) == 14
    model = YearModel.load(out)  # loads without TensorFlow, as predict-year does
    assert model.file.uncertainty["calibrated_on"] and len(model.trained_on) == record["split"]["n_train"]
