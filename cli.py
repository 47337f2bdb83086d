"""poster search: the command line (`poster-search`, or `python cli.py` in a checkout), a thin
layer over the library's front object, poster_search.Posters: it parses options, calls one of its
methods, and renders what comes back. Typer builds the commands from the signatures below.

Heavy libraries (the model runtimes, the store's engine) are imported by the library when a
command first needs them, so `--help` answers at once.
"""

from __future__ import annotations

if not __package__:  # `python cli.py` in a checkout: this file, run as the package's module poster_search.cli
    import runpy
    import sys
    from pathlib import Path

    try:
        import poster_search
    except ModuleNotFoundError as missing:
        if missing.name != "poster_search":
            raise
        sys.exit("Error: poster_search is not installed in this Python: run `pip install -r requirements.txt` in the project folder first")
    here, package = Path(__file__).resolve().parent, Path(poster_search.__file__).resolve().parent
    if package != here:
        sys.exit(f"Error: this Python's poster_search is installed from {package}, not from this checkout: run `pip install -e .` here")
    # by name, so that worker processes (ingest's decoders) import it as the package's module too
    runpy.run_module("poster_search.cli", run_name="__main__", alter_sys=True)
    sys.exit()


# The module itself, as poster_search.cli (relative imports: the rest of this file runs only as part of the package).
import errno
import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer

from . import __version__, defaults
from .embedding.backend import AUTO_BACKEND, AUTO_PRECISION
from .errors import BadInput, PosterSearchError, check_folder, check_image_output, check_output_file, command
from .presentation import as_json, export_summary, files_written, ingest_summary, neighbours_json, neighbours_table, one_line, shown
from .regression.config import HeadConfig, HeadTarget, VectorChoice
from .store.schema import DEFAULT_COLLECTION, VECTOR_NAME, VectorName, check_collection_name

if TYPE_CHECKING:
    from .api import Posters

