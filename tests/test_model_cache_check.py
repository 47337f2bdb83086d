"""Issue 39: a cached model altered with its record recomputed is caught by what it computes
(rebuilt, and the vectors right), and a vector that is not finite or is zero is an error, never a
result. The damage is done as someone would: 4 MB of the weights randomised, then each file's size
and sha256 written into the record exactly as the cache code writes them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from poster_search.embedding.backend import cpu_bf16, installed
from poster_search.embedding.images import decode_poster
from poster_search.embedding.onnx_embedder import OnnxEmbedder
from poster_search.errors import Damaged
from tests.conftest import NOTES, generated_catalog, ingest_args, make_poster, one_line_error, run_cli

pytestmark = pytest.mark.e2e  # model runtimes as a user runs them: tests/test_posters.py is the unit layer

needs_openvino = pytest.mark.skipif(not installed("openvino"), reason="openvino is not installed (pip install -r requirements.txt)")
OV_PRECISION = "bf16" if cpu_bf16() else "fp32"  # what OpenVINO runs here: bf16 where the CPU has it
FOUR_MB = 4 * 1024 * 1024


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A cache folder of this test's own (the user's ~/.cache is never touched by a test)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("POSTER_SEARCH_CACHE", str(folder))
    return folder


@pytest.fixture
def pixels(tmp_path) -> np.ndarray:
    return np.stack([decode_poster(make_poster(tmp_path / f"{i}.png", seed=70 + i)).pixels for i in range(3)])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def randomise(path: Path, length: int = FOUR_MB) -> None:
    """`length` random bytes written over the middle of the file: its size unchanged."""
    raw = bytearray(path.read_bytes())
    assert len(raw) > 2 * length
    start = len(raw) // 2 - length // 2
    raw[start : start + length] = np.random.default_rng(39).integers(0, 256, length, dtype=np.uint8).tobytes()
    path.chmod(0o600)  # OpenVINO writes its blobs read-only
    path.write_bytes(bytes(raw))


def recompute_onnx_record(folder: Path) -> None:
    """embedding/onnx_cache.py's record, its sizes and digests made true again: [size, sha256] per
    file, json.dumps(..., indent=2). Anything else in it is kept as it was."""
    record = json.loads((folder / "made.json").read_text())
    record["files"] = {name: [(folder / name).stat().st_size, _sha256(folder / name)] for name in ("model.onnx", "model.onnx.data")}
    (folder / "made.json").write_text(json.dumps(record, indent=2))


def recompute_openvino_record(folder: Path) -> None:
    """embedding/openvino_cache.py's record made true again for the files now there (indent=1)."""
    record = json.loads((folder / "made.json").read_text())
    names = sorted(p.name for p in folder.iterdir() if p.name != "made.json")
    record["files"] = {name: [(folder / name).stat().st_size, _sha256(folder / name)] for name in names}
    (folder / "made.json").write_text(json.dumps(record, indent=1))


def onnx_folder(cache: Path) -> Path:
    [folder] = [p for p in (cache / "models").iterdir() if p.name.endswith("-fp32") and not p.name.startswith(".")]
    return folder


def openvino_folders(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "openvino").iterdir() if not p.name.startswith("."))


def test_onnx_model_data_altered_with_its_record_recomputed_is_rebuilt(cache, pixels, capfd):
    """ONNX Runtime: 4 MB of model.onnx.data randomised and the record recomputed: the graph gives
    the test image other vectors, so it is built again from the weights, with a note."""
    reference = OnnxEmbedder(None, style=True).embed_both(pixels)
    folder = onnx_folder(cache)
    digests = json.loads((folder / "made.json").read_text())["files"]
    randomise(folder / "model.onnx.data")
    recompute_onnx_record(folder)
    capfd.readouterr()
    again = OnnxEmbedder(None, style=True).embed_both(pixels)
    for mine, fresh in zip(again, reference):
        assert np.allclose(mine, fresh, atol=1e-6)  # the vectors of a fresh build, not of the altered file
    assert "does not compute what its record says" in capfd.readouterr().err
    assert json.loads((folder / "made.json").read_text())["files"] == digests  # rebuilt: the very files of the first build
    assert np.array_equal(OnnxEmbedder(None).embed_pixels(pixels), reference[0])  # and believed again, by what it computes


