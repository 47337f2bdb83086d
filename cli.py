"""poster search: the command line, a thin layer over ingest/, search/, regression/ and store/.

Heavy libraries (TensorFlow, qdrant-client) are imported inside the commands that need them,
so `python cli.py --help` answers at once.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from errors import UserError

app = typer.Typer(
    help="Embed movie posters with VGG16, store them in Qdrant, find similar posters, predict release years.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Options shared by every command that opens the store. Environment variables are read in
# store.connection.location_from_options, so notebooks get the same defaults as the CLI.
QdrantPath = Annotated[
    Optional[str], typer.Option("--qdrant-path", help="Embedded store folder (env QDRANT_PATH; default ./qdrant_data).")
]
QdrantUrl = Annotated[
    Optional[str], typer.Option("--qdrant-url", help="Qdrant server URL, instead of the embedded store (env QDRANT_URL).")
]
QdrantApiKey = Annotated[Optional[str], typer.Option("--qdrant-api-key", help="API key for the server (env QDRANT_API_KEY).")]
QdrantGrpc = Annotated[
    Optional[bool], typer.Option("--grpc/--no-grpc", help="Talk gRPC (port 6334) to the server: faster bulk uploads (env QDRANT_GRPC).")
]
QdrantTimeout = Annotated[Optional[float], typer.Option("--qdrant-timeout", help="Seconds per server request (env QDRANT_TIMEOUT; default 30).")]
Shards = Annotated[Optional[int], typer.Option(min=1, help="Server/cluster only: shards of a new collection (default: one per node).")]
Replicas = Annotated[Optional[int], typer.Option(min=1, help="Server/cluster only: copies of each shard (default 1).")]
WriteConsistency = Annotated[
    Optional[int], typer.Option(min=1, help="Server/cluster only: replicas that must acknowledge a write (default 1).")
]
Collection = Annotated[str, typer.Option("--collection", help="Collection name.")]
ModelDir = Annotated[Path, typer.Option("--model-dir", help="Folder of the year model (model.keras, model.json, plots).")]
VectorName = Annotated[str, typer.Option("--vector", help="Which stored vector: 'vgg16', or 'vgg16_style' (ingest --style).")]
Weights = Annotated[
    Optional[str],
    typer.Option("--weights", help="VGG16 weights: 'imagenet' (downloaded by Keras) or a notop .h5 file (env VGG16_WEIGHTS)."),
]


def cli_errors(command):
    """Turn UserError and Ctrl-C into one line and an exit code, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as e:
            typer.echo(f"Error: {e}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("Interrupted: everything stored so far is kept; run the same command again to resume.", err=True)
            raise typer.Exit(130) from None
        except Exception as e:  # a bug, not bad input: still one line, the traceback on request
            if os.environ.get("POSTER_SEARCH_DEBUG"):
                raise
            typer.echo(f"Unexpected error: {type(e).__name__}: {e} (set POSTER_SEARCH_DEBUG=1 for the traceback)", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _open_store(
    path: str | None, url: str | None, api_key: str | None, grpc: bool | None, timeout: float | None, collection: str, must_exist: bool = False
):
    from store.collection import PosterStore
    from store.connection import location_from_options

    return PosterStore(location_from_options(path, url, api_key, timeout, grpc), collection, must_exist=must_exist)


@app.command()
@cli_errors
def ingest(
    catalog: Annotated[Path, typer.Option(help="Catalog CSV (title, year, poster file).")],
    posters: Annotated[Path, typer.Option(help="Folder of poster images.")],
    limit: Annotated[Optional[int], typer.Option(min=1, help="Only the first N films of the catalog.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1024, help="Posters per model batch and per upsert.")] = 32,
    recreate: Annotated[bool, typer.Option(help="Delete the collection first and start over.")] = False,
    style: Annotated[
        bool, typer.Option(help="Also store the style vector 'vgg16_style' (added to posters already stored).")
    ] = False,
    rejects: Annotated[Path, typer.Option(help="Where to write rejected rows and posters, with reasons.")] = Path(
        "ingest-rejects.csv"
    ),
    file_column: Annotated[Optional[str], typer.Option(help="Catalog column with the poster file name.")] = None,
    id_column: Annotated[Optional[str], typer.Option(help="Catalog column with the film id (posters <id>.jpg).")] = None,
    title_column: Annotated[Optional[str], typer.Option(help="Catalog column with the title.")] = None,
    year_column: Annotated[Optional[str], typer.Option(help="Catalog column with the year (else '(YYYY)' in titles).")] = None,
    genre_column: Annotated[Optional[str], typer.Option(help="Catalog column with genres ('A|B').")] = None,
    encoding: Annotated[Optional[str], typer.Option(help="Catalog encoding (default: utf-8, else latin-1).")] = None,
    weights: Weights = None,
    shards: Shards = None,
    replicas: Replicas = None,
    write_consistency: WriteConsistency = None,
    qdrant_path: QdrantPath = None,
    qdrant_url: QdrantUrl = None,
    qdrant_api_key: QdrantApiKey = None,
    grpc: QdrantGrpc = None,
    qdrant_timeout: QdrantTimeout = None,
    collection: Collection = "posters",
) -> None:
    """Embed every poster of a catalog and upsert it into the store (resumable)."""
    from embedding.model import Embedder
    from embedding.spec import resolve_weights
    from ingest.catalog import Columns, read_catalog
    from ingest.pipeline import ingest as run_ingest
    from ingest.pipeline import write_rejects
    from store.collection import Sharding

    embedder = Embedder(resolve_weights(weights), style=style)  # cheap: TensorFlow loads only if there is work
    columns = Columns(file=file_column, id=id_column, title=title_column, year=year_column, genres=genre_column)
    films = read_catalog(catalog, posters, columns, encoding)
    with _open_store(qdrant_path, qdrant_url, qdrant_api_key, grpc, qdrant_timeout, collection) as store:
        sharding = Sharding(shards, replicas, write_consistency)
        report = run_ingest(films, posters, store, embedder, batch_size=batch_size, limit=limit, recreate=recreate, sharding=sharding)
        total = store.count()
    if report.rejects:
        write_rejects(report.rejects, rejects)
    typer.echo(report.summary())
    typer.echo(f"collection '{collection}' now holds {total} posters")
    if report.rejects:
        typer.echo(f"rejected rows and posters, with reasons: {rejects}")


@app.command("export-embeddings")
@cli_errors
def export_embeddings(
    out: Annotated[Path, typer.Argument(help="The .npz file to write.")],
    qdrant_path: QdrantPath = None,
    qdrant_url: QdrantUrl = None,
    qdrant_api_key: QdrantApiKey = None,
    grpc: QdrantGrpc = None,
    qdrant_timeout: QdrantTimeout = None,
    collection: Collection = "posters",
) -> None:
    """Write the stored embeddings as one (n_movies, embedding_size) array with ids, titles, years, files."""
    from store.embeddings import load_embeddings, save_npz

    with _open_store(qdrant_path, qdrant_url, qdrant_api_key, grpc, qdrant_timeout, collection, must_exist=True) as store:
        embeddings = load_embeddings(store)
    save_npz(embeddings, out)
    typer.echo(f"wrote {out}: embeddings {embeddings.vectors.shape}, with ids, titles, years, files")


@app.command()
@cli_errors
def search(
    image: Annotated[Optional[Path], typer.Argument(help="A poster image to search with (needs the model).")] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="How many neighbours.")] = 3,
    title: Annotated[Optional[str], typer.Option(help="Search by a stored film's title instead (no model needed).")] = None,
    id: Annotated[Optional[str], typer.Option("--id", help="Search by a stored film's point id.")] = None,
    year: Annotated[Optional[int], typer.Option(help="With --title: the film's year, when several share the title.")] = None,
    year_min: Annotated[Optional[int], typer.Option(help="Only neighbours from this year on.")] = None,
    year_max: Annotated[Optional[int], typer.Option(help="Only neighbours up to this year.")] = None,
    genre: Annotated[Optional[str], typer.Option(help="Only neighbours of this genre.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    sheet: Annotated[Optional[Path], typer.Option(help="Also write a PNG of the query and its neighbours.")] = None,
    posters: Annotated[Optional[Path], typer.Option(help="Poster folder for --sheet (default: the one ingest recorded).")] = None,
    weights: Weights = None,
    qdrant_path: QdrantPath = None,
    qdrant_url: QdrantUrl = None,
    qdrant_api_key: QdrantApiKey = None,
    grpc: QdrantGrpc = None,
    qdrant_timeout: QdrantTimeout = None,
    collection: Collection = "posters",
) -> None:
    """The k films whose posters are most similar to an image, or to a stored film (--title / --id)."""
    from search.nearest import Filters, PosterSearch

    if (image is None) == (title is None and id is None):
        raise UserError("give either an image or --title/--id")
    filters = Filters(year_min, year_max, genre)
    with _open_store(qdrant_path, qdrant_url, qdrant_api_key, grpc, qdrant_timeout, collection, must_exist=True) as store:
        if image is not None:
            from embedding.model import Embedder
            from embedding.spec import resolve_weights

            searcher = PosterSearch(store, Embedder(resolve_weights(weights)))
            neighbours = searcher.by_image(image, k, filters)
            query = {"image": str(image)}
        else:
            from search.titles import find_film

            film = find_film(store, title=title, point_id=id, year=year)
            neighbours = PosterSearch(store).by_point(film, k, filters)
            query = {"id": film.id, "title": film.payload.get("title"), "year": film.payload.get("year"), "file": film.payload.get("file")}
        posters_dir = posters or store.posters_dir()
    if sheet is not None and posters_dir is None:
        raise UserError("--sheet needs the poster folder: pass --posters DIR")
    if json_out:
        typer.echo(json.dumps({"query": query, "neighbours": [n.as_dict() for n in neighbours]}, ensure_ascii=False, indent=2))
    else:
        label = query.get("image") or f"{query['title']} ({query.get('year', '?')})"
        typer.echo(f"nearest to {label}:")
        typer.echo(f"{'rank':>4}  {'similarity':>10}  {'year':>4}  title")
        for n in neighbours:
            typer.echo(f"{n.rank:>4}  {n.score:>10.3f}  {n.year if n.year is not None else '?':>4}  {n.title}")
    if sheet is not None:
        from search.sheet import contact_sheet

        source = image if image is not None else posters_dir / query["file"]
        caption = image.name if image is not None else f"{query['title']} ({query.get('year', '?')})"
        contact_sheet(source, caption, neighbours, posters_dir, sheet)
        typer.echo(f"wrote {sheet}", err=json_out)


@app.command()
@cli_errors
def era(
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Neighbours per poster.")] = 3,
    sample: Annotated[Optional[int], typer.Option(min=1, help="Only this many posters (seeded sample) as queries.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the sample and the random baseline.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    vector: VectorName = "vgg16",
    qdrant_path: QdrantPath = None,
    qdrant_url: QdrantUrl = None,
    qdrant_api_key: QdrantApiKey = None,
    grpc: QdrantGrpc = None,
    qdrant_timeout: QdrantTimeout = None,
    collection: Collection = "posters",
) -> None:
    """Are nearest neighbours from a similar era? Year differences to neighbours vs random pairs."""
    from search.era import era_coherence

    with _open_store(qdrant_path, qdrant_url, qdrant_api_key, grpc, qdrant_timeout, collection, must_exist=True) as store:
        report = era_coherence(store, k=k, sample=sample, seed=seed, vector_name=vector, progress=not json_out)
    typer.echo(json.dumps(report.as_dict(), indent=2) if json_out else report.table())



@app.command("train-year")
@cli_errors
def train_year(
    test_size: Annotated[float, typer.Option(help="Share of dated posters held out for testing.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split and of the head's training.")] = 0,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs per ensemble member (early stopping ends sooner).")] = 400,
    members: Annotated[int, typer.Option(min=1, help="Ensemble members (seeds) averaged.")] = 5,
    knn_k: Annotated[int, typer.Option(min=1, help="k of the k-NN baseline.")] = 10,
    model_dir: ModelDir = Path("year_model"),
    vector: VectorName = "vgg16",
    json_out: Annotated[bool, typer.Option("--json", help="Print the test figures as JSON.")] = False,
    qdrant_path: QdrantPath = None,
    qdrant_url: QdrantUrl = None,
    qdrant_api_key: QdrantApiKey = None,
    grpc: QdrantGrpc = None,
    qdrant_timeout: QdrantTimeout = None,
    collection: Collection = "posters",
) -> None:
    """Train the year head on vectors pulled from Qdrant; report it against baselines on a held-out split."""
    from regression.head import HeadConfig
    from regression.train import train_year_model

    config = HeadConfig(epochs=epochs, members=members)
    with _open_store(qdrant_path, qdrant_url, qdrant_api_key, grpc, qdrant_timeout, collection, must_exist=True) as store:
        report = train_year_model(store, model_dir, test_size, seed, config, knn_k, vector_name=vector, progress=not json_out)
    if json_out:
        typer.echo(json.dumps({"n_train": report.n_train, "n_test": report.n_test, "results": report.results}, indent=2))
    else:
        typer.echo(report.table())
        typer.echo("wrote " + ", ".join(str(f) for f in report.files))


@app.command("predict-year")
@cli_errors
def predict_year(
    image: Annotated[Path, typer.Argument(help="A poster image (need not be in the store).")],
    model_dir: ModelDir = Path("year_model"),
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    weights: Weights = None,
) -> None:
    """Predict a poster's release year, with the range held-out errors give."""
    from regression.model_file import YearModel

    model = YearModel.load(model_dir)
    from embedding.model import Embedder
    from embedding.spec import resolve_weights
    from regression.predict import predict_year as run_predict

    prediction = run_predict(image, model, Embedder(resolve_weights(weights), style=model.uses_style))
    typer.echo(json.dumps({"image": str(image), **prediction.as_dict()}) if json_out else f"{image}: {prediction.sentence()}")


@app.command()
@cli_errors
def migrate(
    to_url: Annotated[Optional[str], typer.Option(help="Destination Qdrant server or cluster URL.")] = None,
    to_path: Annotated[Optional[Path], typer.Option(help="Destination embedded store folder, instead of a URL.")] = None,
    to_api_key: Annotated[Optional[str], typer.Option(help="API key of the destination (env QDRANT_TO_API_KEY).")] = None,
    to_collection: Annotated[Optional[str], typer.Option(help="Destination collection (default: the same name).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Points per scroll and upsert.")] = 256,
    shards: Shards = None,
    replicas: Replicas = None,
    write_consistency: WriteConsistency = None,
    qdrant_path: QdrantPath = None,
    qdrant_url: QdrantUrl = None,
    qdrant_api_key: QdrantApiKey = None,
    grpc: QdrantGrpc = None,
    qdrant_timeout: QdrantTimeout = None,
    collection: Collection = "posters",
) -> None:
    """Copy the collection (vectors, payloads, ids) to a server, cluster or other folder, without re-embedding."""
    from store.collection import PosterStore, Sharding
    from store.connection import location_from_options
    from store.migrate import migrate as run_migrate

    if (to_url is None) == (to_path is None):
        raise UserError("give the destination: --to-url URL (a server or cluster) or --to-path DIR")
    source_location = location_from_options(qdrant_path, qdrant_url, qdrant_api_key, qdrant_timeout, grpc)
    target_location = location_from_options(
        str(to_path) if to_path else None, to_url, to_api_key or os.environ.get("QDRANT_TO_API_KEY"), qdrant_timeout, grpc if to_url else False
    )
    target_collection = to_collection or collection
    if source_location == target_location and target_collection == collection:
        raise UserError("source and destination are the same collection")
    with PosterStore(source_location, collection, must_exist=True) as source:
        same_store = source_location == target_location
        with source.other_collection(target_collection) if same_store else PosterStore(target_location, target_collection) as target:
            report = run_migrate(source, target, batch_size, Sharding(shards, replicas, write_consistency))
    typer.echo(report.summary())


@app.command()
@cli_errors
def compare(
    test_size: Annotated[float, typer.Option(help="Share of dated posters held out for testing.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split, the heads' training and the era baseline.")] = 0,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs per ensemble member.")] = 400,
    members: Annotated[int, typer.Option(min=1, help="Ensemble members per head.")] = 5,
    knn_k: Annotated[int, typer.Option(min=1, help="k of the k-NN baseline.")] = 10,
    model_dir: ModelDir = Path("compare_models"),
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    qdrant_path: QdrantPath = None,
    qdrant_url: QdrantUrl = None,
    qdrant_api_key: QdrantApiKey = None,
    grpc: QdrantGrpc = None,
    qdrant_timeout: QdrantTimeout = None,
    collection: Collection = "posters",
) -> None:
    """Original (vgg16) vs style (vgg16_style) embedding: year head and era coherence, one table."""
    from regression.compare import compare_vectors
    from regression.head import HeadConfig

    with _open_store(qdrant_path, qdrant_url, qdrant_api_key, grpc, qdrant_timeout, collection, must_exist=True) as store:
        result = compare_vectors(store, model_dir, test_size, seed, HeadConfig(epochs=epochs, members=members), knn_k, progress=not json_out)
    typer.echo(json.dumps(result.as_dict(), indent=2) if json_out else result.table())


if __name__ == "__main__":
    sys.exit(app())
