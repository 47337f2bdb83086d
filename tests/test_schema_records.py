"""The store's typed records (store/schema.py): the payload and the collection metadata, read and
written in one place, and the schema version checked on every read. Real Edge stores in tmp_path;
the CLI in-process (tests/conftest.py's run_cli), as tests/test_errors.py runs it."""

from __future__ import annotations

import json
import re
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest

from poster_search.embedding.spec import EmbeddingSpec
from poster_search.errors import PosterSearchError
from poster_search.ingest.catalog import Film
from poster_search.search.neighbours import PosterSearch
from poster_search.store.collection import PosterStore
from poster_search.store.connection import StoreLocation
from poster_search.store.embeddings import load_embeddings
from poster_search.store.migrate import migrate, same_store
from poster_search.store.schema import PREDICTED_FIELDS, SCHEMA_VERSION, CollectionMetadata, PosterPayload, point_id, upgrade_metadata
from tests.conftest import NOTES
from tests.conftest import one_line_error as strict_one_line_error
from tests.conftest import run_cli as cli


def one_line_error(result, pattern: str) -> str:
    return strict_one_line_error(result, pattern, ignore=NOTES)


SPEC = EmbeddingSpec(weights="random")
FULL = PosterPayload(
    key="7",
    title="Vertigo",
    year=1958,
    file="7.jpg",
    sha256="ab" * 32,
    genres=("Mystery", "Thriller"),
    predicted_year=1957,
    predicted_low=1950,
    predicted_high=1964,
    predicted_by="year-model 1a2b3c",
)