def test_a_garbled_onnx_graph_with_its_record_recomputed_is_rebuilt_not_an_error(cache, pixels, capfd):
    """model.onnx itself altered (its record recomputed): it cannot be loaded, so it is built again."""
    reference = OnnxEmbedder(None).embed_pixels(pixels)
    folder = onnx_folder(cache)
    graph = folder / "model.onnx"
    graph.write_bytes(graph.read_bytes()[:-100] + b"\x00" * 100)
    recompute_onnx_record(folder)
    assert np.allclose(OnnxEmbedder(None).embed_pixels(pixels), reference, atol=1e-6)
    assert "cannot be loaded: built again" in capfd.readouterr().err


@needs_openvino
def test_an_openvino_blob_altered_with_its_record_recomputed_is_compiled_again(cache, pixels, capfd):
    """OpenVINO: 4 MB of the compiled blob randomised and the record recomputed: compiled again."""
    from poster_search.embedding.openvino_embedder import OpenVinoEmbedder

    reference = OpenVinoEmbedder(None, style=True, precision=OV_PRECISION).embed_both(pixels)
    [folder] = openvino_folders(cache)
    [blob] = [p for p in folder.iterdir() if p.name != "made.json"]
    randomise(blob)
    recompute_openvino_record(folder)
    capfd.readouterr()
    again = OpenVinoEmbedder(None, style=True, precision=OV_PRECISION).embed_both(pixels)
    for mine, fresh in zip(again, reference):
        assert np.allclose(mine, fresh, atol=1e-6)
    assert "compiled VGG16 cached in" in capfd.readouterr().err
    assert np.array_equal(OpenVinoEmbedder(None, style=True, precision=OV_PRECISION).embed_both(pixels)[0], reference[0])


@needs_openvino
@pytest.mark.parametrize("compiled_cache", ["kept", "gone"])
def test_onnx_model_data_altered_under_openvino_is_rebuilt(cache, pixels, capfd, compiled_cache):
    """OpenVINO reads the ONNX graph too: altered (record recomputed) with the compiled model still
    cached, or with none (compiled afresh from the altered graph): the vectors are a fresh build's."""
    import shutil

    from poster_search.embedding.openvino_embedder import OpenVinoEmbedder

    reference = OpenVinoEmbedder(None, precision=OV_PRECISION).embed_pixels(pixels)
    folder = onnx_folder(cache)
    randomise(folder / "model.onnx.data")
    recompute_onnx_record(folder)
    if compiled_cache == "gone":
        shutil.rmtree(cache / "openvino")
    assert np.allclose(OpenVinoEmbedder(None, precision=OV_PRECISION).embed_pixels(pixels), reference, atol=1e-6)
    if compiled_cache == "gone":  # compiled from a graph that does not compute what it recorded: the graph rebuilt
        assert "VGG16 graph cached in" in capfd.readouterr().err
    assert np.allclose(OpenVinoEmbedder(None, precision=OV_PRECISION).embed_pixels(pixels), reference, atol=1e-6)


def weights_file(path: Path, layer: str, change) -> Path:
    """A Keras notop weights file (the layout embedding/weights.py reads) of the seeded weights,
    with change(kernel) applied to one layer's kernel."""
    import h5py

    from poster_search.embedding.weights import seeded_layers

    with h5py.File(path, "w") as f:
        for conv in seeded_layers():
            kernel = change(conv.kernel.copy()) if conv.name == layer else conv.kernel
            group = f.create_group(conv.name)
            names = [f"{conv.name}/kernel:0", f"{conv.name}/bias:0"]
            group.attrs["weight_names"] = [n.encode() for n in names]
            group[names[0]], group[names[1]] = kernel, conv.bias
    return path


def test_weights_that_give_nan_are_one_line_not_vectors(cache, pixels, tmp_path):
    """Finite weights whose first layer overflows (x 1e36): ONNX Runtime's vectors are NaN. The
    freshly built model's test image says so, before any poster is embedded or stored."""
    weights = weights_file(tmp_path / "huge.h5", "block1_conv1", lambda kernel: kernel * np.float32(1e36))
    with pytest.raises(Damaged, match="NaN or zero vectors: check the weights") as caught:
        OnnxEmbedder(str(weights)).embed_pixels(pixels)
    assert "\n" not in str(caught.value)
    catalog, posters = generated_catalog(tmp_path, 3, seed=5)
    store = tmp_path / "store"
    made = run_cli(*ingest_args(catalog, posters, store, "--backend", "onnxruntime", weights=weights))
    one_line_error(made, "NaN or zero vectors: check the weights", ignore=NOTES)
    assert not (store / "collections" / "posters").exists()  # the model loads before the collection is made