app = typer.Typer(
    help="Embed movie posters with VGG16, store them in Qdrant, find similar posters, predict release years.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# --- the store options: declared once, given to every command that uses the store -----------------
#
# Typer makes a command's options from its function's parameters. The six store options are the
# parameters of `_store_options` below, made into options by Typer once; StoreCommand (the class of
# every command that uses the store) adds them to its command and keeps their values in the
# command's context, for `open_posters(ctx)`.

QdrantPath = Annotated[
    str | None,
    typer.Option("--qdrant-path", help="Embedded store folder (env QDRANT_PATH; default ./qdrant_data).", rich_help_panel="Store"),
]
QdrantUrl = Annotated[
    str | None,
    typer.Option("--qdrant-url", help="Qdrant server URL, instead of the embedded store (env QDRANT_URL).", rich_help_panel="Store"),
]
QdrantApiKey = Annotated[
    str | None, typer.Option("--qdrant-api-key", help="API key for the server (env QDRANT_API_KEY).", rich_help_panel="Store")
]
QdrantGrpc = Annotated[
    bool | None,
    typer.Option(
        "--grpc/--no-grpc", help="Talk gRPC (port 6334) to the server: faster bulk uploads (env QDRANT_GRPC).", rich_help_panel="Store"
    ),
]
QdrantTimeout = Annotated[
    float | None,
    typer.Option("--qdrant-timeout", help="Seconds per server request (env QDRANT_TIMEOUT; default 30).", rich_help_panel="Store"),
]
Collection = Annotated[str, typer.Option("--collection", help="Collection name.", rich_help_panel="Store")]
Collections = Annotated[
    list[str] | None,
    typer.Option(
        "--collection", help="Collection name; repeat it for several collections of the store (their union).", rich_help_panel="Store"
    ),
]


STORE_OPTIONS = ("qdrant_path", "qdrant_url", "qdrant_api_key", "grpc", "qdrant_timeout", "collection")


def _store_options(
    qdrant_path: QdrantPath = None,
    qdrant_url: QdrantUrl = None,
    qdrant_api_key: QdrantApiKey = None,
    grpc: QdrantGrpc = None,
    qdrant_timeout: QdrantTimeout = None,
    collection: Collection = DEFAULT_COLLECTION,
) -> None:
    """The store options (this function is never called: Typer reads its parameters)."""


def _collections_option(collection: Collections = None) -> None:
    """--collection, repeatable: for the commands that read several collections."""


@functools.cache
def _params_of(function: Callable[..., None]) -> tuple:
    """The options Typer makes of a function's parameters (through its public get_command), made
    once: every command that uses the store shares them (click's parameters hold no state of their command)."""
    template = typer.Typer(add_completion=False)
    template.command()(function)
    return tuple(typer.main.get_command(template).params)


class StoreCommand(typer.core.TyperCommand):
    """A command that uses the store: the store options after its own, their values in ctx.meta["store"]."""

    several_collections = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        store = _params_of(_store_options)
        self.params += [*store[:-1], *_params_of(_collections_option)] if self.several_collections else store

    def invoke(self, ctx: Any) -> Any:
        ctx.meta["store"] = {name: ctx.params.pop(name) for name in STORE_OPTIONS}
        return super().invoke(ctx)


class StoresCommand(StoreCommand):
    """A command reading several collections of the store: --collection repeatable."""

    several_collections = True


def collections_of(ctx: typer.Context) -> tuple[str, ...]:
    """The collection(s) the command's --collection names (the first is the one a single-collection command uses)."""
    names = ctx.meta["store"]["collection"]
    return (names,) if isinstance(names, str) else tuple(names or [DEFAULT_COLLECTION])


def open_posters(ctx: typer.Context, weights: str | None = None, model_dir: Path | None = None) -> Posters:
    """The front object for the command's store options (and QDRANT_* variables): not opened until used."""
    from .api import Posters
    from .store.connection import location_from_options

    options = ctx.meta["store"]
    names = collections_of(ctx)
    for name in names:
        check_collection_name(name)
    location = location_from_options(
        options["qdrant_path"], options["qdrant_url"], options["qdrant_api_key"], options["qdrant_timeout"], options["grpc"]
    )
    return Posters(location, names[0], weights=weights, model_dir=model_dir)


# --- the options several commands share ---------------------------------------------------------

ModelDir = Annotated[Path, typer.Option("--model-dir", help="Folder of the year model (model.keras, model.json, plots).")]
# Commands that use a year model: ./year_model once train-year wrote one, else the shipped model.
UsedModelDir = Annotated[
    Path | None,
    typer.Option(
        "--model-dir",
        help="Folder of the year model. Default: ./year_model once train-year has written it, else the model shipped with poster search.",
        show_default=False,
    ),
]
VectorOption = Annotated[VectorName, typer.Option("--vector", help="Which stored vector (vgg16_style: after ingest --style).")]
Backend = Literal["auto", "onnxruntime", "openvino", "tensorflow", "jax", "torch"]
Precision = Literal["auto", "fp32", "bf16", "int8"]
Weights = Annotated[
    str | None,
    typer.Option("--weights", help="VGG16 weights: 'imagenet' (downloaded once) or a notop .h5 file (env VGG16_WEIGHTS)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Shards = Annotated[int | None, typer.Option(min=1, help="Server/cluster only: shards of a new collection (default: one per node).")]
Replicas = Annotated[int | None, typer.Option(min=1, help="Server/cluster only: copies of each shard (default 1).")]
WriteConsistency = Annotated[
    int | None, typer.Option(min=1, help="Server/cluster only: replicas that must acknowledge a write (default 1).")
]
TestSize = Annotated[float, typer.Option(help="Share of dated posters held out for testing (chosen by content hash).")]
Seed = Annotated[int, typer.Option(help="Seed of the split and of the head's training.")]
Epochs = Annotated[int, typer.Option(min=1, help="Most epochs per ensemble member (early stopping ends sooner).")]
Members = Annotated[int, typer.Option(min=1, help="Ensemble members (seeds) averaged.")]
KnnK = Annotated[int, typer.Option(min=1, help="k of the k-NN baseline.")]


def say(text: str, err: bool = False) -> None:
    """Every line the CLI prints: stored titles and file names may hold terminal escape sequences."""
    typer.echo(shown(text), err=err)


class _Warnings(logging.Handler):
    """The library's warnings (a stored record left out, ...) as `Warning: ...` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        with tqdm.external_write_mode(file=sys.stderr):  # on a line of its own, not inside a progress bar's
            say(f"Warning: {one_line(record.getMessage())}", err=True)


Command = TypeVar("Command", bound=Callable[..., Any])


def cli_errors(command_function: Command) -> Command:
    """Turn the library's errors and Ctrl-C into one line and an exit code, never a traceback."""

    @functools.wraps(command_function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        library = logging.getLogger("poster_search")
        handler = _Warnings()
        library.addHandler(handler)
        library.propagate = False
        try:
            return command_function(*args, **kwargs)
        except PosterSearchError as e:
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
        finally:
            library.removeHandler(handler)
            library.propagate = True

    return wrapper  # type: ignore[return-value]  # the same signature: functools.wraps


def _unexpected(e: Exception) -> Exception:
    """A bug, not bad input: one line and exit code 2, or the exception itself with POSTER_SEARCH_DEBUG."""
    if os.environ.get("POSTER_SEARCH_DEBUG"):
        return e
    say(f"Unexpected error: {type(e).__name__}: {one_line(e)} (set POSTER_SEARCH_DEBUG=1 for the traceback)", err=True)
    return typer.Exit(2)


def _version(value: bool) -> None:
    if value:
        say(f"poster-search {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Embed movie posters with VGG16, store them in Qdrant, find similar posters, predict release years."""


# --- the commands -------------------------------------------------------------------------------


@app.command(cls=StoreCommand)
@cli_errors
def ingest(
    ctx: typer.Context,
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
    backend: Annotated[Backend | None, typer.Option(help=f"What runs VGG16 (env KERAS_BACKEND). auto: {AUTO_BACKEND}.")] = None,
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
            help="Store each poster's augmented view instead (another version of the art, reframed, resized, recompressed), to train the year model with: into a collection of its own."
        ),
    ] = False,
    rejects: Annotated[Path, typer.Option(help="Where to write rejected rows and posters, with reasons.")] = defaults.REJECTS,
    file_column: Annotated[str | None, typer.Option(help="Catalog column with the poster file name.")] = None,
    id_column: Annotated[str | None, typer.Option(help="Catalog column with the film id (posters <id>.jpg).")] = None,
    title_column: Annotated[str | None, typer.Option(help="Catalog column with the title.")] = None,
    year_column: Annotated[str | None, typer.Option(help="Catalog column with the year (else '(YYYY)' in titles).")] = None,
    genre_column: Annotated[str | None, typer.Option(help="Catalog column with genres ('A|B').")] = None,
    encoding: Annotated[str | None, typer.Option(help="Catalog encoding (default: utf-8, else latin-1).")] = None,
    rehash: Annotated[
        bool, typer.Option("--rehash", help="Read and hash every stored poster's file again (default: trust an unchanged size and time).")
    ] = False,
    weights: Weights = None,
    shards: Shards = None,
    replicas: Replicas = None,
    write_consistency: WriteConsistency = None,
) -> None:
    """Embed every poster of a catalog, or of a folder without one, and upsert it into the store (resumable)."""
    from .api import Columns, Sharding

    check_output_file(rejects, "--rejects")  # before the long work, not after it
    columns = Columns(file=file_column, id=id_column, title=title_column, year=year_column, genres=genre_column)
    if catalog is None and (columns != Columns() or encoding):
        raise BadInput(
            "--file-column, --id-column, --title-column, --year-column, --genre-column and --encoding describe a --catalog: give one"
        )
    with open_posters(ctx, weights) as posters_store:
        report = posters_store.ingest(
            posters,
            catalog,
            columns=columns,
            encoding=encoding,
            limit=limit,
            batch_size=batch_size,
            backend=backend,
            precision=precision,
            workers=workers,
            recreate=recreate,
            prune=prune,
            style=style,
            augment=augment,
            sharding=Sharding(shards, replicas, write_consistency),
            rehash=rehash,
        )
    written = report.write_rejects(rejects)
    say(ingest_summary(report.summary(), collections_of(ctx)[0], report.total, rejects if written else None))


@app.command("export-embeddings", cls=StoreCommand)
@cli_errors
def export_embeddings(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="The .npz file to write.")],
    vector: VectorOption = VECTOR_NAME,
) -> None:
    """Write the stored embeddings as one (n_movies, embedding_size) array with ids, keys, titles, years, predicted years, files,
    hashes and every payload: what import-embeddings reads (streamed: memory bounded by a batch)."""
    with open_posters(ctx) as posters:
        report = posters.export_embeddings(out, vector, progress=True)
    say(export_summary(out, report.shape))


@app.command("import-embeddings", cls=StoreCommand)
@cli_errors
def import_embeddings(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="An .npz file written by export-embeddings.")],
    posters: Annotated[Path | None, typer.Option(help="Where the poster files are on this machine (for the page and sheets).")] = None,
    index: Annotated[
        bool, typer.Option(help="Build the search index at the end (--no-index: later, with `index`, once for several imports).")
    ] = True,
) -> None:
    """Add the posters of an export file to --collection without VGG16 (made from the file's embedding if new; an existing one
    must hold the same), then index it. Rerun after an interruption: rows stored already are written again, none twice."""
    if posters is not None and not posters.is_dir():
        raise BadInput(f"--posters {posters} is not a folder")
    with open_posters(ctx) as posters_store:
        report = posters_store.import_embeddings(file, posters_dir=posters, index=index, progress=True)
    say(report.summary())


