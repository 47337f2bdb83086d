"""poster search: the command line, a thin layer over ingest/, search/, regression/ and store/.

Heavy libraries (TensorFlow, qdrant-client) are imported inside the commands that need them,
so `python cli.py --help` answers at once.
"""

from __future__ import annotations

import functools
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
    Optional[str], typer.Option("--qdrant-path", help="Embedded store folder [env QDRANT_PATH; default ./qdrant_data].")
]
QdrantUrl = Annotated[
    Optional[str], typer.Option("--qdrant-url", help="Qdrant server URL, instead of the embedded store [env QDRANT_URL].")
]
QdrantApiKey = Annotated[Optional[str], typer.Option("--qdrant-api-key", help="API key for the server [env QDRANT_API_KEY].")]
Collection = Annotated[str, typer.Option("--collection", help="Collection name.")]
Weights = Annotated[
    Optional[str],
    typer.Option("--weights", help="VGG16 weights: 'imagenet' (downloaded by Keras) or a notop .h5 file [env VGG16_WEIGHTS]."),
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


def _open_store(path: str | None, url: str | None, api_key: str | None, collection: str, must_exist: bool = False):
    from store.collection import PosterStore
    from store.connection import location_from_options

    return PosterStore(location_from_options(path, url, api_key), collection, must_exist=must_exist)


@app.command()
@cli_errors
def ingest(
    catalog: Annotated[Path, typer.Option(help="Catalog CSV (title, year, poster file).")],
    posters: Annotated[Path, typer.Option(help="Folder of poster images.")],
    limit: Annotated[Optional[int], typer.Option(min=1, help="Only the first N films of the catalog.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1024, help="Posters per model batch and per upsert.")] = 32,
    recreate: Annotated[bool, typer.Option(help="Delete the collection first and start over.")] = False,
    rejects: Annotated[Path, typer.Option(help="Where to write rejected rows and posters, with reasons.")] = Path(
        "ingest-rejects.csv"
    ),
    file_column: Annotated[Optional[str], typer.Option(help="Catalog column with the poster file name.")] = None,
    id_column: Annotated[Optional[str], typer.Option(help="Catalog column with the film id (posters <id>.jpg).")] = None,
    title_column: Annotated[Optional[str], typer.Option(help="Catalog column with the title.")] = None,
    year_column: Annotated[Optional[str], typer.Option(help="Catalog column with the year (else '(YYYY)' in titles).")] = None,
    genre_column: Annotated[Optional[str], typer.Option(help="Catalog column with genres ('A|B').")] = None,
    encoding: Annotated[Optional[str], typer.Option(help="Catalog encoding [default: utf-8, else latin-1].")] = None,
    weights: Weights = None,
    qdrant_path: QdrantPath = None,
    qdrant_url: QdrantUrl = None,
    qdrant_api_key: QdrantApiKey = None,
    collection: Collection = "posters",
) -> None:
    """Embed every poster of a catalog and upsert it into the store (resumable)."""
    from embedding.model import Embedder
    from embedding.spec import resolve_weights
    from ingest.catalog import Columns, read_catalog
    from ingest.pipeline import ingest as run_ingest
    from ingest.pipeline import write_rejects

    embedder = Embedder(resolve_weights(weights))  # cheap: TensorFlow loads only if there is work
    columns = Columns(file=file_column, id=id_column, title=title_column, year=year_column, genres=genre_column)
    films = read_catalog(catalog, posters, columns, encoding)
    with _open_store(qdrant_path, qdrant_url, qdrant_api_key, collection) as store:
        report = run_ingest(films, posters, store, embedder, batch_size=batch_size, limit=limit, recreate=recreate)
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
    collection: Collection = "posters",
) -> None:
    """Write the stored embeddings as one (n_movies, embedding_size) array with ids, titles, years, files."""
    from store.embeddings import load_embeddings, save_npz

    with _open_store(qdrant_path, qdrant_url, qdrant_api_key, collection, must_exist=True) as store:
        embeddings = load_embeddings(store)
    save_npz(embeddings, out)
    typer.echo(f"wrote {out}: embeddings {embeddings.vectors.shape}, with ids, titles, years, files")


if __name__ == "__main__":
    sys.exit(app())
