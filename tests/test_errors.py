"""Bad input through the real CLI (Typer's CliRunner, in-process; a subprocess only where a real
pipe is the point): one clear `Error:` line and exit code 1, never a traceback or "Unexpected error",
and nothing stored is touched. Issue 14, "everything else is one clear line"."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from tests.conftest import ROOT, assert_one_line_error, make_catalog, make_poster, run_cli, write_csv

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer

STORE_ENV = ("QDRANT_PATH", "QDRANT_URL", "QDRANT_API_KEY", "QDRANT_GRPC", "QDRANT_TIMEOUT")


@pytest.fixture(autouse=True)
def no_store_environment(monkeypatch):
    """The tests name their store; a QDRANT_* variable of the developer's shell must not redirect them."""
    for name in STORE_ENV:
        monkeypatch.delenv(name, raising=False)


cli = run_cli  # the CLI in this process (tests/conftest.py)


def ingest(catalog: Path, posters: Path, store: Path, *extra):
    result = cli("ingest", "--catalog", catalog, "--posters", posters, "--qdrant-path", store, "--weights", "random", *extra)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> tuple[Path, Path]:
    """Four generated posters from three years, one title holding a newline; (store, posters)."""
    folder = tmp_path_factory.mktemp("small")
    catalog, posters = make_catalog(folder, ["Film 0", "Film 1", "Two\nLines", "Film 3"], [1950, 1970, 1990, 2010])
    for name in STORE_ENV:
        os.environ.pop(name, None)
    ingest(catalog, posters, folder / "store")
    return folder / "store", posters


def stored_count(store: Path) -> int:
    with PosterStore(StoreLocation(path=store)) as s:
        return s.count()


# --- store options ---------------------------------------------------------------------------


def test_path_and_url_together_are_refused(small_store, monkeypatch):
    store, _ = small_store
    result = cli("search", "--title", "Film 1", "--qdrant-path", store, "--qdrant-url", "http://127.0.0.1:9")
    assert_one_line_error(result, "--qdrant-path .* and --qdrant-url .* both given: choose one")
    monkeypatch.setenv("QDRANT_PATH", str(store))
    monkeypatch.setenv("QDRANT_URL", "http://127.0.0.1:9")
    assert_one_line_error(cli("search", "--title", "Film 1"), "QDRANT_PATH and QDRANT_URL are both set")
    # An option beats the environment: an explicit --qdrant-path is used, not QDRANT_URL.
    monkeypatch.delenv("QDRANT_PATH")
    result = cli("search", "--title", "Film 1", "--qdrant-path", store)
    assert result.exit_code == 0, result.output
    assert "nearest to Film 1 (1970)" in result.stdout


@pytest.mark.parametrize("name", ["", "a/b", "..", ".hidden", "x" * 256])
def test_bad_collection_names_are_refused(small_store, name):
    store, _ = small_store
    assert_one_line_error(cli("era", "--qdrant-path", store, "--collection", name), "invalid collection name")
    assert stored_count(store) == 4


def test_collection_names_are_checked_for_every_command(tmp_path):
    for args in (["export-embeddings", tmp_path / "e.npz"], ["train-year", "--collection", "ok"], ["migrate", "--to-path", tmp_path / "b"]):
        assert_one_line_error(cli(*args, "--collection", "a/b", "--qdrant-path", tmp_path / "s"), "invalid collection name 'a/b'")


@pytest.mark.parametrize("url", ["http://[::1", "http://host:port", "http://"])
def test_malformed_urls_are_one_line(url, tmp_path):
    assert_one_line_error(cli("era", "--qdrant-url", url), "malformed Qdrant URL")
    assert_one_line_error(cli("migrate", "--qdrant-path", tmp_path / "s", "--to-url", url), "malformed Qdrant URL")


def test_store_under_proc_is_one_line(small_store):
    _, posters = small_store
    catalog = posters.parent / "movies.csv"
    for path in ("/proc/poster-store", "/proc"):
        result = cli("ingest", "--catalog", catalog, "--posters", posters, "--weights", "random", "--qdrant-path", path)
        assert_one_line_error(result, f"cannot .*{path}|{path}.* not a folder")


