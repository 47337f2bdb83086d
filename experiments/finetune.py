"""The year model past frozen features: fine-tune VGG16's last block on cached block-4 activations.

    # once per collection: block4_pool (and block5_conv2, for the conv3-only variant) of every poster, float16
    .venv/bin/python -m experiments.finetune cache --collection ../shared/data/posters-era --out CACHE/era
    .venv/bin/python -m experiments.finetune cache --collection ../shared/data/posters-imdb --out CACHE/imdb
    # the frozen default and the fine-tuned variants on the same content split, per seed
    .venv/bin/python -m experiments.finetune run --caches CACHE/era CACHE/imdb --qdrant-path STORE --seeds 0 1 2 --results ft.json
    .venv/bin/python -m experiments.finetune table --results ft.json

Blocks 1-4 of VGG16 are 82 % of its forward cost and do not change when only block 5 is trained,
so their output (14 x 14 x 512 per poster) is computed once, on ONNX Runtime, and kept on disk.
Training then runs block 5 (three 3x3 convolutions, initialised from the ImageNet weights) and a
bins head (as regression/head.py: soft labels over 5-year bins, the median year) in Keras:

    block4_pool (14, 14, 512)   cached; augmented per epoch: shifted by up to one cell
    block5_conv1..3             trainable ("block5"), or only block5_conv3 from a cached block5_conv2 ("conv3")
    block5_pool, global average the fine-tuned 512-d vector (what would be stored as `vgg16_year`)
    power norm., standardised   as the frozen head (regression/head.py)
    Dense 512 / 128, dropout    the head, first trained alone on the frozen block 5 (warm start)
    Dense(bins, softmax)        soft labels, cross-entropy; the median year is read off

Early stopping on a validation part of the fitting posters (by content hash, never a test or
calibration poster), keeping the best weights; the 80 % ranges are conformalised quantiles
(regression/conformal.py) on the calibration part. The frozen default is regression.train's own
model (bins head on both stored vectors, one network) on exactly the same split. Since that
default reads the style vector too, each run also trains the default head on the fine-tuned
vector beside the stored style vector, and on the stored vgg16 vector beside it by the same path
(the like-for-like comparison: what replacing `vgg16` by the fine-tuned vector would change).

A cache that does not match its posters (their sha256), the weights or this version is rebuilt;
an interrupted `cache` resumes where it stopped (it writes in blocks and records how far it got).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import WEIGHTS

CACHE_VERSION = 1
LAYERS = ("block4_pool", "block5_conv2")  # what the two variants start from
BLOCK = 64  # posters per forward pass and per write


# --- the cache -----------------------------------------------------------------------------


def build_cache(collection: Path, out: Path, weights: str) -> None:
    """block4_pool and block5_conv2 of every poster of a collection (catalog order), float16, resumable."""
    from poster_search.embedding.images import decode_poster
    from poster_search.embedding.onnx_embedder import OnnxEmbedder
    from poster_search.ingest.catalog import read_catalog
    from poster_search.ingest.plan import file_digests

    catalog = read_catalog(collection / "movies.csv", collection / "posters")
    films = [f for f in catalog.films if f.year is not None]
    digests = file_digests([collection / "posters" / f.file for f in films])
    embedder = OnnxEmbedder(weights)
    index = {
        "version": CACHE_VERSION,
        "weights": embedder.spec.weights,
        "decode": embedder.spec.decode,
        "films": [{"key": f.key, "file": f.file, "year": f.year, "sha256": d} for f, d in zip(films, digests)],
    }
    out.mkdir(parents=True, exist_ok=True)
    index_path, progress_path = out / "index.json", out / "progress.json"
    stale = not index_path.is_file() or json.loads(index_path.read_text()) != index
    if stale:  # another set of posters, weights or version: never trusted, built again
        for name in (*[f"{layer}.f16" for layer in LAYERS], "progress.json"):
            (out / name).unlink(missing_ok=True)
        index_path.write_text(json.dumps(index))
    n = len(films)
    arrays = {
        layer: np.lib.format.open_memmap(
            out / f"{layer}.f16", mode="r+" if (out / f"{layer}.f16").exists() else "w+", dtype=np.float16, shape=(n, 14, 14, 512)
        )
        for layer in LAYERS
    }
    done = json.loads(progress_path.read_text())["done"] if progress_path.is_file() else 0
    session = _session_with(embedder, LAYERS)
    started = time.perf_counter()
    for start in range(done, n, BLOCK):
        rows = films[start : start + BLOCK]
        pixels = np.stack([decode_poster(collection / "posters" / f.file).pixels for f in rows])
        block4, conv2 = session.run(list(LAYERS), {"rgb_uint8": pixels})
        arrays["block4_pool"][start : start + len(rows)] = block4.astype(np.float16)
        arrays["block5_conv2"][start : start + len(rows)] = conv2.transpose(0, 2, 3, 1).astype(np.float16)  # NCHW -> NHWC
        for array in arrays.values():
            array.flush()
        progress_path.write_text(json.dumps({"done": start + len(rows)}))
        rate = (start + len(rows) - done) / (time.perf_counter() - started)
        print(
            f"\rcache {out.name}: {start + len(rows)}/{n} posters, {rate:.1f}/s, ETA {(n - start - len(rows)) / rate / 60:.0f} min",
            end="",
            flush=True,
        )
    size = sum((out / f"{layer}.f16").stat().st_size for layer in LAYERS)
    print(f"\ncache {out}: {n} posters, {size / 2**30:.2f} GB, {time.perf_counter() - started:.0f} s this run")


def _session_with(embedder, outputs: tuple[str, ...]):
    """An inference session whose graph also outputs these intermediate tensors."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    source = embedder._model()
    model = onnx.load(source) if isinstance(source, str) else onnx.load_from_string(source)
    have = {o.name for o in model.graph.output}
    for name in outputs:
        if name not in have:
            model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def load_cache(folder: Path, layer: str) -> tuple[np.ndarray, list[dict]]:
    index = json.loads((folder / "index.json").read_text())
    progress = json.loads((folder / "progress.json").read_text())["done"]
    if progress < len(index["films"]):
        sys.exit(f"cache {folder} is incomplete ({progress}/{len(index['films'])}): run `cache` again to finish it")
    return np.load(folder / f"{layer}.f16", mmap_mode="r"), index["films"]


