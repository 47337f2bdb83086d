"""A large index build runs in a child process (store/edge_build.py): Edge's build holds Python's
GIL to its end, so in the command's own process nothing else would move. Checked on a real store
with the threshold lowered: this process's threads move during the build, a search asked meanwhile
answers once it is done, Ctrl-C stops the build at once with every poster kept, and the next build
completes the index and clears what the stopped one left."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from poster_search.embedding.spec import EmbeddingSpec
from poster_search.store import edge
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.edge_build import BUILDER, TEMP
from poster_search.store.engine import PointFilter
from poster_search.store.schema import point_id

N = 8_000  # about 3 s of building here: long enough to stop midway


@pytest.fixture
def apart(monkeypatch):
    monkeypatch.setattr(edge, "BUILD_APART_AT", 1000)


def write(path: Path) -> np.ndarray:
    rng = np.random.default_rng(3)
    looks = rng.normal(size=(500, 512)).astype(np.float32)
    vectors = looks[np.arange(N) % 500] + rng.normal(size=(N, 512)).astype(np.float32) * 0.35
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with PosterStore(StoreLocation(path=path)) as store:
        store.prepare(EmbeddingSpec(weights="random"))
        payloads = [{"key": str(i), "title": f"Film {i}", "file": f"{i}.jpg", "year": 1900 + i % 100} for i in range(N)]
        store.upsert([point_id(str(i)) for i in range(N)], vectors, payloads)
    return vectors


def recall(store: PosterStore, vectors: np.ndarray) -> float:
    queries = list(vectors[:30])
    graph = store.nearest(queries, 10, PointFilter())
    exact = store.nearest(queries, 10, PointFilter(), exact=True)
    return float(np.mean([len({h.id for h in g} & {h.id for h in e}) / 10 for g, e in zip(graph, exact)]))


def builders(path: Path) -> list[str]:
    temp = path / "collections/posters/shard" / TEMP
    return [p.name for p in temp.iterdir() if p.name.startswith(BUILDER)] if temp.is_dir() else []


def once_building(path: Path, action) -> threading.Thread:
    """A thread that runs `action` once the child has begun its build (its builder folder is there),
    and not at all if no build is seen within a minute."""

    def wait() -> None:
        deadline = time.monotonic() + 60
        while not builders(path):
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        action()

    thread = threading.Thread(target=wait)
    thread.start()
    return thread


def children_building(path: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"edge_build" in command and str(path).encode() in command:
            found.append(int(proc.name))
    return found


def test_a_large_build_runs_apart_while_this_process_moves_and_a_search_asked_meanwhile_answers(tmp_path, apart):
    vectors = write(tmp_path / "s")
    with PosterStore(StoreLocation(path=tmp_path / "s")) as store:
        assert store.index_waiting()
        ticks: list[float] = []
        answered: list[object] = []
        stop = threading.Event()

        def tick() -> None:
            while not stop.is_set():
                ticks.append(time.monotonic())
                time.sleep(0.01)

        def search() -> None:  # while the shard is lent to the child
            answered.append(store.nearest([vectors[7]], 5, PointFilter(), exact=True)[0])
            answered.append(time.monotonic())

        threads = [threading.Thread(target=tick)]
        started = time.monotonic()
        threads[0].start()
        threads.append(once_building(tmp_path / "s", search))
        store.optimize()
        ended = time.monotonic()
        stop.set()
        for t in threads:
            t.join()
        during = [t for t in ticks if started <= t <= ended]
        gaps = np.diff([started, *during, ended])
        assert ended - started > 1, "the build was too quick to tell"
        # in-process, the build would hold the GIL, and the ticks would stop for all of it
        assert gaps.max() < (ended - started) / 3, f"this process stood still for {gaps.max():.1f}s of a {ended - started:.1f}s build"
        hits, when = answered
        assert [h.id for h in hits][0] == point_id("7") and when >= ended - 0.5  # answered, from the built shard
        assert not store.index_waiting() and store.count() == N
        assert recall(store, vectors) >= 0.95


def test_ctrl_c_stops_the_build_at_once_keeping_every_poster_and_the_next_build_completes_it(tmp_path, apart):
    vectors = write(tmp_path / "s")
    with PosterStore(StoreLocation(path=tmp_path / "s")) as store:
        sent: list[float] = []

        def ctrl_c() -> None:
            # The child is frozen first, so that the build cannot end before Ctrl-C reaches this
            # process: a SIGINT that came after optimize() returned would escape the test.
            # Frozen or running, the child has to be stopped by the parent.
            for pid in children_building(tmp_path / "s"):
                os.kill(pid, signal.SIGSTOP)
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

        once_building(tmp_path / "s", ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            store.optimize()
        assert sent, "the build ended before it could be interrupted"
        took = time.monotonic() - sent[0]
        assert took < 5, f"Ctrl-C took {took:.1f}s to stop the build"
        assert not children_building(tmp_path / "s")
        # stopped, not finished: every poster is there and searched (by scanning), and the build is owed
        assert store.count() == N and store.index_waiting()
        assert store.nearest([vectors[11]], 1, PointFilter())[0][0].id == point_id("11")
        left = builders(tmp_path / "s")
        assert left  # what the stopped build had begun
        store.optimize()
        assert not store.index_waiting() and store.count() == N
        assert recall(store, vectors) >= 0.95
        assert not set(left) & set(builders(tmp_path / "s"))  # what the stopped build left is gone


BUILD_THEN_WAIT = """
import sys
from pathlib import Path
from poster_search.store import edge
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
edge.BUILD_APART_AT = 1000
with PosterStore(StoreLocation(path=Path(sys.argv[1]))) as store:
    store.optimize()
