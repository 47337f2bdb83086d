"""The runtimes side by side on real posters: TensorFlow, ONNX Runtime fp32 and int8, OpenVINO bf16 and int8.

    .venv/bin/python -m bench.runtimes [-n 256] [--rounds 3] [--batch-size 32] [--calibration 64] [--runtimes ...]

`--runtimes` picks from: tensorflow, onnxruntime-fp32, onnxruntime-int8, openvino-bf16 (a CPU with
AMX or AVX-512 BF16), openvino-int8, openvino-fp32; default: all but openvino-fp32, those this
machine can run.

Prints, in one run on the machine it runs on:
- model-only posters/s of each runtime on uint8 batches already in memory, the runtimes
  interleaved round by round (a shared machine's load drifts; interleaving spreads it evenly);
- agreement with fp32 (TensorFlow when measured, else ONNX Runtime fp32), per poster: cosine of each
  other runtime (both vectors; min, median), and its share of each poster's 10 nearest neighbours
  among the n that fp32 also ranks in its 10 nearest (are the search results the same?);
- each runtime's single-poster latency (batch 1, median of 9, interleaved).

int8 is calibrated on `--calibration` posters taken from outside the measured ones (as ingest
does: evenly along a catalog), so its agreement is measured on posters it never saw.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import CATALOG, POSTERS, WEIGHTS, require_data
from poster_search.embedding.backend import cpu_bf16, installed
from poster_search.embedding.images import decode_poster
from poster_search.embedding.onnx_embedder import OnnxEmbedder
from poster_search.embedding.quantize import choose_calibration
from poster_search.ingest.catalog import read_catalog


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
    available = ["onnxruntime-fp32", "onnxruntime-int8"]
    available = (["tensorflow"] if installed("tensorflow") else []) + available
    available += (["openvino-bf16"] if cpu_bf16() else []) + ["openvino-int8"] if installed("openvino") else []
    parser.add_argument("--runtimes", nargs="+", default=available, help=f"default: {' '.join(available)}")
    args = parser.parse_args()
    require_data()
    films = read_catalog(CATALOG, POSTERS).films
    measured = films[1::2][: args.n]  # odd rows measured, even rows calibrate: never the same posters
    pixels = np.stack([decode_poster(POSTERS / f.file).pixels for f in measured])
    calibration = choose_calibration([f.file for f in films[0::2]], POSTERS, args.calibration)

    def make(name: str):
        if name == "tensorflow":
            from poster_search.embedding.model import Embedder

            return Embedder(str(WEIGHTS), style=True, backend="tensorflow")
        runtime, precision = name.split("-")
        int8 = precision == "int8"
        kind: type[OnnxEmbedder] = OnnxEmbedder
        if runtime == "openvino":
            from poster_search.embedding.openvino_embedder import OpenVinoEmbedder

            kind = OpenVinoEmbedder
        return kind(
            str(WEIGHTS),
            style=True,
            precision=precision,
            long_lived=True,
            calibration=calibration if int8 else None,
            posters_dir=POSTERS if int8 else None,
        )

    runtimes = {name.replace("-", " "): make(name) for name in args.runtimes}
    for name, embedder in runtimes.items():
        started = time.perf_counter()
        embedder.load()
        embedder.embed_both(pixels[:2])  # warm: first-call costs are not throughput
        print(f"{name}: ready in {time.perf_counter() - started:.1f} s (load, cache or build, first batch)", flush=True)

    rates: dict[str, list[float]] = {name: [] for name in runtimes}
    single: dict[str, list[float]] = {name: [] for name in runtimes}
    for _ in range(args.rounds):
        for name, embedder in runtimes.items():
            rates[name].append(rate(lambda b, e=embedder: e.embed_both(b), pixels, args.batch_size))
        print("round " + ", ".join(f"{name} {values[-1]:.2f}" for name, values in rates.items()), flush=True)
    for i in range(9):
        for name, embedder in runtimes.items():
            started = time.perf_counter()
            embedder.embed_both(pixels[i : i + 1])
            single[name].append(time.perf_counter() - started)
    print(f"\nmodel only, {len(pixels)} real posters, batch {args.batch_size}, both vectors, {args.rounds} interleaved rounds (posters/s):")
    base = "tensorflow" if "tensorflow" in runtimes else "onnxruntime fp32"
    for name, values in rates.items():
        print(
            f"  {name:18} mean {np.mean(values):6.2f}  rounds {', '.join(f'{v:.2f}' for v in values)}"
            f"  = {np.mean(values) / np.mean(rates[base]):.2f}x {base}"
            + (f", {np.mean(values) / np.mean(rates['onnxruntime fp32']):.2f}x onnxruntime fp32" if base != "onnxruntime fp32" else "")
            + f"; one poster {1000 * np.median(single[name]):.0f} ms"
        )

    vectors = {
        name: [np.concatenate(part) for part in zip(*[e.embed_both(pixels[i : i + 32]) for i in range(0, len(pixels), 32)])]
        for name, e in runtimes.items()
    }
    reference = vectors[base]
    print(f"\nagreement with {base}, per poster:")
    for name in runtimes:
        if name == base:
            continue
        for which, label in ((0, "vgg16"), (1, "vgg16_style")):
            cos = np.sum(reference[which] * vectors[name][which], axis=1)
            agree = neighbour_agreement(reference[which], vectors[name][which])
            print(f"  {name:18} {label:12} cosine min {cos.min():.6f} median {np.median(cos):.6f}; 10 nearest unchanged {agree:.1%}")
    print(
        f"\nint8 calibrated on {len(calibration.files)} posters of the even rows (digest {calibration.digest}); measured on {len(pixels)} of the odd rows"
    )


if __name__ == "__main__":
    main()
