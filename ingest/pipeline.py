"""Embed every catalog poster that the store does not hold yet: decode -> model -> store, overlapped.

Three stages, each bounded, so they overlap and memory stays flat however large the catalog:

    decode (worker processes, ingest/decode.py) -> model (this thread) -> store (a thread, ingest/writer.py)

The summary says how busy each stage was, so it names the one that bound the run.

Resumable by construction: point ids come from catalog keys, each batch is acknowledged by the
store before it counts as ingested, and a run first plans against what the store holds
(ingest/plan.py). So a killed run loses at most the batches in flight, and a rerun finishes the
rest without duplicates.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..embedding.backend import usable_cores
from ..embedding.interface import Embedder
from ..errors import BadInput
from ..safe_io import output_path
from ..store.collection import PosterStore, Sharding
from ..store.integrity import damage, lost_vectors
from ..store.schema import STYLE_VECTOR_NAME, VECTOR_NAME, CollectionMetadata
from ..text_out import as_text, raw_name, sheet_cell
from .catalog import Catalog, Film, Reject
from .decode import MAX_CHUNK, DecodePool
from .plan import Plan, apply_without_embedding, check_posters_dir, check_ready_to_replace, make_plan
from .repair import readopt_orphan
from .writer import StoreWriter

DEFAULT_BATCH_SIZE = 32  # on a CPU; embedding.backend.default_batch_size picks the GPU's


@dataclass
class IngestReport:
    catalog_rows: int = 0
    ingested: int = 0
    already_stored: int = 0  # stored and unchanged: skipped
    updated: int = 0  # stored but changed: poster re-embedded, or payload (title, year, genres) rewritten
    gone: int = 0  # stored films no longer in the catalog
    pruned: bool = False  # whether those were deleted (--prune)
    style_added: int = 0  # stored posters that got the style vector this run
    restored: int = 0  # stored posters whose lost vgg16 vector was embedded again (a damaged store: store/integrity.py)
    damaged: str = ""  # damage left after the run (points this catalog cannot restore), in words
    rejects: list[Reject] = field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0  # time spent inside VGG16
    load_seconds: float = 0.0  # building the model (import, weights)
    pipeline_seconds: float = 0.0  # from the model ready to the last write acknowledged
    busy: dict[str, float] = field(default_factory=dict)  # stage -> fraction of pipeline_seconds (decode: of all workers)
    workers: int = 0
    batch_size: int = 0
    runtime: str = ""  # e.g. "tensorflow on CPU, fp32"
    repaired: str | None = None  # what was rebuilt before the run (ingest/repair.py)
    unit: str = "catalog rows"  # what catalog_rows counts ("poster files" for a folder without a catalog)
    note_rows: list[Reject] = field(default_factory=list)  # problems that did not stop a film (an .nfo ignored), written with the rejects
    total: int = 0  # posters in the collection after the run
    kept_from_catalog: int = 0  # posters of a folder run that kept the title, year or genres a catalog stored

    @property
    def notes(self) -> int:
        return len(self.note_rows)

    def write_rejects(self, path: str | Path) -> bool:
        """Write the rejected rows and posters, and the notes, with their reasons, as CSV (when there are any)."""
        if not (self.rejects or self.note_rows):
            return False
        write_rejects(self.rejects + [replace(n, reason=f"note (ingested): {n.reason}") for n in self.note_rows], Path(path))
        return True

    @property
    def rate(self) -> float:
        return (self.ingested + self.style_added + self.restored) / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        style = f", style vector added to {self.style_added} stored" if self.style_added else ""
        updated = f", updated {self.updated}" if self.updated else ""
        line = (
            f"ingested {self.ingested}, already stored {self.already_stored}{updated}{style}, rejected {len(self.rejects)} "
            f"of {self.catalog_rows} {self.unit} in {self.seconds:.1f}s ({self.rate:.2f} posters/s)"
        )
        if self.notes:
            line += f"\n{self.notes} note{'s' if self.notes != 1 else ''} (an .nfo file not used, or a folder not read: those posters named from their file names), in the rejects file"
        if self.kept_from_catalog:
            line += (
                f"\nkept the catalog's title, year or genres of {self.kept_from_catalog} stored posters where their file names "
                "say otherwise (a folder never replaces a catalog's fields: ingest with --catalog to change them)"
            )
        if self.repaired:
            line = f"{self.repaired}\n{line}"
        if self.restored:
            line += (
                f"\nrepaired {self.restored} stored posters that had lost their '{VECTOR_NAME}' vector (a damaged store): embedded again"
            )
        if self.damaged:
            line += f"\n{self.damaged}"
        if self.gone:
            line += (
                f"\nremoved {self.gone} stored films that are no longer in the catalog"
                if self.pruned
                else f"\n{self.gone} stored films are no longer in the catalog (--prune removes them)"
            )
        return line + ("\n" + self.stages() if self.busy else "")

    def stages(self) -> str:
        """Which stage bound the run: e.g. "busy: decode 41 % (2 workers), model 97 %, store 12 %; bound by model"."""
        busy = self.busy
        bound = max(busy, key=busy.__getitem__)
        return (
            f"busy: decode {100 * busy['decode']:.0f} % ({self.workers} {'workers' if self.workers != 1 else 'worker'}), "
            f"model {100 * busy['model']:.0f} %, store {100 * busy['store']:.0f} %; bound by {bound} "
            f"[{self.runtime}, batch {self.batch_size}, model load {self.load_seconds:.1f}s]"
        )


@dataclass
class Work:
    """What the model has to do in a run, decided before anything is embedded."""

    embed: list[Film]  # embed and write whole points (vectors and payload): new films, replaced posters
    restyle: list[Film]  # stored points that only need the style vector
    already_stored: int  # stored and unchanged: skipped
    revector: list[Film] = field(default_factory=list)  # stored points whose vgg16 vector was lost: set again, payload kept


def plan_work(plan: Plan, store: PosterStore, style: bool) -> Work:
    """The embedding part of a plan (ingest/plan.py): whole points to embed and, with `style`,
    stored posters lacking the style vector (their poster is read again for that vector only;
    their stored vector and payload are left as they are). Stored posters whose vgg16 vector was
    lost (a damaged store, store/integrity.py) are embedded again: nothing stays lost silently."""
    lost = lost_vectors(store)
    revector = [f for f in plan.stored_films if f.point_id in lost] if lost else []
    lacking = (store.ids_without(STYLE_VECTOR_NAME) - lost) if style else set()
    restyle = [f for f in plan.stored_films if f.point_id in lacking] if lacking else []  # no uuid per stored film when none lacks it
    unchanged = len(plan.unchanged) - sum(f.point_id in lost for f in plan.unchanged) if lost else len(plan.unchanged)
    return Work(plan.to_embed, restyle, unchanged, revector)


@dataclass
class _Batch:
    films: list[Film]
    pixels: np.ndarray  # uint8
    hashes: list[str]


def ingest(
    catalog: Catalog,
    posters_dir: Path,
    store: PosterStore,
    embedder: Embedder,
    batch_size: int | None = None,
    limit: int | None = None,
    recreate: bool = False,
    progress: bool = True,
    sharding: Sharding = Sharding(),
    workers: int | None = None,
    prune: bool = False,
    rehash: bool = False,
) -> IngestReport:
    """Store the embedding of every film in `catalog` not stored yet; with a style embedder, also
    the style vector of every stored film that lacks it.

    `batch_size`: posters per model batch and per store write (default: 32 on a CPU, more on a
    GPU). `workers`: decode processes (default: the usable cores; 0 decodes in a thread).
    `rehash`: read and hash every stored poster's file, not trusting an unchanged size and
    modification time (ingest/plan.py).
    The model is loaded only when there is something to embed: a no-op rerun never loads it.
    It is loaded before the progress bar starts, so weight errors come first.
    """
    started = time.perf_counter()
    report = IngestReport(catalog_rows=catalog.rows, rejects=list(catalog.rejects), unit=catalog.unit, note_rows=list(catalog.notes))
    films = catalog.films[:limit] if limit is not None else catalog.films
    plan, work = _prepare(films, catalog, Path(posters_dir), store, embedder, recreate, sharding, prune, rehash, report)
    if work.embed or work.restyle or work.revector:
        _embed_and_store(plan, work, Path(posters_dir), store, embedder, batch_size, workers, progress, report)
    if work.embed or work.restyle or work.revector or store.index_waiting():  # also a build stopped by Ctrl-C
        store.optimize(progress)  # the engine builds its search index (HNSW, large collections) now, not on a first search
    if work.revector or lost_vectors(store):  # (counted, cheap) what this catalog could not restore is said, as search would
        left = damage(store)
        if left:
            report.damaged = (
                f"collection '{store.collection}' is still damaged: {left.what()}; those are not in this catalog (or past its --limit), "
                "or their posters were rejected: ingest the catalog they came from, or restore the store folder from a backup"
            )
    report.total = store.count()
    report.seconds = time.perf_counter() - started
    return report


def _prepare(films, catalog, posters_dir: Path, store, embedder, recreate, sharding, prune, rehash, report) -> tuple[Plan, Work]:
    """Everything before the model: the collection made or checked, corrected payloads written, the plan."""
    if not recreate:
        report.repaired = readopt_orphan(store, embedder, posters_dir)  # lost metadata: rebuilt, or one line why not
        check_posters_dir(store, posters_dir)
    if getattr(embedder, "needs_calibration", False):  # int8: the calibration is part of the embedding
        embedder.calibrate_with(calibration_for(store, films, posters_dir, recreate), posters_dir)
    if recreate:  # nothing is deleted before the catalog gave films and the weights load
        check_ready_to_replace(films, embedder.load)
    elif films and not store.exists():  # weights that do not load must not leave a collection recording them
        t = time.perf_counter()
        embedder.load()
        report.load_seconds = time.perf_counter() - t
    store.prepare(embedder.spec, recreate=recreate, sharding=sharding, style_spec=embedder.style_spec)
    store.remember_posters_dir(posters_dir)
    if getattr(embedder, "calibration", None) is not None and not store.collection_metadata().calibration:
        store.update_metadata(
            CollectionMetadata.changes(calibration={**embedder.calibration.as_dict(), "posters_dir": as_text(posters_dir.resolve())})
        )
    plan = make_plan(films, catalog.keys(), store, posters_dir, rehash)
    apply_without_embedding(plan, store, prune)  # corrected titles, years, genres; --prune
    work = plan_work(plan, store, embedder.style_spec is not None)
    report.already_stored, report.updated = work.already_stored, len(plan.retitled)
    report.kept_from_catalog = plan.kept_from_catalog
    report.gone, report.pruned = len(plan.gone), prune
    return plan, work


def _embed_and_store(plan: Plan, work: Work, posters_dir: Path, store, embedder, batch_size, workers, progress, report) -> None:
    """The three stages, overlapped: decode in worker processes, the model here, the store in a thread."""
    todo = work.embed + work.restyle + work.revector
    runtime = getattr(embedder, "runtime", None)
    if batch_size is None:
        from ..embedding.backend import default_batch_size

        batch_size = default_batch_size(runtime) if runtime else DEFAULT_BATCH_SIZE
    workers = usable_cores() if workers is None else workers
    workers = min(workers, math.ceil(len(todo) / MAX_CHUNK))  # no idle processes for a small run
    report.workers, report.batch_size = workers, batch_size
    report.runtime = runtime.describe() if runtime else type(embedder).__name__
    chunk = max(1, min(MAX_CHUNK, batch_size, math.ceil(len(todo) / max(1, workers))))
    chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
    paths = [[str(posters_dir / f.file) for f in c] for c in chunks]
    with DecodePool(workers) as pool:  # workers start now, while the model loads
        t = time.perf_counter()
        embedder.load()
        report.load_seconds += time.perf_counter() - t  # or already in _prepare, for a new collection
        bar = _progress_bar(len(todo), enabled=progress)
        window_start, window_start_mono = time.perf_counter(), time.monotonic()
        writer = StoreWriter(_batch_writer(store, work, plan, report, bar), depth=2)
        try:
            for batch, rejects in _batches(
                pool.decode(paths, getattr(embedder, "augmented", False), str(posters_dir.resolve())), chunks, batch_size
            ):
                report.rejects.extend(rejects)
                bar.update(len(rejects))
                if batch is None:
                    continue
                t = time.perf_counter()
                vectors, style = embedder.embed_both(batch.pixels)
                report.embed_seconds += time.perf_counter() - t
                writer.put((batch.films, batch.hashes, vectors, style))
        finally:
            try:
                writer.close()  # writes what was embedded (also on Ctrl-C): a few seconds at most
            finally:
                bar.close()
                wall = time.perf_counter() - window_start
                report.pipeline_seconds = wall
                if wall > 0:
                    decode = pool.busy_seconds(window_start_mono, window_start_mono + wall) / (wall * pool.capacity)
                    report.busy = {"decode": decode, "model": report.embed_seconds / wall, "store": writer.busy_seconds / wall}


def _batch_writer(store: PosterStore, work: Work, plan: Plan, report: IngestReport, bar):
    """The store stage's work on one embedded batch: whole points for new or replaced posters, the
    style vector alone for stored ones that lacked it; counted in the report once acknowledged."""
    to_write, changed_ids = {f.point_id for f in work.embed}, plan.changed_ids
    lost = {f.point_id for f in work.revector}

    def write(batch: tuple[list[Film], list[str], np.ndarray, np.ndarray | None]) -> None:
        films, hashes, vectors, style = batch
        whole = [i for i, f in enumerate(films) if f.point_id in to_write]
        again = [i for i, f in enumerate(films) if f.point_id in lost]
        only_style = [i for i, f in enumerate(films) if f.point_id not in to_write and f.point_id not in lost]
        if again:  # the vectors only: the payload (a predicted year too) stays
            ids = [films[i].point_id for i in again]
            store.set_vectors(ids, VECTOR_NAME, vectors[again])
            if style is not None:
                store.set_vectors(ids, STYLE_VECTOR_NAME, style[again])
        if whole:
            payloads = [films[i].payload(hashes[i]) for i in whole]
            store.upsert([films[i].point_id for i in whole], vectors[whole], payloads, None if style is None else style[whole])
        if only_style:
            assert style is not None  # restyle work exists only for an embedder with a style vector
            store.set_vectors([films[i].point_id for i in only_style], STYLE_VECTOR_NAME, style[only_style])
        changed = sum(films[i].point_id in changed_ids for i in whole)
        report.ingested += len(whole) - changed
        report.updated += changed
        report.style_added += len(only_style)
        report.restored += len(again)
        bar.update(len(films))

    return write


def calibration_for(store: PosterStore, films: list[Film], posters_dir: Path, recreate: bool):
    """The int8 calibration posters: those an existing int8 collection was made with (so that a
    resumed or extended ingest runs the same model), else chosen from this catalog."""
    from ..embedding.quantize import Calibration, choose_calibration

    recorded = store.collection_metadata().calibration if store.exists() and not recreate else None
    if recorded:
        return Calibration.from_dict(recorded)
    if not films:
        raise BadInput("the catalog has no usable rows to calibrate the int8 model with (see the rejects)")
    # recorded in the metadata as text: posters whose names are not UTF-8 are not chosen (text_out.py)
    return choose_calibration([f.file for f in films if raw_name(f.file) is None] or [f.file for f in films], posters_dir)


def _batches(decoded: Iterator, chunks: list[list[Film]], batch_size: int) -> Iterator[tuple[_Batch | None, list[Reject]]]:
    """Regroup decoded chunks into model batches of exactly `batch_size` (the last one smaller),
    with each chunk's rejects as soon as they are known."""
    films: list[Film] = []
    pixels: list[np.ndarray] = []
    hashes: list[str] = []
    held = 0
    for chunk_films, result in zip(chunks, decoded):
        rejects = [Reject(chunk_films[i].row, chunk_films[i].key, chunk_films[i].file, reason) for i, reason in result.rejects]
        films += [chunk_films[i] for i in result.kept]
        hashes += result.hashes
        if len(result.kept):
            pixels.append(result.pixels)
            held += len(result.kept)
        emitted = False
        while held >= batch_size:
            array = np.concatenate(pixels) if len(pixels) > 1 else pixels[0]
            yield _Batch(films[:batch_size], array[:batch_size], hashes[:batch_size]), rejects
            rejects, emitted = [], True
            films, hashes = films[batch_size:], hashes[batch_size:]
            pixels = [array[batch_size:]] if len(array) > batch_size else []
            held -= batch_size
        if not emitted and rejects:
            yield None, rejects
    if held:
        yield _Batch(films, np.concatenate(pixels) if len(pixels) > 1 else pixels[0], hashes), []


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="poster", desc="embedding", disable=not enabled or total == 0, dynamic_ncols=True)


def write_rejects(rejects: list[Reject], path: Path) -> None:
    """One CSV row per rejected catalog row or poster, with the reason, sorted by line."""
    with output_path(path) as staged, open(staged, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["line", "key", "file", "reason"])
        for r in sorted(rejects, key=lambda r: r.row):
            writer.writerow([r.row, *map(sheet_cell, (r.key, r.file, r.reason))])
