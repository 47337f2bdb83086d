"""Year ranges that mean what they say: split-conformal prediction on a calibration part.

The calibration posters are held out of training (by content, like the test split) and never
reused as test posters. Their errors (true - predicted) give the range: the lower and upper
quantiles at (1 - coverage) / 2 with the finite-sample correction of split-conformal prediction,
so that on new posters *exchangeable with the calibration ones* the range holds the true year with
at least the stated probability. Errors depend on the prediction (a model saying 1950 errs upwards,
one saying 2010 downwards, since guesses are pulled towards the middle), so the calibration
posters are grouped by predicted year into bins of equal count (Mondrian conformal prediction)
and each bin gets its own range; each bin keeps enough posters for a stable quantile.

A head that predicts a distribution over years (the bins head) gives each poster its own raw
range, the 10th to 90th percentile of its distribution; `calibrate_quantiles` then widens (or
narrows) every such range by one amount chosen on the calibration posters: conformalised quantile
regression (Romano, Patterson and Candès, 2019). The width then follows the model's own doubt
about a poster, which is larger on posters unlike its training ones, and the calibrated share
still holds.

The guarantee holds inside the population the calibration posters come from. On a collection
with another look the errors are larger and coverage drops: evaluate-year measures it.
"""

from __future__ import annotations

import math

import numpy as np

COVERAGE = 0.8
MIN_PER_BIN = 150  # calibration posters per bin at least: the 10th/90th percentiles of fewer wobble
MAX_BINS = 6


def _conformal_quantiles(residuals: np.ndarray, coverage: float) -> list[float]:
    """Lower and upper split-conformal quantiles of residuals for a central `coverage` range."""
    n, alpha = len(residuals), 1 - coverage
    ordered = np.sort(residuals)
    high_rank = min(n, math.ceil((n + 1) * (1 - alpha / 2)))  # 1-based ranks
    low_rank = max(1, math.floor((n + 1) * (alpha / 2)))
    return [float(ordered[low_rank - 1]), float(ordered[high_rank - 1])]


def calibrate(true: np.ndarray, predicted: np.ndarray, coverage: float = COVERAGE) -> dict:
    """Ranges from calibration errors: per bin of predicted year (edges between bins), and overall."""
    true, predicted = np.asarray(true, float), np.asarray(predicted, float)
    residuals = true - predicted
    n_bins = int(max(1, min(MAX_BINS, len(true) // MIN_PER_BIN)))
    edges = [float(e) for e in np.quantile(predicted, np.linspace(0, 1, n_bins + 1)[1:-1])]
    which = np.searchsorted(edges, predicted, side="right")
    return {
        "method": "split-conformal, by predicted year",
        "coverage": coverage,
        "n_calibration": int(len(true)),
        "overall": _conformal_quantiles(residuals, coverage),
        "bin_edges": edges,  # predicted years; bin i covers [edges[i-1], edges[i])
        "by_bin": [_conformal_quantiles(residuals[which == b], coverage) for b in range(n_bins)],
    }


CQR = "conformalised quantiles (CQR) of each poster's predicted distribution"


def calibrate_quantiles(true: np.ndarray, quantiles: np.ndarray, coverage: float = COVERAGE) -> dict:
    """The correction that makes each poster's raw range [low, high] quantiles hold `coverage` of calibration years."""
    true, quantiles = np.asarray(true, float), np.asarray(quantiles, float)
    scores = np.sort(np.maximum(quantiles[:, 0] - true, true - quantiles[:, 1]))  # > 0: outside by that much
    rank = min(len(scores), math.ceil((len(scores) + 1) * coverage))
    return {"method": CQR, "coverage": coverage, "n_calibration": int(len(true)), "correction": float(scores[rank - 1])}


def ranges(calibration: dict, predicted: np.ndarray, quantiles: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The (low, high) years of the calibrated range around each prediction (CQR needs the posters' raw quantiles)."""
    predicted = np.asarray(predicted, float)
    if calibration.get("method") == CQR:
        if quantiles is None:
            raise ValueError("these ranges are calibrated per poster: pass the model's quantiles")
        quantiles = np.asarray(quantiles, float)
        return quantiles[:, 0] - calibration["correction"], quantiles[:, 1] + calibration["correction"]
    if "by_bin" not in calibration:  # models saved before calibration: held-out error quantiles by predicted decade
        offsets = np.array(
            [calibration["by_predicted_decade"].get(str(int(round(p) // 10 * 10)), calibration["overall"]) for p in predicted]
        ).reshape(-1, 2)
    else:
        offsets = np.array(calibration["by_bin"])[np.searchsorted(calibration["bin_edges"], predicted, side="right")]
    return predicted + offsets[:, 0], predicted + offsets[:, 1]


def coverage(true: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Share of true years inside their range (ends included)."""
    true = np.asarray(true, float)
    return float(np.mean((true >= low) & (true <= high))) if len(true) else float("nan")
