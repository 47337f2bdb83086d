"""export-embeddings and import-embeddings (store/exchange.py): a collection moved between stores
as one file, without VGG16; bad rows named and left out, other embeddings and other files refused
in one line. Real Qdrant Edge stores in temp folders, a small seeded embedder for the posters."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from poster_search import Posters
from poster_search.store.schema import point_id
from tests.conftest import generated_catalog, one_line_error, run_cli
from tests.small_embedder import SmallEmbedder

N = 12


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A collection of N generated posters with genres, its export, and the store it came from."""
    folder = tmp_path_factory.mktemp("exchange")
    catalog, posters = generated_catalog(folder, N)
    with Posters(folder / "store", embedder=SmallEmbedder()) as store:
        store.ingest(posters, catalog, workers=0, progress=False)
        store.store.set_payloads([(point_id("1.jpg"), {"genres": ["Drama", "War"]})])
        report = store.export_embeddings(folder / "e.npz")
    assert report.shape == (N, 512)
    return folder / "e.npz", folder / "store", posters


def stored(path: Path, collection: str = "posters") -> dict:
    with Posters(path, collection) as posters:
        return {r.id: r for records in posters.store.records() for r in records}


def rewritten(source: Path, target: Path, **members: bytes | None) -> Path:
    """A copy of an export with members replaced (None: removed)."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for name in zin.namelist():
            if name not in members:
                zout.writestr(name, zin.read(name))
        for name, data in members.items():
            if data is not None:
                zout.writestr(name, data)
    return target


def test_an_import_is_the_exported_collection_and_a_rerun_adds_nothing(exported, tmp_path):
    file, source, posters = exported
    with np.load(file) as data:  # a notebook reads it with numpy alone
        assert data["embeddings"].shape == (N, 512) and data["embeddings"].dtype == np.float32
        assert sorted(data["keys"]) == sorted(f"{i}.jpg" for i in range(N)) and len(set(data["sha256"])) == N
    imported = run_cli("import-embeddings", file, "--qdrant-path", tmp_path / "copy", "--collection", "moved", "--posters", posters)
    assert imported.returncode == 0 and f"imported {N} posters" in imported.stdout, imported.output
    mine, theirs = stored(source), stored(tmp_path / "copy", "moved")
    assert mine.keys() == theirs.keys()
    for pid, record in mine.items():
        assert theirs[pid].payload == record.payload  # genres, hashes, sort keys: as stored
        assert np.allclose(theirs[pid].vectors["vgg16"], record.vectors["vgg16"], atol=1e-6)
    assert theirs[point_id("1.jpg")].payload["genres"] == ["Drama", "War"]
    again = run_cli("import-embeddings", file, "--qdrant-path", tmp_path / "copy", "--collection", "moved")
    assert again.returncode == 0 and f"it holds {N};" in again.stdout, again.output
    found = run_cli("search", "--title", "Film 3", "-k", "3", "--qdrant-path", tmp_path / "copy", "--collection", "moved", "--json")
    assert found.returncode == 0 and len(json.loads(found.stdout)["neighbours"]) == 3, found.output
    with Posters(tmp_path / "copy", "moved") as moved:
        assert moved.posters_dir() == posters.resolve() and moved.poster_file(point_id("2.jpg")).name == "2.jpg"


def test_a_bad_row_is_named_and_left_out_and_a_row_without_an_id_gets_its_keys(exported, tmp_path):
    file, _, _ = exported
    with np.load(file) as data:
        ids, keys = data["ids"].copy(), list(data["keys"])
        lines = zipfile.ZipFile(file).read("payloads.jsonl").decode().splitlines()
    bad, unnamed = keys.index("2.jpg"), keys.index("5.jpg")
    payload = json.loads(lines[bad])
    lines[bad] = json.dumps({**payload, "year": "nineteen"})
    ids[unnamed] = ""
    buffer = tmp_path / "ids.npy"
    np.save(buffer, ids)
    edited = rewritten(
        file, tmp_path / "edited.npz", **{"payloads.jsonl": "\n".join(lines).encode() + b"\n", "ids.npy": buffer.read_bytes()}
    )
    result = run_cli("import-embeddings", edited, "--qdrant-path", tmp_path / "store")
    assert result.returncode == 0 and f"imported {N - 1} posters" in result.stdout and "1 rows left out" in result.stdout, result.output
    assert "'2.jpg'" in result.stderr and "field 'year' is 'nineteen'" in result.stderr, result.stderr
    ids_stored = stored(tmp_path / "store").keys()
    assert point_id("2.jpg") not in ids_stored and point_id("5.jpg") in ids_stored and len(ids_stored) == N - 1


def test_another_embedding_an_old_export_and_other_files_are_refused_in_one_line(exported, tmp_path):
    file, _, _ = exported
    catalog, posters = generated_catalog(tmp_path, 2)
    with Posters(tmp_path / "other", embedder=SmallEmbedder(seed=1)) as other:
        other.ingest(posters, catalog, workers=0, progress=False)
    one_line_error(
        run_cli("import-embeddings", file, "--qdrant-path", tmp_path / "other"), "exists with another embedding.*another --collection"
    )
    assert len(stored(tmp_path / "other")) == 2
    old = tmp_path / "old.npz"
    with np.load(file) as data:
        np.savez(old, embeddings=data["embeddings"], ids=data["ids"], titles=data["titles"])
    one_line_error(run_cli("import-embeddings", old, "--qdrant-path", tmp_path / "new"), "has no export.json.*export the collection again")
    (tmp_path / "text.npz").write_text("not a zip")
    one_line_error(
        run_cli("import-embeddings", tmp_path / "text.npz", "--qdrant-path", tmp_path / "new"), "is not an export of poster search"
    )
    one_line_error(run_cli("import-embeddings", tmp_path / "none.npz", "--qdrant-path", tmp_path / "new"), "no file")
    header = json.loads(zipfile.ZipFile(file).read("export.json"))
    newer = rewritten(file, tmp_path / "newer.npz", **{"export.json": json.dumps({**header, "version": 99}).encode()})
    one_line_error(run_cli("import-embeddings", newer, "--qdrant-path", tmp_path / "new"), "format version 99.*upgrade")
    with zipfile.ZipFile(file) as z:
        data = z.read("embeddings.npy")
    cut = rewritten(file, tmp_path / "cut.npz", **{"embeddings.npy": data[: len(data) // 2]})
    one_line_error(run_cli("import-embeddings", cut, "--qdrant-path", tmp_path / "new"), "truncated", ignore=("importing",))
