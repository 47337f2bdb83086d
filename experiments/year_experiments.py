"""Year-model experiments on the content split, three seeds, one table (issue 12, "then better").

Works on arrays, not on an open store: `export` reads both stored vectors of each collection once
into an .npz; `run` trains every variant in every scenario for each seed (resumable: finished runs
are kept in the results JSON); `views` measures input variants on the subset embedded by
experiments/year_views.py; `table` prints the markdown tables.

    python -m experiments.year_experiments export --qdrant-path /tmp/y12/store [/tmp/y12/store-imdb] --out /tmp/y12/arrays.npz
    python -m experiments.year_experiments run --arrays /tmp/y12/arrays.npz --results /tmp/y12/results.json
    python -m experiments.year_experiments views --arrays /tmp/y12/arrays.npz --views /tmp/y12/views-era.npz /tmp/y12/views-imdb.npz --results /tmp/y12/views.json
    python -m experiments.year_experiments table --results /tmp/y12/results.json
    python -m experiments.year_experiments saved-views --model-dir year_model --arrays /tmp/y12/arrays.npz --views /tmp/y12/views-era-unseen.npz
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from poster_search.regression.baselines import knn_exact, ridge_baseline
from poster_search.regression.conformal import calibrate, calibrate_quantiles, coverage, ranges
from poster_search.regression.dataset import calibration_split, content_split
from poster_search.regression.metrics import year_metrics

COLLECTIONS = ("posters-era", "posters-imdb")
SCENARIOS = {"both": COLLECTIONS, "era only": ("posters-era",), "imdb only": ("posters-imdb",)}
STYLE_BLOCKS = (128, 256, 512, 1024, 1024)  # mean+std of the 5 style layers, in order


def export(args) -> None:
    from poster_search.regression.dataset import YearData, load_collections
    from poster_search.store.collection import PosterStore
    from poster_search.store.connection import StoreLocation

    parts = []
    for collection, path in zip(COLLECTIONS, args.qdrant_path if len(args.qdrant_path) == 2 else args.qdrant_path * 2):
        with PosterStore(StoreLocation(path=Path(path)), collection, must_exist=True) as store:
            parts.append(load_collections(store, [collection], ("vgg16", "vgg16_style")))
    ids, vectors, years, titles = (np.concatenate([getattr(p, f) for p in parts]) for f in ("ids", "vectors", "years", "titles"))
    data = YearData(
        ids,
        vectors,
        years,
        titles,
        0,
        np.concatenate([p.keys for p in parts]),
        np.concatenate([p.collections for p in parts]),
    )
    np.savez(
        args.out,
        base=data.vectors[:, :512],
        style=data.vectors[:, 512:],
        years=data.years,
        keys=data.keys,
        collections=data.collections,
        ids=data.ids,
        titles=data.titles,
    )
    print(f"wrote {args.out}: {len(data)} dated posters", {c: int((data.collections == c).sum()) for c in COLLECTIONS})


def features(arrays: dict, which: str) -> np.ndarray:
    if which == "scaled":
        # each collection's features divided by that collection's own mean feature vector (no years used):
        # removes a collection-wide "look" (thumbnail blur, print texture) that is not the era
        x = features(arrays, "both").copy()
        for c in np.unique(arrays["collections"]):
            rows = arrays["collections"] == c
            x[rows] /= np.maximum(x[rows].mean(0), 1e-6)
        return x
    if which == "style":
        return arrays["style"]
    if which == "base":
        return arrays["base"]
    return np.concatenate([arrays["base"], arrays["style"]], axis=1)


def block_weighted(x: np.ndarray) -> np.ndarray:
    """Both vectors standardised, each block (base, 5 style layers) scaled to the same total variance."""
    z = (x - x.mean(0)) / np.maximum(x.std(0), 1e-6)
    edges = np.cumsum((0, 512, *STYLE_BLOCKS))
    out = z.copy()
    for a, b in zip(edges[:-1], edges[1:]):
        out[:, a:b] /= np.sqrt(b - a)
    return out


def head_variant(name: str, members: int):
    from dataclasses import replace

    from poster_search.regression.config import HeadConfig

    fast = HeadConfig(members=members, batch_size=128, patience=15, epochs=300)
    regression = replace(fast, target="regression")
    mean = replace(fast, target="bins", output="mean")  # the expected year: the bins head as first built
    median = replace(fast, target="bins", output="median")  # the median year: today's default
    return {
        "head regression (style)": ("style", regression),
        "head regression (both)": ("both", regression),
        "head bins (style)": ("style", mean),
        "head bins (both)": ("both", mean),
        "head bins (both), strong reg.": ("both", replace(median, dropout=0.6, input_noise=0.6, l2=1e-3)),
        "head bins (both), collection-scaled": ("scaled", median),
        "head bins (both), median": ("both", median),
        "head bins (both), median, collections balanced": ("both", median),  # weights: collection_weights
        "head bins (both), median, augmented": ("both", median),
    }[name]


HEADS = ["head regression (style)", "head bins (style)", "head bins (both)", "head regression (both)", "head bins (both), strong reg."]


def collection_weights(collections: np.ndarray) -> np.ndarray:
    """Sample weights (mean 1) under which each collection weighs the same in the loss."""
    names, inverse, counts = np.unique(collections, return_inverse=True, return_counts=True)
    return (len(collections) / (len(names) * counts))[inverse].astype(np.float32)


def run_one(arrays: dict, scenario: str, variant: str, seed: int, members: int) -> dict:
    """Train `variant` on the training part of the scenario's collections; score on every collection's test part."""
    from poster_search.regression.head import predict_with_quantiles, train_head

    collections, years, keys = arrays["collections"], arrays["years"], arrays["keys"]
    train_all, test = content_split(keys, 0.2, seed)
    in_scope = np.isin(collections[train_all], SCENARIOS[scenario])
    train = train_all[in_scope]
    fit_rows, cal_rows = calibration_split(keys[train], 0.15, seed)
    fit, cal = train[fit_rows], train[cal_rows]
    started = time.perf_counter()
    cal_pred, w, poster_ranges, shift = None, None, None, None
    if variant == "mean":
        pred = np.full(len(test), years[train].mean())
    elif variant.startswith("ridge"):
        x = (
            block_weighted(features(arrays, "both"))
            if "per-block" in variant
            else features(arrays, variant.split("(")[1].rstrip(")").split(",")[0])
        )
        pred, _ = ridge_baseline(x[train], years[train], x[test])
    elif variant.startswith("10-NN"):
        x = features(arrays, variant.split("(")[1].rstrip(")"))
        pred = knn_exact(x[train], years[train], x[test], 10, keys[train], keys[test])
    elif variant.startswith("head"):
        which, config = head_variant(variant, members)
        x = features(arrays, which)
        fit_x, fit_years, fit_groups = x[fit], years[fit], collections[fit]
        if "augmented" in variant:  # one augmented view of every fitting poster as extra rows (experiments/year_views.py augment)
            views = arrays["augmented"][fit]
            has = ~np.isnan(views[:, 0])
            fit_x, fit_years = np.concatenate([fit_x, views[has]]), np.concatenate([fit_years, fit_years[has]])
            fit_groups = np.concatenate([fit_groups, fit_groups[has]])
        weights = collection_weights(fit_groups) if "collections balanced" in variant else None
        model, _ = train_head(fit_x, fit_years, config, seed=seed, sample_weight=weights)
        (pred, test_q), (cal_pred, cal_q) = predict_with_quantiles(model, x[test]), predict_with_quantiles(model, x[cal])
        if test_q is not None and cal_q is not None:  # the bins head: each poster's own range, conformalised (CQR), as train-year does
            poster_ranges = ranges(calibrate_quantiles(years[cal], cal_q), pred, test_q)
        if "augmented" in arrays and which == "both":  # how far predictions move when a test poster is changed
            shift = predict_with_quantiles(model, arrays["augmented"][test])[0] - pred
        # the same head blended with 10-NN on the style vector; the weight is chosen on the calibration part
        knn_x = features(arrays, "style")
        knn_test = knn_exact(knn_x[fit], years[fit], knn_x[test], 10, keys[fit], keys[test])
        knn_cal = knn_exact(knn_x[fit], years[fit], knn_x[cal], 10, keys[fit], keys[cal])
        weights = np.linspace(0, 1, 21)
        w = float(weights[np.argmin([np.abs(years[cal] - (w * cal_pred + (1 - w) * knn_cal)).mean() for w in weights])])
        blend = (w * pred + (1 - w) * knn_test, w * cal_pred + (1 - w) * knn_cal)
    else:
        raise ValueError(variant)
    seconds = time.perf_counter() - started
    result = score(arrays, test, cal, pred, cal_pred, poster_ranges, shift)
    result.update(seconds=seconds, n_train=int(len(train)))
    if variant.startswith("head"):
        result["blend"] = score(arrays, test, cal, *blend)
        result["blend"]["head_weight"] = w
    return result


def score(
    arrays: dict,
    test: np.ndarray,
    cal: np.ndarray,
    pred: np.ndarray,
    cal_pred: np.ndarray | None,
    poster_ranges: tuple[np.ndarray, np.ndarray] | None = None,
    shift: np.ndarray | None = None,
) -> dict:
    """Per collection: the error figures, the coverage of ranges by predicted year (`coverage`) and of
    each poster's own ranges (`cqr_coverage`), their mean widths, and the shift under augmentation."""
    collections, years = arrays["collections"], arrays["years"]
    result = {}
    low = high = None
    if cal_pred is not None:
        low, high = ranges(calibrate(years[cal], cal_pred), pred)
    for c in COLLECTIONS:
        rows = collections[test] == c
        true = years[test][rows]
        r = {k: v for k, v in year_metrics(true, pred[rows]).items() if k in ("n", "mae", "bias", "mae_by_decade")}
        if low is not None and high is not None:
            r["coverage"] = coverage(true, low[rows], high[rows])
        if poster_ranges is not None:
            r["cqr_coverage"] = coverage(true, poster_ranges[0][rows], poster_ranges[1][rows])
            r["cqr_width"] = float(np.mean(poster_ranges[1][rows] - poster_ranges[0][rows]))
            r["width"] = float(np.mean(high[rows] - low[rows])) if low is not None and high is not None else float("nan")
        if shift is not None:
            r["augmented_shift"] = float(np.nanmean(np.abs(shift[rows])))
        result[c] = r
    return result


