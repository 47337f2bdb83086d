"""Embed every catalog poster that the store does not hold yet, batch by batch.

Resumable by construction: point ids come from catalog keys, each batch is acknowledged by
Qdrant before the next one starts, and a run first asks the store which films it already has.
So a killed run loses at most the batch in flight, and a rerun finishes the rest without
duplicates. Decoding of the next batch runs in a thread while VGG16 embeds the current one.
"""

from __future__ import annotations

import csv
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from embedding.images import INPUT_SIZE, ImageError, decode_poster
from embedding.spec import EmbeddingSpec
from ingest.catalog import Catalog, Film, Reject
from ingest.plan import apply_without_embedding, check_posters_dir, check_ready_to_replace, make_plan
from store.collection import PosterStore, Sharding
from store.schema import STYLE_VECTOR_NAME

DEFAULT_BATCH_SIZE = 32


class PixelEmbedder(Protocol):
    """What ingest needs of an embedder (embedding.model.Embedder is one)."""

    spec: EmbeddingSpec
    style_spec: EmbeddingSpec | None

    def load(self) -> None: ...

    def embed_both(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...


@dataclass
class IngestReport:
    catalog_rows: int = 0
    ingested: int = 0
    already_stored: int = 0  # stored and unchanged: skipped
    updated: int = 0  # stored but changed: poster re-embedded, or payload (title, year, genres) rewritten
    gone: int = 0  # stored films no longer in the catalog
    pruned: bool = False  # whether those were deleted (--prune)
    style_added: int = 0  # stored posters that got the style vector this run
    rejects: list[Reject] = field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0  # time spent inside VGG16

    @property
    def rate(self) -> float:
        return (self.ingested + self.style_added) / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        style = f", style vector added to {self.style_added} stored" if self.style_added else ""
        updated = f", updated {self.updated}" if self.updated else ""
        line = (
            f"ingested {self.ingested}, already stored {self.already_stored}{updated}{style}, rejected {len(self.rejects)} "
            f"of {self.catalog_rows} catalog rows in {self.seconds:.1f}s ({self.rate:.2f} posters/s)"
        )
        if self.gone:
            line += (
                f"\nremoved {self.gone} stored films that are no longer in the catalog"
                if self.pruned
                else f"\n{self.gone} stored films are no longer in the catalog (--prune removes them)"
            )
        return line


@dataclass
class _Batch:
    films: list[Film]
    pixels: np.ndarray
    hashes: list[str]
    rejects: list[Reject]


def ingest(
    catalog: Catalog,
    posters_dir: Path,
    store: PosterStore,
    embedder: PixelEmbedder,
    batch_size: int = DEFAULT_BATCH_SIZE,
    limit: int | None = None,
    recreate: bool = False,
    progress: bool = True,
    sharding: Sharding = Sharding(),
    prune: bool = False,
) -> IngestReport:
    """Store the embedding of every film in `catalog` not stored yet; with a style embedder, also
    the style vector of every stored film that lacks it.

    The model is loaded only when there is something to embed: a no-op rerun never imports
    TensorFlow. It is loaded before the progress bar starts, so weight errors come first.
    """
    started = time.perf_counter()
    report = IngestReport(catalog_rows=catalog.rows, rejects=list(catalog.rejects))
    films = catalog.films[:limit] if limit is not None else catalog.films
    if recreate:  # nothing is deleted before the catalog gave films and the weights load
        check_ready_to_replace(films, embedder.load)
    else:
        check_posters_dir(store, posters_dir)
    store.prepare(embedder.spec, recreate=recreate, sharding=sharding, style_spec=embedder.style_spec)
    store.remember_posters_dir(posters_dir)
    plan = make_plan(films, catalog.keys(), store, Path(posters_dir))
    apply_without_embedding(plan, store, prune)  # corrected titles, years, genres; --prune
    report.already_stored, report.updated = len(plan.unchanged), len(plan.retitled)
    report.gone, report.pruned = len(plan.gone), prune
    pending = plan.to_embed  # new films, and stored films whose poster file changed
    # Posters stored before the style vector was asked for: their poster is read again for the
    # style vector only; their stored vector and payload are left as they are.
    lacking = store.ids_without(STYLE_VECTOR_NAME) if embedder.style_spec else set()
    restyle = [f for f in plan.stored_films if f.point_id in lacking]
    new_ids = {f.point_id for f in pending}

    todo = pending + restyle
    if todo:
        embedder.load()
    bar = _progress_bar(len(todo), enabled=progress)
    try:
        for batch in _decoded_batches(todo, Path(posters_dir), batch_size):
            report.rejects.extend(batch.rejects)
            if batch.films:
                t = time.perf_counter()
                vectors, style = embedder.embed_both(batch.pixels)
                report.embed_seconds += time.perf_counter() - t
                new = [i for i, f in enumerate(batch.films) if f.point_id in new_ids]
                old = [i for i, f in enumerate(batch.films) if f.point_id not in new_ids]
                if new:
                    payloads = [dict(batch.films[i].payload(), sha256=batch.hashes[i]) for i in new]
                    store.upsert([batch.films[i].point_id for i in new], vectors[new], payloads, None if style is None else style[new])
                if old:
                    store.set_vectors([batch.films[i].point_id for i in old], STYLE_VECTOR_NAME, style[old])
                changed = sum(batch.films[i].point_id in plan.changed_ids for i in new)
                report.ingested += len(new) - changed
                report.updated += changed
                report.style_added += len(old)
            bar.update(len(batch.films) + len(batch.rejects))
    finally:
        bar.close()
        report.seconds = time.perf_counter() - started
    return report


def _decoded_batches(films: list[Film], root: Path, batch_size: int) -> Iterator[_Batch]:
    """Yield decoded batches, decoding batch i+1 in a worker thread while the caller handles batch i."""
    chunks = [films[i : i + batch_size] for i in range(0, len(films), batch_size)]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
        ahead: Future | None = pool.submit(_decode_batch, chunks[0], root) if chunks else None
        for i in range(len(chunks)):
            batch = ahead.result()
            ahead = pool.submit(_decode_batch, chunks[i + 1], root) if i + 1 < len(chunks) else None
            yield batch


def _decode_batch(films: list[Film], root: Path) -> _Batch:
    kept, pixels, hashes, rejects = [], [], [], []
    for film in films:
        try:
            poster = decode_poster(root / film.file)
        except ImageError as e:
            rejects.append(Reject(film.row, film.key, film.file, str(e).split(": ", 1)[-1]))
            continue
        kept.append(film)
        pixels.append(poster.pixels)
        hashes.append(poster.sha256)
    array = np.stack(pixels) if pixels else np.zeros((0, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)
    return _Batch(kept, array, hashes, rejects)


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="poster", desc="embedding", disable=not enabled or total == 0, dynamic_ncols=True)


def write_rejects(rejects: list[Reject], path: Path) -> None:
    """One CSV row per rejected catalog row or poster, with the reason, sorted by line."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["line", "key", "file", "reason"])
        for r in sorted(rejects, key=lambda r: r.row):
            writer.writerow([r.row, r.key, r.file, r.reason])