# --- training ------------------------------------------------------------------------------

VARIANTS = {"block5": ("block4_pool", ("block5_conv1", "block5_conv2", "block5_conv3")), "conv3": ("block5_conv2", ("block5_conv3",))}


def split_rows(keys: np.ndarray, seed: int, trained: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The product's content split (regression.dataset), and a validation part of the fitting posters.
    `trained`: which rows' collections are trained on (the others are only tested: the
    cross-collection direction); every row's side of the split stays what it is with all of them."""
    from poster_search.regression.dataset import calibration_split, content_fraction, content_split
    from poster_search.regression.train import CALIBRATION_SHARE

    train, test = content_split(keys, 0.2, seed)
    if trained is not None:
        train = train[trained[train]]
    fit_rows, calibration_rows = calibration_split(keys[train], CALIBRATION_SHARE, seed)
    fit, calibration = train[fit_rows], train[calibration_rows]
    is_val = content_fraction(keys[fit], f"validation-{seed}") < 0.1
    return {"fit": fit[~is_val], "val": fit[is_val], "calibration": calibration, "test": test, "train": train}


class Batches:
    """Shuffled float32 batches of cached maps with soft year labels; shifted when training."""

    def __init__(self, maps: np.ndarray, rows: np.ndarray, labels: np.ndarray, batch: int, seed: int, augment: bool):
        self.maps, self.rows, self.labels, self.batch, self.augment = maps, rows, labels, batch, augment
        self.rng = np.random.default_rng(seed)

    def epoch(self):
        order = self.rng.permutation(self.rows) if self.augment else self.rows
        for start in range(0, len(order), self.batch):
            rows = np.sort(order[start : start + self.batch])
            x = np.asarray(self.maps[rows], np.float32)
            if self.augment:
                # Shifts only: a mirrored block-4 map is not the map of a mirrored poster (block 1-4's
                # kernels are not symmetric), so mirroring maps would teach block 5 other inputs.
                dy, dx = self.rng.integers(-1, 2, 2)
                x = np.roll(x, (dy, dx), axis=(1, 2))  # a shift by one cell (a 16-pixel crop offset at 224)
                if dy:
                    x[:, 0 if dy > 0 else -1] = 0
                if dx:
                    x[:, :, 0 if dx > 0 else -1] = 0
            yield x, self.labels[rows]