@pytest.fixture(autouse=True)
def no_store_environment(monkeypatch):
    for name in ("QDRANT_PATH", "QDRANT_URL", "QDRANT_API_KEY", "QDRANT_GRPC", "QDRANT_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, SPEC.dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_store(path: Path, payloads: list[dict], posters_dir: Path | None = None) -> StoreLocation:
    """A real Edge store holding one point per payload (keyed by its `key`)."""
    location = StoreLocation(path=path)
    with PosterStore(location) as store:
        store.prepare(SPEC)
        store.upsert([point_id(p["key"]) for p in payloads], unit_vectors(len(payloads)), payloads)
        if posters_dir is not None:
            store.remember_posters_dir(posters_dir)
    return location


def films(n: int) -> list[dict]:
    return [Film(str(i), f"Film {i}", 1950 + i, f"{i}.jpg").payload(f"{i:064x}") for i in range(n)]


def set_raw_metadata(location: StoreLocation, changes: dict) -> None:
    """Metadata as another program (or another version) might have written it: past the typed record."""
    with PosterStore(location) as store:
        store.engine.update_metadata(store.collection, changes)


# --- the payload --------------------------------------------------------------------------


def test_payload_round_trips_through_a_real_store(tmp_path):
    minimal = PosterPayload(key="8", title="Untitled", file="8.jpg", sha256="cd" * 32)
    location = make_store(tmp_path / "store", [FULL.to_dict(), minimal.to_dict()])
    with PosterStore(location, must_exist=True) as store:
        stored = {p.poster.key: replace(p.poster, title_order=None, added=None) for p in store.points(with_vectors=False)}
    assert stored == {"7": FULL, "8": minimal}  # ints stay ints, genres a tuple again, absent fields None
    assert PosterPayload.from_dict(FULL.to_dict()) == FULL
    assert "year" not in minimal.to_dict() and "predicted_year" not in minimal.to_dict()  # unknown: absent, as documented


def test_catalog_payload_is_the_typed_record():
    film = Film("12", "Metropolis", 1927, "12.jpg", genres=("Sci-Fi",))
    assert film.payload("ef" * 32) == {
        "key": "12",
        "title": "Metropolis",
        "file": "12.jpg",
        "sha256": "ef" * 32,
        "year": 1927,
        "genres": ["Sci-Fi"],
        "source": "catalog",
    }
    assert film.payload() == {"key": "12", "title": "Metropolis", "file": "12.jpg", "year": 1927, "genres": ["Sci-Fi"], "source": "catalog"}
    undated = Film("13", "Lost", None, "13.jpg").payload("00" * 32)
    assert "year" not in undated and PosterPayload.from_dict(undated).year is None


@pytest.mark.parametrize(
    "field, value",
    [
        ("year", "1958"),
        ("year", True),
        ("year", 1958.5),
        ("title", 12),
        ("genres", "Drama"),
        ("genres", ["Drama", 3]),
    ],
)
def test_a_wrongly_typed_payload_field_is_one_line_naming_it(field, value):
    with pytest.raises(PosterSearchError) as e:
        PosterPayload.from_dict({**FULL.to_dict(), field: value}, "point 42")
    message = str(e.value)
    assert "\n" not in message and message.startswith("point 42: field ") and f"'{field}'" in message


@pytest.mark.parametrize(
    "field, value", [("predicted_year", "c. 1960"), ("predicted_low", 1950.5), ("predicted_by", 7), ("predicted_high", True)]
)
def test_a_prediction_that_does_not_check_out_reads_as_none(field, value):
    """A prediction is derived data: a damaged one is dropped whole (the poster shows as undated and
    the next `predict-year --stored` dates it again), while the catalog fields stay intact."""
    assert FULL.predicted_year is not None
    read = PosterPayload.from_dict({**FULL.to_dict(), field: value}, "point 42")
    assert [getattr(read, name) for name in PREDICTED_FIELDS] == [None] * 4
    assert (read.key, read.title, read.year, read.genres) == (FULL.key, FULL.title, FULL.year, FULL.genres)
    lone = PosterPayload.from_dict({**FULL.to_dict(), "predicted_year": None})  # a range without its year is no prediction
    assert [getattr(lone, name) for name in PREDICTED_FIELDS] == [None] * 4


def test_fields_of_a_newer_version_are_ignored_and_a_partial_payload_is_defaults():
    assert PosterPayload.from_dict({**FULL.to_dict(), "poster_colour": "red"}) == FULL
    assert PosterPayload.from_dict({"year": 1958}) == PosterPayload(year=1958)
    assert [f.default for f in fields(PosterPayload) if f.name.startswith("predicted_")] == [None] * 4


def test_a_wrongly_typed_stored_payload_is_named_once_and_left_out(tmp_path, caplog):
    """A store is a database: one record that does not decode is named (once, with how to repair
    it) and left out; everything else keeps working (store/collection.py, decode)."""
    payloads = films(4)
    payloads[2]["year"] = "1952"  # written by someone's script, straight into Qdrant
    location = make_store(tmp_path / "store", payloads)
    with PosterStore(location, must_exist=True) as store, caplog.at_level("WARNING", logger="poster_search"):
        embeddings = load_embeddings(store)
        load_embeddings(store)
    assert point_id("2") not in embeddings.ids.tolist() and len(embeddings) == 3
    named = [r.getMessage() for r in caplog.records if point_id("2") in r.getMessage()]
    assert len(named) == 1 and "field 'year' is '1952' (str)" in named[0] and "ingest again" in named[0]
    result = cli("export-embeddings", tmp_path / "e.npz", "--qdrant-path", location.path)
    assert result.exit_code == 0 and "(3, 512)" in result.stdout, result.stderr
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert point_id("2") in warning and "field 'year' is '1952'" in warning
    assert len(np.load(tmp_path / "e.npz")["ids"]) == 3


def test_neighbours_come_from_the_typed_payload(tmp_path):
    location = make_store(tmp_path / "store", [FULL.to_dict(), *films(3)])
    with PosterStore(location, must_exist=True) as store:
        [query] = store.retrieve([point_id("0")], with_vectors=True)
        found = {n.id: n for n in PosterSearch(store).by_point(query, k=3)}
    vertigo = found[point_id("7")]
    assert replace(vertigo.poster, title_order=None, added=None) == FULL


# --- the collection metadata --------------------------------------------------------------


def test_collection_metadata_is_written_typed_and_reads_back(tmp_path):
    posters = tmp_path / "posters"
    location = make_store(tmp_path / "store", films(2), posters_dir=posters)
    with PosterStore(location, must_exist=True) as store:
        record = store.collection_metadata()
        raw = store.metadata()
    assert re.fullmatch("[0-9a-f]{32}", record.state or "")  # a random token, written anew with each change of the points
    assert record == CollectionMetadata(
        embedding=SPEC.as_dict(), posters_dir=str(posters.resolve()), schema_version=SCHEMA_VERSION, state=record.state
    )
    assert raw == record.to_dict()  # what is stored is exactly what the record writes
    assert CollectionMetadata.from_dict(record.to_dict()) == record


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"posters_dir": 123}, "posters_dir"),
        ({"embedding": "vgg16"}, "embedding"),
        ({"schema_version": "2"}, "schema_version"),
        ({"calibration": [1]}, "calibration"),
    ],
)
def test_wrongly_typed_metadata_is_one_line_naming_the_field(tmp_path, changes, field):
    location = make_store(tmp_path / "store", films(2))
    set_raw_metadata(location, changes)
    with PosterStore(location, must_exist=True) as store:
        with pytest.raises(PosterSearchError, match=rf"collection 'posters' in local store .*: field '{field}' is "):
            store.stored_spec()
    line = one_line_error(cli("search", "--title", "Film 0", "--qdrant-path", location.path), rf"field '{field}'")
    assert "Traceback" not in line
    with PosterStore(location, must_exist=True) as store:  # nothing was changed or lost
        assert store.metadata()[field] == changes[field] and store.count() == 2