@app.command("index", cls=StoreCommand)
@cli_errors
def build_index(ctx: typer.Context) -> None:
    """Build the search index of --collection now: after imports made with --no-index, or a build stopped by Ctrl-C (ingest and
    import build it themselves; a large build shows its time, and Ctrl-C stops it with every poster kept)."""
    with open_posters(ctx) as posters_store:
        seconds = posters_store.build_index(progress=True)
    say(f"collection '{collections_of(ctx)[0]}' indexed in {seconds:.1f}s")


@app.command(cls=StoreCommand)
@cli_errors
def search(
    ctx: typer.Context,
    image: Annotated[Path | None, typer.Argument(help="A poster image to search with (needs the model).")] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many neighbours.")] = defaults.K,
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
    json_out: Json = False,
    sheet: Annotated[Path | None, typer.Option(help="Also write a PNG of the query and its neighbours.")] = None,
    explain: Annotated[
        Path | None, typer.Option(help="Also write a PNG of where each score comes from in both posters (similarity maps; vgg16).")
    ] = None,
    posters: Annotated[Path | None, typer.Option(help="Poster folder for --sheet (default: the one ingest recorded).")] = None,
    vector: VectorOption = VECTOR_NAME,
    weights: Weights = None,
) -> None:
    """The k films whose posters are most similar to an image, or to a stored film (--title / --id)."""
    from .api import Filters

    if (image is None) == (title is None and id is None):
        raise BadInput("give either an image or --title/--id")
    if title is not None and id is not None:
        raise BadInput("give one of --title and --id, not both")
    filters = Filters(year_min, year_max, genre)
    filters.check()
    if explain is not None and vector != VECTOR_NAME:
        raise BadInput(
            "similarity maps (--explain) exist for the vgg16 vector only: the style vector's score does not split over cells (docs/search.md#similarity-maps-why-two-posters-are-close)"
        )
    for out, option in ((sheet, "--sheet"), (explain, "--explain")):
        if out is not None:
            check_image_output(out, option)
    if posters is not None and (sheet or explain):
        check_folder(posters, "poster folder (--posters)")
    with open_posters(ctx, weights) as store:
        result = store.search(image, title=title, id=id, year=year, k=k, filters=filters, vector=vector)
        explanations = store.explain(result) if explain is not None else None
    query = result.describe_query()
    say(neighbours_json(query, result.neighbours) if json_out else neighbours_table(query, result.neighbours))
    for out, maps in ((sheet, None), (explain, explanations)):
        if out is not None:
            result.sheet(out, maps, posters)
            say(f"wrote {out}", err=json_out)


