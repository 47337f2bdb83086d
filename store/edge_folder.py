"""The embedded store's folder: its layout, its locks and the metadata files beside each shard.

A store is a folder; each collection is one Qdrant Edge shard in it:

    qdrant_data/
      poster-search-store.json         marks the folder as an Edge store (format, Edge version)
      .lock                            held (flock) by the one process using the store
      collections/<name>/.lock         held by that process too, while it uses the collection
      collections/<name>/collection.json   vectors, and the metadata Qdrant keeps per collection
      collections/<name>/collection.backup.json   the same, written after it: either restores the other
      collections/<name>/shard/        the shard: Qdrant's own segment and WAL files

Edge has no collections or collection metadata of its own (a shard is what a server keeps per
collection), so the store adds the thin layer a server would: the folder per collection and the
JSON files with its vectors and metadata (the embedding it was made with). StoreFolder is that
layer, and everything else about files; store/edge.py translates the rest to Edge's API.

The folder may come from anywhere: a metadata file is read only if it is a regular file of at most
MAX_METADATA_BYTES (not through a link), and files are replaced atomically, never written through.

A store on read-only media (a DVD, a read-only NFS export or container volume) is read, never
written: its locks are taken shared on the lock files already there, nothing is restored, marked or
recorded, and every write is refused in one line (check_writable). Qdrant Edge writes to a shard
whenever it opens one (its segment files are opened read-write, journals removed, its config
rewritten), and has no read-only open, so such a shard is opened from a private copy in the temp
folder (shard_to_open): only its allocated bytes, at most READ_ONLY_COPY_LIMIT, with a note, and
removed at close; a larger one is one line saying how to proceed.

Nothing stored is deleted unless asked for. A collection whose metadata is lost (both JSON files
gone or damaged) but whose shard holds points is *orphaned*: every command says so in one line and
how to repair it (ingest re-adopts the shard after checking stored vectors against the poster
files; ingest/repair.py), and creating a collection never clears a shard that holds points.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any, NoReturn

from ..errors import BadInput, Damaged, InUse, NotFound, command
from ..safe_io import UnsafeFile, open_lock_file, read_regular, write_atomic
from . import shard_copy
from .schema import check_collection_name
from .space import MARGIN, MEMORY_FILE_SYSTEMS, check_free_space, file_system, folder_bytes, mb

MARKER = "poster-search-store.json"
FORMAT = 1
CONFIG, BACKUP = "collection.json", "collection.backup.json"
SHARD, SHARD_CONFIG = "shard", "edge_config.json"  # the shard's folder, and Edge's own config in it
POINTS_AT_CLOSE = "points_at_close"  # in collection.json, beside vectors and metadata
MAX_METADATA_BYTES = 4 * 1024 * 1024  # collection.json, its backup, the marker, a shard's config: kilobytes when this module writes them
READ_ONLY_COPY_LIMIT = 2**30  # the most a read-only collection's shard may hold (allocated bytes) to be read from a private copy


def edge_version() -> str:
    from importlib.metadata import version

    return version("qdrant-edge-py")


class StoreFolder:
    """The folder of an embedded store (the layout above), locked to this process while open.

    Each collection's config (collection.json: vectors, metadata, the points recorded at close) is
    read once and then kept in memory: the store's lock admits no other process, so only this one
    changes the files, and each change here updates the memory copy. A config that cannot be read
    is never kept, so damage is reported on every call, as it is found."""

    def __init__(self, path: Path, must_exist: bool = False):
        self.path = Path(path)
        self._lock: int | None = None
        self._collection_locks: dict[str, int] = {}  # collection name -> its lock file, held while open
        self._configs: dict[str, dict[str, Any]] = {}  # collection name -> its config as last read or written
        self._copies: dict[str, Path] = {}  # collection name -> the private copy of its shard (a read-only store)
        self._copy_root: tuple[Path, int] | None = None  # the folder of those copies, and its lock
        collections = self.path / "collections"  # where every collection lives
        if self.path.exists() and not self.path.is_dir():
            raise BadInput(f"store path {self.path} is a file, not a folder")
        if collections.exists() and not collections.is_dir():
            raise BadInput(f"{collections} is not a folder: this is not a whole store (move that file away, or use another --qdrant-path)")
        if not (self.path / MARKER).is_file() and not collections.is_dir():  # not a store (yet): never one inside another
            _refuse_inside_a_store(self.path)
        if must_exist and not (self.path / MARKER).is_file() and not collections.is_dir():  # a lost marker: written anew below
            raise NotFound(f"no store at {self.path}: run {command('ingest')} first, or pass --qdrant-path / --qdrant-url")
        # why the folder cannot be written (None: it can); then it is read, never written
        self.read_only: str | None = _unwritable(self.path) if self.path.is_dir() else None
        if not self.read_only:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise BadInput(f"cannot open store {self.path}: {e.strerror}") from None
        self._lock = self._lock_file(
            self.path / ".lock",
            f"the store {self.path} is in use by another process{{holder}}; the embedded store allows one at a time: wait for it to "
            "finish, or use a Qdrant server (--qdrant-url) for several processes",
        )
        marker = self.path / MARKER
        if marker.is_file():
            self._check_marker(marker)
        elif not self.read_only:  # new, or lost (on a read-only store: written by a command on a writable copy)
            try:
                _write_json(marker, {"engine": "qdrant-edge", "format": FORMAT, "created_with": f"qdrant-edge-py {edge_version()}"})
            except OSError as e:
                self.close()
                raise BadInput(f"cannot write to store {self.path}: {e.strerror or e}") from None

    def _check_marker(self, marker: Path) -> None:
        try:
            data = _read_json(marker, "the store marker")
            version = data.get("format") if isinstance(data, dict) else None
        except (OSError, ValueError, UnsafeFile) as e:
            self.close()
            raise Damaged(
                f"{marker} is damaged ({type(e).__name__}): it only marks the folder as a poster-search store; "
                "delete it and run again, and it is written anew"
            ) from None
        if not isinstance(version, int):
            self.close()
            raise Damaged(f"{marker} records no store format (format {version!r}): delete it and run again, and it is written anew")
        if version > FORMAT:
            self.close()
            raise BadInput(
                f"the store {self.path} has format {version}, made by a newer poster search; this version reads format {FORMAT}: upgrade"
            )

    def close(self) -> None:
        """Release every lock and forget the configs read (another process may change them now);
        remove the private copies of a read-only store's shards (Edge has closed them by now)."""
        if self._copy_root is not None:
            root, fd = self._copy_root
            shutil.rmtree(root, ignore_errors=True)
            os.close(fd)
            self._copy_root = None
        self._copies.clear()
        for fd in [*self._collection_locks.values(), *([self._lock] if self._lock is not None else [])]:
            os.close(fd)  # releases the flock; the file is left as it is (never truncated: it may not be ours)
        self._collection_locks.clear()
        self._lock = None
        self._configs.clear()

    # --- a read-only store -----------------------------------------------------------------------

    def check_writable(self) -> None:
        """BadInput, in one line, when the store cannot be written: before a write, and before a
        writing command's work."""
        if self.read_only:
            raise BadInput(
                f"the store {self.path} is {self.read_only}: reading commands work, this one writes; "
                "copy the store to a writable disk to change it (then --qdrant-path that copy)"
            )

    def _lock_file(self, path: Path, busy: str) -> int | None:
        """The lock at `path`: taken exclusively on a writable store; on a read-only one shared (other
        readers may read it too, a writer through another mount waits), or none when it has no lock file."""
        return _share_lock(path, busy) if self.read_only else _take_lock(path, busy)

    def shard_to_open(self, name: str) -> Path:
        """The folder Qdrant Edge opens for the collection's shard: the shard itself, or, on a
        read-only store, a private copy of it, made once while the store is open. Edge writes to
        every shard it opens and has no read-only open, so a copy is the one way to read one; it
        holds only the shard's allocated bytes (its files are mostly holes) and is bounded:
        BadInput, saying how to proceed, for a shard over READ_ONLY_COPY_LIMIT or without the room."""
        shard = self.shard_dir(name)
        if not self.read_only:
            return shard
        if name in self._copies:
            return self._copies[name]
        self.check_shard_files(name)  # only folders and regular files are copied
        size = folder_bytes(shard)
        if size > READ_ONLY_COPY_LIMIT:
            raise BadInput(
                f"the store {self.path} is {self.read_only}, and Qdrant Edge writes to a collection's files when it opens them: "
                f"reading commands read a private copy of a collection of up to {mb(READ_ONLY_COPY_LIMIT)}, and '{name}' holds "
                f"{mb(size)}; copy the store to a writable disk once (cp -a {self.path} NEW_FOLDER) and pass --qdrant-path NEW_FOLDER"
            )
        try:
            root = self._copies_folder()
        except OSError as e:
            raise BadInput(
                f"the store {self.path} is {self.read_only}, and its collections are read from a private copy in the temp folder, "
                f"which cannot be made ({e.strerror or e}): set TMPDIR to a writable folder"
            ) from None
        holes = shard_copy.holes(shard) if file_system(root) in MEMORY_FILE_SYSTEMS else 0  # mapped holes take memory there
        check_free_space(root, size + holes + MARGIN, f"a private copy of collection '{name}' of read-only store {self.path}")
        copy = root / name
        try:
            shard_copy.copy_tree(shard, copy)
        except OSError as e:
            shutil.rmtree(copy, ignore_errors=True)
            raise BadInput(f"cannot copy collection '{name}' of read-only store {self.path} to {root}: {e.strerror or e}") from None
        print(
            f"Note: the store {self.path} is {self.read_only}: collection '{name}' is read from a private copy of its shard "
            f"({mb(size)}, in {root}, removed when done), as Qdrant Edge writes to the files of a shard it opens",
            file=sys.stderr,
        )
        self._copies[name] = copy
        return copy

    def _copies_folder(self) -> Path:
        """This process's folder of private copies (store/shard_copy.py), made on first use."""
        if self._copy_root is None:
            self._copy_root = shard_copy.private_folder()
        return self._copy_root[0]

    # --- collections' folders and locks ------------------------------------------------------

    def collection_dir(self, name: str) -> Path:
        check_collection_name(name)
        return self.path / "collections" / name

    def shard_dir(self, name: str) -> Path:
        return self.collection_dir(name) / SHARD

    def names(self) -> list[str]:
        """Collections of the store, the damaged ones included (opening them says what is wrong)."""
        root = self.path / "collections"
        if not root.is_dir():
            return []
        return sorted(d.name for d in root.iterdir() if any((d / f).exists() for f in (CONFIG, BACKUP, SHARD)))

    def claim(self, name: str) -> None:
        """Lock the collection itself, wherever its folder really is: `collections/` or the
        collection's folder may be a link into a store another process holds, whose lock on that
        store's .lock says nothing here. Its lock file lies in the real folder, so every path to it
        meets the same lock; a collection another process holds is refused before anything is read."""
        if name in self._collection_locks:
            return
        folder = self.collection_dir(name)
        if not folder.is_dir():
            return  # nothing there yet: claimed again once the folder exists
        lock = self._lock_file(
            folder / ".lock",
            f"collection '{name}' ({folder.resolve()}) is in use by another process{{holder}}: {self.path} reaches it through a link; "
            "nothing was changed. Wait for that process to finish, or use another --collection",
        )
        if lock is not None:
            self._collection_locks[name] = lock

    def remove(self, name: str) -> None:
        """Delete the collection's folder (shard included) and release its lock."""
        self.check_writable()
        folder = self.collection_dir(name)
        self._configs.pop(name, None)
        if folder.exists():
            for f in (CONFIG, BACKUP):  # no longer a collection, even if the rest fails
                (folder / f).unlink(missing_ok=True)
            shutil.rmtree(folder)
        lock = self._collection_locks.pop(name, None)  # its file went with the folder
        if lock is not None:
            os.close(lock)

    # --- collection.json and its backup ------------------------------------------------------

    def has_config(self, name: str) -> bool:
        """Whether the collection has a metadata file (readable or not) or a config held in memory."""
        folder = self.collection_dir(name)
        return name in self._configs or any((folder / f).is_file() for f in (CONFIG, BACKUP))

    def config(self, name: str) -> dict[str, Any] | None:
        """The collection's config (vectors, metadata): held in memory, else from collection.json,
        else from its backup (which then restores it); None when neither can be read. A copy: the
        caller may change it, and saves it with save_config."""
        folder = self.collection_dir(name)
        cached = self._configs.get(name)
        if cached is not None:
            return _copied(cached)
        self.claim(name)
        primary, backup = _read_config(folder / CONFIG), _read_config(folder / BACKUP)
        if primary is not None:
            if backup is None and not self.read_only:
                self.save_config(name, primary)
            self._configs[name] = primary
            return _copied(primary)
        if backup is not None:
            if self.read_only:  # read from the backup, restored by a command on a writable copy of the store
                print(
                    f"Note: {folder / CONFIG} was missing or damaged; read {BACKUP} instead (the store is {self.read_only})",
                    file=sys.stderr,
                )
                self._configs[name] = backup
                return _copied(backup)
            print(f"Note: {folder / CONFIG} was missing or damaged; restored it from {BACKUP}", file=sys.stderr)
            self.save_config(name, backup)
            return _copied(backup)
        return None

    def save_config(self, name: str, config: dict[str, Any]) -> None:
        """Write both files; BadInput (the files as they were kept) when they cannot be written."""
        self.check_writable()
        folder = self.collection_dir(name)
        self._configs.pop(name, None)  # until both are written: after a failure, the files say what is stored
        _write_json(folder / CONFIG, config)
        _write_json(folder / BACKUP, config)  # second: at every moment one of the two is whole
        self._configs[name] = _copied(config)

    def metadata_lost(self, name: str) -> bool:
        """Both metadata files are missing or damaged while the shard is there: an orphan, unless
        the shard holds no point (which only Edge can tell: EdgeEngine.orphaned)."""
        folder = self.collection_dir(name)
        if name in self._configs or not (folder / SHARD / SHARD_CONFIG).is_file():
            return False
        return all(_read_config(folder / f) is None for f in (CONFIG, BACKUP))

    def recorded_points(self, name: str) -> int | None:
        """How many points the collection held when this process last wrote it (record_points), if known."""
        recorded = (self.config(name) or {}).get(POINTS_AT_CLOSE)
        return recorded if isinstance(recorded, int) else None

    def record_points(self, name: str, points: int) -> None:
        """Record how many points the collection holds: fewer at the next open means files were
        lost or damaged (Edge opens what is left without a word). Skipped without a config."""
        config = self.config(name)
        if config is not None and not self.read_only:
            self.save_config(name, {**config, POINTS_AT_CLOSE: points})

    # --- the shard's files -------------------------------------------------------------------

    def shard_vectors(self, name: str) -> dict[str, int]:
        """The named vectors of a collection's shard, from its own config (for an orphan, whose metadata is lost)."""
        path = self.shard_dir(name) / SHARD_CONFIG
        try:
            return _shard_config_vectors(path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise Damaged(f"collection '{name}': its shard's config {path} is unreadable ({type(e).__name__})") from None

    def adopt(self, name: str, metadata: dict[str, Any]) -> None:
        """Write the metadata files of an orphaned collection anew: its vectors from the shard's own
        config, `metadata` from the caller, who has checked that the stored vectors are that embedding."""
        path = self.shard_dir(name) / SHARD_CONFIG
        self.check_writable()
        self.claim(name)
        try:
            vectors = _shard_config_vectors(path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, UnsafeFile) as e:
            raise Damaged(f"cannot rebuild collection '{name}': its shard's config {path} is unreadable ({type(e).__name__})") from None
        self.save_config(name, {"vectors": vectors, "metadata": metadata})

    def check_shard_files(self, name: str) -> None:
        """Damaged unless the shard holds only folders and regular files: Edge reads what it
        finds, and a FIFO would hang it, /dev/zero fill the memory, a link lead anywhere."""
        for root, folders, files in os.walk(self.shard_dir(name)):  # links to folders are listed, not followed
            for entry in (*folders, *files):
                path = Path(root) / entry
                mode = path.lstat().st_mode
                if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                    raise Damaged(
                        f"cannot open collection '{name}': {path} is not a regular file (a link, a FIFO or a device), which a shard "
                        "never holds; nothing was read or deleted. Restore the folder from a backup, or ingest into a new --collection"
                    )


def _copied(value: Any) -> Any:
    """A JSON value copied whole (dicts and lists), so that no caller's change reaches the memory copy."""
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return value


def _shard_config_vectors(path: Path) -> dict[str, int]:
    """Vector name -> dimension, from a shard's edge_config.json."""
    shard_config = _read_json(path, "the shard's config")
    return {vector: int(params["size"]) for vector, params in shard_config["vectors"].items()}


def _read_config(path: Path) -> dict[str, Any] | None:
    """A collection's metadata file, or None if it is missing or not what this module writes (a
    link, a FIFO, a device or a huge file is not read: the store may come from anywhere)."""
    try:
        data = _read_json(path, "collection metadata")
    except (OSError, ValueError, UnsafeFile):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("vectors"), dict) or not isinstance(data.get("metadata", {}), dict):
        return None
    return data


