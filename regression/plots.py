"""PNG figures of a year model's test results (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..safe_io import output_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def predicted_vs_true(true: np.ndarray, predicted: np.ndarray, mae: float, out: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(true, predicted, s=6, alpha=0.4)
    low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=1, label="perfect")
    ax.set(xlabel="true year", ylabel="predicted year", title=f"Year from poster: test set (MAE {mae:.1f} years)")
    ax.legend()
    fig.tight_layout()
    with output_path(out) as staged:
        fig.savefig(staged, dpi=120)
    plt.close(fig)
    return out


def error_by_decade(by_model: dict[str, dict[int, float]], out: Path) -> Path:
    """Grouped bars: MAE per decade of the true year, one bar per model."""
    plt = _pyplot()
    decades = sorted({d for errors in by_model.values() for d in errors})
    width = 0.8 / len(by_model)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for i, (name, errors) in enumerate(by_model.items()):
        ax.bar(np.arange(len(decades)) + i * width, [errors.get(d, np.nan) for d in decades], width, label=name)
    ax.set_xticks(np.arange(len(decades)) + 0.4 - width / 2, [f"{d}s" for d in decades])
    ax.set(ylabel="mean absolute error (years)", title="Test error by decade of release")
    ax.set_ylim(top=ax.get_ylim()[1] * 1.2)  # room for the legend above the bars
    ax.legend(loc="upper center", ncols=len(by_model), fontsize=8)
    fig.tight_layout()
    with output_path(out) as staged:
        fig.savefig(staged, dpi=120)
    plt.close(fig)
    return out
