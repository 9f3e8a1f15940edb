"""Gateway routes: which upstream serves a request, and what the policy is told about it.

A route file (YAML) maps a host and a path prefix to an upstream (its URL and the SPIFFE ID it
must present), a resource (type and id), the data's classification and region, and which query
and body fields go into the decision context as ``args``. Paths are checked for ambiguity
before matching (see :mod:`warden.transport.path_guard`): the policy sees exactly the path the
upstream will serve. An unknown route is denied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import yaml

from warden import untrusted_json
from warden.errors import ConfigError, UntrustedInputError
from warden.identity.spiffe_id import SpiffeId
from warden.policy.model import Resource
from warden.transport.path_guard import path_problem

MAX_ARG_LENGTH = 4096


class AmbiguousRequest(UntrustedInputError):
    code = "ambiguous_request"
    public_message = "bad request"


@dataclass(frozen=True)
class McpResourceRule:
    """What the policy is told about MCP resources whose URI starts with ``prefix``."""

    prefix: str
    type: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class McpRoute:
    """What an MCP route adds: per-tool and per-prompt properties (merged over the route's),
    and resource rules by URI prefix (the first that matches wins)."""

    tools: dict[str, dict[str, Any]] = field(default_factory=dict)
    prompts: dict[str, dict[str, Any]] = field(default_factory=dict)
    resources: tuple[McpResourceRule, ...] = ()


@dataclass(frozen=True)
class Route:
    name: str
    host: str | None  # None: any host
    prefix: str
    upstream: str  # https://host:port
    upstream_id: str  # the SPIFFE ID the upstream must present
    resource_type: str
    resource_id: str
    properties: dict[str, Any] = field(default_factory=dict)
    query_args: tuple[str, ...] = ()
    body_args: tuple[str, ...] = ()
    credential_header: str | None = None  # injected towards the upstream, never from agents
    credential_value: str | None = None
    protocol: str = "http"  # http | mcp (an MCP endpoint: ``upstream`` is its full URL)
    mask: tuple[str, ...] = ()  # argument names the decision log never stores in clear
    mcp: McpRoute | None = None
    resource: Resource = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Built once: what the policy is told about every request on this route.
        object.__setattr__(
            self, "resource", Resource(self.resource_type, self.resource_id, self.properties)
        )

    def matches(self, host: str, path: str) -> bool:
        if self.host is not None and host.split(":", 1)[0].lower() != self.host:
            return False
        if self.mcp is not None:  # an MCP endpoint is one path, nothing below it
            return path == self.prefix
        return (
            path == self.prefix.rstrip("/")
            or path.startswith(self.prefix if self.prefix.endswith("/") else self.prefix + "/")
            or self.prefix == "/"
        )


@dataclass(frozen=True)
class RouteTable:
    routes: tuple[Route, ...]

    def find(self, host: str, raw_path: bytes) -> tuple[Route, str] | None:
        """The longest-prefix route for ``host`` and ``raw_path`` and the decoded path, or None.
        Raises :class:`AmbiguousRequest` for a path that could mean two things."""
        problem = path_problem(raw_path)
        if problem is not None:
            raise AmbiguousRequest(problem)
        path = unquote(raw_path.decode("ascii", errors="strict"))
        best: Route | None = None
        for route in self.routes:
            if route.matches(host, path) and (best is None or len(route.prefix) > len(best.prefix)):
                best = route
        return (best, path) if best is not None else None


def extract_args(
    route: Route,
    query: bytes,
    body: bytes | None,
    content_type: str,
    read_json: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """The query and JSON body fields the route names, for the decision context. Duplicate
    query parameters are refused: the policy must see the one value the upstream will use.
    ``read_json``: the body's JSON as another step reads it too (default: parsed here)."""
    args: dict[str, Any] = {}
    if route.query_args and query:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, strict_parsing=False)
        seen: set[str] = set()
        for key, value in pairs:
            if key in seen:
                raise AmbiguousRequest(f"query parameter {key!r} given twice")
            seen.add(key)
            if key in route.query_args:
                args[key] = _typed(value)
    if route.body_args and body:
        if not content_type.startswith("application/json"):
            raise AmbiguousRequest("this route reads JSON bodies only")
        try:
            document = read_json() if read_json is not None else untrusted_json.loads(body)
        except ValueError as exc:
            raise AmbiguousRequest("the body is not JSON") from exc
        if isinstance(document, dict):
            for key in route.body_args:
                if key in document:
                    if key in args:
                        raise AmbiguousRequest(f"{key!r} given in both query and body")
                    args[key] = document[key]
    for key, value in args.items():
        if isinstance(value, str) and len(value) > MAX_ARG_LENGTH:
            raise AmbiguousRequest(f"argument {key!r} is too long")
    return args