def test_a_wrongly_typed_state_token_is_read_as_none_and_replaced_by_the_next_write(tmp_path):
    """`state` only keys caches (the poster map, the page's overviews): a damaged one costs a
    recomputation, never the collection."""
    location = make_store(tmp_path / "store", films(2))
    set_raw_metadata(location, {"state": 123})
    assert cli("search", "--title", "Film 0", "--qdrant-path", location.path).exit_code == 0
    with PosterStore(location, must_exist=True) as store:
        assert store.collection_metadata().state is None and store.state() == ":2"
        store.set_payloads([(point_id("0"), {"predicted_year": 1990})])
        assert re.fullmatch("[0-9a-f]{32}", store.metadata()["state"]) and store.state().endswith(":2")


def test_a_metadata_update_is_type_checked_before_it_is_written(tmp_path):
    with pytest.raises(PosterSearchError, match="field 'posters_dir' is 123"):
        CollectionMetadata.changes(posters_dir=123)
    with pytest.raises(TypeError):  # a misspelt key is a programming error, not the user's
        CollectionMetadata.changes(poster_dir="/x")
    assert CollectionMetadata.changes(posters_dir="/x") == {"posters_dir": "/x"}


# --- the schema version -------------------------------------------------------------------


def test_a_collection_of_a_newer_schema_is_refused_in_one_line_and_left_alone(tmp_path):
    location = make_store(tmp_path / "store", films(3))
    set_raw_metadata(location, {"schema_version": SCHEMA_VERSION + 1})
    with PosterStore(location, must_exist=True) as store:
        with pytest.raises(PosterSearchError, match=rf"schema version {SCHEMA_VERSION + 1}, made by a newer poster search"):
            store.stored_spec()
        with pytest.raises(PosterSearchError, match="newer poster search"):
            store.prepare(SPEC)  # an ingest writes nothing into it
        with pytest.raises(PosterSearchError, match="newer poster search"):
            store.posters_dir()
    one_line_error(cli("search", "--title", "Film 1", "--qdrant-path", location.path), rf"reads up to {SCHEMA_VERSION}: upgrade")
    one_line_error(cli("duplicates", "--qdrant-path", location.path), "newer poster search")
    with PosterStore(location, must_exist=True) as store:
        assert store.metadata()["schema_version"] == SCHEMA_VERSION + 1 and store.count() == 3


def rewrite_metadata(location: StoreLocation, change) -> None:
    """Edit collection.json and its backup (docs/store.md, the folder's layout) as an older release left them."""
    for name in ("collection.json", "collection.backup.json"):
        path = location.path / "collections" / "posters" / name
        config = json.loads(path.read_text())
        change(config["metadata"])
        path.write_text(json.dumps(config))


@pytest.mark.parametrize("recorded", [1, None], ids=["version-1", "no-version"])
def test_an_older_collection_is_read_upgraded_and_recorded_current_at_the_next_ingest(tmp_path, recorded):
    location = make_store(tmp_path / "store", films(3))
    rewrite_metadata(location, lambda m: m.update(schema_version=recorded) if recorded else m.pop("schema_version"))
    with PosterStore(location, must_exist=True) as store:
        assert store.metadata().get("schema_version") == recorded
        assert store.collection_metadata().schema_version == SCHEMA_VERSION  # read as the current version
        assert store.stored_spec() == SPEC
        [query] = store.retrieve([point_id("0")], with_vectors=True)
        assert len(PosterSearch(store).by_point(query, k=2)) == 2
        assert store.metadata().get("schema_version") == recorded  # a read writes nothing
        store.prepare(SPEC)  # what an ingest does first
        assert store.metadata()["schema_version"] == SCHEMA_VERSION
    result = cli("search", "--title", "Film 1", "--qdrant-path", location.path, "--json")
    assert result.exit_code == 0, result.output