def build_model(variant: str, weights: str, head=None, bf16: bool = False):
    """block 5 (or only its last convolution) from the ImageNet weights, then `head` on the pooled
    unit vector: (the model to the head's output, the model to the pooled vector). `bf16`: the
    convolutions compute in bfloat16 (Keras mixed_bfloat16: fp32 master weights), 2.2 times as
    fast on this CPU (AVX-512 BF16)."""
    from poster_search.embedding.model import import_keras
    from poster_search.embedding.weights import conv_layers

    keras = import_keras()
    start, trainable = VARIANTS[variant]
    pretrained = {layer.name: layer for layer in conv_layers(weights)}
    inputs = keras.Input((14, 14, 512), name=start)
    x = inputs
    for name in trainable:
        conv = keras.layers.Conv2D(512, 3, padding="same", activation="relu", name=name, dtype="mixed_bfloat16" if bf16 else "float32")
        x = conv(x)
        conv.set_weights([pretrained[name].kernel, pretrained[name].bias])
    x = keras.layers.MaxPooling2D(2, name="block5_pool")(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="vgg16_year", dtype="float32")(x)  # the fine-tuned vector (before L2), fp32
    pool_model = keras.Model(inputs, pooled)
    if head is None:
        return None, pool_model
    return keras.Model(inputs, _trainable_through(head)(keras.layers.UnitNormalization(name="l2")(pooled))), pool_model


def _trainable_through(member):
    """The head's member with a power normalisation whose gradient is finite at 0.

    sqrt's derivative at 0 is infinite; a channel of block 5 that is 0 for a poster (common after
    ReLU and pooling) then sends 0 * inf = NaN into the convolutions' gradients, and the weights
    become NaN even at a learning rate of 0 (measured: the validation MAE went from 12.1 to 17-23
    in one epoch with every optimiser tried). Below 1e-12 the value is held (sqrt: 1e-6, as good as
    0 after the unit normalisation) and the gradient is 0. The layers after it are the trained ones."""
    from poster_search.embedding.model import import_keras
    from poster_search.regression.head import PowerNormalization

    keras = import_keras()
    if not isinstance(member.layers[0], PowerNormalization):
        return member

    class SafePowerNormalization(keras.layers.Layer):
        def call(self, inputs):
            rooted = keras.ops.sqrt(keras.ops.maximum(inputs, 1e-12))
            return rooted / keras.ops.maximum(keras.ops.norm(rooted, axis=-1, keepdims=True), 1e-12)

    return keras.Sequential([keras.Input(member.input_shape[1:]), SafePowerNormalization(), *member.layers[1:]], name="head")


