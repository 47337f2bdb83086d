"""The year of a poster that was never ingested."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from embedding.images import ImageSource, decode_poster
from errors import UserError
from regression.model_file import YearModel


@dataclass(frozen=True)
class YearPrediction:
    year: float
    low: float  # the conformal range: calibrated to hold `coverage` of true years of posters like the calibration ones
    high: float
    coverage: float
    test_mae: float

    def as_dict(self) -> dict:
        return asdict(self)

    def sentence(self) -> str:
        return (
            f"predicted year {self.year:.0f} ({self.coverage:.0%} range {self.low:.0f}-{self.high:.0f}, "
            f"calibrated; test MAE {self.test_mae:.1f} years)"
        )


def predict_year(image: ImageSource, model: YearModel, embedder) -> YearPrediction:
    """Embed `image` with the model's own embedding and predict its year.

    `embedder` must make the model's embedding: `model_embedder(model, weights)`.
    """
    from store.schema import STYLE_VECTOR_NAME

    made = {name: embedder.style_spec if name == STYLE_VECTOR_NAME else embedder.spec for name in model.vector_names}
    for name, spec in made.items():
        if spec != model.specs[name]:
            raise UserError(
                f"the year model was trained on embedding {model.specs[name].describe()}, "
                f"but these weights give {spec.describe() if spec else 'no style vector'}: use the same --weights"
            )
    base, style = embedder.embed_both(decode_poster(image).pixels[None])
    vector = np.concatenate([style if name == STYLE_VECTOR_NAME else base for name in model.vector_names], axis=1)
    years, low, high = model.predict_with_ranges(vector)
    return YearPrediction(float(years[0]), float(low[0]), float(high[0]), model.file.coverage, model.file.test_mae)


def model_embedder(model: YearModel, weights: str | None = None, long_lived: bool = False):
    """The embedder of the model's own embedding, on the CPU's fastest runtime (no TensorFlow); int8 if the model
    was trained on an int8 collection. `weights` as for the CLI's --weights."""
    from embedding.embedders import query_embedder
    from embedding.spec import resolve_weights

    return query_embedder(resolve_weights(weights), model.uses_style, model.file.spec, model.file.calibration, long_lived=long_lived)
