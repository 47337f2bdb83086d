"""Rebuild the year model that ships with poster search (regression/shipped/) from the shared collections.

    python -m poster_search.regression.ship --data ../shared/data --weights W [--qdrant-path ship_store] [--out DIR]

One command, each step resumable or repeatable (docs/year-model.md#the-shipped-model):

1. ingest both shared collections (`posters-era`, `posters-imdb`) into --qdrant-path with the
   default embedding, `vgg16` alone, so the model dates any collection right after its ingest;
   and the augmented view of every poster (`ingest --augment`: another version of the art, frame,
   size and JPEG, embedding/augment.py) into `posters-era-views`, `posters-imdb-views`;
2. *cross-source*: a head trained on each collection alone and its fitting posters' views (its
   own calibration part held out),
   scored on every poster of the other, a source it never saw: the figures of docs/year-model.md,
   and how far outside its raw range each of those posters falls;
3. the shipped head, trained as `train-year --augmented` trains (content split, baselines on the
   test part), on the training part of both collections and its posters' views;
4. its ranges calibrated for posters from an unseen source: the CQR correction under which 80 %
   of the other collection's years fall inside the cross-source heads' ranges, each direction
   weighing the same. model.json records the cross-source figures (`cross_source`).

Needs Keras and TensorFlow (requirements-dev.txt or `pip install "poster-search[train]"`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .config import HeadConfig
from .conformal import COVERAGE, CQR, coverage, ranges
from .dataset import YearData, calibration_split, content_split, fitting_rows
from .metrics import year_metrics
from .model_file import HEAD_NAME, ModelFile, YearModel
from .shipped import SHIPPED_DIR
from .train import CALIBRATION_SHARE

SOURCES = ("posters-era", "posters-imdb")  # folders of ../shared/data, and the collections made from them
SHIPPED_CONFIG = HeadConfig(
    members=3
)  # three networks, a 4 MB head: no worse on the usual split than train-year's five (docs/year-model.md)
UNSEEN = "each shared collection, dated by a head trained on the other alone"


def outside_by(years: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """CQR's nonconformity score: how far each year lies outside its raw range (negative: inside)."""
    return np.maximum(quantiles[:, 0] - years, years - quantiles[:, 1])


def weighted_correction(scores: Sequence[np.ndarray], level: float = COVERAGE) -> float:
    """The correction under which `level` of the scores are covered, each array weighing the same
    (a conformal quantile over groups of different sizes, with the finite-sample step of each)."""
    values = np.concatenate(scores)
    weights = np.concatenate([np.full(len(s), 1.0 / len(s)) for s in scores]) / len(scores)
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    target = min(1.0, level * (1 + 1 / min(len(s) for s in scores)))
    return float(values[order][min(len(values) - 1, int(np.searchsorted(cumulative, target - 1e-12)))])


def cross_source(data: YearData, config: HeadConfig, seed: int = 0, views: YearData | None = None) -> dict:
    """For each collection: a head trained on another collection alone (and the `views` of its
    fitting posters), scored on all of it."""
    from .conformal import calibrate_quantiles
    from .head import predict_with_quantiles, train_head

    names = [str(c) for c in np.unique(data.collections)]
    directions: dict[str, dict] = {}
    scores: dict[str, np.ndarray] = {}
    for trained in names:
        source = np.flatnonzero(data.collections == trained)
        fit_rows, calibration_rows = calibration_split(list(data.keys[source]), CALIBRATION_SHARE, seed)
        fit, calibration = source[fit_rows], source[calibration_rows]
        x, y, _ = fitting_rows(data, fit, views)
        model, _ = train_head(x, y, config, seed=seed, progress=True)
        calibration_quantiles = predict_with_quantiles(model, data.vectors[calibration])[1]
        assert calibration_quantiles is not None  # the bins head
        own = calibrate_quantiles(data.years[calibration], calibration_quantiles)
        for tested in (n for n in names if n != trained):
            rows = np.flatnonzero(data.collections == tested)
            true = data.years[rows]
            predicted, quantiles = predict_with_quantiles(model, data.vectors[rows])
            assert quantiles is not None  # the bins head
            low, high = ranges(own, predicted, quantiles)
            key = f"{trained} -> {tested}"
            scores[key] = outside_by(true, quantiles)
            metrics = year_metrics(true, predicted)
            directions[key] = {
                "trained_on": trained,
                "tested_on": tested,
                **{k: metrics[k] for k in ("n", "mae", "median_ae", "rmse", "bias", "mae_by_decade", "bias_by_decade", "n_by_decade")},
                "coverage_calibrated_in_source": coverage(true, low, high),
                "training_mean_mae": float(np.abs(true - data.years[source].mean()).mean()),
                "own_mean_mae": float(np.abs(true - true.mean()).mean()),
                "_quantiles": quantiles,
                "_true": true,
            }
    # Ranges for an unseen source, and whether such a correction carries over: each direction's
    # coverage under the correction measured on the *other* direction alone.
    for key, direction in directions.items():
        others = [s for k, s in scores.items() if k != key]
        if others:
            correction = weighted_correction(others)
            low, high = direction["_quantiles"][:, 0] - correction, direction["_quantiles"][:, 1] + correction
            direction["coverage_calibrated_on_other_direction"] = coverage(direction["_true"], low, high)
            direction["mean_range_width_calibrated_on_other_direction"] = float(np.mean(high - low))
    for direction in directions.values():
        del direction["_quantiles"], direction["_true"]
    return {
        "directions": directions,
        "correction": weighted_correction(list(scores.values())),
        "scores_n": {k: len(s) for k, s in scores.items()},
    }


