"""A route's security options (PROTOCOL.md 1.3): what the gateway enforces before a
request reaches the worker — a verified bearer token (``auth``, ``roles``,
``scopes``), a rate limit, CORS, security headers and compression.

The SDK checks here what it cheaply can, at decoration time, with a message naming the
route; the gateway checks every value again when it registers the route (and refuses
the worker's manifest, naming the route and the option, if one is bad). Nothing here
runs per request: the options travel in the manifest only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypedDict

__all__ = [
    "CORS",
    "NO_SECURITY",
    "RouteSecurity",
    "SecurityOptions",
    "route_security",
    "cors_option",
    "security_headers_option",
]

#: rate_limit: ``N/unit`` (N >= 1), or ``none`` (exempt from the gateway's default).
_RATE_RE: Final = re.compile(r"([0-9]{1,19})/(second|minute|hour|day|s|m|h|d)")
_UNIT_SECONDS: Final = {"second": 1, "s": 1, "minute": 60, "m": 60, "hour": 3600, "h": 3600, "day": 86400, "d": 86400}
#: The gateway's highest rate (gateway/ratelimit MaxRate): one request per microsecond.
MAX_RATE_PER_SECOND: Final = 1_000_000
_TOKEN_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: An origin for allow_origins: scheme://host[:port], the host may start with "*." (any
#: subdomain); no path, no trailing slash.
_ORIGIN_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(\*\.)?[A-Za-z0-9.\-\[\]:]+")
_FIELD_VALUE_BAD: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: Fields a security_headers map cannot set (gateway/secheaders): the gateway's framing.
_FRAMING: Final = frozenset({
    "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "host",
    "proxy-connection", "content-encoding", "content-range", "content-type",
})  # fmt: skip
_CORS_LISTS: Final = ("allow_origins", "allow_methods", "allow_headers", "expose_headers")
_CORS_KEYS: Final = (*_CORS_LISTS, "allow_credentials", "max_age")


def _str_list(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{what} must be a list of str, got {type(value).__name__}")
    out = tuple(value)
    for i, v in enumerate(out):
        if not isinstance(v, str):
            raise TypeError(f"{what}[{i}] must be a str, got {type(v).__name__}")
    return out


@dataclass(frozen=True, slots=True)
class CORS:
    """CORS settings for a route, or the app's default for every route
    (``Covet(cors=CORS(...))``); the gateway answers preflight requests and adds the
    response fields itself (docs/python-app.md, "Security").

    Settings given here replace the gateway's ``cors_*`` settings for the route as a
    whole. ``allow_origins`` (required): ``"*"``, exact origins
    (``"https://app.example.com"``) or a subdomain wildcard
    (``"https://*.example.com"``). ``allow_methods``, ``allow_headers`` and
    ``expose_headers`` are lists (empty: the gateway's defaults); ``allow_credentials``
    lets browsers send cookies (not with ``"*"`` origins, which the Fetch standard
    forbids); ``max_age`` (seconds) how long a browser may cache a preflight answer.
    """

    allow_origins: Iterable[str]
    allow_methods: Iterable[str] = ()
    allow_headers: Iterable[str] = ()
    expose_headers: Iterable[str] = ()
    allow_credentials: bool = False
    max_age: int | None = None

    def __post_init__(self) -> None:
        for name in _CORS_LISTS:
            object.__setattr__(self, name, _str_list(getattr(self, name), f"cors {name}"))
        origins: tuple[str, ...] = self.allow_origins  # type: ignore[assignment]
        if not origins:
            raise ValueError("cors allow_origins must name at least one origin (or \"*\")")
        for i, origin in enumerate(origins):
            if origin == "*":
                if len(origins) != 1:
                    raise ValueError(f"cors allow_origins[{i}] \"*\": must be the only origin")
            elif origin != "null" and not _ORIGIN_RE.fullmatch(origin):
                raise ValueError(
                    f"cors allow_origins[{i}] {origin!r}: must be \"*\", an origin such as "
                    "\"https://app.example.com\" (no path), \"https://*.example.com\" or \"null\""
                )
        for name in ("allow_methods", "allow_headers", "expose_headers"):
            for i, value in enumerate(getattr(self, name)):
                if not _TOKEN_RE.fullmatch(value):
                    raise ValueError(f"cors {name}[{i}] {value!r} is not an HTTP token")
        if not isinstance(self.allow_credentials, bool):
            raise TypeError(f"cors allow_credentials must be a bool, got {type(self.allow_credentials).__name__}")
        if self.allow_credentials and "*" in origins:
            raise ValueError(
                "cors allow_credentials cannot go with allow_origins \"*\" (the Fetch standard "
                "forbids it): list the origins"
            )
        if self.allow_credentials and "*" in self.expose_headers:
            raise ValueError(
                "cors allow_credentials cannot go with expose_headers \"*\" (browsers take it "
                "literally then): list the names"
            )
        age = self.max_age
        if age is not None and (isinstance(age, bool) or not isinstance(age, int) or age < 0):
            raise ValueError(f"cors max_age must be a whole number of seconds >= 0, got {age!r}")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> CORS:
        """A CORS from a mapping with the same keys (``{"allow_origins": [...]}``);
        ValueError names an unknown key."""
        for key in options:
            if key not in _CORS_KEYS:
                raise ValueError(f"cors: unknown key {key!r} (known: {', '.join(_CORS_KEYS)})")
        if "allow_origins" not in options:
            raise ValueError("cors allow_origins must name at least one origin (or \"*\")")
        return cls(**options)

    def to_option(self) -> dict[str, Any]:
        """The route option ``cors`` (PROTOCOL.md 1.3): a map with the settings given."""
        out: dict[str, Any] = {"allow_origins": list(self.allow_origins)}
        for name in ("allow_methods", "allow_headers", "expose_headers"):
            values = getattr(self, name)
            if values:
                out[name] = list(values)
        if self.allow_credentials:
            out["allow_credentials"] = True
        if self.max_age is not None:
            out["max_age"] = self.max_age
        return out


def cors_option(value: Any, what: str = "cors") -> Any:
    """A ``cors`` argument as the route option: None (inherit: the app's default, else the
    gateway's), False (off), or the map; True means inherit too."""
    if value is None or value is True:
        return None
    if value is False:
        return False
    try:
        if isinstance(value, CORS):
            return value.to_option()
        if isinstance(value, Mapping):
            return CORS.from_mapping(value).to_option()
    except (TypeError, ValueError) as e:
        raise type(e)(f"{what}: {e}") from None
    raise TypeError(f"{what} must be a bool, a covet.CORS or a mapping, got {type(value).__name__}")


def security_headers_option(value: Any, what: str = "security_headers") -> Any:
    """A ``security_headers`` argument as the route option: None (inherit), False (none),
    True (the gateway's set: an empty map), or a map of header name -> value (``""``
    removes one of the gateway's)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return {} if value else False
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a bool or a mapping of header name to str, got {type(value).__name__}")
    out: dict[str, str] = {}
    for name, header_value in value.items():
        if not isinstance(name, str) or not _TOKEN_RE.fullmatch(name):
            raise ValueError(f"{what}: header name {name!r} is not an HTTP token")
        if not isinstance(header_value, str):
            raise TypeError(f"{what}[{name!r}] must be a str (\"\" removes it), got {type(header_value).__name__}")
        if header_value != header_value.strip(" \t") or _FIELD_VALUE_BAD.search(header_value):
            raise ValueError(f"{what}[{name!r}]: {header_value!r} is not a valid header value")
        key = name.lower()
        if key in _FRAMING:
            raise ValueError(f"{what}: {name!r} is a framing field, not a security header")
        if key == "x-frame-options" and header_value and header_value.upper() not in ("DENY", "SAMEORIGIN"):
            raise ValueError(f"{what}[{name!r}]: {header_value!r}: want DENY or SAMEORIGIN (or \"\" to remove it)")
        if key in out:
            raise ValueError(f"{what}: header {name!r} given twice")
        out[key] = header_value
    return out


@dataclass(frozen=True, slots=True)
class RouteSecurity:
    """A route's own security options, checked. ``cors`` and ``security_headers`` are
    already in their option form; None there means the app's default applies (and, when
    the app has none, the gateway's)."""

    auth: bool = False
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    rate_limit: str | None = None
    rate_limit_key: str | None = None
    cors: Any = None
    security_headers: Any = None
    compress: bool | None = None

    def options(self, app_cors: Any = None, app_security_headers: Any = None) -> dict[str, Any]:
        """The route's security options for its manifest entry, the app's defaults filled
        in where the route set none; keys absent when not set."""
        out: dict[str, Any] = {}
        if self.auth:
            out["auth"] = True
        if self.roles:
            out["roles"] = list(self.roles)
        if self.scopes:
            out["scopes"] = list(self.scopes)
        if self.rate_limit is not None:
            out["rate_limit"] = self.rate_limit
        if self.rate_limit_key is not None:
            out["rate_limit_key"] = self.rate_limit_key
        cors = self.cors if self.cors is not None else app_cors
        if cors is not None:
            out["cors"] = cors
        headers = self.security_headers if self.security_headers is not None else app_security_headers
        if headers is not None:
            out["security_headers"] = headers
        if self.compress is not None:
            out["compress"] = self.compress
        return out


NO_SECURITY: Final = RouteSecurity()


class SecurityOptions(TypedDict, total=False):
    """The security keywords every route decorator takes (``auth=True, roles=[...]``);
    :meth:`covet.Covet.route` documents them."""

    auth: bool
    roles: Sequence[str]
    scopes: Sequence[str]
    rate_limit: str | None
    rate_limit_key: str | None
    cors: bool | Mapping[str, Any] | CORS | None
    security_headers: bool | Mapping[str, str] | None
    compress: bool | None


def route_security(
    where: str,
    *,
    auth: bool = False,
    roles: Iterable[str] = (),
    scopes: Iterable[str] = (),
    rate_limit: str | None = None,
    rate_limit_key: str | None = None,
    cors: Any = None,
    security_headers: Any = None,
    compress: bool | None = None,
) -> RouteSecurity:
    """Check a route decorator's security arguments; errors start with ``where`` (e.g.
    ``route GET '/admin'``)."""
    try:
        if not isinstance(auth, bool):
            raise TypeError(f"auth must be a bool, got {type(auth).__name__}")
        role_list = _str_list(roles, "roles")
        scope_list = _str_list(scopes, "scopes")
        for what, values in (("roles", role_list), ("scopes", scope_list)):
            for v in values:
                if not v:
                    raise ValueError(f"{what} must not hold an empty name")
            if values and not auth:
                raise ValueError(f"{what} need auth=True (a token must be verified to carry {what})")
        if rate_limit is not None:
            if not isinstance(rate_limit, str):
                raise TypeError(f"rate_limit must be a str such as \"5/minute\", got {type(rate_limit).__name__}")
            rate = _RATE_RE.fullmatch(rate_limit)
            if rate_limit != "none" and (rate is None or int(rate[1]) < 1):
                raise ValueError(
                    f"rate_limit {rate_limit!r}: want N/unit with N >= 1 and unit one of second, minute, "
                    "hour, day (or s, m, h, d), e.g. \"5/minute\", or \"none\""
                )
            if rate is not None and int(rate[1]) > MAX_RATE_PER_SECOND * _UNIT_SECONDS[rate[2]]:
                raise ValueError(f"rate_limit {rate_limit!r}: at most {MAX_RATE_PER_SECOND} per second")
        if rate_limit_key is not None:
            if not isinstance(rate_limit_key, str):
                raise TypeError(f"rate_limit_key must be a str, got {type(rate_limit_key).__name__}")
            kind, colon, header = rate_limit_key.partition(":")
            if colon and kind == "header":
                if not _TOKEN_RE.fullmatch(header):
                    raise ValueError(f"rate_limit_key {rate_limit_key!r}: {header!r} is not a header name")
            elif rate_limit_key not in ("ip", "subject"):
                raise ValueError(
                    f"rate_limit_key {rate_limit_key!r}: want \"ip\", \"subject\" or \"header:<Name>\""
                )
        if compress is not None and not isinstance(compress, bool):
            raise TypeError(f"compress must be a bool or None, got {type(compress).__name__}")
        cors_value = cors_option(cors)
        headers_value = security_headers_option(security_headers)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{where}: {e}") from None
    return RouteSecurity(auth, role_list, scope_list, rate_limit, rate_limit_key, cors_value, headers_value, compress)
