"""The VGG16 embedder itself: a real Keras model (seeded random weights where weights don't matter)."""

import numpy as np
import pytest

from poster_search.embedding.images import ImageError
from poster_search.errors import PosterSearchError
from tests.conftest import make_poster

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer


def test_vectors_are_512_d_unit_and_deterministic(random_embedder, tmp_path):
    paths = [make_poster(tmp_path / f"{i}.jpg", seed=i) for i in range(3)]
    vectors = random_embedder.embed(paths)
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(random_embedder.embed(paths[::-1])[::-1], vectors, atol=1e-5)  # batch order doesn't matter
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)


def test_random_weights_are_the_same_in_every_build(random_embedder, tmp_path):
    from poster_search.embedding.model import Embedder

    path = make_poster(tmp_path / "p.jpg", seed=7)
    assert np.allclose(Embedder(None).embed([path]), random_embedder.embed([path]), atol=1e-5)


def test_the_model_is_vgg16_conv_base_average_pooled(random_embedder):
    model = random_embedder.model
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 512)
    assert [layer.name for layer in model.layers][-2:] == ["block5_pool", "global_average_pooling2d"]
    assert sum(int(np.prod(w.shape)) for w in model.weights) == 14_714_688  # VGG16 notop


def test_bad_images_and_weights_are_clear_errors(random_embedder, tmp_path):
    (tmp_path / "bad.jpg").write_text("not an image")
    with pytest.raises(ImageError, match="not an image"):
        random_embedder.embed([tmp_path / "bad.jpg"])
    assert random_embedder.embed([]).shape == (0, 512)
    from poster_search.embedding.model import Embedder

    (tmp_path / "w.h5").write_bytes(b"not hdf5")
    with pytest.raises(PosterSearchError, match="could not load VGG16 weights from"):
        _ = Embedder(str(tmp_path / "w.h5")).model


def test_real_weights_load_and_make_a_different_embedding(real_embedder, random_embedder, tmp_path):
    real = real_embedder
    assert real.spec.weights == "sha256:5ffcc3e2b95af530"
    path = make_poster(tmp_path / "p.jpg", seed=3)
    assert not np.allclose(real.embed([path]), random_embedder.embed([path]), atol=1e-2)
