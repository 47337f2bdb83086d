"""Queries as a user meets them: cold whole processes, the server's first answer, upload latency.

    .venv/bin/python -m bench.queries --qdrant-path STORE [--model-dir year_model] [--runs 5] [-n 30] [--precisions auto fp32]

Prints, on the machine it runs on, each figure the median of `--runs` fresh processes with the
peak memory (maximum resident set) of each:
- `cli.py search poster.jpg` (decode, VGG16 on ONNX Runtime, Qdrant), and `--vector vgg16_style`;
- `cli.py search --title ...` (no model);
- `cli.py predict-year poster.jpg` (with --model-dir);
- `cli.py --help`;
- `cli.py serve`: seconds from start to the answer of its first upload search;
- then, on that warm server, upload search p50 / p95 over `-n` posters.
And where a cold `search poster.jpg` spends its time, phase by phase, in one process.
With `--precisions auto fp32`, every figure for each value of $POSTER_SEARCH_PRECISION (auto: OpenVINO
bf16 on a CPU that has bf16; fp32: ONNX Runtime), the cold runs interleaved (a shared machine drifts).

The store is the README's quick start (3,748 posters); the query posters are real posters of it,
so each query excludes its own stored copy, as a user's own poster would.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.common import POSTERS, ROOT, WEIGHTS, require_data


def cold(command: list[str], runs: int, envs: dict[str, dict] | None = None) -> dict[str, tuple[float, float, float]]:
    """Per environment: median seconds, median peak MB and median CPU seconds of `runs` fresh
    processes (peak read from wait4's rusage), the environments taking turns run by run."""
    envs = envs or {"": {}}
    seconds: dict[str, list[float]] = {k: [] for k in envs}
    peaks: dict[str, list[float]] = {k: [] for k in envs}
    cpu: dict[str, list[float]] = {k: [] for k in envs}
    for _ in range(runs):
        for key, env in envs.items():
            started = time.perf_counter()
            process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **env})
            assert process.stderr is not None  # a pipe
            _, status, usage = os.wait4(process.pid, 0)
            seconds[key].append(time.perf_counter() - started)
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-500:]}")
            peaks[key].append(usage.ru_maxrss / 1024)  # KB on Linux
            cpu[key].append(usage.ru_utime + usage.ru_stime)
    return {k: (statistics.median(seconds[k]), statistics.median(peaks[k]), statistics.median(cpu[k])) for k in envs}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def upload(url: str, path: Path) -> dict:
    boundary = "benchboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(url, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    return json.loads(urllib.request.urlopen(request, timeout=120).read())


def serve_figures(store: Path, model_dir: Path | None, queries: list[Path], env: dict | None = None) -> tuple[float, float, list[float]]:
    """(seconds from start to the first upload's answer, the server's peak MB, warm upload latencies)."""
    port = free_port()
    command = [sys.executable, str(ROOT / "cli.py"), "serve", "--qdrant-path", str(store), "--port", str(port), "--weights", str(WEIGHTS)]
    command += ["--model-dir", str(model_dir)] if model_dir else []
    url = f"http://127.0.0.1:{port}/api/search/image"
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env={**os.environ, **(env or {})}
    )
    try:
        while True:
            try:
                upload(url, queries[0])
                break
            except OSError:
                if process.poll() is not None:
                    sys.exit("the server did not start")
                time.sleep(0.05)
        first = time.perf_counter() - started
        latencies = []
        for path in queries[1:]:
            t = time.perf_counter()
            upload(url, path)
            latencies.append(time.perf_counter() - t)
        peak = _peak_mb(process.pid)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    return first, peak, latencies


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


