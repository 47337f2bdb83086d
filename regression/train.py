"""The whole year-regression run on arrays read from the store: content split, head, calibrated ranges, baselines, saved model.

Nothing here holds the store open: the caller reads the vectors (regression.dataset) and closes it.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadInput
from ..store.schema import STYLE_VECTOR_NAME
from ..tables import Tabular
from .baselines import knn_exact, knn_store_baseline, mean_baseline, ridge_baseline
from .config import HeadConfig
from .conformal import COVERAGE, calibrate, calibrate_quantiles, coverage, ranges
from .dataset import YearData, calibration_split, content_split, fitting_rows
from .head import predict_with_quantiles, train_head
from .metrics import year_metrics
from .model_file import HEAD_NAME, MODEL_FILE, ModelFile, check_model_dir, save_model
from .plots import error_by_decade, predicted_vs_true

CALIBRATION_SHARE = 0.15  # of the training part, held out of fitting to calibrate the ranges


@dataclass
class TrainReport(Tabular):
    results: dict[str, dict]  # model name -> year_metrics (the head's with `coverage` of its ranges)
    n_train: int
    n_test: int
    undated: int
    seconds: float
    by_collection: dict[str, dict[str, dict]] = field(default_factory=dict)  # collection -> model -> metrics (several collections)
    n_calibration: int = 0
    n_views: int = 0  # augmented views of fitting posters trained on as well
    files: list[Path] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "n_train": self.n_train,
            "n_calibration": self.n_calibration,
            "n_augmented_views": self.n_views,
            "n_test": self.n_test,
            "results": self.results,
            "by_collection": self.by_collection,
        }

    def records(self) -> list[dict]:
        """One row per model (the head and its baselines): its test figures."""
        return [{"model": name, **{k: v for k, v in m.items() if not isinstance(v, dict)}} for name, m in self.results.items()]

    def table(self) -> str:
        decades = sorted({d for m in self.results.values() for d in m["mae_by_decade"]})
        head = self.results[HEAD_NAME]
        lines = [
            f"test set: {self.n_test} posters (train {self.n_train}, of which {self.n_calibration} calibrate the ranges; "
            f"{self.undated} undated left out"
            + (f"; {self.n_views} augmented views of fitting posters trained on too" if self.n_views else "")
            + f"), {self.seconds:.0f}s",
            f"{'model':22}{'MAE':>7}{'RMSE':>7}{'R^2':>7}{'MedAE':>7}{'bias':>7}",
        ]
        lines += [
            f"{name:22}{m['mae']:7.2f}{m['rmse']:7.2f}{m['r2']:7.3f}{m['median_ae']:7.2f}{m['bias']:7.1f}  {m.get('detail', '')}"
            for name, m in self.results.items()
        ]
        lines.append(f"{head['stated_coverage']:.0%} ranges of the head hold {head['coverage']:.1%} of test posters")
        for collection, results in self.by_collection.items():
            m = results[HEAD_NAME]
            lines.append(
                f"  {collection}: n {m['n']}, head MAE {m['mae']:.2f} (bias {m['bias']:+.1f}, ranges hold {m['coverage']:.1%}), "
                + ", ".join(f"{name} {r['mae']:.2f}" for name, r in results.items() if name != HEAD_NAME)
            )
        lines.append("MAE by decade of release:")
        lines.append(f"{'decade':8}" + "".join(f"{name[:14]:>16}" for name in self.results))
        for d in decades:
            lines.append(f"{f'{d}s':8}" + "".join(f"{m['mae_by_decade'].get(d, float('nan')):16.1f}" for m in self.results.values()))
        return "\n".join(lines)


def train_year_model(
    data: YearData,
    model_dir: Path,
    test_size: float = 0.2,
    seed: int = 0,
    config: HeadConfig = HeadConfig(),
    knn_k: int = 10,
    progress: bool = True,
    calibration_share: float = CALIBRATION_SHARE,
    augmented: YearData | None = None,
) -> TrainReport:
    """Split by content, fit the head, calibrate its ranges, score it and the baselines on the test part, save it.

    `augmented`: augmented views of the posters (regression.dataset.load_augmented); those of the
    fitting posters are extra fitting rows with the same year.
    """
    started = time.perf_counter()
    check_model_dir(model_dir)  # now, not after the training
    train, test = content_split(data.keys, test_size, seed)
    fit_rows, calibration_rows = calibration_split(data.keys[train], calibration_share, seed)
    fit, calibration = train[fit_rows], train[calibration_rows]
    if len(test) < 2 or len(calibration) < 2 or len(fit) < 5:
        raise BadInput(f"{len(data)} dated posters give {len(fit)} to fit, {len(calibration)} to calibrate, {len(test)} to test: too few")
    x, y = data.vectors, data.years

    fit_x, fit_y, n_views = fitting_rows(data, fit, augmented)
    model, scaling = train_head(fit_x, fit_y, config, seed=seed, progress=progress)
    calibration_years, calibration_quantiles = predict_with_quantiles(model, x[calibration])
    if calibration_quantiles is None:  # regression head: ranges by predicted year
        uncertainty = calibrate(y[calibration], calibration_years)
    else:  # bins head: each poster's own quantiles, conformalised
        uncertainty = calibrate_quantiles(y[calibration], calibration_quantiles)
    predicted, quantiles = predict_with_quantiles(model, x[test])
    low, high = ranges(uncertainty, predicted, quantiles)
    ridge, alpha = ridge_baseline(x[train], y[train], x[test])
    knn, knn_detail = knn_baseline(data, train, test, knn_k, progress)
    mean = mean_baseline(y[train], len(test))
    # name -> (predictions, what the name leaves out): names are keys, never parsed back out of labels
    predictions = {
        HEAD_NAME: (predicted, ""),
        "mean of training years": (mean, ""),
        "ridge": (ridge, f"alpha {alpha:g}"),
        f"{knn_k}-NN": (knn, knn_detail),
    }

    def score(rows: np.ndarray) -> dict[str, dict]:
        results = {name: {**year_metrics(y[test][rows], p[rows]), "detail": detail} for name, (p, detail) in predictions.items()}
        results[HEAD_NAME].update(coverage=coverage(y[test][rows], low[rows], high[rows]), stated_coverage=COVERAGE)
        return results

    results = score(np.arange(len(test)))
    names = np.unique(data.collections)
    by_collection = {str(c): score(np.flatnonzero(data.collections[test] == c)) for c in names} if len(names) > 1 else {}
    report = TrainReport(results, len(train), len(test), data.undated, 0.0, by_collection, len(calibration), n_views=n_views)

    file = ModelFile(
        vector_names=data.vector_names,
        embeddings=data.specs,
        calibration=data.calibration,
        collections=tuple(str(c) for c in names),
        augmented={"collections": sorted(set(augmented.collections.tolist())), "n_views": n_views} if augmented is not None else None,
        store=data.store,
        split={
            "by": "content (sha256)",
            "seed": seed,
            "test_size": test_size,
            "calibration_share": calibration_share,
            "n_train": len(train),
            "n_fit": len(fit),
            "n_calibration": len(calibration),
            "n_test": len(test),
            "undated_left_out": data.undated,
        },
        target_scaling=scaling,
        training_mean=float(y[train].mean()),
        head=config.as_dict(),
        test=results,
        test_by_collection=by_collection,
        uncertainty=uncertainty,
        trained_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    save_model(model_dir, model, file, frozenset(data.keys[train]))
    report.files = [
        model_dir / MODEL_FILE,
        predicted_vs_true(y[test], predicted, results[HEAD_NAME]["mae"], model_dir / "predicted_vs_true.png"),
        error_by_decade({name: m["mae_by_decade"] for name, m in results.items()}, model_dir / "error_by_decade.png"),
    ]
    report.seconds = time.perf_counter() - started
    return report


def knn_baseline(data: YearData, train: np.ndarray, test: np.ndarray, k: int, progress: bool = False) -> tuple[np.ndarray, str]:
    """k-NN on one stored vector (the style vector when the model reads it: the better of the two for
    k-NN), through the store's exact search when the data came from a store, else in numpy; and how."""
    name = STYLE_VECTOR_NAME if STYLE_VECTOR_NAME in data.vector_names else data.vector_names[0]
    x = data.vector_part(name)
    if data.location is None:
        return knn_exact(x[train], data.years[train], x[test], k, data.keys[train], data.keys[test]), f"exact, {name}"
    train_ids = {str(c): set(data.ids[train][data.collections[train] == c].tolist()) for c in np.unique(data.collections[train])}
    predicted = knn_store_baseline(data.location, x[test], train_ids, k, name, progress)
    return predicted, f"{name}, Qdrant exact search"
