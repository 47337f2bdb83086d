"""The whole collection as one (n_movies, embedding_size) array, with what each row is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

from ..tables import Tabular
from .collection import PosterStore
from .integrity import check_intact
from .schema import PREDICTED_HIGH, PREDICTED_LOW, PREDICTED_YEAR, VECTOR_NAME


@dataclass
class Embeddings(Tabular):
    ids: np.ndarray  # (n,) point ids (str)
    vectors: np.ndarray  # (n, d) float32, L2-normalised
    titles: np.ndarray  # (n,) str
    years: np.ndarray  # (n,) float64, NaN where the catalog had no year
    files: np.ndarray  # (n,) poster file names
    sha256: np.ndarray  # (n,) content hash of each poster file ("" where unknown)
    # the year model's (payload predicted_*, predict-year --stored), NaN where none: never mixed into `years`
    predicted_years: np.ndarray | None = None
    predicted_low: np.ndarray | None = None
    predicted_high: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def records(self) -> list[dict]:
        """One row per poster: id, title, year, predicted year, file, sha256 and its vector (an array)."""
        predicted = self.predicted_years if self.predicted_years is not None else np.full(len(self), np.nan)
        return [
            {"id": i, "title": t, "year": y, "predicted_year": p, "file": f, "sha256": h, "vector": v}
            for i, t, y, p, f, h, v in zip(self.ids, self.titles, self.years, predicted, self.files, self.sha256, self.vectors)
        ]


def load_embeddings(store: PosterStore, vector_name: str = VECTOR_NAME) -> Embeddings:
    """Pull every vector (of `vector_name`) and its payload back out of the store, sorted by id (a stable order)."""
    dim = store.stored_spec(vector_name).dim  # also a clear error if there is no usable collection
    check_intact(store)  # points whose vector or payload was lost would be left out without a word
    points = sorted(store.points(with_vectors=True, vector_name=vector_name), key=lambda p: p.id)
    posters = [p.poster for p in points]
    return Embeddings(
        ids=np.array([p.id for p in points], dtype=str),
        vectors=np.stack([cast(np.ndarray, p.vector) for p in points]) if points else np.zeros((0, dim), dtype=np.float32),
        titles=np.array([p.title for p in posters], dtype=str),
        years=np.array([np.nan if p.year is None else p.year for p in posters], dtype=np.float64),
        files=np.array([p.file for p in posters], dtype=str),
        sha256=np.array([p.sha256 for p in posters], dtype=str),
        **{
            name: np.array([np.nan if getattr(p, field) is None else getattr(p, field) for p in posters], dtype=np.float64)
            for name, field in (("predicted_years", PREDICTED_YEAR), ("predicted_low", PREDICTED_LOW), ("predicted_high", PREDICTED_HIGH))
        },
    )
