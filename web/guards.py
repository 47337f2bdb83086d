"""What stands between the network and the routes: the Host check, the body limit, one-line errors.

Both guards are plain ASGI middleware (not Starlette's BaseHTTPMiddleware) because they must act
before and while the body is read:

- HostCheck: a page on another site can point its own name at 127.0.0.1 (DNS rebinding) and then
  read this API as same-origin; it cannot make the browser send `Host: localhost`. So requests
  naming any host but the ones the server was started for get a 400.
- SameOrigin: any site's page can make a browser send a plain form POST (an upload to embed: CPU
  for free) or load an API URL as an image. Requests to the API that the browser marks as coming
  from another site (Sec-Fetch-Site, sent by every current browser) or whose Origin is not this
  server are answered 403 before any work. Tools that send neither (curl, scripts) are answered.
- BodyLimit: Content-Length can be absent (`Transfer-Encoding: chunked`), so the body is counted
  as it arrives and the request is answered 413 at the limit, before the rest is read or spooled.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
MAX_ECHO = 300  # characters of a message sent back: an error never echoes a huge input whole


def one_line(status: int, message: str) -> JSONResponse:
    text = " ".join(str(message).split())
    if len(text) > MAX_ECHO:
        text = text[: MAX_ECHO - 1] + "…"
    return JSONResponse({"detail": text}, status_code=status)


def host_name(header: str) -> str:
    """The name in a Host header, without the port: "[::1]:8000" -> "::1", "Localhost." -> "localhost"."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0].rstrip(".") if header.count(":") == 1 else header.rstrip(".")


class HostCheck:
    def __init__(self, app, allowed: tuple[str, ...] = LOCAL_HOSTS):
        self.app = app
        self.allowed = {host_name(h) for h in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            hosts = [value for key, value in scope.get("headers") or [] if key == b"host"]
            name = host_name(hosts[0].decode("latin-1")) if len(hosts) == 1 else ""  # two Host headers: which one a proxy reads is unknown
            if name not in self.allowed:
                shown = name[:80] or "none"
                await one_line(400, f"this server answers requests for {', '.join(sorted(self.allowed))}, not host {shown!r}")(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


class SameOrigin:
    """403 for an API request another site's page made the browser send (see the module's docstring).
    Navigations to the page itself stay allowed (a link to it from anywhere)."""

    def __init__(self, app, prefix: str = "/api/"):
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("path", "").startswith(self.prefix):
            reason = cross_site(dict(scope.get("headers") or []))
            if reason:
                await one_line(403, f"refused: {reason}; this server answers its own page and local tools only")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def cross_site(headers: dict[bytes, bytes]) -> str:
    """Why a request comes from another site's page ("" if it does not, or cannot be told)."""
    fetch_site = headers.get(b"sec-fetch-site", b"").decode("latin-1").strip().lower()
    if fetch_site in ("cross-site", "same-site"):  # same-site: another port or subdomain, another origin all the same
        return f"the browser says this request comes from another site (Sec-Fetch-Site: {fetch_site})"
    origin = headers.get(b"origin")
    if origin is None:
        return ""
    text = origin.decode("latin-1").strip().lower()
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    if text.split("://", 1)[-1].rstrip("/") != host:
        return f"the request comes from origin {text[:80]!r}, not this server"
    return ""


class _TooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > self.limit:  # refused unread
            await self._refuse(scope, receive, send, int(length))
            return
        seen, started, exceeded = 0, False, False

        async def counted():
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    raise _TooLarge()
            return message

        async def guarded_send(message):
            nonlocal started
            if exceeded:
                return  # the app's answer to a body cut short is replaced by the 413 below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded_send)
        except _TooLarge:
            pass
        if exceeded and not started:
            await self._refuse(scope, receive, send, seen)

    async def _refuse(self, scope, receive, send, size: int) -> None:
        mb = self.limit // (1024 * 1024)
        response = one_line(413, f"request body of {size / 1e6:.1f} MB or more is over the {mb} MB limit for uploads")
        response.headers["Connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)