def _read_json(path: Path, what: str) -> Any:
    """JSON from a regular file of at most MAX_METADATA_BYTES, not through a link."""
    return json.loads(read_regular(path, MAX_METADATA_BYTES, what))


def _take_lock(path: Path, busy: str) -> int:
    """The lock file at `path` (opened without following a link, never truncated), flocked by this
    process; InUse `busy` (its {holder}: the holder's pid, if known) when another holds it."""
    fd = open_lock_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        _busy(fd, busy)
    info = os.fstat(fd)
    if info.st_nlink == 1 and info.st_size <= 16:  # the pid, for the message another process gets; a file with other
        try:  # names (a hard link planted in the store) or other content is not ours to change
            pid = str(os.getpid()).encode()
            os.pwrite(fd, pid.ljust(max(len(pid), info.st_size)), 0)
        except OSError:
            pass  # not worth failing for on a full disk
    return fd


def _unwritable(path: Path) -> str | None:
    """Why the existing folder `path` cannot be written, or None when it can."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "on a read-only file system"
    except OSError:
        return None  # cannot tell: opening it says what is wrong
    if not os.access(path, os.W_OK):  # another user's store (permission bits do not stop root)
        return "not writable by this user"
    return None


def _busy(fd: int, busy: str) -> NoReturn:
    """InUse `busy`, naming the holder's pid when its lock file says it; `fd` closed."""
    holder = os.pread(fd, 16, 0).decode("ascii", "replace").strip()
    os.close(fd)
    raise InUse(busy.format(holder=f" (pid {holder})" if holder.isdigit() else ""))


