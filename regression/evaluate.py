"""How good a trained year model is on a collection: every dated poster it was not trained on.

This is how a user learns what the model is worth on *their* posters: the error, its bias, whether
the stated ranges hold, by decade, against knowing nothing (the training mean) and against knowing
this collection's mean (which the model cannot know: a hard, slightly unfair baseline).
"""

from __future__ import annotations

import numpy as np

from ..errors import BadInput
from .conformal import coverage
from .dataset import YearData
from .metrics import year_metrics
from .model_file import YearModel, check_specs


def check_embedding(model: YearModel, data: YearData) -> None:
    """Refuse vectors made with another embedding than the model's: its predictions would be meaningless."""
    check_specs(model, data.specs)  # regression/model_file.py: shared with predict-year --stored


def evaluate_model(model: YearModel, data: YearData, include_trained: bool = False) -> dict:
    """Scores of `model` on `data` (posters it was fitted or calibrated on left out unless include_trained)."""
    check_embedding(model, data)
    seen = np.isin(data.keys, list(model.trained_on)) if model.trained_on else np.zeros(len(data), bool)
    rows = np.arange(len(data)) if include_trained else np.flatnonzero(~seen)
    if len(rows) == 0:
        raise BadInput(f"all {len(data)} dated posters were used to train this model: nothing unseen to evaluate on")
    true = data.years[rows]
    predicted, low, high = model.predict_with_ranges(data.vectors[rows])
    inside = (true >= low) & (true <= high)
    m = year_metrics(true, predicted)
    decades = (true // 10 * 10).astype(int)
    training_mean = float(model.file.training_mean)
    own_mean = float(true.mean())
    return {
        "collections": sorted(set(data.collections[rows].tolist())),
        "n": m["n"],
        "left_out_trained_on": int(seen.sum()) if not include_trained else 0,
        "mae": m["mae"],
        "median_ae": m["median_ae"],
        "rmse": m["rmse"],
        "r2": m["r2"],
        "bias": m["bias"],
        "coverage": coverage(true, low, high),
        "stated_coverage": model.file.coverage,
        "mean_range_width": float(np.mean(high - low)),
        "by_decade": {
            int(d): {
                "n": m["n_by_decade"][d],
                "mae": m["mae_by_decade"][d],
                "bias": m["bias_by_decade"][d],
                "coverage": float(inside[decades == d].mean()),
            }
            for d in m["n_by_decade"]
        },
        "baselines": {
            "training_mean": {"year": training_mean, **_summary(true, np.full(len(true), training_mean))},
            "store_mean": {"year": own_mean, **_summary(true, np.full(len(true), own_mean))},
        },
    }


def _summary(true: np.ndarray, predicted: np.ndarray) -> dict:
    m = year_metrics(true, predicted)
    return {"mae": m["mae"], "median_ae": m["median_ae"], "rmse": m["rmse"], "bias": m["bias"]}


def evaluation_table(result: dict) -> str:
    """The evaluation as text for the terminal."""
    lines = [
        f"{result['n']} dated posters of {', '.join(result['collections'])}"
        + (f" ({result['left_out_trained_on']} the model was trained on left out)" if result["left_out_trained_on"] else ""),
        f"{'':26}{'MAE':>7}{'MedAE':>7}{'RMSE':>7}{'bias':>7}",
        f"{'model':26}{result['mae']:7.2f}{result['median_ae']:7.2f}{result['rmse']:7.2f}{result['bias']:+7.1f}",
    ]
    for name, label in (("training_mean", "always the training mean"), ("store_mean", "always this store's mean")):
        b = result["baselines"][name]
        lines.append(f"{label:26}{b['mae']:7.2f}{b['median_ae']:7.2f}{b['rmse']:7.2f}{b['bias']:+7.1f}")
    lines.append(
        f"{result['stated_coverage']:.0%} ranges hold {result['coverage']:.1%} of these posters (mean width {result['mean_range_width']:.0f} years)"
    )
    lines.append(f"{'decade':8}{'n':>6}{'MAE':>7}{'bias':>7}{'in range':>10}")
    for d, r in sorted(result["by_decade"].items()):
        lines.append(f"{f'{d}s':8}{r['n']:6d}{r['mae']:7.1f}{r['bias']:+7.1f}{r['coverage']:10.0%}")
    return "\n".join(lines)
