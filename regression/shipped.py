"""The year model that ships with poster search (regression/shipped/), and which model a command uses.

`predict-year`, `predict-year --stored`, `evaluate-year` and the page date posters with ./year_model
once `train-year` has written one there, else with the shipped model: a small head on the default
`vgg16` vector, trained on both shared collections, its ranges calibrated on posters of a source it
was not trained on. `python -m poster_search.regression.ship` rebuilds it (docs/year-model.md).
"""

from __future__ import annotations

from pathlib import Path

from .. import defaults
from .model_file import META_FILE

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"


def default_model_dir() -> Path:
    """./year_model when it holds a model (train-year's, even a damaged one: that is said, not
    silently replaced), else the shipped model."""
    return defaults.MODEL_DIR if (defaults.MODEL_DIR / META_FILE).exists() else SHIPPED_DIR
