"""The command line: clear one-line errors and ingest/export through Typer's CliRunner (in-process);
fast help, kill and resume, and the installed console command in fresh processes."""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from store.collection import PosterStore
from store.connection import StoreLocation
from store.schema import point_id
from tests.conftest import ROOT, assert_one_line_error, ingest_args, run_cli, run_process

invoke = run_cli  # the CLI in this process; run_process where the fresh process is the point


def test_help_imports_no_model_runtime_and_no_store_engine():
    """What keeps --help instant is what it does not import (the time itself is a benchmark's: bench/queries.py)."""
    heavy = {"tensorflow", "keras", "onnxruntime", "onnx", "qdrant_client", "qdrant_edge", "h5py", "sklearn", "fastapi"}
    for args in (["--help"], ["ingest", "--help"], ["search", "--help"], ["train-year", "--help"]):
        result = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "cli.py"), *args], capture_output=True, text=True)
        assert result.returncode == 0 and "Usage" in result.stdout
        imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
        assert "typer" in imported  # the check can fail: importtime lists what was imported
        assert not heavy & imported, heavy & imported


def test_bad_paths_are_one_line_errors(poster_set, tmp_path):
    catalog, posters = poster_set(2)
    store = tmp_path / "store"
    assert_one_line_error(invoke(*ingest_args(tmp_path / "none.csv", posters, store)), "catalog not found")
    assert_one_line_error(invoke(*ingest_args(catalog, tmp_path / "none", store)), "posters folder not found")
    assert_one_line_error(
        invoke("ingest", "--catalog", catalog, "--posters", posters, "--weights", tmp_path / "w.h5"), "weights file not found"
    )
    assert_one_line_error(invoke("export-embeddings", tmp_path / "e.npz", "--qdrant-path", store), "no store at")
    assert_one_line_error(
        invoke(*ingest_args(catalog, posters, store)[:-4], "--weights", "random", "--qdrant-url", "http://127.0.0.1:9"),
        "cannot reach Qdrant at http://127.0.0.1:9",
    )


def test_locked_store_and_other_embedding_are_one_line_errors_and_keep_data(poster_set, tmp_path):
    catalog, posters = poster_set(2)
    store = tmp_path / "store"
    assert invoke(*ingest_args(catalog, posters, store)).exit_code == 0
    with PosterStore(StoreLocation(path=store)):  # a lock on its own open file: refused in this process too
        assert_one_line_error(invoke(*ingest_args(catalog, posters, store)), "in use by another process")
    (tmp_path / "other.h5").write_bytes(b"other weights")
    result = invoke(*ingest_args(catalog, posters, store)[:-2], "--weights", tmp_path / "other.h5")
    assert_one_line_error(result, "made with another embedding: differs in weights")
    with PosterStore(StoreLocation(path=store)) as s:
        assert s.count() == 2


def test_imagenet_weights_offline_is_a_one_line_error_naming_the_option(poster_set, tmp_path):
    catalog, posters = poster_set(1)
    # A dead proxy makes Keras' download fail the same way with or without internet.
    env = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "KERAS_HOME": str(tmp_path / "keras")}
    # a fresh process: Keras reads KERAS_HOME when it is first imported
    result = run_process(*ingest_args(catalog, posters, tmp_path / "store")[:-2], "--weights", "imagenet", env=env)
    assert_one_line_error(result, "could not download the ImageNet VGG16 weights.*--weights PATH.*VGG16_WEIGHTS")


def test_ingest_and_export_from_the_command_line(poster_set, tmp_path):
    catalog, posters = poster_set(3)
    (posters / "2.jpg").write_text("not an image")
    result = invoke(*ingest_args(catalog, posters, tmp_path / "store", "--rejects", tmp_path / "rej.csv"))
    assert result.exit_code == 0, result.stderr
    assert "ingested 2, already stored 0, rejected 1 of 3 catalog rows" in result.stdout
    assert "not an image" in (tmp_path / "rej.csv").read_text()
    result = invoke("export-embeddings", tmp_path / "e.npz", "--qdrant-path", tmp_path / "store")
    assert result.exit_code == 0 and "(2, 512)" in result.stdout


def start_ingest(n_posters, tmp_path, poster_set):
    catalog, posters = poster_set(n_posters)
    store = tmp_path / "store"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), *map(str, ingest_args(catalog, posters, store, "--batch-size", "1"))],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    progress = {"done": 0, "stderr": ""}

    def read():  # follow the progress bar, which tqdm redraws with \r
        for chunk in iter(lambda: process.stderr.read(1), ""):
            progress["stderr"] += chunk
            found = re.findall(rf"(\d+)/{n_posters}\b", progress["stderr"][-200:])
            if found:
                progress["done"] = int(found[-1])

    threading.Thread(target=read, daemon=True).start()
    return process, progress, catalog, posters, store