def train_variant(
    variant: str,
    caches: list[Path],
    seed: int,
    weights: str,
    epochs: int,
    learning_rate: float,
    batch: int,
    bf16: bool = True,
    train_on: list[str] | None = None,
    optimizer: str = "adam",
    store: Path | None = None,
) -> dict:
    """One fine-tuning run: warm head on the frozen block 5, then block 5 and head together; with
    `store`, also the default head on the fine-tuned vector beside the stored style vector."""
    from poster_search.embedding.model import import_keras
    from poster_search.regression.config import HeadConfig
    from poster_search.regression.head import bin_centres, soft_labels, train_head

    keras = import_keras()
    layer = VARIANTS[variant][0]
    parts = [load_cache(c, layer) for c in caches]
    maps = np.concatenate([np.asarray(m) for m, _ in parts])  # in memory, float16
    films = [f | {"collection": c.name} for (_, fs), c in zip(parts, caches) for f in fs]
    keys = np.array([f["sha256"] for f in films])
    years = np.array([float(f["year"]) for f in films])
    collections = np.array([f["collection"] for f in films])
    rows = split_rows(keys, seed, None if not train_on else np.isin(collections, train_on))
    config = HeadConfig(members=1, patience=15, epochs=300, batch_size=128)
    head_fit = rows["fit"]  # never the validation part that stops stage 2, nor calibration or test posters
    centres = bin_centres(years[head_fit], config.bin_width)  # as train_head makes them: the member's softmax is over these
    labels = soft_labels(years, centres, config.label_sigma)
    timings = {}

    # 1. the frozen block 5's vectors, and the head trained on them (the warm start, and a figure of its own)
    started = time.perf_counter()
    _, frozen_pool = build_model(variant, weights)
    frozen = _predict_all(frozen_pool, maps)
    frozen /= np.linalg.norm(frozen, axis=1, keepdims=True)
    timings["frozen block 5 pass (s)"] = time.perf_counter() - started
    head, _ = train_head(frozen[head_fit], years[head_fit], config, seed=seed)
    member = head.get_layer(index=1)  # the Sequential member: power norm., standardisation, dense layers, softmax
    warm = {
        f"warm start of {variant}: frozen block 5, bins head on its vgg16 vector": _score(
            head.predict(frozen, verbose=0), rows, years, collections
        )
    }

    # 2. block 5 and the head together, on augmented maps, early stopping on the validation part
    model, tuned_pool = build_model(variant, weights, member, bf16)
    chosen = keras.optimizers.SGD(learning_rate, momentum=0.9) if optimizer == "sgd" else keras.optimizers.Adam(learning_rate)
    model.compile(optimizer=chosen, loss=keras.losses.CategoricalCrossentropy())
    train_batches = Batches(maps, rows["fit"], labels, batch, seed, True)
    val_batches = Batches(maps, rows["val"], labels, 128, seed, False)

    def validate() -> tuple[float, float]:
        # the cross-entropy and the MAE of the median year on the validation part; the MAE decides
        # (the loss can fall while the medians drift: measured, the first runs at 2e-5)
        outputs = [(model.test_on_batch(x, y), model.predict_on_batch(x)) for x, y in val_batches.epoch()]
        medians = _distribution_outputs(np.concatenate([np.asarray(p) for _, p in outputs]), centres)[:, 0]
        return float(np.mean([loss for loss, _ in outputs])), float(np.mean(np.abs(medians - years[rows["val"]])))

    val_loss, val_mae = validate()  # epoch 0: the warm start, which a fine-tuned block 5 must beat
    history = [{"epoch": 0, "loss": np.nan, "val_loss": val_loss, "val_mae": val_mae, "seconds": 0.0}]
    print(f"  {variant} seed {seed} warm start: val loss {val_loss:.4f}, val MAE {val_mae:.2f}", flush=True)
    best, best_mae, waited = model.get_weights(), val_mae, 0
    for epoch in range(epochs):
        started = time.perf_counter()
        losses = [float(model.train_on_batch(x, y)) for x, y in train_batches.epoch()]
        seconds = time.perf_counter() - started
        val_loss, val_mae = validate()
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_loss": val_loss, "val_mae": val_mae, "seconds": seconds})
        print(
            f"  {variant} seed {seed} epoch {epoch + 1}: loss {np.mean(losses):.4f} val loss {val_loss:.4f}, val MAE {val_mae:.2f} ({seconds / 60:.1f} min)",
            flush=True,
        )
        if val_mae < best_mae - 0.01:
            best, best_mae, waited = model.get_weights(), val_mae, 0
        else:
            waited += 1
            if waited >= 2:
                break
    model.set_weights(best)
    timings["epoch (min)"] = float(np.mean([h["seconds"] for h in history[1:]]) / 60)
    timings["best epoch"] = int(min(history, key=lambda h: h["val_mae"])["epoch"])
    probabilities = _predict_all(model, maps)
    outputs = _distribution_outputs(probabilities, centres)
    results = {**warm, f"fine-tuned ({variant})": _score(outputs, rows, years, collections)}
    if store is not None:  # the default's second input beside it: what would replace the frozen default
        started = time.perf_counter()
        tuned = _predict_all(tuned_pool, maps)
        tuned /= np.linalg.norm(tuned, axis=1, keepdims=True)
        timings["fine-tuned pass (s)"] = time.perf_counter() - started
        results |= beside_style(
            store, films, frozen, {f"fine-tuned ({variant}) + style vector, default head": tuned}, rows, years, collections, seed
        )
    return {
        "variant": variant,
        "seed": seed,
        "n": len(films),
        "train_on": train_on or [c.name for c in caches],
        "history": history,
        "timings": timings,
        "bf16": bf16,
        "optimizer": optimizer,
        "learning_rate": learning_rate,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "results": results,
    }


