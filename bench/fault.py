"""Fault test: ingest real posters while killing the process (SIGKILL) at random moments, resuming
each time, starting from a stale store that must be corrected; the result must equal a clean run.

    .venv/bin/python -m bench.fault [-n 600] [--kills 20] [--seed 0] [--batch-size 16]

1. Clean run: `cli.py ingest` of the first N posters of ../shared/data/posters-era, uninterrupted.
2. Stale store: a first ingest (uninterrupted) of a *wrong* version of part of the data: the
   first 30 % of the films, among them a tenth of all poster files replaced by other posters and
   a tenth of all titles and years altered, and 20 films that the real catalog does not have.
3. The real catalog and poster files are put back, and `cli.py ingest --prune` is run again and
   again, each run SIGKILLed at a random moment: a third of the kills at any moment from the
   start (model loading, planning, payload rewrites, pruning), the others at a random moment
   after the progress bar shows embedding under way (so most kills land while batches are being
   embedded and written). After --kills kills, one run is left to finish. If the work runs out
   before that many kills, the test says so and fails: give a larger -n.
4. Checks: exactly one point per catalog film, no other point; every payload equal to the clean
   run's (key, title, year, file, sha256); every vector equal to the clean run's (cosine >= 0.9999).

The VGG16 has seeded random weights (`--weights random`): the same in every process, fast to
build, and what is compared is the pipeline, not the weights. Exit code 1 if a check fails.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.common import CATALOG, POSTERS, ROOT
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.schema import point_id

FIELDS = ("key", "title", "year", "file", "sha256", "genres")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=600, help="posters (the first N of posters-era)")
    parser.add_argument("--kills", type=int, default=20, help="at least this many SIGKILLs before a run may finish")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    if not CATALOG.is_file() or not POSTERS.is_dir():
        sys.exit(f"fault test skipped: {CATALOG} or {POSTERS} not found (see ../shared/data/README.md)")
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="bench-fault-"))
    started = time.perf_counter()

    with open(CATALOG, encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header, rows = reader.fieldnames, list(reader)[: args.n]
    assert header is not None  # the data's catalog has a header row
    posters = tmp / "posters"
    posters.mkdir()
    for row in rows:
        shutil.copyfile(POSTERS / row["filename"], posters / row["filename"])
    catalog = write_catalog(tmp / "movies.csv", header, rows)

    print(f"clean run of {len(rows)} posters ...", flush=True)
    clean = tmp / "clean"
    result = subprocess.run(ingest_command(catalog, posters, clean, args.batch_size), capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"clean run failed: {result.stderr[-2000:]}")

    # The stale store: part of the films, with replaced poster files and altered rows, and films
    # the real catalog lacks.
    part = max(1, len(rows) * 3 // 10)
    stale_files = rng.sample(range(part), min(part, len(rows) // 10))
    stale_rows = [dict(r) for r in rows[:part]]
    for i in rng.sample(range(part), min(part, len(rows) // 10)):
        stale_rows[i]["title"] += " (old title)"
        stale_rows[i]["release_year"] = str(int(stale_rows[i]["release_year"]) - 3)
    with open(CATALOG, encoding="utf-8") as f:
        extra = list(csv.DictReader(f))[args.n : args.n + 20]
    for row in extra:
        shutil.copyfile(POSTERS / row["filename"], posters / row["filename"])
    for i in stale_files:
        other = rows[(i + 1) % len(rows)]["filename"]
        shutil.copyfile(POSTERS / other, posters / rows[i]["filename"])
    faulty = tmp / "faulty"
    stale_catalog = write_catalog(tmp / "stale.csv", header, stale_rows + extra)
    print(
        f"stale store: {part} of the films, {len(stale_files)} of them with replaced posters, {min(part, len(rows) // 10)} with "
        f"altered rows, and {len(extra)} films the catalog lacks ...",
        flush=True,
    )
    result = subprocess.run(ingest_command(stale_catalog, posters, faulty, args.batch_size), capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"stale run failed: {result.stderr[-2000:]}")
    for i in stale_files:
        shutil.copyfile(POSTERS / rows[i]["filename"], posters / rows[i]["filename"])

    kills, during_work, orphans, runs = 0, 0, 0, 0
    command = ingest_command(catalog, posters, faulty, args.batch_size) + ["--prune"]
    while True:
        runs += 1
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        progress = follow_progress(process)
        if kills < args.kills:
            if rng.random() < 1 / 3:
                deadline = time.monotonic() + rng.uniform(0.1, 8.0)  # any moment from the start
            else:
                deadline = None
            while process.poll() is None:
                if deadline is None and progress["done"] > 0:
                    deadline = time.monotonic() + rng.uniform(0.0, 1.5)  # a moment while embedding
                if deadline is not None and time.monotonic() >= deadline:
                    process.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.02)
        process.wait()
        if process.returncode == -signal.SIGKILL:
            kills += 1
            during_work += progress["done"] > 0
            orphans += reap_group(process.pid)
            print(
                f"  run {runs}: killed at {time.monotonic() - progress['started']:.1f}s, progress {progress['done']}/{progress['total']}",
                flush=True,
            )
            continue
        orphans += reap_group(process.pid)
        if process.returncode != 0:
            sys.exit(f"run {runs} failed (exit {process.returncode}): {progress['stderr'][-2000:]}")
        print(f"  run {runs}: finished: {' / '.join(progress['stdout'].strip().splitlines())}", flush=True)
        break

    failures = compare(clean, faulty, rows)
    seconds = time.perf_counter() - started
    print(
        f"\n{len(rows)} posters; {kills} SIGKILLs survived ({during_work} while embedding was under way), {runs} runs, "
        f"processes still alive 3 s after their run was killed: {orphans}; {seconds:.0f}s in all"
    )
    if kills < args.kills:
        failures.append(f"the work ran out after {kills} kills, fewer than --kills {args.kills}: give a larger -n")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures[:20]))
        sys.exit(1)
    print("store after the kills == clean run: one point per film, payloads equal, vectors cosine >= 0.9999")
    shutil.rmtree(tmp, ignore_errors=True)


def ingest_command(catalog: Path, posters: Path, store: Path, batch_size: int) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "cli.py"),
        "ingest",
        "--catalog",
        str(catalog),
        "--posters",
        str(posters),
        "--qdrant-path",
        str(store),
        "--weights",
        "random",
        "--batch-size",
        str(batch_size),
        "--rejects",
        str(store) + "-rejects.csv",
    ]


def write_catalog(path: Path, header: Sequence[str], rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def follow_progress(process: subprocess.Popen) -> dict:
    """Read the progress bar (tqdm redraws it with \\r on stderr) and stdout in threads."""
    state = {"done": 0, "total": 0, "stderr": "", "stdout": "", "started": time.monotonic()}

    def read_stderr():
        for chunk in iter(lambda: process.stderr.read(64), ""):
            state["stderr"] += chunk
            found = re.findall(r"(\d+)/(\d+) \[", state["stderr"][-400:])
            if found:
                state["done"], state["total"] = map(int, found[-1])

    def read_stdout():
        state["stdout"] = process.stdout.read()

    for target in (read_stderr, read_stdout):
        threading.Thread(target=target, daemon=True).start()
    return state


def reap_group(pgid: int, grace: float = 3.0) -> int:
    """Kill what a killed run left behind in its process group (decode workers) after `grace`
    seconds to exit by themselves; how many were still there."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return 0
        time.sleep(0.1)
    left = sum(1 for p in Path("/proc").iterdir() if p.name.isdigit() and _pgid(p) == pgid)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return left


