"""Run the page with uvicorn over one open store, for the life of the server."""

from __future__ import annotations

import ipaddress
import socket
import sys

from .. import defaults
from ..api import Posters
from ..errors import BadInput, Damaged
from ..store.schema import VECTOR_NAME
from .guards import LOCAL_HOSTS


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the store is opened: a busy port is one line, at once."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listener = socket.socket(family, kind, proto)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError as e:
        raise BadInput(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
    listener.listen(128)
    return listener


def allowed_hosts(host: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The Host header names the server answers: the loopback names, the address it listens on and
    `extra` (--allowed-host). Listening on every address (0.0.0.0, ::) adds this machine's name."""
    names = [*LOCAL_HOSTS, *extra]
    if host in ("0.0.0.0", "::", ""):
        names += [socket.gethostname(), socket.getfqdn()]
    else:
        names.append(host)
    return tuple(dict.fromkeys(n for n in names if n))


def serve(posters: Posters, listener: socket.socket, era_sample: int = defaults.ERA_SAMPLE, extra_hosts: tuple[str, ...] = ()) -> None:
    """Serve the page and the API on `listener` until Ctrl-C. The store stays open; models load on first use."""
    import uvicorn

    from .app import create_app

    try:
        posters.check_vector(VECTOR_NAME)  # a store without a poster collection is one line now
    except Damaged as damage:
        healthy = posters.collections()
        if not healthy:
            raise
        # the others still answer (the page lists them; this one answers 503 with the same line)
        print(f"Warning: {str(damage).rstrip('.')}. Serving the store's other collections: {', '.join(healthy)}.", file=sys.stderr)
    for name in posters.collections():  # a store of an earlier schema: browsing by title or date at once
        if given := posters.using(name).add_sort_keys():
            print(f"Note: collection '{name}': {given} posters given the sort keys the page browses by (schema 4)", file=sys.stderr)
    host, port = listener.getsockname()[:2]
    if not is_loopback(host):
        print(
            f"Warning: serving on {host}: anyone who can reach this machine on port {port} can search the store "
            "and download its posters (there is no login). Use 127.0.0.1 unless that is what you want.",
            file=sys.stderr,
        )
    app = create_app(posters, allowed_hosts(host, extra_hosts), era_sample)
    print(f"poster search: http://{host if ':' not in host else f'[{host}]'}:{port}/  (Ctrl-C stops)", file=sys.stderr)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then passes Ctrl-C on: the normal way to stop
        pass
    print("poster search: stopped", file=sys.stderr)
