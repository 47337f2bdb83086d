"""What the head must beat, on the same split: the mean year, ridge regression, k-NN (exact, through the store)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..search.batch import EXACT_UP_TO, nearest_accepted
from ..store.collection import PosterStore
from ..store.connection import StoreLocation
from ..store.schema import VECTOR_NAME

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
    The same search as `knn_store_baseline`, in numpy: for arrays that are not in a store (the
    year-model experiments in experiments/, tests).
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


def knn_store_baseline(
    location: StoreLocation,
    test_vectors: np.ndarray,
    train_ids: dict[str, set[str]],
    k: int = 10,
    vector_name: str = VECTOR_NAME,
    progress: bool = False,
) -> np.ndarray:
    """Each test poster's year as the mean year of its k most similar *training* posters, found by Qdrant.

    `train_ids` maps each collection to its training point ids: every collection is searched with
    exact search (not HNSW; through the index past EXACT_UP_TO posters), hits outside the training part are dropped (test posters, and so the
    query's own copies, which the content split puts on the test side with it), and the
    collections' hits are merged by cosine. Opens the store only for these queries.
    """
    found: list[list] = [[] for _ in range(len(test_vectors))]
    for collection, ids in train_ids.items():
        with PosterStore(location, collection, must_exist=True) as store:
            exact = store.count() <= EXACT_UP_TO  # past it, a scan per test poster would make the baseline quadratic
            hits = nearest_accepted(
                store,
                list(test_vectors),
                k,
                lambda _, hit, ids=ids: str(hit.id) in ids,  # type: ignore[misc]  # a lambda with a default: python/mypy#15459
                vector_name,
                payload=("year",),
                progress=progress,
                desc=f"k-NN baseline ({collection})",
                exact=exact,
            )
        for mine, more in zip(found, hits):
            mine.extend(more)
    return np.array([np.mean([h.poster.year for h in sorted(hits, key=lambda h: -h.score)[:k]]) for hits in found])