def beside_style(
    store: Path,
    films: list[dict],
    frozen: np.ndarray,
    vectors: dict[str, np.ndarray],
    rows: dict,
    years: np.ndarray,
    collections: np.ndarray,
    seed: int,
) -> dict:
    """The product's default head (its config, its fitting rows: the training part less calibration)
    on each of these vgg16 vectors beside the stored style vector, and on the stored vgg16 vector
    beside it (the frozen default through this same path: the like-for-like baseline). `frozen`:
    the cache's frozen block-5 vectors, which must be the stored vgg16 ones (the rows line up)."""
    from poster_search.regression.config import HeadConfig
    from poster_search.regression.dataset import load_collections
    from poster_search.regression.head import train_head
    from poster_search.store.collection import PosterStore
    from poster_search.store.connection import StoreLocation

    with PosterStore(StoreLocation(path=store), must_exist=True) as opened:
        data = load_collections(opened, sorted(set(collections)), "vgg16+vgg16_style")
    where = {(c, k): i for i, (c, k) in enumerate(zip(data.collections, data.keys))}
    missing = [f["file"] for f in films if (f["collection"], f["sha256"]) not in where]
    if missing:
        sys.exit(f"{len(missing)} cached posters are not in {store} (e.g. {missing[0]}): ingest them with --style, or rebuild the cache")
    order = np.array([where[(f["collection"], f["sha256"])] for f in films])
    stored, style = data.vector_part("vgg16")[order], data.vector_part("vgg16_style")[order]
    agreement = float(np.median(np.sum(stored * frozen, axis=1)))  # float16 maps, bfloat16 block 5: close, not equal
    print(f"  stored vgg16 vs the cache's frozen block 5: median cosine {agreement:.4f}", flush=True)
    if agreement < 0.98:
        sys.exit(
            f"the cache's frozen block 5 does not match {store}'s vgg16 vectors (median cosine {agreement:.3f}): other weights or posters?"
        )
    fit = np.sort(np.concatenate([rows["fit"], rows["val"]]))
    scores = {}
    for name, vgg16 in {"frozen vgg16 + style vector, default head (this path)": stored, **vectors}.items():
        x = np.concatenate([vgg16, style], axis=1)
        head, _ = train_head(x[fit], years[fit], HeadConfig(members=1), seed=seed)
        scores[name] = _score(head.predict(x, verbose=0), rows, years, collections)
    return scores


def _predict_all(model, maps: np.ndarray) -> np.ndarray:
    """`model` over every cached map, in catalog order, in batches of 64 (float32 from the float16 cache)."""
    return np.concatenate([model.predict(np.asarray(maps[start : start + 64], np.float32), verbose=0) for start in range(0, len(maps), 64)])