def with_augmented(arrays: dict, paths: list[str]) -> dict:
    """arrays["augmented"]: each poster's augmented view (base + style side by side) by content key; NaN where none."""
    out = np.full((len(arrays["keys"]), arrays["base"].shape[1] + arrays["style"].shape[1]), np.nan, np.float32)
    row_of = {k: i for i, k in enumerate(arrays["keys"])}
    for path in paths:
        v = dict(np.load(path, allow_pickle=False))
        for i, key in enumerate(v["sha256"]):
            if key in row_of:
                out[row_of[key]] = np.concatenate([v["augment_base"][i], v["augment_style"][i]])
    return {**arrays, "augmented": out}


def run(args) -> None:
    arrays = dict(np.load(args.arrays, allow_pickle=False))
    if args.augmented:
        arrays = with_augmented(arrays, args.augmented)
    results = json.loads(Path(args.results).read_text()) if Path(args.results).exists() else {}
    plan = [(s, v) for s in args.scenarios for v in args.variants]
    for seed in args.seeds:
        for scenario, variant in plan:
            key = f"{scenario} | {variant} | {seed}"
            if key in results:
                continue
            r = run_one(arrays, scenario, variant, seed, args.members)
            blend = r.pop("blend", None)
            results[key] = r
            if blend is not None:
                results[f"{scenario} | {variant} + 10-NN blend | {seed}"] = blend
            print(
                f"{key}: era {r['posters-era']['mae']:.2f}, imdb {r['posters-imdb']['mae']:.2f}"
                + (
                    f", coverage {r['posters-era']['coverage']:.2f}/{r['posters-imdb']['coverage']:.2f}"
                    if "coverage" in r["posters-era"]
                    else ""
                )
                + f" ({r['seconds']:.0f}s)",
                flush=True,
            )
            Path(args.results).write_text(json.dumps(results, indent=1))


