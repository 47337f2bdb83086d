"""Fixtures: generated posters and catalogs, real local stores, a real (seeded random) VGG16."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from dataclasses import dataclass
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
    from poster_search.embedding.model import Embedder

    return Embedder(None)


@pytest.fixture(scope="session")
def real_weights() -> Path:
    if not REAL_WEIGHTS.is_file():
        pytest.skip(f"real VGG16 weights not found at {REAL_WEIGHTS} (see ../shared/data/README.md)")
    return REAL_WEIGHTS


@pytest.fixture(scope="session")
def real_embedder(real_weights):
    """VGG16 with the real ImageNet weights (Keras), built once for the session."""
    from poster_search.embedding.model import Embedder

    return Embedder(str(real_weights))


@pytest.fixture(scope="session")
def era_data() -> tuple[Path, Path]:
    if not ERA_CATALOG.is_file() or not ERA_POSTERS.is_dir():
        pytest.skip(f"shared poster data not found at {SHARED_DATA / 'posters-era'} (see ../shared/data/README.md)")
    return ERA_CATALOG, ERA_POSTERS


@pytest.fixture
def location(tmp_path):
    from poster_search.store.connection import StoreLocation

    return StoreLocation(path=tmp_path / "store")


def local_mode_folder(path: Path):
    """A store folder as earlier versions made it (qdrant-client local mode); opened through ServerEngine."""
    from qdrant_client import QdrantClient

    from poster_search.store.connection import StoreLocation

    QdrantClient(path=str(path)).close()
    return StoreLocation(path=path)


NO_SERVER = pytest.mark.skipif(not os.environ.get("QDRANT_URL"), reason="needs a Qdrant server: set QDRANT_URL (docker compose up -d)")
ENGINES = ["edge", "local-mode", pytest.param("server", marks=NO_SERVER)]


@pytest.fixture(params=ENGINES)
def any_location(request, tmp_path):
    """The same test on every engine: Qdrant Edge (the default), a qdrant-client local-mode folder
    (earlier versions' stores) and a real server when QDRANT_URL names one (else skipped, saying so)."""
    from poster_search.store.connection import StoreLocation, location_from_options

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


# --- the command line: in this process, or in a fresh one when the process is the point ---------

NOTES = ("Note:", "embedding:")  # informational stderr lines some checks allow beside the error


@dataclass
class CliResult:
    """What `python cli.py ARGS` did: `returncode`, `stdout`, `stderr`, as subprocess.run gives them
    (text, universal newlines); `exit_code` and `output` as Typer's CliRunner names them; `exception`:
    an exception the CLI let escape (then `stderr` holds its traceback and `returncode` is 1, as
    Python's own exit would give)."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    exception: BaseException | None = None

    @property
    def exit_code(self) -> int:
        return self.returncode

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


# A fresh interpreter's warning filters, taken before pytest installs its own for each test.
_FRESH_WARNING_FILTERS = list(warnings.filters)


def _show_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, file: object = None, line: str | None = None
) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def run_cli(*args: object, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> CliResult:
    """`python cli.py ARGS` run by cli.main() in this process, as a user's shell runs it in its own:
    sys.argv, the environment (`env` added to it; all of it restored after the run, so what the
    product sets, KERAS_BACKEND, never reaches a later test's processes) and the working folder
    (`cwd`, default the checkout) set for the run and restored after it; file descriptors 1 and 2 pointed at files of
    their own, so what TensorFlow or Edge write from C, Python's warnings (with a fresh process's
    filters, not pytest's) and tracebacks all land in `stdout`/`stderr` as they would from a
    subprocess; signal handlers and the root logger's handlers restored. A run longer than `timeout`
    is interrupted (as Ctrl-C would) and raises subprocess.TimeoutExpired, as subprocess.run does.

    For tests about the process itself (signals, kill -9, locks between processes, what a fresh
    process imports, a served HTTP server) use run_process."""
    import _thread
    import logging
    import tempfile
    import threading
    import traceback

    from poster_search import cli

    argv = [str(a) for a in args]
    saved_argv, saved_cwd, saved_streams = sys.argv, os.getcwd(), (sys.stdout, sys.stderr)
    saved_environ = os.environ.copy()  # all of it: the product sets some itself (KERAS_BACKEND when Keras is imported)
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    saved_handlers = list(logging.root.handlers)
    saved_fds = {fd: os.dup(fd) for fd in (1, 2)}
    timed_out = threading.Event()

    def interrupt() -> None:
        timed_out.set()
        _thread.interrupt_main()

    timer = threading.Timer(timeout, interrupt)
    code, exception = 0, None
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(out_file.fileno(), 1)
            os.dup2(err_file.fileno(), 2)
            sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True)
            sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True)
            for name, value in (env or {}).items():  # None: unset, as CliRunner takes it
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = str(value)
            os.chdir(cwd or ROOT)
            sys.argv = [str(ROOT / "cli.py"), *argv]
            timer.start()
            with warnings.catch_warnings():
                warnings.filters[:] = _FRESH_WARNING_FILTERS  # type: ignore[index]  # a list at run time
                warnings._filters_mutated()  # type: ignore[attr-defined]  # as warnings' own functions do after a change
                warnings.showwarning = _show_warning
                try:
                    cli.main()
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                    if e.code is not None and not isinstance(e.code, int):
                        sys.stderr.write(f"{e.code}\n")
                except BaseException as e:  # what Python prints, and its exit code, when a program lets it escape
                    exception, code = e, 1
                    traceback.print_exc()
        finally:
            timer.cancel()
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            sys.stdout, sys.stderr = saved_streams
            for fd, saved in saved_fds.items():
                os.dup2(saved, fd)
                os.close(saved)
            sys.argv = saved_argv
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_environ)
            for number, handler in saved_signals.items():
                signal.signal(number, handler)
            logging.root.handlers[:] = saved_handlers
        texts = []
        for file in (out_file, err_file):
            file.seek(0)
            texts.append(io.TextIOWrapper(file, encoding="utf-8", newline=None).read())  # universal newlines, as text=True
    if timed_out.is_set():
        raise subprocess.TimeoutExpired([sys.executable, "cli.py", *argv], timeout, texts[0], texts[1])
    return CliResult(argv, code, texts[0], texts[1], exception)


def as_foreground(command: list[str]) -> list[str]:
    """`command` with SIGINT as a terminal's foreground process gets it, so Ctrl-C (SIGINT) reaches
    it as KeyboardInterrupt. A process started with SIGINT ignored keeps it ignored, and so do its
    children: POSIX shells start every background command that way (`pytest ... &` in a script,
    and CI runners that do the same), and the suite's own children would inherit it. GNU env resets
    it before the command starts; without GNU env, the command is left as it is."""
    return ["env", "--default-signal=INT", *command] if _GNU_ENV else command


def _gnu_env() -> bool:
    try:
        return subprocess.run(["env", "--default-signal=INT", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_GNU_ENV = _gnu_env()


def run_process(*args: object, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python cli.py ARGS` as a user would, in a fresh process: for tests about the process."""
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *map(str, args)],
        cwd=cwd or ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_error(result: CliResult | subprocess.CompletedProcess, pattern: str, code: int = 1, ignore: tuple[str, ...] = ()) -> str:
    """The command failed with exit code `code` and printed exactly one line on stderr, `Error: ...`
    matching `pattern` (re.search), and no traceback; lines starting with one of `ignore` (say NOTES)
    are allowed beside it. Returns the line."""
    assert result.returncode == code, (result.returncode, result.stdout[-500:], result.stderr[-2000:])
    lines = [line for line in result.stderr.replace("\r", "\n").splitlines() if line.strip() and not (ignore and line.startswith(ignore))]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.stderr, result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


assert_one_line_error = one_line_error  # the name test_errors.py and test_cli.py used


def ingest_args(catalog: Path, posters: Path, store: Path, *extra: object, weights: object = "random") -> list[object]:
    """`ingest` of a catalog into an embedded store, with seeded random VGG16 weights unless told."""
    return ["ingest", "--catalog", catalog, "--posters", posters, "--qdrant-path", store, "--weights", weights, *extra]


def ingest(catalog: Path, posters: Path, store: Path, *extra: object, weights: object = "random", check: bool = True) -> CliResult:
    """Run `ingest` in this process; with `check`, assert it succeeded."""
    result = run_cli(*ingest_args(catalog, posters, store, *extra, weights=weights))
    if check:
        assert result.returncode == 0, (result.stdout[-1000:], result.stderr[-2000:])
    return result


def make_catalog(folder: Path, titles: list[str], years: list[int], name: str = "movies.csv") -> tuple[Path, Path]:
    """A catalog of the given titles and years, one generated poster each (i.jpg, seed i); (catalog, posters)."""
    posters = folder / "posters"
    rows = []
    for i, (title, year) in enumerate(zip(titles, years)):
        make_poster(posters / f"{i}.jpg", seed=i)
        rows.append([f"{i}.jpg", title, year])
    return write_csv(folder / name, ["filename", "title", "release_year"], rows), posters


def payloads(store: Path, collection: str = "posters", derived: bool = False) -> dict[str, dict]:
    """Every stored payload of an embedded store's collection, by key; without the fields the
    store derives itself (title_order, added: test_browse.py tests them) unless `derived`."""
    from poster_search.store.collection import PosterStore
    from poster_search.store.connection import StoreLocation

    with PosterStore(StoreLocation(path=store), collection) as s:
        stored = {p.payload["key"]: p.payload for p in s.points(with_vectors=False)}
    return stored if derived else {k: without_derived(p) for k, p in stored.items()}


def without_derived(payload: dict) -> dict:
    """A stored payload without the fields the store derives (title_order, added)."""
    from poster_search.store.schema import DERIVED_FIELDS

    return {k: v for k, v in payload.items() if k not in DERIVED_FIELDS}


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


# --- a real browser (Debian's chromium through chromedriver) for the page's end-to-end tests -------

BROWSER_ARTEFACTS = ROOT / "results" / "browser"  # screenshots a failing browser test leaves
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver; .ci/run does this)",
)


@pytest.fixture(scope="module")
def browser():
    """Headless chromium, one per test module, its console log kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1100",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout: float = 60, what: str = "", screenshot: str = "timeout.png"):
    """Wait for `condition`; on a timeout keep a screenshot and say what the page showed."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    try:  # a stale element: the grid was re-rendered while the condition looked at it; look again
        return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)).until(condition)
    except TimeoutException:
        BROWSER_ARTEFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(BROWSER_ARTEFACTS / screenshot))
        shown = driver.find_element(By.TAG_NAME, "main").text[:1500]
        pytest.fail(f"timed out waiting for {what}; screenshot {BROWSER_ARTEFACTS / screenshot}; the page showed:\n{shown}")


@contextlib.contextmanager
def tmpfs(folder: Path, size: str):
    """A tmpfs of `size` (e.g. "20m") mounted at the new folder `folder` for the block, unmounted
    after it: a full disk on demand. Skips the test where it cannot mount (not root, no mount)."""
    folder.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small file system needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
