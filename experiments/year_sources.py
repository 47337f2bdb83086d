"""What makes a year model fail on another source of posters, and what the augmented views do (issue 37).

    # the store the shipped model's build made (python -m poster_search.regression.ship --qdrant-path STORE)
    python -m experiments.year_sources views --qdrant-path STORE --seeds 0 1 --out views.json
    # does size or JPEG decide? a model's predictions for posters shrunk as another source keeps them
    python -m experiments.year_sources sizes --model-dir MODEL --weights W --n 300
    # how low can cross-source error go with these vectors? (minutes: two heads per direction)
    python -m experiments.year_sources bound --qdrant-path STORE

`views`: single networks of the default head, with and without the `augment-v2` view of each
fitting poster: cross-source both ways (regression/ship.py's cross_source, the ranges calibrated on
the other direction) and the usual content split. `sizes`: the same posters as they are, shrunk to
182 and 150 pixels wide (JPEG 90 and 60), and enlarged to 400, dated by a saved model. `bound`:
for each direction, a single network (and ridge) trained on one collection and scored on all of
the other, then the same predictions after the best straight-line fix fitted *on the tested
collection's own years* (unattainable: it looks at the answers, so no recalibration can do
better), beside a network trained on the tested collection's own training part (content split,
seed 0) and scored on its test part: what labels of that very source buy.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image


def views(args) -> None:
    from poster_search.regression.config import HeadConfig
    from poster_search.regression.conformal import calibrate_quantiles, coverage, ranges
    from poster_search.regression.dataset import calibration_split, content_split, fitting_rows, load_augmented, load_collections
    from poster_search.regression.head import predict_with_quantiles, train_head
    from poster_search.regression.ship import SOURCES, cross_source, views_of
    from poster_search.store.collection import PosterStore
    from poster_search.store.connection import StoreLocation

    with PosterStore(StoreLocation(path=args.qdrant_path), SOURCES[0], must_exist=True) as store:
        data = load_collections(store, list(SOURCES), ("vgg16",))
        augmented = load_augmented(store, [views_of(c) for c in SOURCES], data)
    out = {}
    config = HeadConfig(members=1)
    for seed in args.seeds:
        for name, extra in (("without", None), ("with", augmented)):
            cross = cross_source(data, config, seed, extra)
            train, test = content_split(data.keys, 0.2, seed)
            fit_rows, calibration_rows = calibration_split(list(data.keys[train]), 0.15, seed)
            fit, calibration = train[fit_rows], train[calibration_rows]
            x, y, _ = fitting_rows(data, fit, extra)
            model, _ = train_head(x, y, config, seed=seed)
            calibration_quantiles = predict_with_quantiles(model, data.vectors[calibration])[1]
            assert calibration_quantiles is not None  # the bins head
            correction = calibrate_quantiles(data.years[calibration], calibration_quantiles)
            predicted, quantiles = predict_with_quantiles(model, data.vectors[test])
            low, high = ranges(correction, predicted, quantiles)
            true = data.years[test]
            usual = {}
            for collection in SOURCES:
                k = data.collections[test] == collection
                usual[collection] = {"mae": float(np.abs(predicted[k] - true[k]).mean()), "coverage": coverage(true[k], low[k], high[k])}
            out[f"{name} views, seed {seed}"] = {"cross": cross["directions"], "usual": usual}
            print(name, seed, json.dumps({k: round(d["mae"], 2) for k, d in cross["directions"].items()}), json.dumps(usual), flush=True)
    args.out.write_text(json.dumps(out, indent=1))


def bound(args) -> None:
    from sklearn.linear_model import QuantileRegressor, RidgeCV

    from poster_search.regression.config import HeadConfig
    from poster_search.regression.dataset import content_split, load_collections
    from poster_search.regression.head import predict_years, train_head
    from poster_search.regression.ship import SOURCES
    from poster_search.store.collection import PosterStore
    from poster_search.store.connection import StoreLocation

    with PosterStore(StoreLocation(path=args.qdrant_path), SOURCES[0], must_exist=True) as store:
        data = load_collections(store, list(SOURCES), ("vgg16",))
    config = HeadConfig(members=1)

    def fitted(rows: np.ndarray) -> dict:
        x, y = data.vectors[rows], data.years[rows]
        return {"network": train_head(x, y, config, seed=0)[0], "ridge": RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x, y)}

    def predict(model, rows: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(data.vectors[rows]) if isinstance(model, RidgeCV) else predict_years(model, data.vectors[rows]))

    for trained, tested in (SOURCES, SOURCES[::-1]):
        source, target = np.flatnonzero(data.collections == trained), np.flatnonzero(data.collections == tested)
        true = data.years[target]
        own_train, own_test = content_split(data.keys[target], 0.2, 0)
        cross, own = fitted(source), fitted(target[own_train])
        for kind in ("network", "ridge"):
            predicted = predict(cross[kind], target)
            line = QuantileRegressor(quantile=0.5, alpha=0.0).fit(predicted[:, None], true)  # least absolute error: the best line for MAE
            fixed = line.predict(predicted[:, None])
            in_source = np.abs(predict(own[kind], target[own_test]) - true[own_test]).mean()
            print(
                f"{trained} -> {tested}, {kind}: MAE {np.abs(predicted - true).mean():.2f}; "
                f"after the best straight-line fix on {tested}'s own years {np.abs(fixed - true).mean():.2f} "
                f"(year = {line.coef_[0]:.2f} x prediction {line.intercept_:+.0f}); "
                f"trained on {tested} itself {in_source:.2f}; always {tested}'s own median {np.abs(true - np.median(true)).mean():.2f}",
                flush=True,
            )


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def width(image: Image.Image, w: int) -> Image.Image:
    return image.resize((w, round(image.height * w / image.width)), Image.Resampling.LANCZOS)


SIZES = {
    "as it is": lambda im: im,
    "182 wide, JPEG 90": lambda im: jpeg(width(im, 182), 90),
    "150 wide, JPEG 60": lambda im: jpeg(width(im, 150), 60),
    "400 wide": lambda im: width(im, 400),
}


def sizes(args) -> None:
    from poster_search.embedding.embedders import query_embedder
    from poster_search.embedding.images import load_rgb
    from poster_search.regression.model_file import YearModel

    embedder = query_embedder(args.weights)
    model = YearModel.load(args.model_dir)
    for collection in ("posters-era", "posters-imdb"):
        folder = args.data / collection
        with (folder / "movies.csv").open(encoding="utf-8") as f:
            rows = sorted(csv.DictReader(f), key=lambda r: hashlib.sha256(r["filename"].encode()).hexdigest())
        posters = []
        for r in rows:
            image, digest = load_rgb(folder / "posters" / r["filename"])
            if digest not in model.trained_on:
                posters.append((image, float(r["release_year"])))
            if len(posters) == args.n:
                break
        years = np.array([y for _, y in posters])
        for name, change in SIZES.items():
            pixels = np.stack([np.asarray(change(im).resize((224, 224), Image.Resampling.BILINEAR), dtype=np.uint8) for im, _ in posters])
            vectors = np.concatenate([embedder.embed_both(pixels[i : i + 32])[0] for i in range(0, len(pixels), 32)])
            error = model.predict(vectors) - years
            print(f"{collection}, {name}: MAE {np.abs(error).mean():.1f}, bias {error.mean():+.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("views")
    p.add_argument("--qdrant-path", type=Path, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", type=Path, default=Path("views.json"))
    p = sub.add_parser("sizes")
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--n", type=int, default=300)
    p = sub.add_parser("bound")
    p.add_argument("--qdrant-path", type=Path, required=True)
    args = parser.parse_args()
    {"views": views, "sizes": sizes, "bound": bound}[args.command](args)


if __name__ == "__main__":
    main()