@app.command(cls=StoreCommand)
@cli_errors
def era(
    ctx: typer.Context,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Neighbours per poster.")] = defaults.ERA_K,
    sample: Annotated[
        int, typer.Option(min=0, help="How many dated posters (a seeded sample) to ask about; 0: every one.")
    ] = defaults.ERA_QUERIES,
    seed: Annotated[int, typer.Option(help="Seed for the sample and the random baseline.")] = 0,
    timeline: Annotated[
        Path | None, typer.Option(help="Also write a PNG of each decade's most and least typical posters and how far its centre moved.")
    ] = None,
    json_out: Json = False,
    vector: VectorOption = VECTOR_NAME,
) -> None:
    """Are nearest neighbours from a similar era? Year differences to neighbours vs random pairs; --timeline: decade by decade."""
    if timeline is not None:
        check_image_output(timeline, "--timeline")
    with open_posters(ctx) as posters:
        report = posters.era(k=k, sample=sample, seed=seed, vector=vector, progress=not json_out)
        steps = posters.timeline(vector) if timeline is not None else None
    if json_out:
        say(as_json({**report.as_dict(), **({"timeline": steps.as_json()} if steps else {})}))
    else:
        say(report.table())
    if timeline is not None and steps is not None:
        if not json_out:
            say(steps.table())
        steps.figure(timeline)
        say(f"wrote {timeline}", err=json_out)


