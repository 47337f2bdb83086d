"""poster search: the command line, a thin layer over ingest/, search/, regression/ and store/.

Heavy libraries (TensorFlow, qdrant-client) are imported inside the commands that need them,
so `python cli.py --help` answers at once.
"""

from __future__ import annotations

import errno
import functools
import inspect
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from embedding.backend import AUTO_BACKEND, AUTO_PRECISION
from errors import UserError, check_output_file
from presentation import (
    as_json,
    export_summary,
    files_written,
    film_query,
    ingest_summary,
    neighbours_json,
    neighbours_table,
    one_line,
    shown,
)
from regression.config import DEFAULT_VECTOR, HeadConfig, HeadTarget, VectorChoice
from store.schema import check_collection_name

if TYPE_CHECKING:
    from search.nearest import ImageQuery
    from store.collection import PosterStore, StoredPoint
    from store.connection import StoreLocation

app = typer.Typer(
    help="Embed movie posters with VGG16, store them in Qdrant, find similar posters, predict release years.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# The six store-connection options, declared once: `@store_options` adds them to a command and
# hands it a `StoreOptions`. Environment variables are read in store.connection.location_from_options,
# so notebooks get the same defaults as the CLI.
QdrantPath = Annotated[str | None, typer.Option("--qdrant-path", help="Embedded store folder (env QDRANT_PATH; default ./qdrant_data).")]
QdrantUrl = Annotated[str | None, typer.Option("--qdrant-url", help="Qdrant server URL, instead of the embedded store (env QDRANT_URL).")]
QdrantApiKey = Annotated[str | None, typer.Option("--qdrant-api-key", help="API key for the server (env QDRANT_API_KEY).")]
QdrantGrpc = Annotated[
    bool | None, typer.Option("--grpc/--no-grpc", help="Talk gRPC (port 6334) to the server: faster bulk uploads (env QDRANT_GRPC).")
]
QdrantTimeout = Annotated[
    float | None, typer.Option("--qdrant-timeout", help="Seconds per server request (env QDRANT_TIMEOUT; default 30).")
]
Collection = Annotated[str, typer.Option("--collection", help="Collection name.")]
Collections = Annotated[
    list[str] | None,
    typer.Option("--collection", help="Collection name; repeat it to use several collections of the store (their union)."),
]
Shards = Annotated[int | None, typer.Option(min=1, help="Server/cluster only: shards of a new collection (default: one per node).")]
Replicas = Annotated[int | None, typer.Option(min=1, help="Server/cluster only: copies of each shard (default 1).")]
WriteConsistency = Annotated[
    int | None, typer.Option(min=1, help="Server/cluster only: replicas that must acknowledge a write (default 1).")
]
ModelDir = Annotated[Path, typer.Option("--model-dir", help="Folder of the year model (model.keras, model.json, plots).")]
StoredVector = Literal["vgg16", "vgg16_style"]
VectorName = Annotated[StoredVector, typer.Option("--vector", help="Which stored vector (vgg16_style: after ingest --style).")]
Backend = Literal["auto", "onnxruntime", "openvino", "tensorflow", "jax", "torch"]
Precision = Literal["auto", "fp32", "bf16", "int8"]
Weights = Annotated[
    str | None,
    typer.Option("--weights", help="VGG16 weights: 'imagenet' (downloaded by Keras) or a notop .h5 file (env VGG16_WEIGHTS)."),
]


def say(text: str, err: bool = False) -> None:
    """Every line the CLI prints: stored titles and file names may hold terminal escape sequences."""
    typer.echo(shown(text), err=err)


def cli_errors(command):
    """Turn UserError and Ctrl-C into one line and an exit code, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as e:
            say(f"Error: {one_line(e)}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            say("Interrupted: everything stored so far is kept; run the same command again to resume.", err=True)
            raise typer.Exit(130) from None
        except BrokenPipeError:  # the reader went away (`| head`): Typer stops quietly, exit code 1
            raise
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise _unexpected(e) from None
            where = f" {e.filename}" if e.filename else ""
            say(f"Error: cannot write{where}: {e.strerror}; everything stored before is kept: free some space and run it again", err=True)
            raise typer.Exit(1) from None
        except Exception as e:  # a bug, not bad input: still one line, the traceback on request
            raise _unexpected(e) from None

    return wrapper


def _unexpected(e: Exception) -> Exception:
    """A bug, not bad input: one line and exit code 2, or the exception itself with POSTER_SEARCH_DEBUG."""
    if os.environ.get("POSTER_SEARCH_DEBUG"):
        return e
    say(f"Unexpected error: {type(e).__name__}: {one_line(e)} (set POSTER_SEARCH_DEBUG=1 for the traceback)", err=True)
    return typer.Exit(2)


@dataclass(frozen=True)
class StoreOptions:
    """The store-connection options of one command, checked and turned into a location or an open store."""

    path: str | None = None
    url: str | None = None
    api_key: str | None = None
    grpc: bool | None = None
    timeout: float | None = None
    collection: str = "posters"

    def location(self) -> StoreLocation:
        """The StoreLocation these options (and QDRANT_* variables) name; UserError for conflicts and bad values."""
        from store.connection import location_from_options

        check_collection_name(self.collection)
        return location_from_options(self.path, self.url, self.api_key, self.timeout, self.grpc)

    def open(self, must_exist: bool = False, location: StoreLocation | None = None) -> PosterStore:
        """The PosterStore (a context manager); an OS error opening it is one line, not a traceback."""
        from store.collection import PosterStore

        location = location or self.location()
        try:
            return PosterStore(location, self.collection, must_exist=must_exist)
        except OSError as e:
            raise UserError(f"cannot open {location.describe()}: {e.strerror or e}") from None


_STORE_PARAMETERS = [
    inspect.Parameter("qdrant_path", inspect.Parameter.KEYWORD_ONLY, annotation=QdrantPath, default=None),
    inspect.Parameter("qdrant_url", inspect.Parameter.KEYWORD_ONLY, annotation=QdrantUrl, default=None),
    inspect.Parameter("qdrant_api_key", inspect.Parameter.KEYWORD_ONLY, annotation=QdrantApiKey, default=None),
    inspect.Parameter("grpc", inspect.Parameter.KEYWORD_ONLY, annotation=QdrantGrpc, default=None),
    inspect.Parameter("qdrant_timeout", inspect.Parameter.KEYWORD_ONLY, annotation=QdrantTimeout, default=None),
    inspect.Parameter("collection", inspect.Parameter.KEYWORD_ONLY, annotation=Collection, default="posters"),
]


def store_options(command):
    """Give a command the six store-connection options, declared once here.

    The command declares `connection: StoreOptions` (not a CLI option); Typer sees the six options
    instead, and the command receives them as one StoreOptions: `with connection.open(must_exist=True)
    as store:` gives the PosterStore. A command that also declares `collections: list[str]` gets a
    repeatable --collection: `connection` names the first collection, `collections` all of them.
    """
    signature = inspect.signature(command, eval_str=True)
    many = "collections" in signature.parameters
    own = [p for name, p in signature.parameters.items() if name not in ("connection", "collections")]
    store_parameters = [
        p.replace(annotation=Collections, default=None) if many and p.name == "collection" else p for p in _STORE_PARAMETERS
    ]
    cli_signature = signature.replace(parameters=own + store_parameters)

    @functools.wraps(command)
    def wrapper(*args, qdrant_path, qdrant_url, qdrant_api_key, grpc, qdrant_timeout, collection, **kwargs):
        names = (collection or ["posters"]) if many else [collection]
        for name in names:
            check_collection_name(name)
        options = StoreOptions(qdrant_path, qdrant_url, qdrant_api_key, grpc, qdrant_timeout, names[0])
        return command(*args, connection=options, **({"collections": names} if many else {}), **kwargs)

    wrapper.__signature__ = cli_signature
    wrapper.__annotations__ = {p.name: p.annotation for p in cli_signature.parameters.values()}
    return wrapper


@app.command()
@cli_errors
@store_options
def ingest(
    posters: Annotated[Path, typer.Option(help="Folder of poster images.")],
    catalog: Annotated[
        Path | None,
        typer.Option(
            help="Catalog CSV (title, year, poster file). Without it: every image under --posters, named by its .nfo or 'Title (Year)' name."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N films of the catalog.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, max=1024, help="Posters per model batch and per upsert (default: 32 on a CPU, 256 on a GPU).")
    ] = None,
    backend: Annotated[
        Backend | None,
        typer.Option(help=f"What runs VGG16 (env KERAS_BACKEND). auto: {AUTO_BACKEND}."),
    ] = None,
    precision: Annotated[Precision, typer.Option(help=f"auto: {AUTO_PRECISION}. int8 (CPU): faster, another embedding.")] = "auto",
    workers: Annotated[
        int | None, typer.Option(min=0, help="Poster-decoding processes (default: the usable CPU cores; 0: a thread).")
    ] = None,
    recreate: Annotated[bool, typer.Option(help="Delete the collection first and start over.")] = False,
    prune: Annotated[bool, typer.Option(help="Delete stored films that are no longer in the catalog.")] = False,
    style: Annotated[bool, typer.Option(help="Also store the style vector 'vgg16_style' (added to posters already stored).")] = False,
    augment: Annotated[
        bool,
        typer.Option(
            help="Store each poster's augmented view instead (cropped, recoloured, recompressed), to train the year model with: into a collection of its own."
        ),
    ] = False,
    rejects: Annotated[Path, typer.Option(help="Where to write rejected rows and posters, with reasons.")] = Path("ingest-rejects.csv"),
    file_column: Annotated[str | None, typer.Option(help="Catalog column with the poster file name.")] = None,
    id_column: Annotated[str | None, typer.Option(help="Catalog column with the film id (posters <id>.jpg).")] = None,
    title_column: Annotated[str | None, typer.Option(help="Catalog column with the title.")] = None,
    year_column: Annotated[str | None, typer.Option(help="Catalog column with the year (else '(YYYY)' in titles).")] = None,
    genre_column: Annotated[str | None, typer.Option(help="Catalog column with genres ('A|B').")] = None,
    encoding: Annotated[str | None, typer.Option(help="Catalog encoding (default: utf-8, else latin-1).")] = None,
    weights: Weights = None,
    shards: Shards = None,
    replicas: Replicas = None,
    write_consistency: WriteConsistency = None,
    connection: StoreOptions = StoreOptions(),
) -> None:
    """Embed every poster of a catalog, or of a folder without one, and upsert it into the store (resumable)."""
    from embedding.embedders import make_embedder
    from embedding.spec import resolve_weights
    from ingest.catalog import Columns, read_catalog
    from ingest.pipeline import ingest as run_ingest
    from ingest.pipeline import write_rejects
    from store.collection import Sharding

    check_output_file(rejects, "--rejects")  # before the long work, not after it
    columns = Columns(file=file_column, id=id_column, title=title_column, year=year_column, genres=genre_column)
    if catalog is None and (columns != Columns() or encoding):
        raise UserError(
            "--file-column, --id-column, --title-column, --year-column, --genre-column and --encoding describe a --catalog: give one"
        )
    # cheap: the backend is chosen without importing it, and loads only if there is work
    embedder = make_embedder(resolve_weights(weights), style=style, backend=backend, precision=precision, augmented=augment)
    if catalog is None:
        from ingest.folder import read_folder

        films = read_folder(posters)
    else:
        films = read_catalog(catalog, posters, columns, encoding)
    with connection.open() as store:
        sharding = Sharding(shards, replicas, write_consistency)
        report = run_ingest(
            films,
            posters,
            store,
            embedder,
            batch_size=batch_size,
            limit=limit,
            recreate=recreate,
            sharding=sharding,
            prune=prune,
            workers=workers,
        )
        total = store.count()
    if report.rejects or films.notes:
        write_rejects(report.rejects + [replace(n, reason=f"note (ingested): {n.reason}") for n in films.notes], rejects)
    say(ingest_summary(report.summary(), connection.collection, total, rejects if report.rejects or films.notes else None))


@app.command("export-embeddings")
@cli_errors
@store_options
def export_embeddings(
    out: Annotated[Path, typer.Argument(help="The .npz file to write.")],
    connection: StoreOptions = StoreOptions(),
) -> None:
    """Write the stored embeddings as one (n_movies, embedding_size) array with ids, titles, years, predicted years, files."""
    from store.embeddings import export_target, load_embeddings, save_npz

    if out.is_dir():
        raise UserError(f"the output file {out} is a folder; give a file name such as embeddings.npz")
    check_output_file(export_target(out), "the output file")
    with connection.open(must_exist=True) as store:
        embeddings = load_embeddings(store)
    save_npz(embeddings, out)
    say(export_summary(out, embeddings.vectors.shape))


@app.command()
@cli_errors
@store_options
def search(
    image: Annotated[Path | None, typer.Argument(help="A poster image to search with (needs the model).")] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many neighbours.")] = 3,
    title: Annotated[str | None, typer.Option(help="Search by a stored film's title instead (no model needed).")] = None,
    id: Annotated[str | None, typer.Option("--id", help="Search by a stored film's point id.")] = None,
    year: Annotated[int | None, typer.Option(help="With --title: the film's year, when several share the title.")] = None,
    year_min: Annotated[
        int | None,
        typer.Option(
            help="Only neighbours from this catalog year on (catalog years only: an undated poster is left out, even with a predicted year)."
        ),
    ] = None,
    year_max: Annotated[
        int | None, typer.Option(help="Only neighbours up to this catalog year (catalog years only, as --year-min).")
    ] = None,
    genre: Annotated[str | None, typer.Option(help="Only neighbours of this genre.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    sheet: Annotated[Path | None, typer.Option(help="Also write a PNG of the query and its neighbours.")] = None,
    explain: Annotated[
        Path | None, typer.Option(help="Also write a PNG of where each score comes from in both posters (similarity maps; vgg16).")
    ] = None,
    posters: Annotated[Path | None, typer.Option(help="Poster folder for --sheet (default: the one ingest recorded).")] = None,
    vector: VectorName = "vgg16",
    weights: Weights = None,
    connection: StoreOptions = StoreOptions(),
) -> None:
    """The k films whose posters are most similar to an image, or to a stored film (--title / --id)."""
    from search.nearest import Filters, PosterSearch

    if (image is None) == (title is None and id is None):
        raise UserError("give either an image or --title/--id")
    if title is not None and id is not None:
        raise UserError("give one of --title and --id, not both")
    filters = Filters(year_min, year_max, genre)
    filters.check()
    if explain is not None and vector != "vgg16":
        raise UserError(
            "similarity maps (--explain) exist for the vgg16 vector only: the style vector's score does not split over cells (docs/search.md#similarity-maps-why-two-posters-are-close)"
        )
    for out, option in ((sheet, "--sheet"), (explain, "--explain")):
        if out is not None:
            from search.sheet import check_posters_dir, check_sheet_path

            check_sheet_path(out, option)
            if posters is not None:
                check_posters_dir(posters, "--posters")
    with connection.open(must_exist=True) as store:
        embedder = None
        searched: ImageQuery | StoredPoint
        if image is not None:
            from search.nearest import image_embedder

            embedder = image_embedder(store, weights, style=vector != "vgg16")
            neighbours, searched = PosterSearch(store, embedder).by_image_query(image, k, filters, vector_name=vector)
            query = {"image": str(image)}
        else:
            from search.titles import find_film

            searched = find_film(store, title=title, point_id=id, year=year)
            neighbours = PosterSearch(store).by_point(searched, k, filters, vector_name=vector)
            query = film_query(searched)
        if explain is not None:
            from search.explain import explain_search

            maps = explain_search(store, searched, neighbours, weights, embedder)
        posters_dir = posters or store.posters_dir()
    say(neighbours_json(query, neighbours) if json_out else neighbours_table(query, neighbours))
    from search.sheet import query_sheet

    for out, explanations in ((sheet, None), (explain, maps if explain else None)):
        if out is not None:
            query_sheet(query, neighbours, posters_dir, out, explanations)
            say(f"wrote {out}", err=json_out)


@app.command()
@cli_errors
@store_options
def era(
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Neighbours per poster.")] = 3,
    sample: Annotated[int | None, typer.Option(min=1, help="Only this many posters (seeded sample) as queries.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the sample and the random baseline.")] = 0,
    timeline: Annotated[
        Path | None, typer.Option(help="Also write a PNG of each decade's most and least typical posters and how far its centre moved.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    vector: VectorName = "vgg16",
    connection: StoreOptions = StoreOptions(),
) -> None:
    """Are nearest neighbours from a similar era? Year differences to neighbours vs random pairs; --timeline: decade by decade."""
    from search.era import era_coherence

    if timeline is not None:
        from search.sheet import check_sheet_path

        check_sheet_path(timeline, "--timeline")
    with connection.open(must_exist=True) as store:
        report = era_coherence(store, k=k, sample=sample, seed=seed, vector_name=vector, progress=not json_out)
        if timeline is not None:
            from search.timeline import era_timeline

            steps, posters_dir = era_timeline(store, vector), store.posters_dir()
    if json_out:
        say(as_json({**report.as_dict(), **({"timeline": [s.as_dict() for s in steps]} if timeline else {})}))
    else:
        say(report.table())
    if timeline is not None:
        from search.figures import timeline_figure
        from search.timeline import timeline_table

        if not json_out:
            say(timeline_table(steps))
        timeline_figure(steps, posters_dir, timeline, connection.collection)
        say(f"wrote {timeline}", err=json_out)


@app.command("map")
@cli_errors
@store_options
def poster_map(
    out: Annotated[Path, typer.Option("--out", help="The PNG to write: every poster as a dot coloured by year, the decades' path.")] = Path(
        "map.png"
    ),
    json_out: Annotated[bool, typer.Option("--json", help="Print every poster's coordinates (id, title, year, x, y) as JSON.")] = False,
    json_path: Annotated[Path | None, typer.Option("--json-out", help="Also write that JSON to this file.")] = None,
    vector: VectorName = "vgg16",
    connection: StoreOptions = StoreOptions(),
) -> None:
    """The whole collection at a glance: every poster placed in 2-D by its embedding (computed once per collection state, then cached)."""
    from search.figures import map_figure
    from search.poster_map import poster_map as compute_map
    from search.sheet import check_sheet_path

    check_sheet_path(out, "--out")
    if json_path is not None:
        check_output_file(json_path, "--json-out")
    with connection.open(must_exist=True) as store:
        result = compute_map(store, vector)
    map_figure(result, out, connection.collection)
    written = [out]
    record = {"collection": connection.collection, "vector": vector, "decades": result.decades, "posters": result.as_records()}
    if json_path is not None:
        from safe_io import output_path

        with output_path(json_path) as staged:
            staged.write_text(as_json(record, indent=None))
        written.append(json_path)
    if json_out:
        say(as_json(record, indent=None))
    how = f"computed in {result.seconds:.1f}s" if result.seconds else "from the cache"
    say(f"{len(result.ids)} posters mapped ({how}); {files_written(written)}", err=json_out)


@app.command()
@cli_errors
@store_options
def duplicates(
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Cosine similarity from which two posters are listed.")] = 0.95,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    vector: VectorName = "vgg16",
    connection: StoreOptions = StoreOptions(),
) -> None:
    """Near-duplicate posters (copies, re-releases, alternative art): every pair above a similarity, by exact search."""
    from search.duplicates import duplicates_table, near_duplicates

    with connection.open(must_exist=True) as store:
        pairs = near_duplicates(store, threshold, vector, progress=not json_out)
    say(as_json([p.as_dict() for p in pairs]) if json_out else duplicates_table(pairs, threshold))


@app.command("train-year")
@cli_errors
@store_options
def train_year(
    test_size: Annotated[float, typer.Option(help="Share of dated posters held out for testing (chosen by content hash).")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split and of the head's training.")] = 0,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs per ensemble member (early stopping ends sooner).")] = 400,
    members: Annotated[int, typer.Option(min=1, help="Ensemble members (seeds) averaged.")] = 5,
    knn_k: Annotated[int, typer.Option(min=1, help="k of the k-NN baseline.")] = 10,
    model_dir: ModelDir = Path("year_model"),
    vector: Annotated[
        VectorChoice,
        typer.Option(
            "--vector", help="Stored vector(s) the model reads. auto: both (vgg16+vgg16_style) where every collection has them, else vgg16."
        ),
    ] = DEFAULT_VECTOR,
    head: Annotated[HeadTarget, typer.Option(help="bins: soft labels over year bins, the median year; or regression.")] = HeadConfig.target,
    augmented: Annotated[
        list[str] | None,
        typer.Option(
            "--augmented",
            help="A collection made by `ingest --augment` of the same posters: its views of the training posters are extra training rows (repeat for several).",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the test figures as JSON.")] = False,
    connection: StoreOptions = StoreOptions(),
    collections: list[str] = ["posters"],  # noqa: B006 (typer reads the default list)
) -> None:
    """Train the year model on one or several collections; score it against baselines on a content-split test part."""
    from regression.dataset import load_augmented, load_collections
    from regression.model_file import check_model_dir
    from regression.train import train_year_model

    check_model_dir(model_dir)  # before reading and training, not after
    config = HeadConfig(epochs=epochs, members=members, target=head)
    data = load_collections(connection.location(), collections, vector)  # read, store closed again: then train
    views = load_augmented(connection.location(), augmented, data) if augmented else None
    report = train_year_model(data, model_dir, test_size, seed, config, knn_k, progress=not json_out, augmented=views)
    if json_out:
        say(as_json(report.as_dict()))
    else:
        say(report.table())
        say(files_written(report.files))


@app.command("evaluate-year")
@cli_errors
@store_options
def evaluate_year(
    model_dir: ModelDir = Path("year_model"),
    include_trained: Annotated[bool, typer.Option(help="Also score posters the model was trained or calibrated on (optimistic).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    connection: StoreOptions = StoreOptions(),
    collections: list[str] = ["posters"],  # noqa: B006 (typer reads the default list)
) -> None:
    """Score a trained year model on every dated poster of one or several collections it was not trained on."""
    from regression.dataset import load_collections
    from regression.evaluate import evaluate_model, evaluation_table
    from regression.model_file import YearModel

    model = YearModel.load(model_dir)
    data = load_collections(connection.location(), collections, model.vector_names)
    result = evaluate_model(model, data, include_trained=include_trained)
    say(as_json(result) if json_out else evaluation_table(result))


@app.command("predict-year")
@cli_errors
@store_options
def predict_year(
    images: Annotated[
        list[Path] | None, typer.Argument(help="Poster images and folders of them (every poster image below; need not be in the store).")
    ] = None,
    model_dir: ModelDir = Path("year_model"),
    stored: Annotated[
        bool,
        typer.Option(
            "--stored",
            help="Date the posters of the collection (store options) from their stored vectors, no image decoded: writes predicted_year, predicted_low, predicted_high, predicted_by into each payload, never year.",
        ),
    ] = False,
    every_poster: Annotated[
        bool, typer.Option("--all", help="With --stored: every poster, not only those without a catalog year (their year stays).")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts (one object per line for images).")] = False,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Also write the images' predictions as CSV (image, year, low, high, coverage, error).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1024, help="Images per model batch.")] = 32,
    weights: Weights = None,
    connection: StoreOptions = StoreOptions(),
) -> None:
    """Predict posters' release years with their calibrated ranges: images and folders, or the stored posters (--stored)."""
    from regression.model_file import YearModel

    if stored == bool(images):
        raise UserError("give poster images or folders, or --stored to date the posters of a collection (not both)")
    if every_poster and not stored:
        raise UserError("--all goes with --stored")
    if csv_out is not None:
        if stored:
            raise UserError(
                "--csv is for images; the stored posters' predictions are in their payloads (export-embeddings writes them out)"
            )
        check_output_file(csv_out, "--csv")
    model = YearModel.load(model_dir)  # no TensorFlow: the head runs in NumPy, VGG16 on ONNX Runtime
    if stored:
        from regression.dating import date_stored

        with connection.open(must_exist=True) as store:
            report = date_stored(store, model, every_poster=every_poster, progress=not json_out)
        say(as_json(report.as_dict()) if json_out else report.summary())
        return
    from presentation import predictions_csv, predictions_table
    from regression.predict import image_files, model_embedder, predict_images

    files = image_files(images or [])
    embedder = model_embedder(model, weights)
    results = []
    for result in predict_images(files, model, embedder, batch_size=batch_size, progress=len(files) > batch_size):
        results.append(result)
        if json_out:
            say(as_json(result.as_dict(), indent=None))
    if not json_out:
        say(predictions_table(results))
    if csv_out is not None:
        from safe_io import write_atomic

        write_atomic(csv_out, predictions_csv(results))
    failed = [r.error if r.image in r.error else f"{r.image}: {r.error}" for r in results if r.prediction is None]
    for error in failed[:-1]:
        say(f"Error: {error}", err=True)
    if failed:  # the last one as the command's error: exit code 1, after every other image was dated
        raise UserError(failed[-1] + (f" ({len(failed)} of {len(results)} images not dated)" if len(results) > 1 else ""))


@app.command()
@cli_errors
@store_options
def migrate(
    to_url: Annotated[str | None, typer.Option(help="Destination Qdrant server or cluster URL.")] = None,
    to_path: Annotated[Path | None, typer.Option(help="Destination embedded store folder, instead of a URL.")] = None,
    to_api_key: Annotated[str | None, typer.Option(help="API key of the destination (env QDRANT_TO_API_KEY).")] = None,
    to_collection: Annotated[str | None, typer.Option(help="Destination collection (default: the same name).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Points per scroll and upsert.")] = 256,
    shards: Shards = None,
    replicas: Replicas = None,
    write_consistency: WriteConsistency = None,
    connection: StoreOptions = StoreOptions(),
) -> None:
    """Copy the collection (vectors, payloads, ids) to a server, cluster or other folder, without re-embedding."""
    from store.collection import Sharding
    from store.connection import StoreLocation, location_from_options
    from store.migrate import migrate as run_migrate
    from store.migrate import same_store as is_same_store

    if (to_url is None) == (to_path is None):
        raise UserError("give the destination: --to-url URL (a server or cluster) or --to-path DIR")
    source_location = connection.location()
    if to_path is not None:  # built directly, so that QDRANT_URL (the source's) cannot redirect it
        target_location = StoreLocation(path=to_path)
    else:
        target_location = location_from_options(
            None, to_url, to_api_key or os.environ.get("QDRANT_TO_API_KEY"), connection.timeout, connection.grpc
        )
    target_collection = to_collection or connection.collection
    check_collection_name(target_collection)
    same_store = is_same_store(source_location, target_location)
    if same_store and target_collection == connection.collection:
        raise UserError("source and destination are the same collection")
    with connection.open(must_exist=True, location=source_location) as source:
        target_options = StoreOptions(collection=target_collection)
        with source.other_collection(target_collection) if same_store else target_options.open(location=target_location) as target:
            report = run_migrate(source, target, batch_size, Sharding(shards, replicas, write_consistency))
    say(report.summary())


@app.command()
@cli_errors
@store_options
def compare(
    test_size: Annotated[float, typer.Option(help="Share of dated posters held out for testing.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split, the heads' training and the era baseline.")] = 0,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs per ensemble member.")] = 400,
    members: Annotated[int, typer.Option(min=1, help="Ensemble members per head.")] = 5,
    knn_k: Annotated[int, typer.Option(min=1, help="k of the k-NN baseline.")] = 10,
    model_dir: ModelDir = Path("compare_models"),
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    connection: StoreOptions = StoreOptions(),
) -> None:
    """Original (vgg16) vs style (vgg16_style) embedding: year head and era coherence, one table."""
    from regression.compare import read_for_comparison, train_for_comparison

    with connection.open(must_exist=True) as store:  # read, then close: the store is free while the heads train
        data, era = read_for_comparison(store, seed=seed, progress=not json_out)
    config = HeadConfig(epochs=epochs, members=members)
    result = train_for_comparison(data, era, model_dir, test_size, seed, config, knn_k, progress=not json_out)
    say(as_json(result.as_dict()) if json_out else result.table())


@app.command()
@cli_errors
@store_options
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on. Anything but localhost exposes the store: see docs/web.md#safety.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port, printed at start).")] = 8000,
    model_dir: ModelDir = Path("year_model"),
    era_sample: Annotated[int, typer.Option(min=10, help="Posters (a seeded sample) behind the page's era figures.")] = 1000,
    allowed_host: Annotated[
        list[str] | None, typer.Option("--allowed-host", help="Another host name the page is reached by (repeat it); others get 400.")
    ] = None,
    weights: Weights = None,
    connection: StoreOptions = StoreOptions(),
) -> None:
    """The web page and JSON API: search by image, title or poster, recommend, predict years (Ctrl-C stops)."""
    from web.server import listen
    from web.server import serve as run_server

    listener = listen(host, port)  # a busy port is one line before the store is opened
    with listener, connection.open(must_exist=True) as store:  # held for the life of the server: one process per embedded store
        run_server(store, listener, weights=weights, model_dir=model_dir, era_sample=era_sample, extra_hosts=tuple(allowed_host or ()))


def main() -> None:
    """The console command `poster-search` and `python cli.py`: the Typer app, a bad option or
    argument as one line (exit code 2, as click gives), and quiet on a closed pipe (`... | head`):
    no message and exit code 1, whether the pipe closes mid-run or at the final flush."""

    try:
        try:
            code = app(standalone_mode=False)
        except typer.Abort:  # Ctrl-C while the parser was still reading
            code = 130
        except typer.TyperException as e:  # the parser's errors read like every other error: one line
            code = e.exit_code
            if type(e).__name__ == "NoArgsIsHelpError":  # `python cli.py` alone: the help
                e.show()  # type: ignore[attr-defined]  # a click UsageError (typer keeps the class private)
            else:
                context = getattr(e, "ctx", None)
                command = f" (see python cli.py {context.info_name} --help)" if context is not None and context.parent else ""
                message = one_line(e.format_message()).replace("Value error, ", "")
                say(f"Error: {message}{command}", err=True)
        sys.exit(code if isinstance(code, int) else 0)
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's own flush stays quiet
            sys.exit(1)


if __name__ == "__main__":
    main()
