"""Who may talk to the daemon: checked on every request before any handler runs.

A web page the user visits can reach a loopback server too: a cross-site ``POST`` with a
``text/plain`` or form body is sent without a CORS preflight, and a DNS-rebinding page reaches
127.0.0.1 under its own name in ``Host``. So, in this order:

1. headers larger than a sane limit: 431;
2. ``Host`` must name the daemon as it is really reached (loopback names and addresses with its
   port, the configured host, ``allowed_hosts``): 400 when malformed, 403 otherwise;
3. an ``Origin`` (or a browser's ``Sec-Fetch-Site: cross-site``) must be the daemon's own origin or
   listed in ``allowed_origins``: 403 otherwise; listed origins get CORS headers and preflights;
4. with an ``api_key``, ``Authorization: Bearer <key>`` on everything but ``/health``: 401;
5. a request body must be ``application/json``: 415.

Pure ASGI, so a refused request never reaches FastAPI's body parsing or a handler.
"""

from __future__ import annotations

import fnmatch
import hmac
import ipaddress
import json
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
OPEN_PATHS = {"/health"}  # answered without an API key (liveness checks, `clagent status`)
MAX_HEADER_BYTES = 8 * 1024  # one header
MAX_HEADERS_BYTES = 32 * 1024  # all of them
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CORS_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
CORS_EXPOSE = "X-Clagent-Conversation, X-Clagent-Memories-Used, X-Clagent-Version"


def split_list(value: str | list | tuple | None) -> list[str]:
    """A comma-separated setting (or a TOML list) as a list of non-empty, stripped items."""
    if not value:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return [str(i).strip() for i in items if str(i).strip()]


def is_loopback_host(host: str) -> bool:
    """Whether listening on ``host`` keeps the daemon on this machine."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    if name in WILDCARD_HOSTS:
        return False
    try:
        infos = socket.getaddrinfo(name, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def parse_host(value: str) -> tuple[str, int | None] | None:
    """``name[:port]`` or ``[v6]:port`` as (lowercase name, port); None when malformed."""
    value = value.strip()
    if not value or len(value) > 300 or any(c.isspace() or c in "/\\@?#" for c in value):
        return None
    try:
        parts = urlsplit(f"//{value}")
        name, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not name or (port is not None and not 0 < port < 65536):
        return None
    if ":" in name:  # an IPv6 literal must have been bracketed and must parse
        try:
            ipaddress.IPv6Address(name.split("%")[0])
        except ValueError:
            return None
    return name.lower().rstrip("."), port


def _ip(name: str):
    try:
        return ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return None


@dataclass
class Policy:
    """What the guard accepts; built from the settings and the port actually bound."""
    host: str  # the configured listening host
    port: int
    api_key: str = ""
    allowed_hosts: list[str] = field(default_factory=list)
    allowed_origins: list[str] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings, port: int) -> "Policy":
        return cls(host=settings.host, port=port, api_key=settings.api_key or "",
                   allowed_hosts=split_list(settings.allowed_hosts),
                   allowed_origins=split_list(settings.allowed_origins))

    def __post_init__(self):
        self.public = not is_loopback_host(self.host)  # listening beyond this machine
        self._host_name = self.host.strip().strip("[]").lower()

    # -- Host ------------------------------------------------------------------------------------
    def host_allowed(self, name: str, port: int | None) -> bool:
        for entry in self.allowed_hosts:
            if entry == "*":
                return True
            parsed = parse_host(entry)
            if parsed and parsed[0] == name and (parsed[1] is None or parsed[1] == port):
                return True
        if port is None:
            port = 80
        if port != self.port:
            return False
        if name in LOOPBACK_NAMES or name.endswith(".localhost") or name == self._host_name:
            return True
        ip = _ip(name)
        if ip is not None:
            # An address cannot be rebound: loopback ones always work, and the machine's other
            # addresses do when the daemon listens beyond loopback.
            return ip.is_loopback or self.public
        return self.public and name in self._own_names()

    def _own_names(self) -> set[str]:
        """This machine's names on the LAN (looked up once: getfqdn may ask DNS)."""
        if not hasattr(self, "_names"):
            own = socket.gethostname().lower()
            self._names = {own, f"{own}.local", socket.getfqdn().lower()}
        return self._names

    # -- Origin ----------------------------------------------------------------------------------
    def origin_listed(self, origin: str) -> bool:
        origin = origin.rstrip("/").lower()
        return any(entry == "*" or fnmatch.fnmatchcase(origin, entry.rstrip("/").lower())
                   for entry in self.allowed_origins)

    def key_ok(self, header: str | None) -> bool:
        if not self.api_key:
            return True
        if not header:
            return False
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode(), self.api_key.encode())


def _same_origin(origin: str, host_header: str) -> bool:
    """The page's origin is the daemon itself as the request reached it (a proxy may add TLS)."""
    try:
        parts = urlsplit(origin)
        default = {"http": 80, "https": 443}.get(parts.scheme)
        if default is None or not parts.hostname:
            return False
        o_name, o_port = parts.hostname.lower(), parts.port or default
    except ValueError:
        return False
    h = parse_host(host_header)
    if h is None:
        return False
    return o_name == h[0] and o_port == (h[1] or default)