@app.command("map", cls=StoreCommand)
@cli_errors
def poster_map(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", help="The PNG to write: every poster as a dot coloured by year, the decades' path.")
    ] = defaults.MAP_FILE,
    json_out: Annotated[bool, typer.Option("--json", help="Print every poster's coordinates (id, title, year, x, y) as JSON.")] = False,
    json_path: Annotated[Path | None, typer.Option("--json-out", help="Also write that JSON to this file.")] = None,
    vector: VectorOption = VECTOR_NAME,
) -> None:
    """The whole collection at a glance: every poster placed in 2-D by its embedding (computed once per collection state, then cached)."""
    from .safe_io import output_path

    check_image_output(out, "--out")
    if json_path is not None:
        check_output_file(json_path, "--json-out")
    collection = collections_of(ctx)[0]
    with open_posters(ctx) as posters:
        result = posters.poster_map(vector)
    result.figure(out, collection)
    written = [out]
    record = {"collection": collection, "vector": vector, "decades": result.decades, "posters": result.as_records()}
    if json_path is not None:
        with output_path(json_path) as staged:
            staged.write_text(as_json(record, indent=None))
        written.append(json_path)
    if json_out:
        say(as_json(record, indent=None))
    how = f"computed in {result.seconds:.1f}s" if result.seconds else "from the cache"
    say(f"{len(result.ids)} posters mapped ({how}); {files_written(written)}", err=json_out)


@app.command(cls=StoreCommand)
@cli_errors
def duplicates(
    ctx: typer.Context,
    threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Cosine similarity from which two posters are listed.")
    ] = defaults.DUPLICATE_THRESHOLD,
    json_out: Json = False,
    vector: VectorOption = VECTOR_NAME,
) -> None:
    """Near-duplicate posters (copies, re-releases, alternative art): every pair above a similarity, by exact search."""
    with open_posters(ctx) as posters:
        pairs = posters.duplicates(threshold, vector=vector, progress=not json_out)
    say(as_json(pairs.as_json()) if json_out else pairs.table())