"""


def test_a_build_ends_with_the_command_killed_so_that_no_other_command_shares_the_shard_with_it(tmp_path, apart):
    import subprocess
    import sys

    vectors = write(tmp_path / "s")
    command = subprocess.Popen([sys.executable, "-c", BUILD_THEN_WAIT, str(tmp_path / "s")])
    killed = once_building(tmp_path / "s", lambda: command.kill())  # kill -9: no handler runs, the store's lock is let go
    killed.join()
    command.wait()
    deadline = time.monotonic() + 5
    while children_building(tmp_path / "s") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert builders(tmp_path / "s") and not children_building(tmp_path / "s")
    with PosterStore(StoreLocation(path=tmp_path / "s")) as store:  # the next command: every poster, and the build owed
        assert store.count() == N and store.index_waiting()
        assert store.nearest([vectors[5]], 1, PointFilter())[0][0].id == point_id("5")


def test_imports_without_the_index_then_one_build_from_the_command_line(tmp_path, apart):
    from tests.conftest import run_cli

    vectors = write(tmp_path / "s")
    exported = run_cli("export-embeddings", tmp_path / "all.npz", "--qdrant-path", tmp_path / "s")
    assert exported.returncode == 0, exported.output
    for _ in range(2):  # several imports into one collection (here the same file: the same points again), no build
        imported = run_cli("import-embeddings", tmp_path / "all.npz", "--no-index", "--qdrant-path", tmp_path / "new")
        assert imported.returncode == 0 and "search index is not built yet" in imported.stdout, imported.output
    with PosterStore(StoreLocation(path=tmp_path / "new")) as store:
        assert store.count() == N and store.index_waiting()
    built = run_cli("index", "--qdrant-path", tmp_path / "new")
    assert built.returncode == 0 and "collection 'posters' indexed in" in built.stdout, built.output
    assert "indexing 8,000 vectors of collection 'posters'" in built.stderr  # the build's line, shown while it ran apart
    with PosterStore(StoreLocation(path=tmp_path / "new")) as store:
        assert not store.index_waiting() and store.count() == N
        assert recall(store, vectors) >= 0.95
