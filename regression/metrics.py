"""The figures every year model is judged by."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, median_absolute_error, r2_score, root_mean_squared_error


def year_metrics(true: np.ndarray, predicted: np.ndarray) -> dict:
    """MAE, RMSE, R^2, median absolute error, and MAE by decade of the true year (all in years)."""
    decades = (true // 10 * 10).astype(int)
    return {
        "mae": float(mean_absolute_error(true, predicted)),
        "rmse": float(root_mean_squared_error(true, predicted)),
        "r2": float(r2_score(true, predicted)),
        "median_ae": float(median_absolute_error(true, predicted)),
        "mae_by_decade": {int(d): float(np.abs(true - predicted)[decades == d].mean()) for d in np.unique(decades)},
    }