def table(args) -> None:
    results = json.loads(Path(args.results).read_text())
    groups: dict[tuple[str, str], list[dict]] = {}
    for key, r in results.items():
        scenario, variant, _ = key.split(" | ")
        groups.setdefault((scenario, variant), []).append(r)
    print(
        "| trained on | model | seeds | era MAE | imdb MAE | era bias | imdb bias | era cov. | imdb cov. "
        "| era cov. per poster | imdb cov. per poster | shift under augmentation (era / imdb) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (scenario, variant), rs in groups.items():

        def mean(c: str, k: str, fmt: str = "{:.2f}") -> str:
            values = [r[c][k] for r in rs if k in r[c]]  # noqa: B023 (called at once, inside the loop)
            return fmt.format(np.mean(values)) if values else "—"

        def spread(c: str) -> str:
            values = [r[c]["mae"] for r in rs]  # noqa: B023 (called at once, inside the loop)
            return f"{np.mean(values):.2f} ± {np.std(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"

        shift = " / ".join(mean(c, "augmented_shift", "{:.1f}") for c in COLLECTIONS)
        print(
            f"| {scenario} | {variant} | {len(rs)} | {spread('posters-era')} | {spread('posters-imdb')} | {mean('posters-era', 'bias', '{:+.1f}')} | "
            f"{mean('posters-imdb', 'bias', '{:+.1f}')} | {mean('posters-era', 'coverage', '{:.0%}')} | {mean('posters-imdb', 'coverage', '{:.0%}')} | "
            f"{mean('posters-era', 'cqr_coverage', '{:.0%}')} | {mean('posters-imdb', 'cqr_coverage', '{:.0%}')} | {shift} |"
        )
    if args.decades:
        for (scenario, variant), rs in groups.items():
            decades = sorted({int(d) for r in rs for d in r["posters-era"]["mae_by_decade"]})
            row = [np.mean([r["posters-era"]["mae_by_decade"].get(str(d), np.nan) for r in rs]) for d in decades]
            print(
                f"| {scenario} | {variant} | "
                + " | ".join(f"{v:.1f}" for v in row)
                + " |   (era decades "
                + ",".join(map(str, decades))
                + ")"
            )


def views(args) -> None:
    """Input variants (flip, crops) and robustness (degrade, faded) on the embedded subset."""
    from poster_search.regression.head import predict_years, train_head

    arrays = dict(np.load(args.arrays, allow_pickle=False))
    subset = {}
    for path in args.views:
        v = dict(np.load(path, allow_pickle=False))
        for i, key in enumerate(v["sha256"]):
            subset[str(key)] = {
                name[: -len("_style")]: (v[name.replace("_style", "_base")][i], v[name][i]) for name in v if name.endswith("_style")
            }
    keys = arrays["keys"]
    in_subset = np.array([k in subset for k in keys])
    print(f"{in_subset.sum()} posters of the arrays have views", flush=True)
    out = {}
    for seed in args.seeds:
        train, test = content_split(keys, 0.2, seed)
        train = train[~in_subset[train]]  # the subset is never trained on: it is the test set of this experiment
        rows = np.flatnonzero(in_subset)
        for variant in args.variants:
            which, config = head_variant(variant, args.members) if variant.startswith("head") else ("both", None)
            x = features(arrays, which)
            if config is not None:
                model, _ = train_head(x[train], arrays["years"][train], config, seed=seed)
                predict = lambda v: predict_years(model, v)  # noqa: E731, B023 (called at once, inside the loop)
            else:
                from sklearn.linear_model import RidgeCV
                from sklearn.pipeline import make_pipeline
                from sklearn.preprocessing import StandardScaler

                ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 5, 25))).fit(x[train], arrays["years"][train])
                predict = ridge.predict

            def view_x(name: str) -> np.ndarray:
                parts = [subset[keys[r]][name] for r in rows]  # noqa: B023 (called at once, inside the loop)
                if which == "style":  # noqa: B023 (called at once, inside the loop)
                    return np.stack([p[1] for p in parts])
                return np.stack([np.concatenate(p) for p in parts])

            true = arrays["years"][rows]
            plain = predict(x[rows])
            res = {"n": int(len(rows)), "squash": float(np.abs(plain - true).mean())}
            flip = predict(view_x("flip"))
            res["flip-averaged"] = float(np.abs((plain + flip) / 2 - true).mean())
            res["crops (trained on squash)"] = float(np.abs(predict(view_x("crops")) - true).mean())
            for name in ("degrade", "faded"):
                moved = predict(view_x(name))
                res[f"{name}: MAE"] = float(np.abs(moved - true).mean())
                res[f"{name}: mean |shift|"] = float(np.abs(moved - plain).mean())
                res[f"{name}: mean shift"] = float((moved - plain).mean())
            out[f"{variant} | {seed}"] = res
            print(variant, seed, json.dumps({k: round(v, 2) for k, v in res.items()}), flush=True)
            Path(args.results).write_text(json.dumps(out, indent=1))