def _share_lock(path: Path, busy: str) -> int | None:
    """A shared flock on the existing lock file at `path` (opened read-only, without following a
    link): None when there is none, as none can be made on a folder that cannot be written; InUse
    `busy` when a writer holds it (through another mount of the same folder)."""
    try:
        fd = open_lock_file(path, create=False)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        _busy(fd, busy)
    except OSError:  # no locks on this mount (NFS without its lock service): read without one
        os.close(fd)
        return None
    return fd


def _refuse_inside_a_store(path: Path) -> None:
    """BadInput, naming the enclosing store, when `path` (not a store itself) lies inside one: in a
    folder with the store marker above it, or in a collection's folder (`collections/NAME`, which
    holds its metadata or shard; the marker may be lost). A store made there would mix its files
    with the enclosing store's, and that store would see it as a damaged collection."""
    real = Path(os.path.abspath(path)).resolve()
    for folder in (real, *real.parents):
        inside = folder.parent.name == "collections" and any((folder / f).exists() for f in (CONFIG, BACKUP, SHARD))
        if folder != real and (folder / MARKER).is_file():
            store, what = folder, ""
        elif inside:
            store, what = folder.parent.parent, f" (in its collection '{folder.name}')"
        else:
            continue
        raise BadInput(
            f"the store path {path} is inside the store {store}{what}: a store cannot lie inside another; "
            f"pass --qdrant-path {store} (with --collection for another collection of it), or a folder outside it"
        )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically (safe_io.write_atomic: a crash leaves the old file or the new one, and a link
    planted at the path or at a temp name is replaced, never written through); a full disk is one line."""
    try:
        write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False))
    except OSError as e:
        raise BadInput(f"cannot write {path}: {e.strerror or e}; the file as it was is kept") from None
