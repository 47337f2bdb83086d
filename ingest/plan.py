"""Decide what an ingest run has to do, by comparing the catalog and the poster files with the store.

Each film of the catalog is one of:
- new: no point with its id yet, embed it;
- changed: stored, but its poster file's sha256 differs from the stored one (the file was
  replaced): embed it again and overwrite the whole point;
- retitled: the same poster, but title, year, genres (or file) in the catalog differ from the
  stored payload: overwrite the payload only, no embedding;
- unchanged: nothing to do, and no model is loaded for it.
Stored points whose key the catalog no longer names are `gone`: reported, deleted only on request.

The plan is computed from the store on every run, so a run killed at any moment is resumed by
planning again: whatever landed is unchanged, the rest is still to do.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from ..errors import BadInput
from ..path_inside import open_inside
from ..store.schema import FILE_STAT_FIELDS, PREDICTED_FIELDS, PosterPayload, point_id
from .catalog import Film

# The payload fields a film's catalog row decides (plus sha256, which the poster file decides).
CATALOG_FIELDS = ("key", "title", "year", "file", "file_raw", "genres")
HASH_THREADS = 4  # hashlib releases the GIL: reading and hashing overlap across files
HASH_CHUNK = 256  # files per thread task
SCROLL_BATCH = 8192  # payloads per scroll page when planning (payloads only: small)


class StoredPayloads(Protocol):
    """What planning needs of the store (store.collection.PosterStore is one)."""

    def exists(self) -> bool: ...

    def left_out_during(self) -> AbstractContextManager[list[str]]: ...  # points whose payloads did not decode

    def points(self, with_vectors: bool = True, fields: list[str] | None = None, batch: int = 1024): ...


@dataclass
class Plan:
    new: list[Film] = field(default_factory=list)
    changed: list[Film] = field(default_factory=list)  # poster content differs: embed again
    retitled: list[tuple[Film, dict]] = field(default_factory=list)  # (film, its full new payload)
    unchanged: list[Film] = field(default_factory=list)
    gone: list[tuple[str, str]] = field(default_factory=list)  # (point id, stored key or title)
    kept_from_catalog: int = 0  # posters of a folder run whose stored catalog title, year or genres differ and were kept
    restat: list[tuple[str, dict]] = field(default_factory=list)  # (point id, file_size and file_mtime_ns): unchanged bytes, new stat

    @property
    def to_embed(self) -> list[Film]:
        """Films whose whole point (vectors and payload) is written by this run, in catalog order."""
        return sorted([*self.new, *self.changed], key=lambda f: f.row)

    @property
    def changed_ids(self) -> set[str]:
        return {f.point_id for f in self.changed}

    @property
    def stored_films(self) -> list[Film]:
        """Films whose stored vectors stay as they are (retitled or unchanged)."""
        return [f for f, _ in self.retitled] + self.unchanged


def make_plan(films: Sequence[Film], catalog_keys: set[str], store: StoredPayloads, posters_dir: Path, rehash: bool = False) -> Plan:
    """Compare `films` with what `store` holds; `catalog_keys` (every key of the whole catalog,
    not only the `films` of a --limit run) decides what is gone.

    A stored poster whose file has the size and modification time recorded with it is taken as
    unchanged without reading it (what rsync and git do): a rerun over a million posters is a
    million `lstat`s, not a million files read. `rehash` reads and hashes every one."""
    plan = Plan()
    posters: dict[str, PosterPayload] = {}  # decoded, as stored
    undecodable: list[str] = []  # stored, but not as poster search writes them: embedded and written again
    if store.exists():
        with store.left_out_during() as undecodable:
            read = [*CATALOG_FIELDS, "sha256", "source", "added", *PREDICTED_FIELDS, *FILE_STAT_FIELDS]
            posters = {p.id: p.poster for p in store.points(with_vectors=False, fields=read, batch=SCROLL_BATCH)}
    if any(f.source == "folder" for f in films) and posters:
        films, plan.kept_from_catalog = under_catalog(films, posters)
    base = str(posters_dir)
    films = [replace(f, file_stat=s) for f, s in zip(films, file_stats([os.path.join(base, f.file) for f in films]))]
    stored = {pid: poster.to_dict() for pid, poster in posters.items()}
    ids = [f.point_id for f in films]  # uuid5 once per film: 100,000 of them are a second's work
    known = [(f, pid) for f, pid in zip(films, ids) if pid in stored]
    digest_of = {pid: stored[pid]["sha256"] for f, pid in known if not rehash and _same_file(f, stored[pid])}
    to_hash = [(f, pid) for f, pid in known if pid not in digest_of]
    digests = file_digests([os.path.join(base, f.file) for f, _ in to_hash], str(posters_dir.resolve()))  # strings: pathlib costs more
    digest_of.update((pid, d) for (_, pid), d in zip(to_hash, digests))
    compared = (*CATALOG_FIELDS, "sha256")
    rewrite = set(undecodable)
    for film, pid in zip(films, ids):
        payload = stored.get(pid)
        if pid in rewrite:
            plan.changed.append(film)
        elif payload is None:
            plan.new.append(film)
        elif digest_of[pid] is None or digest_of[pid] != payload.get("sha256"):
            plan.changed.append(film)  # an unreadable file is decoded again, and rejected with its reason
        else:
            wanted = film.payload(payload["sha256"])
            # `source` is compared once recorded: points written before it are not rewritten for it alone
            fields = (*compared, "source") if "source" in payload else compared
            if {k: v for k, v in payload.items() if k in fields} != {k: v for k, v in wanted.items() if k in fields}:
                # the same vector: its predicted year stays, and when it was added
                kept = {k: payload[k] for k in (*PREDICTED_FIELDS, "added") if k in payload}
                plan.retitled.append((film, {**wanted, **kept}))
            else:
                plan.unchanged.append(film)
                if film.file_stat and not _same_file(film, payload):  # the same bytes, touched (or stored before 5): recorded anew
                    plan.restat.append((pid, dict(zip(FILE_STAT_FIELDS, film.file_stat))))
    planned_keys = {f.key for f in films}
    catalog_ids = set(ids) | {point_id(k) for k in catalog_keys if k not in planned_keys}
    plan.gone = sorted((pid, str(p.get("key") or p.get("title") or pid)) for pid, p in stored.items() if pid not in catalog_ids)
    return plan


def _same_file(film: Film, payload: dict) -> bool:
    """The poster file has the size and modification time recorded when its sha256 was."""
    return film.file_stat is not None and bool(payload.get("sha256")) and film.file_stat == tuple(payload.get(k) for k in FILE_STAT_FIELDS)


def file_stats(paths: Sequence[str]) -> list[tuple[int, int] | None]:
    """(size, modification time in ns) of each path that is a regular file, the final link not
    followed (a link is hashed through path_inside's checks every time); None for anything else."""
    out: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            info = os.lstat(path)
        except (OSError, ValueError):
            out.append(None)
            continue
        out.append((info.st_size, info.st_mtime_ns) if stat.S_ISREG(info.st_mode) else None)
    return out


def under_catalog(films: Sequence[Film], stored: dict[str, PosterPayload]) -> tuple[list[Film], int]:
    """Folder films as they join a collection a catalog wrote: a folder says less than a catalog
    (a file name, perhaps an .nfo), so a poster a catalog stored keeps its catalog key, title, year
    and genres, and gains only what the catalog left empty. Matched by key, else by poster file
    (a catalog keyed by its own ids). Points a folder wrote are the folder's to update. Points
    written before schema 3 record no source: they are taken as a catalog's (nothing is lost).
    Also returns how many films differed from the stored fields that were kept."""
    by_file = {
        p.path: pid
        for pid, p in stored.items()
        if p.source != "folder" and p.key != p.file  # keyed by the file: found by its id already
    }
    merged: list[Film] = []
    kept = 0
    for film in films:
        pid = film.point_id
        if pid not in stored and film.file in by_file:
            pid = by_file[film.file]
        was = stored.get(pid)
        if film.source != "folder" or was is None or was.source == "folder":
            merged.append(film)
            continue
        title = was.title or film.title
        year = was.year if was.year is not None else film.year
        genres = was.genres or film.genres
        kept += (title, year, genres) != (film.title, film.year, film.genres)
        merged.append(replace(film, key=was.key, title=title, year=year, genres=genres, source=was.source or "catalog"))
    return merged, kept


def apply_without_embedding(plan: Plan, store, prune: bool) -> None:
    """The parts of a plan that need no model: rewrite corrected payloads; with `prune`, delete
    the stored films that are gone from the catalog."""
    if plan.retitled:
        store.overwrite_payloads([(f.point_id, payload) for f, payload in plan.retitled])
    for start in range(0, len(plan.restat), SCROLL_BATCH):
        store.set_payloads(plan.restat[start : start + SCROLL_BATCH])
    if prune and plan.gone:
        if not (plan.changed or plan.retitled or plan.unchanged):
            # an empty catalog, every row rejected, or the wrong file: the user meant something else
            raise BadInput(
                f"--prune would delete every stored film ({len(plan.gone)}): the catalog matches none of them; "
                "nothing was deleted (check the catalog and its rejects; --recreate replaces a collection)"
            )
        store.delete([pid for pid, _ in plan.gone])


def file_digests(paths: Sequence[str | Path], folder: str | None = None) -> list[str | None]:
    """sha256 of each file's bytes (as embedding.images records it), None where it cannot be read
    (or, with `folder`, where the file opened is not inside it: path_inside.open_inside).

    Read with plain os.read in chunks of HASH_CHUNK files per thread task: per-file futures and
    buffered file objects cost more than hashing a small poster (5x on a 100,000-file tree)."""

    def digest(path: str | Path) -> str | None:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)) if folder is None else open_inside(folder, os.fspath(path))
        except OSError:
            return None
        try:
            h = hashlib.sha256()
            while block := os.read(fd, 1 << 20):
                h.update(block)
            return h.hexdigest()
        except OSError:
            return None
        finally:
            os.close(fd)

    def chunk(part: Sequence[str | Path]) -> list[str | None]:
        return [digest(p) for p in part]

    if not paths:
        return []
    parts = [paths[i : i + HASH_CHUNK] for i in range(0, len(paths), HASH_CHUNK)]
    with ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="sha256") as pool:
        return [d for part in pool.map(chunk, parts) for d in part]


def check_posters_dir(store, posters_dir: Path) -> None:
    """One collection, one posters folder: payload `file` is relative to the folder the
    collection records, so posters from a second folder would make the first ones unfindable
    (contact sheets) and let `12.jpg` of one folder overwrite or skip `12.jpg` of the other."""
    if not store.exists() or not store.count():
        return
    recorded, here = store.posters_dir(), Path(posters_dir).resolve()
    if recorded is not None and Path(recorded) != here:
        raise BadInput(
            f"collection '{store.collection}' holds posters from {recorded}, not {here}: use another --collection "
            "for these posters (or --recreate to replace the collection)"
        )


def check_ready_to_replace(films: Sequence[Film], load_model) -> None:
    """Before --recreate deletes anything: the catalog gave films and the weights load.

    Everything else that can fail later (a poster that will not decode) is per poster and only
    rejects that poster."""
    if not films:
        raise BadInput("the catalog has no usable rows (see the rejects): nothing was deleted")
    try:
        load_model()
    except BadInput as e:
        raise BadInput(f"{e} (nothing was deleted)") from None