def _valid_origin(origin: str) -> bool:
    if origin == "null":
        return True
    try:
        parts = urlsplit(origin)
        port_ok = parts.port is None or 0 < parts.port < 65536
        return (parts.scheme in ("http", "https") and bool(parts.hostname) and parts.path in ("", "/")
                and not parts.query and not parts.username and port_ok)
    except ValueError:
        return False


class Guard:
    """ASGI middleware applying a :class:`Policy` to every HTTP request."""

    def __init__(self, app, policy: Policy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refused = self.check(scope)
        if refused is not None:
            status, message, code, extra = refused
            return await _error(send, status, message, code, extra)
        origin = _header(scope, b"origin")
        if origin and self.policy.origin_listed(origin):  # opted in: CORS headers on the answer
            send = _with_cors(send, origin)
        await self.app(scope, receive, send)

    def check(self, scope) -> tuple | None:
        """None to let the request through, else (status, message, code, extra headers)."""
        p = self.policy
        total = 0
        for name, value in scope.get("headers", []):
            total += len(name) + len(value)
            if len(value) > MAX_HEADER_BYTES or total > MAX_HEADERS_BYTES:
                return (431, f"request headers are too large (at most {MAX_HEADER_BYTES} bytes each and "
                             f"{MAX_HEADERS_BYTES} in all)", "headers_too_large", [])
        hosts = _all(scope, b"host")
        if len(hosts) != 1:
            return 400, "the request needs exactly one Host header", "invalid_host", []
        host = _decode(hosts[0])
        parsed = parse_host(host) if host is not None else None
        if parsed is None:
            return 400, f"malformed Host header {_show(hosts[0])}", "invalid_host", []
        if not p.host_allowed(*parsed):
            return (403, f"Host {_show(hosts[0])} is not allowed: this daemon answers to the names it listens on "
                         f"(add others to the allowed_hosts setting)", "host_not_allowed", [])

        method = scope["method"]
        origins = _all(scope, b"origin")
        origin = _decode(origins[0]) if len(origins) == 1 else None
        if len(origins) > 1 or (origins and (origin is None or not _valid_origin(origin))):
            return 400, "malformed Origin header", "invalid_origin", []
        listed = bool(origin) and p.origin_listed(origin)
        if origin and not listed and not _same_origin(origin, host):
            return (403, f"Origin {origin!r} is not allowed: web pages may call this daemon only from origins "
                         f"listed in the allowed_origins setting", "origin_not_allowed", [])
        fetch_site = (_decode(_header_raw(scope, b"sec-fetch-site")) or "").lower()
        if not origin and fetch_site in ("cross-site", "same-site") and "*" not in p.allowed_origins:
            return (403, "cross-site requests from web pages are not allowed (allowed_origins)",
                    "origin_not_allowed", [])
        if method == "OPTIONS" and origin and _header(scope, b"access-control-request-method"):
            if not listed:  # our own origin never needs a preflight
                return 403, f"Origin {origin!r} is not allowed (allowed_origins)", "origin_not_allowed", []
            requested = _header(scope, b"access-control-request-headers") or ""
            headers = [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin"),
                       (b"access-control-allow-methods", CORS_METHODS.encode()), (b"access-control-max-age", b"600")]
            if requested:
                headers.append((b"access-control-allow-headers", requested.encode("latin-1")))
            return 204, "", None, headers

        if scope["path"] not in OPEN_PATHS and not p.key_ok(_header(scope, b"authorization")):
            given = _header(scope, b"authorization")
            message = ("Incorrect API key provided." if given else
                       "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' (the api_key "
                       "setting of the daemon; clagent's commands read it from the home or CLAGENT_API_KEY).")
            return 401, message, "invalid_api_key", [(b"www-authenticate", b'Bearer realm="clagent"')]

        if method in BODY_METHODS and _has_body(scope):
            ctype = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
            if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
                shown = f"{ctype!r}" if ctype else "none"
                return (415, f"request bodies must be JSON (Content-Type: application/json), got {shown}",
                        "unsupported_media_type", [])
        return None


def _all(scope, name: bytes) -> list[bytes]:
    return [v for k, v in scope.get("headers", []) if k.lower() == name]


def _header_raw(scope, name: bytes) -> bytes | None:
    found = _all(scope, name)
    return found[0] if found else None


def _decode(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return None


def _header(scope, name: bytes) -> str | None:
    return _decode(_header_raw(scope, name))


def _show(raw: bytes) -> str:
    return repr(raw.decode("latin-1")[:100])


def _has_body(scope) -> bool:
    length = _header(scope, b"content-length")
    if _header(scope, b"transfer-encoding"):
        return True
    try:
        return length is not None and int(length) > 0
    except ValueError:
        return True


def _with_cors(send, origin: str):
    async def wrapped(message):
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if not k.lower().startswith(b"access-control-")]
            headers += [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin"),
                        (b"access-control-expose-headers", CORS_EXPOSE.encode())]
            message = {**message, "headers": headers}
        await send(message)
    return wrapped


_TYPES = {401: "invalid_request_error", 403: "permission_error", 415: "invalid_request_error",
          431: "invalid_request_error", 400: "invalid_request_error"}


async def _error(send, status: int, message: str, code: str | None, extra: list) -> None:
    if status == 204:
        body = b""
        headers = extra
    else:
        body = json.dumps({"error": {"message": message, "type": _TYPES.get(status, "invalid_request_error"),
                                     "param": None, "code": code}}).encode()
        headers = [(b"content-type", b"application/json"), *extra]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