def test_upgrade_metadata_is_the_one_place_versions_meet():
    assert upgrade_metadata({"embedding": {}})["schema_version"] == SCHEMA_VERSION  # none recorded: version 1
    assert upgrade_metadata({"schema_version": 1, "posters_dir": "/p"}) == {"schema_version": SCHEMA_VERSION, "posters_dir": "/p"}
    with pytest.raises(PosterSearchError, match="newer"):
        upgrade_metadata({"schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(PosterSearchError, match="no poster search wrote it"):
        upgrade_metadata({"schema_version": 0})


def test_migrate_copies_an_older_collection_as_the_current_version(tmp_path):
    source = make_store(tmp_path / "source", films(3), posters_dir=tmp_path / "posters")
    set_raw_metadata(source, {"schema_version": 1, "a_later_key": {"kept": True}})
    target = StoreLocation(path=tmp_path / "target")
    with PosterStore(source, must_exist=True) as a, PosterStore(target) as b:
        migrate(a, b, progress=False)
        copied = b.metadata()
    assert copied["schema_version"] == SCHEMA_VERSION and copied["a_later_key"] == {"kept": True}
    assert copied["posters_dir"] == str((tmp_path / "posters").resolve())


def test_migrate_as_a_library_refuses_a_store_inside_the_other(tmp_path):
    """The nested-folder refusal lives in store/migrate.py, so library callers get it, not only the CLI."""
    source = make_store(tmp_path / "source", films(2))
    inner = StoreLocation(path=tmp_path / "source" / "copy")
    with pytest.raises(PosterSearchError, match="one inside the other"):
        same_store(source, inner)
    assert same_store(source, StoreLocation(path=tmp_path / "source" / ".." / "source"))  # another spelling: the same store
    with PosterStore(source, must_exist=True) as a:
        b = a.other_collection("posters")
        b.location = StoreLocation(path=tmp_path / "source" / ".." / "source")  # not equal as a StoreLocation
        with pytest.raises(PosterSearchError, match="same collection"):
            migrate(a, b, progress=False)
        assert a.count() == 2


def test_ingest_rewrites_a_wrongly_typed_payload_as_the_one_line_says(tmp_path):
    """The payload error's remedy, "ingest again", holds: ingest compares stored payloads with the
    catalog as they are stored, and rewrites a wrong one (no poster embedded again)."""
    import hashlib

    from tests.conftest import make_poster, write_csv

    posters = tmp_path / "posters"
    rows = [[f"{i}.jpg", f"Film {i}", 1950 + i] for i in range(3)]
    for i in range(3):
        make_poster(posters / f"{i}.jpg", seed=i)
    catalog = write_csv(tmp_path / "movies.csv", ["filename", "title", "release_year"], rows)
    digests = [hashlib.sha256((posters / f"{i}.jpg").read_bytes()).hexdigest() for i in range(3)]
    payloads = [Film(f"{i}.jpg", f"Film {i}", 1950 + i, f"{i}.jpg").payload(digests[i]) for i in range(3)]
    payloads[1]["year"] = "1951"
    location = make_store(tmp_path / "store", payloads, posters_dir=posters)
    searched = cli("search", "--title", "Film 1", "--qdrant-path", location.path)  # that film is named as damaged, not "not found"
    strict_one_line_error(searched, r"field 'year' is '1951'", ignore=(*NOTES, "Warning:"))
    done = cli("ingest", "--catalog", catalog, "--posters", posters, "--qdrant-path", location.path, "--weights", "random")
    assert done.exit_code == 0, (done.output, done.exception)
    with PosterStore(location, must_exist=True) as store:
        assert {p.poster.key: p.poster.year for p in store.points(with_vectors=False)} == {"0.jpg": 1950, "1.jpg": 1951, "2.jpg": 1952}
    assert cli("search", "--title", "Film 1", "--qdrant-path", location.path).exit_code == 0
