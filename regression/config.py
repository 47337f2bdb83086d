"""The year model's defaults, in one place and without Keras: the CLI, `train_year_model` in a
notebook and `compare` all start from these, so they train the same model unless told otherwise.

The default is the model chosen in docs/year-model.md for posters from anywhere: the bins head
(soft labels over 5-year bins, the median of the predicted distribution, each poster's own range)
on both stored vectors when the collections have them (`vector="auto"`), else on `vgg16`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, get_args

HeadTarget = Literal["bins", "regression"]
VectorChoice = Literal["auto", "vgg16", "vgg16_style", "vgg16+vgg16_style"]
HEAD_TARGETS: tuple[str, ...] = get_args(HeadTarget)
VECTOR_CHOICES: tuple[str, ...] = get_args(VectorChoice)
DEFAULT_VECTOR: VectorChoice = "auto"  # both vectors where every collection has them, else vgg16 (and it says so)


@dataclass(frozen=True)
class HeadConfig:
    """How the head is built and trained (regression/head.py explains each layer)."""

    hidden: tuple[int, ...] = (512, 128)
    dropout: float = 0.5
    l2: float = 1e-4
    input_noise: float = 0.3
    huber_delta: float = 0.5  # target "regression": the Huber loss's delta, in standardised years
    learning_rate: float = 1e-3
    batch_size: int = 64
    epochs: int = 400  # an upper bound: early stopping ends training far sooner
    patience: int = 25
    validation_split: float = 0.15
    members: int = 5
    target: HeadTarget = "bins"  # soft labels over year bins, the year read off the predicted distribution; or "regression"
    bin_width: float = 5.0  # years per bin (target "bins")
    label_sigma: float = 7.0  # years: the spread of each poster's soft label over the bins
    output: str = "median"  # target "bins": the year read off the members' averaged distribution, "median" or "mean"
    range_quantiles: tuple[float, float] = (0.1, 0.9)  # target "bins": also output these quantiles (the raw range, see conformal.py)

    def as_dict(self) -> dict:
        return asdict(self)
