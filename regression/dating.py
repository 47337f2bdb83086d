"""Date the posters already in a collection from their stored vectors: no poster is decoded, no VGG16 runs.

Each dated point gets four payload fields (store/schema.py): `predicted_year`, `predicted_low`,
`predicted_high` (the calibrated 80 % range) and `predicted_by` (the model's identity,
regression/model_file.model_identity). A catalog `year` is never touched. Idempotent per point:
points whose `predicted_by` is this model are skipped, so a rerun with the same model changes
nothing and an interrupted run is resumed by running it again; another model replaces them.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import BadInput
from ..store.collection import PosterStore
from ..store.schema import PREDICTED_BY, PREDICTED_FIELDS, PREDICTED_HIGH, PREDICTED_LOW, PREDICTED_YEAR
from .model_file import YearModel, check_specs

BATCH = 256  # points read, predicted and written per step: each step is acknowledged before the next


@dataclass
class DatingReport:
    collection: str
    model: str  # its identity, as written to `predicted_by`
    total: int = 0  # points in the collection
    dated: int = 0  # predictions written by this run
    already: int = 0  # already dated by this model: skipped
    catalog_dated: int = 0  # have a catalog year, left alone (without --all)
    lacking_vector: int = 0  # lack a vector the model reads (ingest --style adds it)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        line = (
            f"dated {self.dated} posters of collection '{self.collection}' ({self.total} in all) with {self.model} "
            f"in {self.seconds:.1f}s; {self.already} already dated by this model"
        )
        if self.catalog_dated:
            line += f"; {self.catalog_dated} with a catalog year left alone (--all dates them too)"
        if self.lacking_vector:
            line += f"; {self.lacking_vector} lack a vector the model reads (ingest --style adds it)"
        return line


@dataclass(frozen=True)
class DatedPoster:
    """One prediction a run wrote, as `predict-year --stored` lists it."""

    id: str
    title: str
    file: str
    year: int | None  # the catalog's (with --all), never changed
    predicted_year: int
    predicted_low: int
    predicted_high: int

    def as_dict(self) -> dict:
        return asdict(self)


def date_stored(
    store: PosterStore,
    model: YearModel,
    every_poster: bool = False,
    progress: bool = True,
    written: Callable[[list[DatedPoster]], bool | None] | None = None,
) -> DatingReport:
    """Write the model's year and range into each undated point's payload (every point's with
    `every_poster`); the model must read the embedding(s) the collection was made with.
    `written`: called with each batch's predictions once the store has acknowledged them (what
    the CLI lists) until it returns False; without it, or after that, no title is read."""
    from tqdm import tqdm

    started = time.perf_counter()
    check_specs(model, {name: store.stored_spec(name) for name in model.vector_names if store.has_vector(name)})
    report = DatingReport(store.collection, model.identity)
    todo: list[str] = []
    for point in store.points(with_vectors=False, fields=["year", *PREDICTED_FIELDS]):
        report.total += 1
        poster = point.poster  # a damaged prediction reads as none: dated again
        if poster.year is not None and not every_poster:
            report.catalog_dated += 1
        elif poster.predicted_by == model.identity:
            report.already += 1
        else:
            todo.append(point.id)
    if todo:
        store.record_schema_version()  # the predicted_* fields are schema version 2's
    bar = tqdm(total=len(todo), unit="poster", desc="dating", disable=not progress or not todo, dynamic_ncols=True, file=sys.stderr)
    try:
        for start in range(0, len(todo), BATCH):
            ids = todo[start : start + BATCH]
            found = store.vectors_of(ids, model.vector_names)
            usable = [i for i, vectors in found.items() if all(name in vectors for name in model.vector_names)]
            report.lacking_vector += len(ids) - len(usable)  # also a point deleted meanwhile
            if usable:
                vectors = np.stack([np.concatenate([found[i][name] for name in model.vector_names]) for i in usable])
                years, low, high = model.predict_with_ranges(vectors)
                payloads = [prediction_payload(y, lo, hi, model.identity) for y, lo, hi in zip(years, low, high)]
                store.set_payloads(list(zip(usable, payloads)))
                report.dated += len(usable)
                if written is not None and written(_dated(store, usable, payloads)) is False:
                    written = None  # the caller has what it lists: the rest is not read for it
            bar.update(len(ids))
    finally:
        bar.close()
        report.seconds = time.perf_counter() - started
    return report


def _dated(store: PosterStore, ids: list[str], payloads: list[dict]) -> list[DatedPoster]:
    """The batch's predictions with each poster's title, file and catalog year (one read of the batch)."""
    posters = {p.id: p.poster for p in store.retrieve(ids, with_vectors=False)}
    return [
        DatedPoster(i, posters[i].title, posters[i].file, posters[i].year, p[PREDICTED_YEAR], p[PREDICTED_LOW], p[PREDICTED_HIGH])
        for i, p in zip(ids, payloads)
        if i in posters  # a point deleted meanwhile
    ]


def prediction_payload(year: float, low: float, high: float, model: str) -> dict:
    """The four payload fields of one prediction (whole years: the range rounded outwards)."""
    if not all(map(math.isfinite, (year, low, high))):
        raise BadInput(f"the year model {model} gave a non-finite year: train it again")
    return {PREDICTED_YEAR: round(year), PREDICTED_LOW: math.floor(low), PREDICTED_HIGH: math.ceil(high), PREDICTED_BY: model}