def _distribution_outputs(probabilities: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(n, 3) median, 10th and 90th percentile years of binned distributions, as the saved head computes them."""
    from poster_search.regression.head_numpy import binned_quantile

    return np.concatenate([binned_quantile(probabilities, centres, q) for q in (0.5, 0.1, 0.9)], axis=1)


def _score(outputs: np.ndarray, rows: dict, years: np.ndarray, collections: np.ndarray) -> dict:
    """MAE, bias, by decade and per-poster range coverage on the test part, per collection."""
    from poster_search.regression.conformal import calibrate_quantiles, coverage, ranges
    from poster_search.regression.metrics import year_metrics

    calibration = calibrate_quantiles(years[rows["calibration"]], outputs[rows["calibration"], 1:3])
    test = rows["test"]
    low, high = ranges(calibration, outputs[test, 0], outputs[test, 1:3])
    scores = {}
    for name in sorted(set(collections)):
        part = collections[test] == name
        m = year_metrics(years[test][part], outputs[test, 0][part])
        scores[name] = {
            "mae": m["mae"],
            "bias": m["bias"],
            "n": m["n"],
            "mae_by_decade": m["mae_by_decade"],
            "coverage": coverage(years[test][part], low[part], high[part]),
        }
    return scores


def frozen_default(store: Path, collections: list[str], seed: int) -> dict:
    """The product's default model (bins head on both stored vectors), one network, on the same split."""
    import tempfile

    from poster_search.regression.config import HeadConfig
    from poster_search.regression.dataset import load_collections
    from poster_search.regression.train import train_year_model
    from poster_search.store.collection import PosterStore
    from poster_search.store.connection import StoreLocation

    with PosterStore(StoreLocation(path=store), must_exist=True) as opened:
        data = load_collections(opened, collections, "vgg16+vgg16_style")
    with tempfile.TemporaryDirectory() as model_dir:
        report = train_year_model(data, Path(model_dir), 0.2, seed, HeadConfig(members=1), progress=False)
    by = report.by_collection or {collections[0]: report.results}
    return {
        name: {
            "mae": r["Keras head"]["mae"],
            "bias": r["Keras head"]["bias"],
            "n": r["Keras head"]["n"],
            "mae_by_decade": r["Keras head"]["mae_by_decade"],
            "coverage": r["Keras head"]["coverage"],
        }
        for name, r in by.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cache = sub.add_parser("cache")
    cache.add_argument("--collection", type=Path, required=True, help="a folder with movies.csv and posters/ (../shared/data/...)")
    cache.add_argument("--out", type=Path, required=True)
    cache.add_argument("--weights", default=str(WEIGHTS))
    run = sub.add_parser("run")
    run.add_argument(
        "--caches", type=Path, nargs="+", required=True, help="cache folders; their names must be the store's collection names"
    )
    run.add_argument(
        "--qdrant-path", type=Path, required=True, help="the store holding those collections with both vectors (for the frozen default)"
    )
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    run.add_argument("--variants", nargs="+", default=["frozen", "block5", "conv3"])
    run.add_argument("--epochs", type=int, default=12)
    run.add_argument("--learning-rate", type=float, default=1e-5)
    run.add_argument("--optimizer", choices=["sgd", "adam"], default="adam")
    run.add_argument("--batch-size", type=int, default=32)
    run.add_argument("--results", type=Path, required=True)
    run.add_argument("--weights", default=str(WEIGHTS))
    run.add_argument(
        "--train-on", nargs="+", help="train on these collections only, test on all (the cross-collection direction; not for 'frozen')"
    )
    run.add_argument("--fp32", action="store_true", help="train block 5 in fp32 (default: bfloat16 mixed precision)")
    run.add_argument(
        "--no-style", action="store_true", help="skip the default head on the fine-tuned vector beside the style vector (about 5 min a run)"
    )
    table = sub.add_parser("table")
    table.add_argument("--results", type=Path, nargs="+", required=True, help="one or more results files, read as one")
    args = parser.parse_args()
    if args.command == "cache":
        build_cache(args.collection, args.out, args.weights)
    elif args.command == "run":
        results = json.loads(args.results.read_text()) if args.results.is_file() else []
        trained_on = sorted(args.train_on or [c.name for c in args.caches])
        done = {(r["variant"], r["seed"], tuple(sorted(r.get("train_on", trained_on)))) for r in results}
        for seed in args.seeds:
            for variant in args.variants:
                if (variant, seed, tuple(trained_on)) in done:
                    continue  # resumable: a finished run is kept, an interrupted one is run again
                started = time.perf_counter()
                if variant == "frozen":
                    if args.train_on:
                        raise SystemExit(
                            "--train-on: the frozen default is trained on every cache; each fine-tuning run reports its own frozen warm start"
                        )
                    result = {
                        "variant": "frozen",
                        "seed": seed,
                        "results": {
                            "frozen default (bins, both vectors)": frozen_default(args.qdrant_path, [c.name for c in args.caches], seed)
                        },
                    }
                else:
                    result = train_variant(
                        variant,
                        args.caches,
                        seed,
                        args.weights,
                        args.epochs,
                        args.learning_rate,
                        args.batch_size,
                        not args.fp32,
                        args.train_on,
                        args.optimizer,
                        None if args.no_style else args.qdrant_path,
                    )
                result["seconds"] = time.perf_counter() - started
                results.append(result)
                args.results.write_text(json.dumps(results, indent=1))
                print(json.dumps({k: v for k, v in result.items() if k != "history"})[:2000], flush=True)
    else:
        print(results_table([run for file in args.results for run in json.loads(file.read_text())]))


def results_table(results: list[dict]) -> str:
    """Mean and spread over seeds of every model, per collection: MAE, bias, coverage; then by decade."""
    models: dict[str, dict[str, list[dict]]] = {}
    everything = sorted({c for run in results for per in run["results"].values() for c in per})
    for run in results:
        trained_on = sorted(run.get("train_on", everything))
        suffix = "" if trained_on == everything else f", trained on {' + '.join(trained_on)} only"
        for model, per_collection in run["results"].items():
            model += suffix
            for collection, scores in per_collection.items():
                models.setdefault(model, {}).setdefault(collection, []).append(scores)
    collections = sorted({c for m in models.values() for c in m})
    lines = [
        "| model | " + " | ".join(f"{c} MAE | {c} bias | {c} cov." for c in collections) + " | seeds |",
        "|" + " --- |" * (3 * len(collections) + 2),
    ]
    for model, per in models.items():
        cells = []
        for c in collections:
            runs = per.get(c, [])
            maes = [r["mae"] for r in runs]
            cells += [
                f"{np.mean(maes):.2f} ± {np.std(maes):.2f}" if maes else "—",
                f"{np.mean([r['bias'] for r in runs]):+.1f}" if runs else "—",
                f"{np.mean([r['coverage'] for r in runs]):.0%}" if runs else "—",
            ]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {len(next(iter(per.values())))} |")
    for c in collections:
        decades = sorted({int(d) for per in models.values() for r in per.get(c, []) for d in r["mae_by_decade"]})
        lines += [
            "",
            f"MAE by decade, {c}:",
            "| model | " + " | ".join(f"{d}s" for d in decades) + " |",
            "|" + " --- |" * (len(decades) + 1),
        ]
        for model, per in models.items():
            runs = per.get(c, [])
            # a decade with a test poster in some seeds' splits only: the mean of those seeds
            values = [[r["mae_by_decade"].get(str(d), r["mae_by_decade"].get(d)) for r in runs] for d in decades]
            row = [np.mean([v for v in vs if v is not None]) if any(v is not None for v in vs) else np.nan for vs in values]
            lines.append(f"| {model} | " + " | ".join("—" if np.isnan(v) else f"{v:.1f}" for v in row) + " |")
    costs = [r for r in results if "timings" in r]
    for r in costs:
        only = sorted(r.get("train_on", everything))
        lines.append(
            f"\n{r['variant']} seed {r['seed']}{'' if only == everything else ' trained on ' + ' + '.join(only) + ' only'}: {len(r['history']) - 1} epochs (best: {r['timings'].get('best epoch', '?')}), {r['timings']['epoch (min)']:.1f} min an epoch, "
            f"{r['seconds'] / 60:.0f} min in all, peak {r['peak_mb']:.0f} MB"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