PHASES = """
import time
t0 = time.perf_counter(); marks = []
def mark(what):
    marks.append((what, time.perf_counter()))
from poster_search import cli; mark("Python and the CLI's imports")
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.search.neighbours import PosterSearch, image_embedder; mark("search modules")
store = PosterStore(StoreLocation(path={store!r}), must_exist=True); store.count(); mark("store open (Edge shard load)")
embedder = image_embedder(store, {weights!r}); mark("embedding spec (weights id, remembered)")
if embedder.runtime.backend == "openvino":
    from poster_search.embedding.openvino_embedder import import_openvino
    import_openvino(); mark("import openvino")
else:
    import onnxruntime; mark("import onnxruntime")
embedder._model(); mark("ONNX model from the cache (verified)")
embedder.load(); mark(f"{{embedder.runtime.backend}} {{embedder.runtime.precision}}: session or compiled model")
PosterSearch(store, embedder).by_image({image!r}, 3); mark("decode + VGG16 + query")
store.close(); mark("store close")
last = t0
for what, at in marks:
    print(f"{{what:42}} {{at - last:6.3f}} s"); last = at
print(f"{{'in process, all':42}} {{last - t0:6.3f}} s")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qdrant-path", type=Path, default=ROOT / "qdrant_data")
    parser.add_argument("--model-dir", type=Path, default=None, help="a year model (train-year) for predict-year and the server")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("-n", type=int, default=30, help="warm upload searches")
    parser.add_argument("--precisions", nargs="+", default=["auto"], help="values of $POSTER_SEARCH_PRECISION to compare (auto fp32)")
    args = parser.parse_args()
    require_data()
    python, cli = sys.executable, str(ROOT / "cli.py")
    store, weights = str(args.qdrant_path), str(WEIGHTS)
    posters = sorted(POSTERS.glob("*.jpg"))
    queries = posters[:: max(1, len(posters) // (args.n + 1))][: args.n + 1]
    image = str(queries[0])
    envs = {p: {"POSTER_SEARCH_PRECISION": p} for p in args.precisions}

    print(f"cold processes, median of {args.runs} (seconds, peak resident memory, CPU seconds), POSTER_SEARCH_PRECISION={'/'.join(envs)}:")
    rows = [
        ("search poster.jpg", [python, cli, "search", image, "--qdrant-path", store, "--weights", weights]),
        (
            "search poster.jpg --vector vgg16_style",
            [python, cli, "search", image, "--vector", "vgg16_style", "--qdrant-path", store, "--weights", weights],
        ),
        ("search --title", [python, cli, "search", "--title", "Gone with the Wind", "--qdrant-path", store]),
        ("--help", [python, cli, "--help"]),
    ]
    if args.model_dir:
        rows.append(
            ("predict-year poster.jpg", [python, cli, "predict-year", image, "--model-dir", str(args.model_dir), "--weights", weights])
        )
    for label, command in rows:
        if "vgg16_style" in command:
            from poster_search.store.collection import PosterStore
            from poster_search.store.connection import StoreLocation

            with PosterStore(StoreLocation(path=args.qdrant_path)) as db:
                if not db.has_vector("vgg16_style"):
                    continue
        for precision, (seconds, peak, cpu) in cold(command, args.runs, envs).items():
            print(f"  {label:42} {precision:5} {seconds:6.2f} s  {peak:6.0f} MB  cpu {cpu:5.2f} s", flush=True)

    for precision, env in envs.items():
        first, peak, latencies = serve_figures(args.qdrant_path, args.model_dir, queries, env)
        ms = sorted(1000 * x for x in latencies)
        print(f"serve ({precision}): first upload answered {first:.2f} s after start; server peak {peak:.0f} MB")
        print(
            f"  warm upload search, {len(ms)} posters: p50 {statistics.median(ms):.0f} ms, p95 {ms[int(0.95 * (len(ms) - 1))]:.0f} ms",
            flush=True,
        )
    for precision, env in envs.items():
        print(f"where a cold `search poster.jpg` spends its time (one process, {precision}):")
        phases = subprocess.run(
            [python, "-c", PHASES.format(store=store, weights=weights, image=image)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, **env},
        )
        print("  " + phases.stdout.replace("\n", "\n  ").rstrip() + phases.stderr[-300:])


if __name__ == "__main__":
    main()
