"""Augmented views for training the year model: the view itself, `ingest --augment`, `train-year --augmented`."""

import json

import numpy as np
import pytest

from poster_search.embedding.augment import augment
from poster_search.embedding.images import decode_poster, load_rgb
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.embeddings import load_embeddings
from tests.conftest import make_poster, run_cli

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer


def test_the_view_is_fixed_per_poster_and_still_the_same_poster(tmp_path):
    path = make_poster(tmp_path / "a.jpg", seed=1, size=(256, 384))
    image, digest = load_rgb(path)
    first, again = augment(image, digest), augment(image, digest)
    assert np.array_equal(np.asarray(first), np.asarray(again))  # seeded by content: reproducible, resumable
    other = augment(image, "f" * 64)
    assert not np.array_equal(np.asarray(first.resize((64, 96))), np.asarray(other.resize((64, 96))))
    assert 150 <= first.width <= 400  # the widths posters come in from other sources
    # changed, yet recognisably the same poster
    small = np.asarray(image.convert("L").resize((32, 48)), float).ravel()
    assert np.corrcoef(small, np.asarray(first.convert("L").resize((32, 48)), float).ravel())[0, 1] > 0.5
    plain, augmented = decode_poster(path), decode_poster(path, augmented=True)
    assert plain.sha256 == augmented.sha256 and augmented.pixels.shape == plain.pixels.shape == (224, 224, 3)
    assert np.abs(plain.pixels.astype(int) - augmented.pixels).mean() > 5


def test_augmented_collection_trains_the_year_model_on_views_of_fitting_posters_only(tmp_path, poster_set):
    catalog, posters = poster_set(24, start_year=1950)
    path = tmp_path / "store"
    common = ["--catalog", catalog, "--posters", posters, "--weights", "random", "--qdrant-path", path]
    assert run_cli("ingest", *common).returncode == 0
    result = run_cli("ingest", *common, "--augment", "--collection", "views")
    assert result.returncode == 0, result.stderr
    again = run_cli("ingest", *common, "--augment", "--collection", "views")
    assert again.returncode == 0 and "already stored 24" in again.stdout  # resumable like any ingest

    location = StoreLocation(path=path)
    with PosterStore(location, "posters") as plain:  # the embedded store: one open at a time
        spec, stored = plain.stored_spec(), load_embeddings(plain)
    with PosterStore(location, "views") as views:
        view_spec, view = views.stored_spec(), load_embeddings(views)
    assert view_spec.decode == spec.decode + ",augment-v2" and view_spec.weights == spec.weights
    assert list(stored.ids) == list(view.ids) and len(view) == 24 and list(stored.sha256) == list(view.sha256)
    assert np.sum(stored.vectors * view.vectors, axis=1).max() < 0.99999  # other pixels, other vectors

    # the views are another embedding: they never go into the plain collection
    mixed = run_cli("ingest", *common, "--augment")
    assert mixed.returncode == 1 and "differs in decode" in mixed.stderr and "Traceback" not in mixed.stderr

    train = ["train-year", "--members", "1", "--epochs", "3", "--knn-k", "3", "--vector", "vgg16", "--qdrant-path", path]
    result = run_cli(*train, "--model-dir", tmp_path / "m", "--augmented", "views", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    n_fit = report["n_train"] - report["n_calibration"]
    assert report["n_augmented_views"] == n_fit  # one view per fitting poster; none of a calibration or test poster
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["augmented"] == {"collections": ["views"], "n_views": n_fit}

    for args, message in [
        (["--augmented", "posters"], "named both with --collection and with --augmented"),
        (["--augmented", "nothing"], "nothing"),
    ]:
        bad = run_cli(*train, "--model-dir", tmp_path / "bad", *args)
        assert bad.returncode == 1 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    with PosterStore(location, "other") as other:  # a plain collection named as augmented views
        other.prepare(spec)
    bad = run_cli(*train, "--model-dir", tmp_path / "bad", "--augmented", "other")
    assert bad.returncode == 1 and "must be made by `ingest --augment`" in bad.stderr


def test_views_differ_in_the_version_of_the_art_a_source_keeps(tmp_path):
    """Theatrical one-sheets carry a billing block and a tagline that key art lacks: a view draws
    them on, or cuts off where they sit."""
    from poster_search.embedding.augment import _art_only, _with_credits

    image, _ = load_rgb(make_poster(tmp_path / "a.jpg", seed=2, size=(256, 384)))
    rng = np.random.default_rng(0)
    credited = np.asarray(_with_credits(image, rng), int) - np.asarray(image, int)
    changed_rows = np.abs(credited).sum(axis=(1, 2)) > 0
    assert changed_rows[300:].mean() > 0.3 and not changed_rows[60:260].any()  # the foot, never the art's middle
    cut = _art_only(image, rng)
    assert cut.width == image.width and 0.7 * image.height < cut.height < 0.85 * image.height
