"""The year of a poster that was never ingested."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from embedding.images import ImageSource, decode_poster
from errors import UserError
from regression.model_file import HEAD_NAME, YearModel


@dataclass(frozen=True)
class YearPrediction:
    year: float
    low: float  # the range that held `coverage` of held-out errors for predictions like this one
    high: float
    coverage: float
    test_mae: float

    def as_dict(self) -> dict:
        return asdict(self)

    def sentence(self) -> str:
        return (
            f"predicted year {self.year:.0f} ({self.coverage:.0%} range {self.low:.0f}-{self.high:.0f}, "
            f"from held-out errors; test MAE {self.test_mae:.1f} years)"
        )


def predict_year(image: ImageSource, model: YearModel, embedder) -> YearPrediction:
    """Embed `image` with the model's own embedding and predict its year.

    `embedder` must make the model's embedding: Embedder(weights, style=model.uses_style).
    """
    spec = embedder.style_spec if model.uses_style else embedder.spec
    if spec != model.spec:
        raise UserError(
            f"the year model was trained on embedding {model.spec.describe()}, "
            f"but these weights give {spec.describe() if spec else 'no style vector'}: use the same --weights"
        )
    base, style = embedder.embed_both(decode_poster(image).pixels[None])
    vector = style if model.uses_style else base
    year = float(model.predict(vector)[0])
    low, high = model.range_for(year)
    return YearPrediction(year, low, high, model.meta["uncertainty"]["coverage"], model.meta["test"][HEAD_NAME]["mae"])
