"""The whole year-regression run: data out of Qdrant, split, head and baselines, figures, saved model."""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from regression.baselines import knn_qdrant_baseline, mean_baseline, ridge_baseline
from regression.dataset import load_year_data, split_indices
from regression.head import HeadConfig, predict_years, train_head
from regression.metrics import year_metrics
from regression.model_file import HEAD_NAME, YearModel, residual_ranges
from regression.plots import error_by_decade, predicted_vs_true
from store.collection import PosterStore
from store.schema import VECTOR_NAME


@dataclass
class TrainReport:
    results: dict[str, dict]  # model name -> year_metrics
    n_train: int
    n_test: int
    undated: int
    seconds: float
    files: list[Path] = field(default_factory=list)

    def table(self) -> str:
        decades = sorted({d for m in self.results.values() for d in m["mae_by_decade"]})
        lines = [
            f"test set: {self.n_test} posters (train {self.n_train}; {self.undated} undated left out), {self.seconds:.0f}s",
            f"{'model':22}{'MAE':>7}{'RMSE':>7}{'R^2':>7}{'MedAE':>7}",
        ]
        lines += [f"{name:22}{m['mae']:7.2f}{m['rmse']:7.2f}{m['r2']:7.3f}{m['median_ae']:7.2f}" for name, m in self.results.items()]
        lines.append("MAE by decade of release:")
        lines.append(f"{'decade':8}" + "".join(f"{name[:14]:>16}" for name in self.results))
        for d in decades:
            lines.append(f"{f'{d}s':8}" + "".join(f"{m['mae_by_decade'].get(d, float('nan')):16.1f}" for m in self.results.values()))
        return "\n".join(lines)


def train_year_model(
    store: PosterStore,
    model_dir: Path,
    test_size: float = 0.2,
    seed: int = 0,
    config: HeadConfig = HeadConfig(),
    knn_k: int = 10,
    vector_name: str = VECTOR_NAME,
    progress: bool = True,
) -> TrainReport:
    started = time.perf_counter()
    data = load_year_data(store, vector_name)
    train, test = split_indices(len(data), test_size, seed)
    x_train, y_train, x_test, y_test = data.vectors[train], data.years[train], data.vectors[test], data.years[test]

    model, scaling = train_head(x_train, y_train, config, seed=seed, progress=progress)
    predicted = predict_years(model, x_test)
    ridge, alpha = ridge_baseline(x_train, y_train, x_test)
    knn = knn_qdrant_baseline(store, x_test, set(data.ids[train]), knn_k, vector_name, progress=progress)
    results = {
        HEAD_NAME: year_metrics(y_test, predicted),
        "mean of training years": year_metrics(y_test, mean_baseline(y_train, len(test))),
        f"ridge (alpha {alpha:g})": year_metrics(y_test, ridge),
        f"{knn_k}-NN via Qdrant": year_metrics(y_test, knn),
    }
    report = TrainReport(results, len(train), len(test), data.undated, 0.0)

    meta = {
        "embedding": store.stored_spec(vector_name).as_dict(),
        "collection": store.collection,
        "vector_name": vector_name,
        "store": store.location.describe(),
        "split": {"seed": seed, "test_size": test_size, "n_train": len(train), "n_test": len(test), "undated_left_out": data.undated},
        "target_scaling": scaling,
        "head": config.as_dict(),
        "test": results,
        "uncertainty": residual_ranges(y_test, predicted),
        "trained_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    YearModel(model, meta).save(model_dir)
    report.files = [
        model_dir / "model.keras",
        predicted_vs_true(y_test, predicted, results[HEAD_NAME]["mae"], model_dir / "predicted_vs_true.png"),
        error_by_decade({name: m["mae_by_decade"] for name, m in results.items()}, model_dir / "error_by_decade.png"),
    ]
    report.seconds = time.perf_counter() - started
    return report
