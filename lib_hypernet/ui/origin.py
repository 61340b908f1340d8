"""Same-origin checks for the pages and routes that write files.

A browser lets any web page send requests to ``http://127.0.0.1:7860``: a form or a ``fetch`` POST
without preflight, and WebSocket handshakes, which CORS does not cover at all. Browsers mark each such
request with an ``Origin`` header they do not let the page forge, and put the name the page used in
``Host``. So a request is the panel's own when

- its ``Host`` names this machine: ``localhost``, ``127.0.0.1``, ``[::1]``, the ``--host`` the panel
  was started with, or the IP address the connection arrived at (a page on a DNS-rebound name of its
  own sends that name, and is refused), and
- its ``Origin``, when present, is the same ``scheme://host:port`` as the request itself (what a
  browser sends for the page's own requests). Clients that send no ``Origin`` (curl, scripts, gradio's
  own queue calls) are not browsers acting for another site.

This module uses the standard library only (the ASGI middleware needs no starlette), so the webui's
routes (:mod:`lib_hypernet.webui.routes`) share the parsing.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
# Characters a Host header or an origin's authority never holds; "user@host" would otherwise parse.
_BAD_AUTHORITY = frozenset("@/\\?# \t")


def split_authority(authority: str, scheme: str) -> tuple[str, int] | None:
    """``host[:port]`` → ``(hostname, port)`` (lowercase, IPv6 without brackets); ``None`` when malformed."""
    if not authority or _BAD_AUTHORITY & set(authority) or scheme not in DEFAULT_PORTS:
        return None
    try:
        parts = urlsplit(f"//{authority}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), DEFAULT_PORTS[scheme] if port is None else port


def split_origin(origin: str) -> tuple[str, str, int] | None:
    """An ``Origin`` header → ``(scheme, hostname, port)``; ``None`` for ``null`` and anything not an http(s) origin."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or parts.path or parts.query or parts.fragment:
        return None
    authority = split_authority(parts.netloc, scheme)
    return None if authority is None else (scheme, *authority)


def same_origin(origin: str, host: str, request_scheme: str) -> bool:
    """Whether ``origin`` is the origin of a request to ``host`` over ``request_scheme`` (http, https, ws, wss)."""
    parsed = split_origin(origin)
    own = split_authority(host, request_scheme)
    if parsed is None or own is None:
        return False
    page_scheme = "https" if request_scheme in ("https", "wss") else "http"
    return parsed == (page_scheme, *own)


def _is_ip(name: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(name) == ipaddress.ip_address(address)
    except ValueError:
        return False


def normalize_host(host: str) -> str:
    """A ``--host`` value as :func:`split_authority` spells hostnames (lowercase, no IPv6 brackets)."""
    return host.strip().strip("[]").lower()


class SameOriginGuard:
    """ASGI middleware: refuse (HTTP 403, or a WebSocket closed before it opens) requests not from the page itself.

    ``hosts``: extra names the panel may be reached by (the ``--host`` it listens on; a wildcard such
    as ``0.0.0.0`` adds nothing: the address each connection arrived at is allowed anyway).

    With gradio's login on (``launch(auth=…)``), a WebSocket handshake must also carry a session
    cookie gradio issued: gradio 3.41's ``/queue/join`` accepts any cookie value at all.
    """

    def __init__(self, app: ASGIApp, hosts: Iterable[str] = ()) -> None:
        self.app = app
        extra = {normalize_host(h) for h in hosts}
        self.hosts = frozenset(LOOPBACK_NAMES | (extra - WILDCARD_HOSTS))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reason = self.refusal(scope)
        if reason is None and scope["type"] == "websocket":
            reason = login_refusal(scope)
        if reason is None:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        log.warning("hypernetworks: refused %s %s (Host %r, Origin %r): %s", scope.get("method", "WebSocket"),
                    scope.get("path", ""), headers.get("host", "")[:100], headers.get("origin", "")[:100], reason)
        if scope["type"] == "websocket":
            await receive()  # the "websocket.connect" message; closing before accepting answers the handshake 403
            await send({"type": "websocket.close", "code": 1008})
            return
        body = f"Forbidden: {reason}\n".encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def host_allowed(self, hostname: str, scope: Scope) -> bool:
        if hostname in self.hosts:
            return True
        server = scope.get("server") or (None,)
        # Reached by the IP address of the interface (--host 0.0.0.0 from another machine): a literal
        # address, never a name, so no page can rebind its own name onto it.
        return isinstance(server[0], str) and _is_ip(hostname, server[0])

    def refusal(self, scope: Scope) -> str | None:
        """Why the request is refused, or ``None``."""
        headers = _headers(scope)
        scheme = str(scope.get("scheme") or ("ws" if scope["type"] == "websocket" else "http"))
        host = split_authority(headers.get("host", ""), scheme)
        if host is None or not self.host_allowed(host[0], scope):
            return "the Host is not a name of this panel (start it with --host NAME to be reached by that name)"
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, headers["host"], scheme):
            return "a request from another web page (its Origin is not this panel's)"
        return None


def login_refusal(scope: Scope) -> str | None:
    """With gradio's login on, a WebSocket handshake without a valid session cookie is refused."""
    app = scope.get("app")
    if getattr(app, "auth", None) is None:
        return None
    cookies = parse_cookies(_headers(scope).get("cookie", ""))
    token = cookies.get("access-token") or cookies.get("access-token-unsecure")
    tokens = getattr(app, "tokens", None) or {}
    if token and token in tokens:
        return None
    return "not logged in"


def parse_cookies(header: str) -> dict[str, str]:
    """``a=1; b=2`` → ``{"a": "1", "b": "2"}`` (lenient, like the browsers' and starlette's parsers)."""
    cookies: dict[str, str] = {}
    for chunk in header.split(";"):
        name, sep, value = chunk.partition("=")
        if sep and name.strip():
            cookies[name.strip()] = value.strip().strip('"')
    return cookies


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lowercase name (first value); a ``Host`` or ``Origin`` sent twice becomes ``""``.

    ``""`` is neither a valid host nor a valid origin, so a request whose copies might be read
    differently by another layer is refused.
    """
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or ():
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name in headers and name in ("host", "origin"):
            headers[name] = ""
        headers.setdefault(name, value)
    return headers