def _typed(value: str) -> Any:
    """Query values are text; whole numbers become numbers so policies can compare them."""
    if value.isdigit() and len(value) < 19:
        return int(value)
    return value


def load_routes(path: Path) -> RouteTable:
    """Read a route file; :class:`ConfigError` says which route is wrong and why."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read routes {path}: {exc}") from exc
    return parse_routes(document, str(path))


def parse_routes(document: Any, source: str = "routes") -> RouteTable:
    if not isinstance(document, dict) or not isinstance(document.get("routes"), list):
        raise ConfigError(f"{source}: a route file has a list of routes")
    routes = []
    for index, raw in enumerate(document["routes"]):
        where = f"{source}: route {index + 1}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} is not a mapping")
        try:
            prefix = str(raw["prefix"])
            if not prefix.startswith("/") or path_problem(prefix.encode()) is not None:
                raise ConfigError(f"{where}: prefix {prefix!r} is not a clean absolute path")
            upstream = str(raw["upstream"]).rstrip("/")
            if not upstream.startswith("https://"):
                raise ConfigError(f"{where}: upstreams are reached over https (mTLS)")
            SpiffeId.parse(str(raw["upstream_id"]))
            resource = raw["resource"]
            credential = raw.get("credential") or {}
            protocol = str(raw.get("protocol", "http"))
            if protocol not in ("http", "mcp"):
                raise ConfigError(f"{where}: protocol is http or mcp, not {protocol!r}")
            mcp = _mcp_route(raw.get("mcp") or {}, where) if protocol == "mcp" else None
            routes.append(
                Route(
                    name=str(raw.get("name", f"route-{index + 1}")),
                    host=str(raw["host"]).lower() if raw.get("host") else None,
                    prefix=prefix,
                    upstream=upstream,
                    upstream_id=str(raw["upstream_id"]),
                    resource_type=str(resource["type"]),
                    resource_id=str(resource["id"]),
                    properties=dict(resource.get("properties") or {}),
                    query_args=tuple(raw.get("args", {}).get("query", []) or []),
                    body_args=tuple(raw.get("args", {}).get("body", []) or []),
                    credential_header=credential.get("header"),
                    credential_value=credential.get("value"),
                    protocol=protocol,
                    mcp=mcp,
                    mask=tuple(str(m) for m in raw.get("mask") or ()),
                )
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{where}: missing or malformed {exc}") from exc
        except UntrustedInputError as exc:
            raise ConfigError(f"{where}: {exc.message}") from exc
    return RouteTable(tuple(routes))


def _mcp_route(raw: Any, where: str) -> McpRoute:
    if not isinstance(raw, dict) or set(raw) - {"tools", "prompts", "resources"}:
        raise ConfigError(f"{where}: mcp takes tools, prompts and resources")
    for key in ("tools", "prompts"):
        named = raw.get(key) or {}
        if not isinstance(named, dict) or not all(isinstance(v, dict) for v in named.values()):
            raise ConfigError(f"{where}: mcp.{key} maps names to properties")
    rules = []
    for rule in raw.get("resources") or []:
        if not isinstance(rule, dict) or not isinstance(rule.get("prefix"), str):
            raise ConfigError(f"{where}: an mcp resource rule has a URI prefix")
        rules.append(
            McpResourceRule(
                prefix=rule["prefix"],
                type=str(rule.get("type", "Dataset")),
                properties=dict(rule.get("properties") or {}),
            )
        )
    return McpRoute(
        tools={str(k): dict(v) for k, v in (raw.get("tools") or {}).items()},
        prompts={str(k): dict(v) for k, v in (raw.get("prompts") or {}).items()},
        resources=tuple(rules),
    )
