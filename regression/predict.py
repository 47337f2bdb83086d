"""The year of a poster that was never ingested."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..embedding.images import ImageSource, decode_poster
from ..errors import BadInput
from .model_file import YearModel


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
    check_embedder(model, embedder)
    return _predict_pixels(decode_poster(image).pixels[None], model, embedder)[0]


def check_embedder(model: YearModel, embedder) -> None:
    """BadInput unless `embedder` makes the embedding(s) the model was trained on."""
    from ..store.schema import STYLE_VECTOR_NAME

    made = {name: embedder.style_spec if name == STYLE_VECTOR_NAME else embedder.spec for name in model.vector_names}
    for name, spec in made.items():
        if not model.specs[name].same_values(spec):
            raise BadInput(
                f"the year model was trained on embedding {model.specs[name].describe()}, "
                f"but these weights give {spec.describe() if spec else 'no style vector'}: use the same --weights"
            )


def _predict_pixels(pixels: np.ndarray, model: YearModel, embedder) -> list[YearPrediction]:
    from ..store.schema import STYLE_VECTOR_NAME

    base, style = embedder.embed_both(pixels)
    vector = np.concatenate([style if name == STYLE_VECTOR_NAME else base for name in model.vector_names], axis=1)
    years, low, high = model.predict_with_ranges(vector)
    return [YearPrediction(float(y), float(lo), float(hi), model.file.coverage, model.file.test_mae) for y, lo, hi in zip(years, low, high)]


@dataclass(frozen=True)
class ImageYear:
    """One image of a batch: its prediction, or why there is none."""

    image: str
    prediction: YearPrediction | None
    error: str = ""

    def as_dict(self) -> dict:
        return {"image": self.image, **(self.prediction.as_dict() if self.prediction else {"error": self.error})}


def image_files(paths: Sequence[Path]) -> list[Path]:
    """The images to date: each file as given, and every poster image under each folder (the
    folder ingest's rules, ingest/folder.py: hidden files and non-poster artwork skipped, no link
    leading outside followed)."""
    from ..ingest.folder import poster_files

    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = poster_files(path)
            if not found:
                raise BadInput(f"no poster images in folder {path}")
            files += found
        else:
            files.append(path)
    return files


def predict_images(
    images: Sequence[Path],
    model: YearModel,
    embedder,
    batch_size: int = 32,
    progress: bool = False,
    lock: AbstractContextManager | None = None,
) -> Iterator[ImageYear]:
    """Each image's year, in order, embedded `batch_size` at a time with the model loaded once
    (holding `lock` while a batch is embedded: an embedder shared between threads); an image that
    cannot be read is an ImageYear with its error, never the end of the run."""
    from tqdm import tqdm

    check_embedder(model, embedder)
    bar = tqdm(total=len(images), unit="poster", desc="dating", disable=not progress, dynamic_ncols=True, file=sys.stderr)
    try:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            decoded: list[tuple[str, np.ndarray | None, str]] = []
            for image in chunk:
                try:
                    decoded.append((str(image), decode_poster(image).pixels, ""))
                except BadInput as e:  # ImageError: not an image, too large, not a regular file, ...
                    decoded.append((str(image), None, str(e)))
            good = [pixels for _, pixels, _ in decoded if pixels is not None]
            with lock or nullcontext():
                predictions = iter(_predict_pixels(np.stack(good), model, embedder) if good else [])
            for name, pixels, error in decoded:
                yield ImageYear(name, next(predictions) if pixels is not None else None, error)
            bar.update(len(chunk))
    finally:
        bar.close()


def model_embedder(model: YearModel, weights: str | None = None, long_lived: bool = False):
    """The embedder of the model's own embedding, on the CPU's fastest runtime (no TensorFlow); int8 if the model
    was trained on an int8 collection. `weights` as for the CLI's --weights."""
    from ..embedding.embedders import query_embedder
    from ..embedding.spec import resolve_weights

    return query_embedder(resolve_weights(weights), model.uses_style, model.file.spec, model.file.calibration, long_lived=long_lived)