def test_grpc_unreachable_names_the_reason():
    started = time.perf_counter()
    line = assert_one_line_error(cli("era", "--qdrant-url", "http://127.0.0.1:9", "--grpc", "--qdrant-timeout", "1"), "cannot reach Qdrant")
    reason = line.split("cannot reach Qdrant at http://127.0.0.1:9: ", 1)[1]
    assert "UNAVAILABLE" in reason and not reason.rstrip().endswith(":"), line  # not cut before the reason
    assert time.perf_counter() - started < 30


@pytest.fixture
def silent_server():
    """A real TCP server that accepts connections and never answers: every request runs into its timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted, stop = [], threading.Event()

    def serve():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_fractional_timeout_is_honoured(silent_server):
    """1.6 s must wait 1.6 s: truncated to an int it would give up after 1 s."""
    started = time.perf_counter()
    result = cli("era", "--qdrant-url", silent_server, "--qdrant-timeout", "1.6")
    elapsed = time.perf_counter() - started
    assert_one_line_error(result, f"cannot reach Qdrant at {silent_server}")
    assert 1.5 <= elapsed < 1.6 + 5, elapsed


# --- search, sheet, era ----------------------------------------------------------------------


def test_inverted_year_range_is_refused(small_store):
    store, _ = small_store
    assert_one_line_error(
        cli("search", "--title", "Film 1", "--year-min", "2000", "--year-max", "1990", "--qdrant-path", store), "2000 is after .* 1990"
    )


def test_title_with_a_newline_in_table_and_sheet(small_store, tmp_path):
    store, _ = small_store
    result = cli("search", "--title", "Film 1", "-k", "3", "--qdrant-path", store, "--sheet", tmp_path / "sheet.png")
    assert result.exit_code == 0, (result.output, result.exception)
    rows = result.stdout.splitlines()
    assert len(rows) == 2 + 3 + 1 and rows[-1].startswith("wrote ") and "   2       0.970  1990  Two Lines" in rows, (
        rows
    )  # one row per film
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.width > 4 * 200
    found = cli("search", "--title", "Two\nLines", "--qdrant-path", store, "--sheet", tmp_path / "q.png")
    assert found.exit_code == 0 and "nearest to Two Lines (1990):" in found.stdout


def test_sheet_paths_are_checked_before_searching(small_store, tmp_path):
    store, posters = small_store
    search = ["search", "--title", "Film 1", "--qdrant-path", store]
    assert_one_line_error(cli(*search, "--sheet", tmp_path), "is a folder")
    assert_one_line_error(cli(*search, "--sheet", tmp_path / "sheet.txt"), "not an image file name")
    assert_one_line_error(cli(*search, "--sheet", tmp_path / "none" / "s.png"), "folder .* does not exist")
    assert_one_line_error(cli(*search, "--sheet", tmp_path / "s.png", "--posters", tmp_path / "gone"), "poster folder .*gone.* not found")
    assert not (tmp_path / "s.png").exists()


def test_sheet_refuses_a_recorded_poster_folder_that_is_gone(tmp_path):
    catalog, posters = make_catalog(tmp_path, ["A", "B", "C"], [1950, 1960, 1970])
    ingest(catalog, posters, tmp_path / "store")
    posters.rename(tmp_path / "moved")
    result = cli("search", "--title", "A", "--qdrant-path", tmp_path / "store", "--sheet", tmp_path / "s.png")
    assert_one_line_error(result, "poster folder .* not found: pass --posters DIR")
    result = cli(
        "search", "--title", "A", "--qdrant-path", tmp_path / "store", "--sheet", tmp_path / "s.png", "--posters", tmp_path / "moved"
    )
    assert result.exit_code == 0 and (tmp_path / "s.png").is_file()


def test_era_with_one_year_only_is_one_line(tmp_path):
    catalog, posters = make_catalog(tmp_path, ["A", "B", "C", "D", "E"], [1999] * 5)
    ingest(catalog, posters, tmp_path / "store")
    assert_one_line_error(cli("era", "-k", "2", "--qdrant-path", tmp_path / "store"), "all 5 dated posters are from 1999")


@pytest.mark.timeout(60)  # a guard that breaks hangs on the FIFO: then this fails instead of hanging the suite
def test_query_that_is_not_a_regular_file_is_one_line(small_store, tmp_path):
    store, _ = small_store
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    for query, pattern in (
        (fifo, "FIFO|not a regular file"),
        (Path("/dev/zero"), "character device|not a regular file"),
        (tmp_path, "folder"),
    ):
        started = time.perf_counter()
        assert_one_line_error(cli("search", query, "--qdrant-path", store, "--weights", "random"), pattern)
        assert time.perf_counter() - started < 60


# --- ingest and export -----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["folder", "proc", "missing folder"])
def test_bad_rejects_path_fails_before_any_embedding(tmp_path, where):
    catalog, posters = make_catalog(tmp_path, ["A", "B"], [1950, 1960])
    (posters / "1.jpg").write_text("not an image")  # a reject, so the rejects file would be written
    rejects = {"folder": tmp_path, "proc": Path("/proc/rejects.csv"), "missing folder": tmp_path / "none" / "r.csv"}[where]
    started = time.perf_counter()
    result = cli(
        "ingest",
        "--catalog",
        catalog,
        "--posters",
        posters,
        "--weights",
        "random",
        "--qdrant-path",
        tmp_path / "store",
        "--rejects",
        rejects,
    )
    assert_one_line_error(result, "folder|cannot write")
    assert not (tmp_path / "store").exists()  # refused before the store was opened, let alone embedded into
    print(f"refused in {time.perf_counter() - started:.2f}s")


def test_rejects_line_is_the_file_line_after_a_multiline_title(tmp_path):
    posters = tmp_path / "posters"
    make_poster(posters / "0.jpg", seed=0)
    catalog = tmp_path / "movies.csv"
    catalog.write_text('filename,title,release_year\n0.jpg,"First\nsecond\nthird line",1950\nmissing.jpg,Gone,1960\n')
    ingest(catalog, posters, tmp_path / "store", "--rejects", tmp_path / "rejects.csv")
    rows = (tmp_path / "rejects.csv").read_text().splitlines()
    assert rows[0].startswith("line,") and rows[1].startswith("5,missing.jpg"), rows  # file line 5, record 2


def test_export_writes_exactly_the_path_it_names(small_store, tmp_path):
    store, _ = small_store
    for name in ("vectors.npz", "vectors.bin"):
        result = cli("export-embeddings", tmp_path / name, "--qdrant-path", store)
        assert result.exit_code == 0, result.output
        written = Path(re.search(r"wrote (\S+):", result.stdout).group(1))
        assert written == tmp_path / name and written.is_file(), result.stdout
        with np.load(written) as data:
            assert data["embeddings"].shape == (4, 512)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.bin", "vectors.npz"]
    assert_one_line_error(cli("export-embeddings", tmp_path, "--qdrant-path", store), "is a folder")


def test_style_vector_missing_on_some_posters_says_how_many_and_how(tmp_path):
    first, posters = make_catalog(tmp_path, ["A", "B", "C"], [1950, 1960, 1970])
    ingest(first, posters, tmp_path / "store", "--style")
    for i, _year in ((3, 1980), (4, 1990)):
        make_poster(posters / f"{i}.jpg", seed=i)
    second = write_csv(tmp_path / "more.csv", ["filename", "title", "release_year"], [["3.jpg", "D", 1980], ["4.jpg", "E", 1990]])
    ingest(second, posters, tmp_path / "store")  # without --style: the two new posters lack vgg16_style
    result = cli("train-year", "--vector", "vgg16_style", "--qdrant-path", tmp_path / "store", "--model-dir", tmp_path / "m")
    assert_one_line_error(result, r"\b2\b.*lack.*vgg16_style.*ingest --style")


# --- output ----------------------------------------------------------------------------------


def test_output_to_a_closed_pipe_exits_quietly(small_store):
    """`... | head` that has already exited: no message, no traceback, exit code 1 (as click programs do)."""
    store, _ = small_store
    for args in (["--help"], ["search", "--title", "Film 1", "--qdrant-path", store, "--json"]):
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        process.stdout.close()  # the reader is gone before the first line
        stderr = process.stderr.read().decode()
        assert process.wait(120) == 1 and stderr == "", (args, stderr)


def test_piped_to_head(small_store):
    store, _ = small_store
    command = f"{sys.executable} {ROOT / 'cli.py'} search --title 'Film 1' --qdrant-path {store} | head -1"
    result = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], capture_output=True, text=True, timeout=120)
    assert result.stdout == "nearest to Film 1 (1970):\n" and result.stderr == "", result