@app.command("train-year", cls=StoresCommand)
@cli_errors
def train_year(
    ctx: typer.Context,
    test_size: TestSize = defaults.TEST_SIZE,
    seed: Seed = 0,
    epochs: Epochs = HeadConfig.epochs,
    members: Members = HeadConfig.members,
    knn_k: KnnK = defaults.KNN_K,
    model_dir: ModelDir = defaults.MODEL_DIR,
    vector: Annotated[
        VectorChoice,
        typer.Option(
            "--vector", help="Stored vector(s) the model reads. auto: both (vgg16+vgg16_style) where every collection has them, else vgg16."
        ),
    ] = defaults.YEAR_VECTOR,
    head: Annotated[HeadTarget, typer.Option(help="bins: soft labels over year bins, the median year; or regression.")] = HeadConfig.target,
    augmented: Annotated[
        list[str] | None,
        typer.Option(
            "--augmented",
            help="A collection made by `ingest --augment` of the same posters: its views of the training posters are extra training rows (repeat for several).",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the test figures as JSON.")] = False,
) -> None:
    """Train the year model on one or several collections; score it against baselines on a content-split test part."""
    config = HeadConfig(epochs=epochs, members=members, target=head)
    with open_posters(ctx, model_dir=model_dir) as posters:
        report = posters.train_year(
            collections=collections_of(ctx),
            test_size=test_size,
            seed=seed,
            config=config,
            knn_k=knn_k,
            vector=vector,
            augmented=augmented or (),
            progress=not json_out,
        )
    if json_out:
        say(as_json(report.as_dict()))
    else:
        say(report.table())
        say(files_written(report.files))


@app.command("evaluate-year", cls=StoresCommand)
@cli_errors
def evaluate_year(
    ctx: typer.Context,
    model_dir: UsedModelDir = None,
    include_trained: Annotated[bool, typer.Option(help="Also score posters the model was trained or calibrated on (optimistic).")] = False,
    json_out: Json = False,
) -> None:
    """Score a trained year model on every dated poster of one or several collections it was not trained on."""
    with open_posters(ctx, model_dir=model_dir) as posters:
        result = posters.evaluate_year(collections=collections_of(ctx), include_trained=include_trained)
    say(as_json(result.as_dict()) if json_out else result.table())


@app.command("predict-year", cls=StoreCommand)
@cli_errors
def predict_year(
    ctx: typer.Context,
    images: Annotated[
        list[Path] | None, typer.Argument(help="Poster images and folders of them (every poster image below; need not be in the store).")
    ] = None,
    model_dir: UsedModelDir = None,
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
        Path | None,
        typer.Option(
            "--csv",
            help="Also write the predictions as CSV: of the images (image, year, low, high, coverage, error), or with --stored the ones this run wrote (id, title, file, year, predicted_year, predicted_low, predicted_high).",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1024, help="Images per model batch.")] = defaults.BATCH_SIZE,
    weights: Weights = None,
) -> None:
    """Predict posters' release years with their calibrated ranges: images and folders, or the stored posters (--stored)."""
    from .presentation import predictions_csv, predictions_table

    if stored == bool(images):
        raise BadInput("give poster images or folders, or --stored to date the posters of a collection (not both)")
    if every_poster and not stored:
        raise BadInput("--all goes with --stored")
    if csv_out is not None:
        check_output_file(csv_out, "--csv")
    with open_posters(ctx, weights, model_dir) as posters:
        posters.year_model()  # a missing or damaged model is one line before any image is read
        if stored:
            _date_stored(posters, every_poster, json_out, csv_out)
            return
        results = []
        for result in posters.predict_year(images or [], batch_size=batch_size, progress=len(images or []) > batch_size):
            results.append(result)
            if json_out:
                say(as_json(result.as_dict(), indent=None))
    if not json_out:
        say(predictions_table(results))
    if csv_out is not None:
        from .safe_io import write_atomic

        write_atomic(csv_out, predictions_csv(results))
    failed = [r.error if r.image in r.error else f"{r.image}: {r.error}" for r in results if r.prediction is None]
    for error in failed[:-1]:
        say(f"Error: {error}", err=True)
    if failed:  # the last one as the command's error: exit code 1, after every other image was dated
        raise BadInput(failed[-1] + (f" ({len(failed)} of {len(results)} images not dated)" if len(results) > 1 else ""))


def _date_stored(posters: Posters, every_poster: bool, json_out: bool, csv_out: Path | None) -> None:
    """predict-year --stored: the predictions listed as they are written (JSON lines, CSV rows, the
    first few under the summary), then the summary."""
    import contextlib
    import csv

    from .presentation import DATED_COLUMNS, DATED_SHOWN, dated_row, dated_table
    from .safe_io import output_path

    first: list = []
    with contextlib.ExitStack() as files:
        sheet = None
        if csv_out is not None:  # written under a temporary name, in place once the run is done
            staged = files.enter_context(output_path(csv_out))
            sheet = csv.writer(files.enter_context(open(staged, "w", newline="", encoding="utf-8")))
            sheet.writerow(DATED_COLUMNS)

        def written(batch: list) -> bool:
            if json_out:
                for dated in batch:
                    say(as_json(dated.as_dict(), indent=None))
            if sheet is not None:
                sheet.writerows(dated_row(d) for d in batch)
            first.extend(batch[: DATED_SHOWN - len(first)])
            return json_out or sheet is not None or len(first) < DATED_SHOWN  # the table alone needs the first few

        report = posters.date_stored(every_poster=every_poster, progress=not json_out, written=written)
    if json_out:
        say(as_json({"summary": report.as_dict()}, indent=None))
    else:
        say("\n".join(filter(None, [dated_table(first, report.dated), report.summary()])))
    if csv_out is not None and not json_out:
        say(f"wrote {csv_out}: the {report.dated} predictions this run wrote")


@app.command(cls=StoreCommand)
@cli_errors
def migrate(
    ctx: typer.Context,
    to_url: Annotated[str | None, typer.Option(help="Destination Qdrant server or cluster URL.")] = None,
    to_path: Annotated[Path | None, typer.Option(help="Destination embedded store folder, instead of a URL.")] = None,
    to_api_key: Annotated[str | None, typer.Option(help="API key of the destination (env QDRANT_TO_API_KEY).")] = None,
    to_collection: Annotated[str | None, typer.Option(help="Destination collection (default: the same name).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Points per scroll and upsert.")] = defaults.MIGRATE_BATCH,
    shards: Shards = None,
    replicas: Replicas = None,
    write_consistency: WriteConsistency = None,
) -> None:
    """Copy the collection (vectors, payloads, ids) to a server, cluster or other folder, without re-embedding."""
    from .api import Sharding
    from .store.connection import check_url

    if (to_url is None) == (to_path is None):
        raise BadInput("give the destination: --to-url URL (a server or cluster) or --to-path DIR")
    if to_url is not None:
        check_url(to_url)
    with open_posters(ctx) as posters:
        report = posters.migrate(
            to_path if to_path is not None else str(to_url),
            to_collection,
            batch_size=batch_size,
            sharding=Sharding(shards, replicas, write_consistency),
            api_key=to_api_key or os.environ.get("QDRANT_TO_API_KEY"),
        )
    say(report.summary())


@app.command(cls=StoreCommand)
@cli_errors
def compare(
    ctx: typer.Context,
    test_size: TestSize = defaults.TEST_SIZE,
    seed: Annotated[int, typer.Option(help="Seed of the split, the heads' training and the era baseline.")] = 0,
    epochs: Epochs = HeadConfig.epochs,
    members: Members = HeadConfig.members,
    knn_k: KnnK = defaults.KNN_K,
    model_dir: ModelDir = defaults.COMPARE_DIR,
    json_out: Json = False,
) -> None:
    """Original (vgg16) vs style (vgg16_style) embedding: year head and era coherence, one table."""
    config = HeadConfig(epochs=epochs, members=members)
    with open_posters(ctx) as posters:
        result = posters.compare(model_dir, test_size=test_size, seed=seed, config=config, knn_k=knn_k, progress=not json_out)
    say(as_json(result.as_dict()) if json_out else result.table())


@app.command(cls=StoreCommand)
@cli_errors
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on. Anything but localhost exposes the store: see docs/web.md#safety.")
    ] = defaults.SERVE_HOST,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port, printed at start).")
    ] = defaults.SERVE_PORT,
    model_dir: UsedModelDir = None,
    era_sample: Annotated[int, typer.Option(min=10, help="Posters (a seeded sample) behind the page's era figures.")] = defaults.ERA_SAMPLE,
    allowed_host: Annotated[
        list[str] | None, typer.Option("--allowed-host", help="Another host name the page is reached by (repeat it); others get 400.")
    ] = None,
    weights: Weights = None,
) -> None:
    """The web page and JSON API: search by image, title or poster, recommend, predict years (Ctrl-C stops)."""
    from .web.server import listen
    from .web.server import serve as run_server

    listener = listen(host, port)  # a busy port is one line before the store is opened
    with listener, open_posters(ctx, weights, model_dir) as posters:  # held for the life of the server: one process per embedded store
        run_server(posters, listener, era_sample=era_sample, extra_hosts=tuple(allowed_host or ()))


def main() -> None:
    """The console command `poster-search` and `python cli.py`: the Typer app, a bad option or
    argument as one line (exit code 2, as click gives), and quiet on a closed pipe (`... | head`):
    no message and exit code 1, whether the pipe closes mid-run or at the final flush."""
    import click

    try:
        try:
            code = app(standalone_mode=False, prog_name=command().strip("`"))
        except click.exceptions.Abort:  # Ctrl-C while the parser was still reading
            code = 130
        except click.exceptions.NoArgsIsHelpError as e:  # the program's name alone: the help
            e.show()
            code = e.exit_code
        except click.exceptions.ClickException as e:  # the parser's errors read like every other error: one line
            code = e.exit_code
            context = getattr(e, "ctx", None)
            see = f" (see {command(f'{context.info_name} --help')})" if context is not None and context.parent else ""
            message = one_line(e.format_message()).replace("Value error, ", "")
            say(f"Error: {message}{see}", err=True)
        sys.exit(code if isinstance(code, int) else 0)
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's own flush stays quiet
            sys.exit(1)


if __name__ == "__main__":
    main()
