"""`cli.py ingest` as a user runs it, per runtime: one poster, then N posters end to end.

    .venv/bin/python -m bench.ingest_runtimes [-n 300] [--rounds 1] [--runtimes tensorflow onnxruntime-fp32 openvino-bf16 openvino-int8]

Each run is a fresh process into a fresh store, both vectors off (the quick start's command), the
caches warm (the ONNX graph, OpenVINO's compiled model and the int8 model are built by a first run
that is not counted). Runtimes take turns within each round, so a shared machine's drift falls on
all alike. Prints per runtime: seconds for one poster (start-up included: what a tiny job costs),
seconds and posters/s for N, peak resident memory, and the quick start's 3,748 posters extrapolated
as one poster's time plus 3,747 at the marginal rate (N - 1 posters in the time N took beyond one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import POSTERS, ROOT, WEIGHTS, first_n_catalog, require_data

RUNTIMES = {
    "auto": [],
    "tensorflow": ["--backend", "tensorflow", "--precision", "fp32"],
    "onnxruntime-fp32": ["--backend", "onnxruntime", "--precision", "fp32"],
    "onnxruntime-int8": ["--backend", "onnxruntime", "--precision", "int8"],
    "openvino-bf16": ["--backend", "openvino", "--precision", "bf16"],
    "openvino-int8": ["--backend", "openvino", "--precision", "int8"],
}
QUICK_START = 3748


def ingest(catalog: Path, options: list[str], tmp: Path) -> tuple[float, float]:
    """Wall seconds and peak MB of one `cli.py ingest` into a fresh store."""
    store = Path(tempfile.mkdtemp(dir=tmp, prefix="store-"))
    command = [sys.executable, str(ROOT / "cli.py"), "ingest", "--catalog", str(catalog), "--posters", str(POSTERS)]
    command += ["--weights", str(WEIGHTS), "--qdrant-path", str(store), "--rejects", str(tmp / "rejects.csv"), *options]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None  # a pipe
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-800:]}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="posters of the end-to-end runs (the catalog's first n)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--runtimes", nargs="+", default=["tensorflow", "onnxruntime-fp32", "openvino-bf16", "openvino-int8"])
    args = parser.parse_args()
    require_data()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        tmp = Path(folder)
        one, many = first_n_catalog(1, tmp / "one.csv"), first_n_catalog(args.n, tmp / "many.csv")
        int8 = [name for name in args.runtimes if name.endswith("int8")]
        for name in args.runtimes:  # caches built (ONNX graph, compiled model, the int8 model of these posters): not measured
            ingest(many if name in int8 else one, RUNTIMES[name], tmp)
        single: dict[str, list[float]] = {name: [] for name in args.runtimes}
        bulk: dict[str, list[float]] = {name: [] for name in args.runtimes}
        peak: dict[str, list[float]] = {name: [] for name in args.runtimes}
        for round_ in range(args.rounds):
            for name in args.runtimes:
                if name not in int8:  # a one-poster catalog calibrates another int8 model: not the same job
                    single[name].append(ingest(one, RUNTIMES[name], tmp)[0])
                seconds, mb = ingest(many, RUNTIMES[name], tmp)
                bulk[name].append(seconds)
                peak[name].append(mb)
                one_poster = f"one poster {single[name][-1]:6.1f} s; " if name not in int8 else ""
                print(f"round {round_ + 1} {name:17} {one_poster}{args.n} posters {seconds:7.1f} s", flush=True)
    base = args.runtimes[0]

    def extrapolated(name: str) -> tuple[float, float]:
        """(seconds for 3,748, marginal posters/s): one poster's time plus the rest at the marginal
        rate; int8 (no one-poster run) scaled linearly from N, start-up included: an upper bound."""
        tn = statistics.median(bulk[name])
        if not single[name]:
            return tn * QUICK_START / args.n, args.n / tn
        t1 = statistics.median(single[name])
        marginal = (args.n - 1) / max(tn - t1, 1e-9)
        return t1 + (QUICK_START - 1) / marginal, marginal

    print(f"\n`cli.py ingest`, fresh process and store, caches warm, medians of {args.rounds} interleaved rounds:")
    print(
        f"  {'runtime':17} {'1 poster':>9} {f'{args.n} posters':>12} {'posters/s':>10} {'peak MB':>8} {'3,748 (extrapolated)':>24}  vs {base}"
    )
    for name in args.runtimes:
        tn = statistics.median(bulk[name])
        one_poster = f"{statistics.median(single[name]):8.1f}s" if single[name] else f"{'-':>9}"
        whole, marginal = extrapolated(name)
        print(
            f"  {name:17} {one_poster} {tn:11.1f}s {args.n / tn:10.2f} {statistics.median(peak[name]):8.0f}"
            f" {whole / 60:11.1f} min ({marginal:5.2f}/s)  {extrapolated(base)[0] / whole:5.2f}x"
        )


if __name__ == "__main__":
    main()