def wait_for(progress, process, at_least, timeout=180):
    deadline = time.monotonic() + timeout
    while progress["done"] < at_least:
        assert process.poll() is None, f"ingest ended before the test could interrupt it: {progress['stderr'][-500:]}"
        assert time.monotonic() < deadline, "ingest made no progress"
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["kill -9", "ctrl-c"])
def test_interrupted_ingest_resumes_without_duplicates_or_losses(poster_set, tmp_path, how):
    n = 30  # one poster a batch: stopped after 3 to 5 of them, far from the end
    process, progress, catalog, posters, store = start_ingest(n, tmp_path, poster_set)
    wait_for(progress, process, at_least=3)
    process.send_signal(signal.SIGKILL if how == "kill -9" else signal.SIGINT)
    process.wait(60)
    if how == "ctrl-c":
        assert process.returncode == 130
        assert "Interrupted: everything stored so far is kept" in progress["stderr"]
        assert "Traceback" not in progress["stderr"]
    with PosterStore(StoreLocation(path=store)) as s:
        stored_before = s.count()
    assert 3 <= stored_before < n

    result = run_cli(*ingest_args(catalog, posters, store))
    assert result.returncode == 0, result.stderr
    assert f"ingested {n - stored_before}, already stored {stored_before}" in result.stdout
    with PosterStore(StoreLocation(path=store)) as s:
        assert s.count() == n
        assert {p.id for p in s.retrieve([point_id(f"{i}.jpg") for i in range(n)])} == {point_id(f"{i}.jpg") for i in range(n)}


# Point ids are a public contract: users query Qdrant with them, and stores made by any version
# must keep matching. Literal values, computed once; a change here breaks every existing store.
PINNED_POINT_IDS = {
    "0.jpg": "6855b092-d7eb-58fc-913f-1954469efa2d",
    "10178.jpg": "64324a47-8c01-5d5f-86a4-167bd855d17e",
    "0114709": "0e303d37-9ce3-54ab-b538-ef5bac31f874",  # a Kaggle imdbId: a string, leading zero kept
    "Toy Story (1995).jpg": "9bb51f90-6979-53ca-9d12-7159eb977a03",
    "sub/é.png": "0907fd10-5734-5a03-8427-44460db63160",
}


def test_point_ids_are_pinned():
    assert {key: point_id(key) for key in PINNED_POINT_IDS} == PINNED_POINT_IDS


def test_ingest_stores_posters_under_the_pinned_ids(poster_set, tmp_path):
    catalog, posters = poster_set(1)
    assert invoke(*ingest_args(catalog, posters, tmp_path / "store")).exit_code == 0
    with PosterStore(StoreLocation(path=tmp_path / "store")) as s:
        assert [p.id for p in s.points(with_vectors=False)] == [PINNED_POINT_IDS["0.jpg"]]


# --- the installable package ---------------------------------------------------------------------

INSTALLED = [
    "pyproject.toml",
    "setup.py",
    "requirements.txt",
    "README.md",
    "cli.py",
    "errors.py",
    "presentation.py",
    "safe_io.py",
    "path_inside.py",
]
PACKAGES = ["embedding", "ingest", "search", "regression", "store", "web"]


def build_tools_missing() -> str | None:
    """Why this environment cannot build the wheel offline (--no-build-isolation), or None.

    setuptools and wheel come with the pinned requirements (TensorFlow and astunparse need them);
    the test skips rather than fetch build tools from the network.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        setuptools = tuple(int(part) for part in version("setuptools").split(".")[:2])
    except PackageNotFoundError:
        return "setuptools is not installed"
    if setuptools < (64, 0):
        return f"setuptools {version('setuptools')} is older than pyproject.toml's build-system needs (64)"
    try:
        version("wheel")
    except PackageNotFoundError:
        if setuptools < (70, 1):  # newer setuptools builds wheels without the wheel package
            return "the wheel package is not installed"
    return None


def test_wheel_installs_the_console_command(tmp_path):
    """Build the wheel from the declared files only (as `pip install .` does), install it without
    dependencies into a bare folder and run `poster-search` from there, outside the checkout."""
    if missing := build_tools_missing():
        pytest.skip(f"cannot build the wheel offline: {missing}")
    source = tmp_path / "src"
    source.mkdir()
    for name in INSTALLED:
        shutil.copy(ROOT / name, source / name)
    for name in PACKAGES:
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", source], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("poster_search-*.whl")
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", target, wheel], check=True, capture_output=True)

    env = {**os.environ, "PYTHONPATH": str(target)}
    elsewhere = tmp_path / "elsewhere"  # not the checkout: modules must come from the installed wheel
    elsewhere.mkdir()
    # one name in site-packages, poster_search: no generic top-level module (cli, store, web) beside it
    assert {p.name for p in target.iterdir()} == {"poster_search", "bin", *[p.name for p in target.glob("poster_search-*.dist-info")]}
    assert not (target / "poster_search" / "setup.py").exists()
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import poster_search, cli, web, importlib.metadata as m; print(cli.__file__); "
            "print(*[e.value for e in m.entry_points(group='console_scripts', name='poster-search')])",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert where == [str(target / "poster_search" / "cli.py"), "poster_search:main"]
    assert (target / "poster_search" / "web" / "static" / "index.html").is_file()
    bare = subprocess.run([sys.executable, "-c", "import store"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert bare.returncode == 1 and "No module named 'store'" in bare.stderr  # not importable until poster_search is
    dependencies = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m; print(*m.requires('poster-search'), sep='\\n')"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    pinned = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert dependencies == [line for line in pinned if line]  # one list: requirements.txt

    command = target / "bin" / "poster-search"
    installed = subprocess.run([command, "--help"], cwd=elsewhere, env=env, capture_output=True, text=True)
    checkout = run_cli("--help")
    commands = re.compile(r"^│ ([a-z][a-z-]+) ", re.M)  # the rows of the Commands panel
    assert installed.returncode == 0 and "Usage: poster-search" in installed.stdout, installed.stderr
    assert commands.findall(installed.stdout) == commands.findall(checkout.stdout) and "search" in commands.findall(installed.stdout)
    error = subprocess.run(
        [command, "search", "--title", "x", "--qdrant-path", tmp_path / "none"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert error.returncode == 1 and error.stderr.startswith("Error: no store at"), error.stderr