def build(location, out: Path, collections: Sequence[str] = SOURCES, config: HeadConfig = SHIPPED_CONFIG, seed: int = 0) -> dict:
    """Steps 2-4 on the collections (and their views) of the store at `location`: writes the model into `out`."""
    from ..api import Posters
    from ..store.collection import PosterStore
    from .dataset import load_augmented, load_collections

    augmented = [views_of(c) for c in collections]
    with PosterStore(location, collections[0], must_exist=True) as store:
        data = load_collections(store, list(collections), ("vgg16",))
        views = load_augmented(store, augmented, data)
    print(f"{len(data)} dated posters, {len(views)} views: the cross-source heads", file=sys.stderr)
    unseen = cross_source(data, config, seed, views)
    print("the shipped head", file=sys.stderr)
    with Posters(location, collections[0]) as posters:
        posters.train_year(out, collections=list(collections), seed=seed, config=config, vector="vgg16", augmented=augmented)
    file = ModelFile.read(out)
    uncertainty = {
        "method": CQR,
        "coverage": COVERAGE,
        "correction": unseen["correction"],
        "n_calibration": int(sum(unseen["scores_n"].values())),
        "calibrated_on": UNSEEN,
        "in_source": file.uncertainty,  # train-year's own correction, from its calibration part
    }
    test = _with_coverage(file, data, uncertainty, out)
    file = dataclasses.replace(file, uncertainty=uncertainty, cross_source=unseen, **test)
    file.write(out)
    return file.to_json()


def _with_coverage(file: ModelFile, data: YearData, uncertainty: dict, out: Path) -> dict:
    """The test part's coverage (overall and by collection) under the unseen-source ranges."""
    model = YearModel.load(out)
    _, test = content_split(data.keys, file.split["test_size"], file.split["seed"])
    outputs = model.outputs(data.vectors[test])
    low, high = ranges(uncertainty, outputs[:, 0], outputs[:, 1:3])
    true = data.years[test]
    head = {**file.test[HEAD_NAME], "coverage": coverage(true, low, high), "coverage_in_source": file.test[HEAD_NAME]["coverage"]}
    by_collection = {}
    for name, results in file.test_by_collection.items():
        rows = data.collections[test] == name
        by_collection[name] = {
            **results,
            HEAD_NAME: {
                **results[HEAD_NAME],
                "coverage": coverage(true[rows], low[rows], high[rows]),
                "coverage_in_source": results[HEAD_NAME]["coverage"],
            },
        }
    return {"test": {**file.test, HEAD_NAME: head}, "test_by_collection": by_collection}


def views_of(collection: str) -> str:
    return f"{collection}-views"


def ingest_sources(location, data_dir: Path, weights: str | None) -> None:
    """Step 1: each shared collection into its own collection, and the augmented view of each of
    its posters (embedding/augment.py) into another (a rerun adds what is missing)."""
    from ..api import Posters

    for name in SOURCES:
        folder = data_dir / name
        for collection, augment in ((name, False), (views_of(name), True)):
            with Posters(location, collection, weights=weights) as posters:
                report = posters.ingest(folder / "posters", folder / "movies.csv", augment=augment)
            print(f"{collection}: {report.summary()}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    from ..store.connection import StoreLocation

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder (posters-era/, posters-imdb/)")
    parser.add_argument("--weights", help="VGG16's notop weights file (default: $VGG16_WEIGHTS, else imagenet)")
    parser.add_argument("--qdrant-path", type=Path, default=Path("ship_store"), help="the embedded store both collections go into")
    parser.add_argument("--out", type=Path, default=SHIPPED_DIR, help="where the model is written")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--members", type=int, default=SHIPPED_CONFIG.members, help="networks averaged (fewer: a quick try)")
    parser.add_argument("--epochs", type=int, default=SHIPPED_CONFIG.epochs, help="the most each trains")
    args = parser.parse_args(argv)
    location = StoreLocation(path=args.qdrant_path)
    ingest_sources(location, args.data, args.weights)
    config = dataclasses.replace(SHIPPED_CONFIG, members=args.members, epochs=args.epochs)
    summary = build(location, args.out, config=config, seed=args.seed)
    for key, d in summary["cross_source"]["directions"].items():
        print(
            f"{key}: MAE {d['mae']:.2f}, median {d['median_ae']:.1f}, bias {d['bias']:+.1f}, "
            f"80 % ranges hold {d.get('coverage_calibrated_on_other_direction', math.nan):.1%}",
            file=sys.stderr,
        )
    head = summary["test"][HEAD_NAME]
    print(f"usual split: MAE {head['mae']:.2f}, ranges hold {head['coverage']:.1%}; written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
