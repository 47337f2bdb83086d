"""A saved year model: the Keras file plus what is needed to use it honestly later."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedding.spec import EmbeddingSpec
from errors import UserError
from regression.conformal import ranges
from store.schema import STYLE_VECTOR_NAME, VECTOR_NAME

MODEL_FILE = "model.keras"
META_FILE = "model.json"
TRAINED_ON_FILE = "trained_on.txt"  # content keys (sha256) of every poster the model was fitted or calibrated on
HEAD_NAME = "Keras head"  # the head's key among the test results


@dataclass
class YearModel:
    model: object  # keras.Model: embedding -> year
    meta: dict

    trained_on: frozenset[str] = frozenset()

    @property
    def vector_names(self) -> tuple[str, ...]:
        """The stored vectors the model reads, side by side in this order."""
        return tuple(self.meta.get("vector_names") or [self.meta.get("vector_name", VECTOR_NAME)])

    @property
    def specs(self) -> dict[str, EmbeddingSpec]:
        stored = self.meta.get("embeddings") or {self.vector_names[0]: self.meta["embedding"]}
        return {name: EmbeddingSpec.from_dict(spec) for name, spec in stored.items()}

    @property
    def spec(self) -> EmbeddingSpec:
        return self.specs[self.vector_names[0]]

    @property
    def uses_style(self) -> bool:
        return STYLE_VECTOR_NAME in self.vector_names

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(folder / MODEL_FILE)
        (folder / META_FILE).write_text(json.dumps(self.meta, indent=2, ensure_ascii=False))
        (folder / TRAINED_ON_FILE).write_text("".join(f"{k}\n" for k in sorted(self.trained_on)))

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
        keys = (folder / TRAINED_ON_FILE).read_text().split() if (folder / TRAINED_ON_FILE).is_file() else []
        return cls(model, meta, frozenset(keys))

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        from regression.head import predict_years

        return predict_years(self.model, vectors)

    def predict_with_ranges(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each poster's year and its calibrated range: (years, low, high)."""
        from regression.head import predict_with_quantiles

        years, quantiles = predict_with_quantiles(self.model, vectors)
        low, high = ranges(self.meta["uncertainty"], years, quantiles)
        return years, low, high
