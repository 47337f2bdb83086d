"""A saved year model: the Keras file plus what is needed to use it honestly later."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedding.spec import EmbeddingSpec
from errors import UserError
from store.schema import STYLE_VECTOR_NAME

MODEL_FILE = "model.keras"
META_FILE = "model.json"
COVERAGE = 0.8  # the uncertainty range holds this share of held-out errors
MIN_RESIDUALS_PER_DECADE = 30  # fewer than this: use the overall range
HEAD_NAME = "Keras head"  # the head's key among the test results


def residual_ranges(true: np.ndarray, predicted: np.ndarray) -> dict:
    """Quantiles of held-out errors (true - predicted), overall and by decade of the prediction.

    Errors depend on the prediction: a model that says 1950 is usually wrong in a different
    direction than one that says 2000 (predictions are pulled towards the mean).
    """
    low_q, high_q = (1 - COVERAGE) / 2, 1 - (1 - COVERAGE) / 2
    residuals = true - predicted
    decades = (np.round(predicted) // 10 * 10).astype(int)
    by_decade = {
        str(d): [float(np.quantile(residuals[decades == d], low_q)), float(np.quantile(residuals[decades == d], high_q))]
        for d in np.unique(decades)
        if (decades == d).sum() >= MIN_RESIDUALS_PER_DECADE
    }
    return {
        "coverage": COVERAGE,
        "overall": [float(np.quantile(residuals, low_q)), float(np.quantile(residuals, high_q))],
        "by_predicted_decade": by_decade,
    }


@dataclass
class YearModel:
    model: object  # keras.Model: embedding -> year
    meta: dict

    @property
    def spec(self) -> EmbeddingSpec:
        return EmbeddingSpec.from_dict(self.meta["embedding"])

    @property
    def uses_style(self) -> bool:
        return self.meta.get("vector_name") == STYLE_VECTOR_NAME

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(folder / MODEL_FILE)
        (folder / META_FILE).write_text(json.dumps(self.meta, indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, folder: Path) -> "YearModel":
        if not (folder / MODEL_FILE).is_file() or not (folder / META_FILE).is_file():
            raise UserError(f"no year model in {folder}: run `python cli.py train-year` first (or pass --model-dir)")
        import regression.head  # noqa: F401  registers the custom layer before loading
        from embedding.model import import_keras

        try:
            meta = json.loads((folder / META_FILE).read_text())
            model = import_keras().saving.load_model(folder / MODEL_FILE)
        except Exception as e:
            raise UserError(f"cannot load the year model in {folder}: {str(e).splitlines()[0][:200]}") from None
        return cls(model, meta)

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        from regression.head import predict_years

        return predict_years(self.model, vectors)

    def range_for(self, predicted: float) -> tuple[float, float]:
        """The COVERAGE range of true years around one prediction, from held-out errors."""
        ranges = self.meta["uncertainty"]
        low, high = ranges["by_predicted_decade"].get(str(int(round(predicted) // 10 * 10)), ranges["overall"])
        return predicted + low, predicted + high
