"""Vectors and years pulled back out of the Qdrant collection, and a seeded train/test split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from errors import UserError
from store.collection import PosterStore
from store.embeddings import load_embeddings
from store.schema import VECTOR_NAME


@dataclass
class YearData:
    ids: np.ndarray  # (n,) point ids, sorted: the split depends only on the seed and the ids
    vectors: np.ndarray  # (n, d)
    years: np.ndarray  # (n,) float
    titles: np.ndarray
    undated: int  # points left out for having no year

    def __len__(self) -> int:
        return len(self.ids)


def load_year_data(store: PosterStore, vector_name: str = VECTOR_NAME) -> YearData:
    """Every dated point's vector and year (batched scroll); undated points are counted, not used."""
    everything = load_embeddings(store, vector_name)
    dated = ~np.isnan(everything.years)
    if dated.sum() < 10:
        raise UserError(f"collection '{store.collection}' has {dated.sum()} dated posters: too few to train and test a year model")
    return YearData(
        ids=everything.ids[dated],
        vectors=everything.vectors[dated],
        years=everything.years[dated],
        titles=everything.titles[dated],
        undated=int((~dated).sum()),
    )


def split_indices(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint, sorted train and test row indices; the same for the same n, test_size and seed."""
    if not 0 < test_size < 1:
        raise UserError(f"--test-size must be between 0 and 1, not {test_size}")
    train, test = train_test_split(np.arange(n), test_size=test_size, random_state=seed)
    return np.sort(train), np.sort(test)
