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

from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.schema import point_id
from tests.conftest import ROOT, as_foreground, assert_one_line_error, ingest_args, run_cli, run_process

pytestmark = pytest.mark.e2e  # the CLI, servers or model runtimes as a user runs them: tests/test_posters.py is the unit layer

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
        as_foreground([sys.executable, str(ROOT / "cli.py"), *map(str, ingest_args(catalog, posters, store, "--batch-size", "1"))]),
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


def build_tools_missing() -> str | None:
    """Why this environment cannot build the wheel offline (--no-build-isolation), or None.

    setuptools and wheel come with the pinned requirements (constraints.txt); the test skips rather
    than fetch build tools from the network.
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


def tracked_files() -> list[str]:
    """What a clean checkout would hold (git's list: tracked, and new files not ignored): the wheel is built from that."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell which files a clean checkout holds")
    return [name for name in listed.stdout.splitlines() if (ROOT / name).is_file()]


@pytest.mark.e2e
def test_the_wheel_is_one_package_whose_front_object_searches(tmp_path, poster_set):
    """Build the wheel from a clean checkout's files (as `pip install .` does), install it without
    dependencies into a bare folder and use it from elsewhere: one top-level name, no sys.path
    changed, one class per error, `Posters` answering a search, and the console command."""
    if missing := build_tools_missing():
        pytest.skip(f"cannot build the wheel offline: {missing}")
    source = tmp_path / "src"
    for name in tracked_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", source], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("poster_search-*.whl")
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", target, wheel], check=True, capture_output=True)
    # one name in site-packages, poster_search: no generic top-level module (cli, store, web) beside it
    assert {p.name for p in target.iterdir()} == {"poster_search", "bin", *[p.name for p in target.glob("poster_search-*.dist-info")]}
    assert not (target / "poster_search" / "tests").exists() and (target / "poster_search" / "web" / "static" / "index.html").is_file()

    catalog, posters = poster_set(4)
    assert run_cli(*ingest_args(catalog, posters, tmp_path / "store")).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(target)}  # the wheel's poster_search before the checkout's editable one
    elsewhere = tmp_path / "elsewhere"  # not the checkout, and a folder with modules named like the package's
    (elsewhere / "web").mkdir(parents=True)
    (elsewhere / "web" / "__init__.py").write_text("MINE = True\n")
    (elsewhere / "errors.py").write_text("MINE = True\n")
    code = f"""
import sys
before = list(sys.path)
import web, errors
import poster_search
from poster_search import Posters, NotFound, errors as package_errors
from poster_search.web.server import listen
assert sys.path == before, "sys.path changed"
assert web.MINE and errors.MINE, "the user's own modules are still theirs"
assert NotFound is package_errors.NotFound and issubclass(NotFound, poster_search.PosterSearchError)
assert poster_search.__file__.startswith({str(target)!r}), poster_search.__file__
with Posters({str(tmp_path / "store")!r}) as posters:
    result = posters.search(title="Film 1", k=2)
    assert [n.poster.title for n in result.neighbours] and result.to_frame().shape[0] == 2
    try:
        posters.film(title="No such film")
    except NotFound as e:
        print("not found:", e)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "ok", done.stderr[-3000:]
    requires = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m; print(*m.requires('poster-search'), sep='\\n')"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    base = [r for r in requires if "extra ==" not in r]
    extra = [r.split(";")[0].strip() for r in requires if "extra == " in r and "train" in r]
    assert base and all(">=" in r or "~=" in r for r in base), base  # ranges, not pins: the pins are constraints.txt's
    assert not any(r.startswith(("tensorflow", "keras")) for r in base)  # TensorFlow only with the train extra
    assert {re.split(r"[<>=~]", r)[0] for r in extra} == {"tensorflow-cpu", "keras"}, extra

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
    assert "`poster-search ingest`" in error.stderr  # the command the user ran, not `python cli.py`
    version = subprocess.run([command, "--version"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert version.returncode == 0 and re.fullmatch(r"poster-search \d+\.\d+\.\d+\n", version.stdout), version.stdout


def test_messages_name_the_command_that_was_run(tmp_path):
    """`python cli.py` in a checkout: its messages say so (the installed command says `poster-search`, above)."""
    result = run_process("search", "--title", "x", "--qdrant-path", tmp_path / "none")
    assert_one_line_error(result, "no store at .*run `python cli.py ingest` first")
    short = run_process("search", "-h")
    assert short.returncode == 0 and "Usage: python cli.py search" in short.stdout and "--qdrant-path" in short.stdout


def test_train_year_without_keras_says_what_to_install(tmp_path, poster_set):
    """Without the train extra (Keras, TensorFlow), train-year is one line naming it; the rest works."""
    catalog, posters = poster_set(6)
    store = tmp_path / "store"
    assert run_cli(*ingest_args(catalog, posters, store)).returncode == 0
    blocker = """
import sys
class NoKeras:  # as if neither Keras nor TensorFlow were installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("keras", "tensorflow"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoKeras())
sys.argv = ["poster-search", *sys.argv[1:]]
from poster_search.cli import main
main()
"""
    args = ["--qdrant-path", str(store), "--model-dir", str(tmp_path / "model")]
    trained = subprocess.run([sys.executable, "-c", blocker, "train-year", *args], capture_output=True, text=True, timeout=120)
    assert_one_line_error(trained, r"needs keras.*pip install \"poster-search\[train\]\"")
    searched = subprocess.run(
        [sys.executable, "-c", blocker, "search", "--title", "Film 2", "--qdrant-path", str(store)], capture_output=True, text=True
    )
    assert searched.returncode == 0 and "Film" in searched.stdout, searched.stderr
