"""Fixtures: generated posters and catalogs, real local stores, a real (seeded random) VGG16."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("POSTER_SEARCH_DATA", ROOT.parent / "shared" / "data"))
ERA_CATALOG = SHARED_DATA / "posters-era" / "movies.csv"
ERA_POSTERS = SHARED_DATA / "posters-era" / "posters"
REAL_WEIGHTS = SHARED_DATA / "vgg16" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


def make_poster(path: Path, seed: int, size: tuple[int, int] = (96, 144), mode: str = "RGB") -> Path:
    """A distinct, poster-like image: a coloured background with a few shapes and a 'title' band."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, size[0] // 2)), int(rng.integers(0, size[1] // 2))
        x1, y1 = x0 + int(rng.integers(10, size[0] // 2)), y0 + int(rng.integers(10, size[1] // 2))
        draw.ellipse([x0, y0, x1, y1], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw.rectangle([0, size[1] - 20, size[0], size[1]], fill=(int(rng.integers(0, 256)),) * 3)
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


class CountingEmbedder:
    """The real embedder, counting the posters it is asked to embed."""

    def __init__(self, embedder):
        self.embedder, self.spec, self.style_spec, self.calls = embedder, embedder.spec, embedder.style_spec, 0

    def load(self):
        self.embedder.load()

    def embed_both(self, pixels):
        self.calls += len(pixels)
        return self.embedder.embed_both(pixels)


def write_csv(path: Path, header: list[str], rows: list[list], encoding: str = "utf-8") -> Path:
    with open(path, "w", newline="", encoding=encoding) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def generated_catalog(
    folder: Path, n: int, seed: int = 0, start_year: int = 1950, step: int = 3, size: tuple[int, int] = (96, 144)
) -> tuple[Path, Path]:
    """n generated posters in folder/posters and their catalog (years start_year + step * i, kept plausible)."""
    rows = []
    for i in range(n):
        make_poster(folder / "posters" / f"{i}.jpg", seed=seed + i, size=size)
        rows.append([f"{i}.jpg", f"Film {i}", start_year + (step * i) % 75])
    return write_csv(folder / "movies.csv", ["filename", "title", "release_year"], rows), folder / "posters"


def real_subset(era_data: tuple[Path, Path], rows: list[dict], folder: Path) -> tuple[Path, Path]:
    """Some rows of the shared catalog and copies of their posters, as a collection of its own."""
    import shutil

    _, posters = era_data
    (folder / "posters").mkdir(parents=True, exist_ok=True)
    for r in rows:
        shutil.copy(posters / r["filename"], folder / "posters" / r["filename"])
    with open(folder / "movies.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["filename", "title", "release_year"])
        writer.writeheader()
        writer.writerows({k: r[k] for k in ("filename", "title", "release_year")} for r in rows)
    return folder / "movies.csv", folder / "posters"


def catalog_rows(catalog_csv: Path) -> list[dict]:
    with open(catalog_csv, encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def poster_set(tmp_path):
    """Factory: n generated posters in tmp/posters and a format-1 catalog; returns (catalog, posters_dir)."""

    def make(n: int, start_year: int = 1950):
        posters = tmp_path / "posters"
        rows = []
        for i in range(n):
            make_poster(posters / f"{i}.jpg", seed=i)
            rows.append([f"{i}.jpg", f"Film {i}", start_year + i])
        return write_csv(tmp_path / "movies.csv", ["filename", "title", "release_year"], rows), posters

    return make


@pytest.fixture(scope="session")
def random_embedder():
    """A real VGG16 with seeded random weights: the architecture runs for real, fast to build."""
    from embedding.model import Embedder

    return Embedder(None)


@pytest.fixture(scope="session")
def real_weights() -> Path:
    if not REAL_WEIGHTS.is_file():
        pytest.skip(f"real VGG16 weights not found at {REAL_WEIGHTS} (see ../shared/data/README.md)")
    return REAL_WEIGHTS


@pytest.fixture(scope="session")
def era_data() -> tuple[Path, Path]:
    if not ERA_CATALOG.is_file() or not ERA_POSTERS.is_dir():
        pytest.skip(f"shared poster data not found at {SHARED_DATA / 'posters-era'} (see ../shared/data/README.md)")
    return ERA_CATALOG, ERA_POSTERS


@pytest.fixture
def location(tmp_path):
    from store.connection import StoreLocation

    return StoreLocation(path=tmp_path / "store")


def local_mode_folder(path: Path):
    """A store folder as earlier versions made it (qdrant-client local mode); opened through ServerEngine."""
    from qdrant_client import QdrantClient

    from store.connection import StoreLocation

    QdrantClient(path=str(path)).close()
    return StoreLocation(path=path)


NO_SERVER = pytest.mark.skipif(not os.environ.get("QDRANT_URL"), reason="needs a Qdrant server: set QDRANT_URL (docker compose up -d)")
ENGINES = ["edge", "local-mode", pytest.param("server", marks=NO_SERVER)]


@pytest.fixture(params=ENGINES)
def any_location(request, tmp_path):
    """The same test on every engine: Qdrant Edge (the default), a qdrant-client local-mode folder
    (earlier versions' stores) and a real server when QDRANT_URL names one (else skipped, saying so)."""
    from store.connection import StoreLocation, location_from_options

    if request.param == "edge":
        yield StoreLocation(path=tmp_path / "edge")
    elif request.param == "local-mode":
        yield local_mode_folder(tmp_path / "local-mode")
    else:  # a server shared with other tests: start and end with no 'posters' collection
        from qdrant_client import QdrantClient

        location = location_from_options(None, None, None)
        client = QdrantClient(url=location.url, api_key=location.api_key)
        client.delete_collection("posters")
        yield location
        client.delete_collection("posters")
        client.close()


def run_cli(*args: str | Path, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python cli.py ARGS` as a user would, in a fresh process."""
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *map(str, args)],
        cwd=cwd or ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(store: Path, log: Path, *options: str, timeout: float = 60):
    """`python cli.py serve` on `store` and a free port of 127.0.0.1, as a user starts it (its
    output in `log`): yields (url, process, the first /api/collections answer) once it answers;
    stopped with Ctrl-C (SIGINT) at the end, killed if that does not end it."""
    port = free_port()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), "serve", "--qdrant-path", str(store), "--port", str(port), *map(str, options)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    collections = json.loads(urllib.request.urlopen(url + "/api/collections", timeout=2).read())
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"the server did not start: {Path(log).read_text()[-2000:]}")
                    time.sleep(0.3)
            yield url, process, collections
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
