"""Where the store is, from options and environment, and the engine that opens it: Qdrant Edge in a
folder by default, or qdrant-client for a server by URL."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput, command

DEFAULT_PATH = "qdrant_data"


@dataclass(frozen=True)
class StoreLocation:
    """Where the store is: `url` (a server or cluster) or `path` (the embedded store)."""

    path: Path = Path(DEFAULT_PATH)
    url: str | None = None
    api_key: str | None = None
    timeout: float = 30.0
    prefer_grpc: bool = False  # gRPC (port 6334) is faster for bulk uploads to a server

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))  # accept a str from notebooks

    @property
    def is_local(self) -> bool:
        return not self.url

    def describe(self) -> str:
        return self.url if self.url else f"local store {self.path}"


def is_local_mode_folder(path: Path) -> bool:
    """A folder made by an earlier poster search with qdrant-client's local mode."""
    from .edge import MARKER

    return (path / "meta.json").is_file() and not (path / MARKER).is_file()


def open_engine(location: StoreLocation, must_exist: bool = False):
    """The engine for a location, or a one-line BadInput saying why there is none.

    A folder is Qdrant Edge (the default), unless an earlier version made it in qdrant-client's
    local mode: that keeps working, through qdrant-client, with a note on how to convert it.
    """
    if location.url:
        from .server import ServerEngine

        return ServerEngine(url=location.url, api_key=location.api_key, timeout=location.timeout, grpc=location.prefer_grpc)
    path = location.path
    if path.exists() and not path.is_dir():
        raise BadInput(f"store path {path} is a file, not a folder")
    if is_local_mode_folder(path):
        import sys

        from .server import ServerEngine

        print(
            f"Note: {path} was made by an earlier version (qdrant-client local mode: slow to open and to filter). "
            f"Convert it once, without re-embedding: {command(f'migrate --qdrant-path {path} --to-path NEW_FOLDER')}",
            file=sys.stderr,
        )
        return ServerEngine(path=path)
    from .edge import EdgeEngine

    return EdgeEngine(path, must_exist=must_exist)


def location_from_options(
    path: str | None, url: str | None, api_key: str | None, timeout: float | None = None, grpc: bool | None = None
) -> StoreLocation:
    """The store named by options, else by QDRANT_PATH / QDRANT_URL (and QDRANT_API_KEY,
    QDRANT_TIMEOUT, QDRANT_GRPC). An option beats the environment; a path and a URL together
    are a conflict, not a silent choice."""
    env_path, env_url = os.environ.get("QDRANT_PATH") or None, os.environ.get("QDRANT_URL") or None
    if path and url:
        raise BadInput("--qdrant-path (an embedded store) and --qdrant-url (a server) both given: choose one")
    if not (path or url) and env_path and env_url:
        raise BadInput("QDRANT_PATH and QDRANT_URL are both set: unset one, or choose with --qdrant-path / --qdrant-url")
    url = None if path else url or env_url
    if url:
        check_url(url)
    env_timeout = os.environ.get("QDRANT_TIMEOUT")
    try:
        timeout = float(timeout if timeout is not None else env_timeout or 30.0)
    except ValueError:
        raise BadInput(f"QDRANT_TIMEOUT must be a number of seconds, not {env_timeout!r}") from None
    if not timeout > 0:
        raise BadInput(f"the Qdrant timeout must be positive, not {timeout}")
    if grpc and not url:
        raise BadInput("--grpc needs a Qdrant server (--qdrant-url); the embedded store has no network protocol")
    if grpc is None:  # from the environment: only meaningful for a server
        grpc = bool(url) and os.environ.get("QDRANT_GRPC", "").lower() in ("1", "true", "yes")
    return StoreLocation(
        path=Path(path or env_path or DEFAULT_PATH),
        url=url,
        api_key=api_key or os.environ.get("QDRANT_API_KEY") or None,
        timeout=timeout,
        prefer_grpc=grpc,
    )


def check_url(url: str) -> None:
    """A URL Qdrant's clients can use: http(s), a host, an optional numeric port."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as e:
        raise BadInput(f"malformed Qdrant URL {url!r}: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise BadInput(f"malformed Qdrant URL {url!r}: it must start with http:// or https://")
    if not parts.hostname:
        raise BadInput(f"malformed Qdrant URL {url!r}: expected http://HOST[:PORT] or https://HOST[:PORT]")
