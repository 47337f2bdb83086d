"""The runtimes side by side on real posters: TensorFlow, ONNX Runtime fp32 and int8.

    .venv/bin/python -m bench.runtimes [-n 256] [--rounds 3] [--batch-size 32] [--calibration 64]

Prints, in one run on the machine it runs on:
- model-only posters/s of each runtime on uint8 batches already in memory, the runtimes
  interleaved round by round (a shared machine's load drifts; interleaving spreads it evenly);
- agreement with TensorFlow fp32, per poster: cosine of ONNX Runtime fp32 (both vectors) and of
  int8 (min, median), and int8's share of each poster's 10 nearest neighbours among the n that fp32
  also ranks in its 10 nearest (the question int8 must answer: are the search results the same?).

int8 is calibrated on `--calibration` posters taken from outside the measured ones (as ingest
does: evenly along a catalog), so its agreement is measured on posters it never saw.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import CATALOG, POSTERS, WEIGHTS, require_data
from embedding.images import decode_poster
from embedding.model import Embedder
from embedding.onnx_embedder import OnnxEmbedder
from embedding.quantize import choose_calibration
from ingest.catalog import read_catalog


def rate(embed, pixels: np.ndarray, batch: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(pixels), batch):
        embed(pixels[i : i + batch])
    return len(pixels) / (time.perf_counter() - started)


def neighbour_agreement(reference: np.ndarray, other: np.ndarray, k: int = 10) -> float:
    """Mean share of each poster's k nearest (by `reference`) that `other` also ranks in its k nearest."""

    def top(v: np.ndarray) -> np.ndarray:
        sims = v @ v.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1)[:, :k]

    a, b = top(reference), top(other)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=256, help="posters measured")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--calibration", type=int, default=64, help="int8 calibration posters")
    args = parser.parse_args()
    require_data()
    films = read_catalog(CATALOG, POSTERS).films
    measured = films[1::2][: args.n]  # odd rows measured, even rows calibrate: never the same posters
    pixels = np.stack([decode_poster(POSTERS / f.file).pixels for f in measured])
    calibration = choose_calibration([f.file for f in films[0::2]], POSTERS, args.calibration)

    tensorflow = Embedder(str(WEIGHTS), style=True, backend="tensorflow")
    fp32 = OnnxEmbedder(str(WEIGHTS), style=True)
    int8 = OnnxEmbedder(str(WEIGHTS), style=True, precision="int8", calibration=calibration, posters_dir=POSTERS)
    runtimes: dict[str, Embedder | OnnxEmbedder] = {"tensorflow fp32": tensorflow, "onnxruntime fp32": fp32, "onnxruntime int8": int8}
    for name, embedder in runtimes.items():
        started = time.perf_counter()
        embedder.load()
        embedder.embed_both(pixels[:2])  # warm: first-call costs are not throughput
        print(f"{name}: ready in {time.perf_counter() - started:.1f} s (load, cache or build, first batch)")

    rates: dict[str, list[float]] = {name: [] for name in runtimes}
    for _ in range(args.rounds):
        for name, embedder in runtimes.items():
            rates[name].append(rate(lambda b, e=embedder: e.embed_both(b), pixels, args.batch_size))
    print(f"\nmodel only, {len(pixels)} real posters, batch {args.batch_size}, both vectors, {args.rounds} interleaved rounds (posters/s):")
    base = np.mean(rates["tensorflow fp32"])
    for name, values in rates.items():
        print(
            f"  {name:18} mean {np.mean(values):6.2f}  rounds {', '.join(f'{v:.2f}' for v in values)}  = {np.mean(values) / base:.2f}x tensorflow"
        )

    vectors = {
        name: [np.concatenate(part) for part in zip(*[e.embed_both(pixels[i : i + 32]) for i in range(0, len(pixels), 32)])]
        for name, e in runtimes.items()
    }
    reference = vectors["tensorflow fp32"]
    print("\nagreement with tensorflow fp32, per poster:")
    for name in ("onnxruntime fp32", "onnxruntime int8"):
        for which, label in ((0, "vgg16"), (1, "vgg16_style")):
            cos = np.sum(reference[which] * vectors[name][which], axis=1)
            agree = neighbour_agreement(reference[which], vectors[name][which])
            print(f"  {name:18} {label:12} cosine min {cos.min():.6f} median {np.median(cos):.6f}; 10 nearest unchanged {agree:.1%}")
    print(
        f"\nint8 calibrated on {len(calibration.files)} posters of the even rows (digest {calibration.digest}); measured on {len(pixels)} of the odd rows"
    )


if __name__ == "__main__":
    main()
