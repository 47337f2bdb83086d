"""The figures every year model is judged by."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, median_absolute_error, r2_score, root_mean_squared_error


def year_metrics(true: np.ndarray, predicted: np.ndarray) -> dict:
    """n, MAE, RMSE, R^2, median absolute error, bias (mean of predicted - true), and MAE and bias by decade of the true year."""
    true, predicted = np.asarray(true, float), np.asarray(predicted, float)
    decades = (true // 10 * 10).astype(int)
    error = predicted - true
    return {
        "n": int(len(true)),
        "mae": float(mean_absolute_error(true, predicted)),
        "rmse": float(root_mean_squared_error(true, predicted)),
        "r2": float(r2_score(true, predicted)) if len(true) > 1 else float("nan"),
        "median_ae": float(median_absolute_error(true, predicted)),
        "bias": float(error.mean()),
        "mae_by_decade": {int(d): float(np.abs(error)[decades == d].mean()) for d in np.unique(decades)},
        "bias_by_decade": {int(d): float(error[decades == d].mean()) for d in np.unique(decades)},
        "n_by_decade": {int(d): int((decades == d).sum()) for d in np.unique(decades)},
    }
