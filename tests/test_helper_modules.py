"""Helpers in the room of their one job (issue 30): path containment in path_inside.py, Keras'
import in embedding/keras_import.py, the migrate refusals in store/migrate.py (tests/test_schema_records.py),
and `search.nearest`, an ordinary function."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from poster_search.errors import NotFound
from poster_search.path_inside import inside
from poster_search.store.connection import StoreLocation
from tests.conftest import ROOT


def test_search_nearest_is_an_ordinary_function_beside_the_module_of_neighbours(tmp_path):
    import poster_search.search.neighbours as module
    from poster_search.search import nearest

    assert isinstance(module, types.ModuleType) and isinstance(nearest, types.FunctionType)
    with pytest.raises(NotFound, match="no store at"):  # it searches: the same one-line error for a store that is not there
        nearest(tmp_path / "poster.jpg", store=tmp_path / "nothing")


def test_inside_keeps_a_named_file_within_its_folder(tmp_path):
    folder = tmp_path / "posters"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "1.jpg").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("no")
    (folder / "link.jpg").symlink_to(tmp_path / "secret.txt")
    assert inside(folder, "a/1.jpg") == (folder / "a" / "1.jpg").resolve()
    for outside in ("../secret.txt", str(tmp_path / "secret.txt"), "a/../../secret.txt", "link.jpg", "", "."):
        assert inside(folder, outside) is None, outside


@pytest.mark.e2e  # imports Keras and TensorFlow in a process of its own
def test_keras_users_do_not_import_the_embedder():
    """The year head and the weights module need Keras, not VGG16's embedder (embedding/model.py)."""
    code = (
        "import sys\nimport poster_search.regression.head, poster_search.embedding.weights\n"
        "assert 'keras' in sys.modules, 'the check needs Keras imported'\n"
        "import os; assert 'KERAS_BACKEND' not in os.environ, 'the backend was set for the import only, not for child processes'\n"
        "print(sorted(m for m in ('poster_search.embedding.model', 'poster_search.embedding.embedders') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_repair_leaves_a_server_engine_alone(tmp_path):
    """Orphans exist only in the embedded store: ingest/repair.py takes an EdgeEngine explicitly, and
    any other engine (here qdrant-client's local mode, as a server is reached) is never orphaned."""
    import numpy as np

    from poster_search.embedding.spec import EmbeddingSpec
    from poster_search.ingest.repair import readopt_orphan
    from poster_search.store.collection import PosterStore
    from poster_search.store.schema import point_id
    from tests.conftest import local_mode_folder

    for location in (local_mode_folder(tmp_path / "local-mode"), StoreLocation(path=tmp_path / "edge")):
        with PosterStore(location) as store:
            store.prepare(EmbeddingSpec(weights="random"))
            store.upsert([point_id("a")], np.eye(1, 512, dtype=np.float32), [{"key": "a", "title": "A", "file": "a.jpg"}])
            assert readopt_orphan(store, None, tmp_path) is None  # no embedder needed: nothing to repair