def _pgid(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def compare(clean: Path, faulty: Path, rows: list[dict]) -> list[str]:
    def load(path: Path) -> tuple[dict, int]:
        with PosterStore(StoreLocation(path=path)) as store:
            return {p.id: p for p in store.points()}, store.count()

    (want, want_count), (got, got_count) = load(clean), load(faulty)
    expected = {point_id(r["filename"]) for r in rows}
    failures = []
    if set(want) != expected or want_count != len(rows):
        failures.append(f"the clean run itself holds {want_count} points, {len(set(want) ^ expected)} differing from the catalog")
    if got_count != len(rows):
        failures.append(f"{got_count} points stored (count), {len(rows)} films in the catalog")
    if missing := expected - set(got):
        failures.append(f"{len(missing)} films missing")
    if extra := set(got) - expected:
        failures.append(f"{len(extra)} points that are not catalog films")
    by_id = {point_id(r["filename"]): r for r in rows}
    worst = 1.0
    for pid in expected & set(got) & set(want):
        a, b = want[pid], got[pid]
        fields_a = {k: a.payload.get(k) for k in FIELDS}
        fields_b = {k: b.payload.get(k) for k in FIELDS}
        if fields_a != fields_b:
            failures.append(f"{pid}: payload {fields_b} != clean {fields_a}")
        row = by_id[pid]
        if (b.payload.get("title"), b.payload.get("year")) != (row["title"], int(row["release_year"])):
            failures.append(f"{pid}: payload {fields_b} does not match the catalog row {row}")
        cosine = float(np.dot(a.vector, b.vector) / (np.linalg.norm(a.vector) * np.linalg.norm(b.vector)))
        worst = min(worst, cosine)
        if cosine < 0.9999:
            failures.append(f"{pid}: vector cosine {cosine:.6f} to the clean run's")
    print(f"lowest cosine to the clean run: {worst:.6f}")
    return failures


if __name__ == "__main__":
    main()
