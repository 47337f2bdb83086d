"""Run the page with uvicorn over one open store, for the life of the server."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

from errors import UserError
from store.collection import PosterStore

LOCAL_HOSTS = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    store: PosterStore,
    host: str = "127.0.0.1",
    port: int = 8000,
    weights: str | None = None,
    model_dir: Path | None = None,
    era_sample: int = 1000,
) -> None:
    """Serve the page and the API until Ctrl-C. The store stays open; models load on first use."""
    import uvicorn

    from web.app import create_app
    from web.service import PosterService

    store.stored_spec()  # a store without a poster collection is one line now, not a page of errors
    if not is_loopback(host):
        print(
            f"Warning: serving on {host}: anyone who can reach this machine on port {port} can search the store "
            "and see its posters (there is no login). Use 127.0.0.1 unless that is what you want.",
            file=sys.stderr,
        )
    app = create_app(PosterService(store, weights=weights, model_dir=model_dir, era_sample=era_sample))
    print(f"poster search: http://{host if ':' not in host else f'[{host}]'}:{port}/  (API docs: /docs; Ctrl-C stops)", file=sys.stderr)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    except SystemExit as e:  # uvicorn exits when it cannot bind
        raise UserError(f"cannot serve on {host}:{port} (port in use, or not an address of this machine)") from e