def test_weights_that_are_nan_are_one_line_on_every_runtime(cache, tmp_path):
    """NaN in the weights file: refused as it is read. OpenVINO's ReLU would turn NaN into 0 and
    give finite vectors of another model, which no check of the vectors could catch."""
    weights = weights_file(tmp_path / "nan.h5", "block3_conv1", lambda kernel: np.where(np.arange(256) == 7, np.nan, kernel))
    catalog, posters = generated_catalog(tmp_path, 3, seed=5)
    made = run_cli(*ingest_args(catalog, posters, tmp_path / "store", weights=weights))
    one_line_error(made, "layer block3_conv1 has weights that are not finite", ignore=NOTES)


def _model_classes() -> list[type[OnnxEmbedder]]:
    classes: list[type[OnnxEmbedder]] = [OnnxEmbedder]
    if installed("openvino"):
        from poster_search.embedding.openvino_embedder import OpenVinoEmbedder

        classes.append(OpenVinoEmbedder)
    return classes


def test_a_query_vector_that_is_not_finite_or_zero_is_an_error_never_a_result(cache, tmp_path, monkeypatch):
    """A search whose query vector is NaN or zero (the model passed its check, the vector did not)
    is one line, exit 1, not neighbours at similarity 0.000. A cached model that did it is discarded,
    so the next start builds it again; a model just built that does it is the weights' fault. Then,
    the runtime mended, the same search answers as before."""
    catalog, posters = generated_catalog(tmp_path, 6, seed=90)
    store = tmp_path / "store"
    made = run_cli("ingest", "--catalog", catalog, "--posters", posters, "--qdrant-path", store, "--weights", "random")
    assert made.returncode == 0, made.stderr
    search = ("search", posters / "2.jpg", "-k", "3", "--json", "--qdrant-path", store, "--weights", "random")
    answered = run_cli(*search)
    assert answered.returncode == 0, answered.stderr
    records = sorted(cache.rglob("made.json"))
    assert records

    def break_outputs(output: str) -> None:  # what the runtime returns for posters, not for the check's test image
        for cls in _model_classes():
            original = cls.outputs

            def broken(self, pixels, names, original=original):
                return [np.full_like(o, np.nan) if output == "NaN" else np.zeros_like(o) for o in original(self, pixels, names)]

            monkeypatch.setattr(cls, "outputs", broken)

    break_outputs("NaN")
    failed = run_cli(*search)
    one_line_error(failed, r"not finite \(NaN or infinite\): its cached model is discarded and built again at the next start", ignore=NOTES)
    assert not failed.stdout.strip()  # no neighbours printed
    assert not all(r.exists() for r in records)  # discarded: this start rebuilds
    break_outputs("zero")
    failed = run_cli(*search)
    one_line_error(failed, "a zero vector, with a model just built from the seeded random weights: check the weights", ignore=NOTES)
    assert not failed.stdout.strip()
    monkeypatch.undo()
    monkeypatch.setenv("POSTER_SEARCH_CACHE", str(cache))
    again = run_cli(*search)
    assert again.returncode == 0, again.stderr
    assert [(n["id"], round(n["score"], 5)) for n in json.loads(again.stdout)["neighbours"]] == [
        (n["id"], round(n["score"], 5)) for n in json.loads(answered.stdout)["neighbours"]
    ]


def test_the_guard_covers_every_way_out_of_the_embedder(cache, pixels, monkeypatch):
    """embed, embed_both (both vectors), embed_with_grid and grids all refuse a NaN output."""
    embedder = OnnxEmbedder(None, style=True)
    embedder.load()
    original = OnnxEmbedder.outputs
    monkeypatch.setattr(OnnxEmbedder, "outputs", lambda self, p, names: [o * np.nan for o in original(self, p, names)])
    for call in (embedder.embed_pixels, embedder.embed_both, embedder.embed_with_grid, embedder.grids):
        with pytest.raises(Damaged, match="not finite"):
            call(pixels)
    monkeypatch.setattr(
        OnnxEmbedder,
        "outputs",
        lambda self, p, names: [o if n == "pooled" else o * np.nan for n, o in zip(names, original(self, p, names))],
    )
    with pytest.raises(Damaged, match="not finite"):  # the style vector alone
        embedder.embed_both(pixels)