def saved_views(args) -> None:
    """A saved model (e.g. the default) on unseen posters under each view: MAE, and how far predictions move."""
    from poster_search.regression.model_file import YearModel
    from poster_search.store.schema import STYLE_VECTOR_NAME

    model = YearModel.load(Path(args.model_dir))
    arrays = dict(np.load(args.arrays, allow_pickle=False))
    row_of = {k: i for i, k in enumerate(arrays["keys"])}
    v = dict(np.load(args.views, allow_pickle=False))
    rows = np.array([row_of[k] for k in v["sha256"]])
    assert not set(v["sha256"]) & model.trained_on, "these posters were trained on"

    def x(base: np.ndarray, style: np.ndarray) -> np.ndarray:
        return np.concatenate([style if n == STYLE_VECTOR_NAME else base for n in model.vector_names], axis=1)

    true = arrays["years"][rows]
    plain = model.predict(x(arrays["base"][rows], arrays["style"][rows]))
    out = {"n": int(len(rows)), "stored input (squashed)": {"mae": float(np.abs(plain - true).mean())}}
    views = {name[: -len("_style")]: model.predict(x(v[name.replace("_style", "_base")], v[name])) for name in v if name.endswith("_style")}
    if "flip" in views:
        both = (plain + views["flip"]) / 2
        out["flip-averaged"] = {"mae": float(np.abs(both - true).mean())}
    for name, p in views.items():
        out[name] = {
            "mae": float(np.abs(p - true).mean()),
            "mean |shift|": float(np.abs(p - plain).mean()),
            "mean shift": float((p - plain).mean()),
        }
    print(json.dumps(out, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("export")
    p.add_argument("--qdrant-path", required=True, nargs="+", help="the store of both collections, or one per collection (era, imdb)")
    p.add_argument("--out", required=True)
    p = sub.add_parser("run")
    p.add_argument("--arrays", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    p.add_argument(
        "--variants", nargs="+", default=["mean", "ridge (style)", "ridge (both)", "ridge (both, per-block)", "10-NN (style)", *HEADS]
    )
    p.add_argument("--members", type=int, default=1)
    p.add_argument(
        "--augmented", nargs="*", default=[], help="view files with an 'augment' view (experiments/year_views.py --views augment)"
    )
    p = sub.add_parser("views")
    p.add_argument("--arrays", required=True)
    p.add_argument("--views", nargs="+", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=["ridge", "head bins (both)", "head bins (both), strong reg."])
    p.add_argument("--members", type=int, default=1)
    p = sub.add_parser("saved-views")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--arrays", required=True)
    p.add_argument("--views", required=True)
    p = sub.add_parser("table")
    p.add_argument("--results", required=True)
    p.add_argument("--decades", action="store_true")
    args = parser.parse_args()
    {"export": export, "run": run, "views": views, "saved-views": saved_views, "table": table}[args.command](args)


if __name__ == "__main__":
    main()
