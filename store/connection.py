"""Open a Qdrant client: embedded local mode in a folder by default, or a server by URL."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from errors import UserError

DEFAULT_PATH = "qdrant_data"


@dataclass(frozen=True)
class StoreLocation:
    """Where the store is: `url` (server or cluster) wins over `path` (embedded local mode)."""

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


def open_client(location: StoreLocation, must_exist: bool = False):
    """A connected QdrantClient, or a one-line UserError saying why there is none."""
    from qdrant_client import QdrantClient

    if location.is_local:
        path = location.path
        if path.exists() and not path.is_dir():
            raise UserError(f"store path {path} is a file, not a folder")
        if must_exist and not path.is_dir():
            raise UserError(f"no store at {path}: run `python cli.py ingest` first, or pass --qdrant-path / --qdrant-url")
        try:
            return QdrantClient(path=str(path))
        except RuntimeError as e:
            if "already accessed" in str(e):
                raise UserError(
                    f"the store {path} is in use by another process (the embedded store allows one at a time); "
                    "wait for it to finish, or use a Qdrant server (--qdrant-url)"
                ) from None
            raise
        except PermissionError as e:
            raise UserError(f"cannot open store {path}: {e.strerror}") from None
    # check_compatibility would print its own warning for an unreachable server; the pinned
    # versions (requirements.txt, docker-compose.yml) are what keeps client and server in step.
    client = QdrantClient(
        url=location.url,
        api_key=location.api_key,
        timeout=int(location.timeout),
        prefer_grpc=location.prefer_grpc,
        check_compatibility=False,
    )
    try:
        client.get_collections()  # the client connects lazily: fail here, clearly, not mid-ingest
    except Exception as e:
        client.close()
        raise UserError(f"cannot reach Qdrant at {location.url}: {_reason(e)}") from None
    return client


def _reason(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    if status in (401, 403):
        return f"HTTP {status}, check QDRANT_API_KEY"
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def location_from_options(
    path: str | None, url: str | None, api_key: str | None, timeout: float | None = None, grpc: bool | None = None
) -> StoreLocation:
    """Options win over environment variables (QDRANT_PATH, QDRANT_URL, QDRANT_API_KEY, QDRANT_TIMEOUT, QDRANT_GRPC)."""
    env_timeout = os.environ.get("QDRANT_TIMEOUT")
    try:
        timeout = float(timeout if timeout is not None else env_timeout or 30.0)
    except ValueError:
        raise UserError(f"QDRANT_TIMEOUT must be a number of seconds, not {env_timeout!r}") from None
    if timeout <= 0:
        raise UserError(f"the Qdrant timeout must be positive, not {timeout}")
    url = url or os.environ.get("QDRANT_URL") or None
    if url and not url.startswith(("http://", "https://")):
        raise UserError(f"--qdrant-url must start with http:// or https://, not {url!r}")
    grpc = grpc if grpc is not None else os.environ.get("QDRANT_GRPC", "").lower() in ("1", "true", "yes")
    if grpc and not url:
        raise UserError("--grpc needs a Qdrant server (--qdrant-url); the embedded store has no network protocol")
    return StoreLocation(
        path=Path(path or os.environ.get("QDRANT_PATH") or DEFAULT_PATH),
        url=url,
        api_key=api_key or os.environ.get("QDRANT_API_KEY") or None,
        timeout=timeout,
        prefer_grpc=grpc,
    )
