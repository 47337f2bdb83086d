"""What the head must beat, on the same split: the mean year, ridge regression, k-NN (exact)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from search.batch import nearest_accepted
from store.collection import PosterStore
from store.schema import VECTOR_NAME

RIDGE_ALPHAS = np.logspace(-1, 5, 25)


def mean_baseline(train_years: np.ndarray, n_test: int) -> np.ndarray:
    """Always the training mean: what 'no information' scores."""
    return np.full(n_test, float(train_years.mean()))


def ridge_baseline(train_vectors: np.ndarray, train_years: np.ndarray, test_vectors: np.ndarray) -> tuple[np.ndarray, float]:
    """Standardised features, ridge with its penalty chosen by efficient leave-one-out CV on the training part."""
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    model.fit(train_vectors, train_years)
    return model.predict(test_vectors), float(model[-1].alpha_)


def knn_exact(
    train_vectors: np.ndarray,
    train_years: np.ndarray,
    test_vectors: np.ndarray,
    k: int = 10,
    train_keys: np.ndarray | None = None,
    test_keys: np.ndarray | None = None,
    block: int = 512,
) -> np.ndarray:
    """Mean year of the k most similar training posters (exact cosine: every vector is unit length).

    Copies of the query (same content key) are never its neighbours, even if the split let one in.
    Exact search in numpy over the arrays read from the store, so training never holds the store
    open; for collections too large for memory this is the place for the store's exact
    nearest-neighbour query.
    """
    train = np.asarray(train_vectors, np.float32)
    out = np.empty(len(test_vectors))
    for start in range(0, len(test_vectors), block):
        sims = np.asarray(test_vectors[start : start + block], np.float32) @ train.T
        if train_keys is not None and test_keys is not None:
            sims[test_keys[start : start + block, None] == train_keys[None, :]] = -np.inf
        nearest = np.argpartition(-sims, min(k, train.shape[0] - 1), axis=1)[:, :k]
        out[start : start + block] = train_years[nearest].mean(axis=1)
    return out


def knn_qdrant_baseline(
    store: PosterStore,
    test_vectors: np.ndarray,
    train_ids: set[str],
    k: int = 10,
    vector_name: str = VECTOR_NAME,
    progress: bool = False,
) -> np.ndarray:
    """Each test poster's year as the mean year of its k most similar *training* posters, found by Qdrant."""
    hits = nearest_accepted(
        store, list(test_vectors), k, lambda _, hit: str(hit.id) in train_ids, vector_name, payload=("year",), progress=progress, desc="k-NN baseline"
    )
    return np.array([np.mean([h.payload["year"] for h in found]) for found in hits])
