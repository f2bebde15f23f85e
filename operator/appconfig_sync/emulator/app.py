"""The aiohttp application: App Configuration routes, the admin API and the middlewares around them.

Middlewares, outermost first: `observe` (request log, request ids, problem+json for anything that
escapes, so the emulator never crashes), `inject_faults`, `authenticate`. They apply to every
route, including those contributed by the token issuer and the vault, except that authentication
only guards the App Configuration and admin paths (the others authenticate themselves).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, Awaitable, Callable, Iterable, Protocol
from urllib.parse import quote, unquote, urlencode

from aiohttp import web
from multidict import MultiDict

from .faults import Fault, FaultSet
from .filters import FilterError, NameFilter, parse_name_filter, parse_tag_filters
from .hmac_auth import AuthError, Credentials, verify
from .problems import ApiError, bad_argument, problem
from .requestlog import RequestLog, RequestRecord
from .store import (
    DEFAULT_RETENTION,
    MAX_RETENTION,
    MAX_SNAPSHOT_FILTERS,
    MIN_RETENTION,
    KeyValue,
    Label,
    Selection,
    Snapshot,
    SnapshotFilter,
    Store,
    sort_key,
)

log = logging.getLogger("appconfig_sync.emulator")

PAGE_SIZE = 100
AUDIENCES = ("https://appconfig.azure.com", "https://azconfig.io")
GUARDED_PREFIXES = ("/kv", "/keys", "/labels", "/locks", "/revisions", "/snapshots", "/operations", "/_emulator")
DATA_PLANE_PREFIXES = GUARDED_PREFIXES[:-1]
KV_FIELDS = {"key", "label", "content_type", "value", "last_modified", "tags", "locked", "etag"}
SNAPSHOT_FIELDS = {
    "name", "status", "filters", "composition_type", "created", "expires",
    "retention_period", "size", "items_count", "tags", "description", "etag",
}  # fmt: skip
MEDIA = "application/vnd.microsoft.appconfig."

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TokenVerifier(Protocol):
    def verify(self, token: str, audience: str) -> bool: ...


@dataclass
class Emulator:
    """What the handlers share; stored on the application under `EMULATOR`."""

    store: Store
    credentials: Credentials
    faults: FaultSet
    request_log: RequestLog
    issuer: TokenVerifier | None = None


EMULATOR = web.AppKey("emulator", Emulator)


def build_app(emulator: Emulator, extra_routes: Iterable[web.RouteDef] = ()) -> web.Application:
    app = web.Application(middlewares=[observe, inject_faults, authenticate], client_max_size=1024 * 1024)
    app[EMULATOR] = emulator
    r = app.router
    r.add_get("/kv", list_kv, name="kv")
    r.add_route("*", "/kv/{key:.+}", kv_item, name="kv-item")
    r.add_route("*", "/locks/{key:.+}", lock_item, name="locks")
    r.add_get("/keys", list_keys, name="keys")
    r.add_get("/labels", list_labels, name="labels")
    r.add_get("/revisions", list_revisions, name="revisions")
    r.add_get("/snapshots", list_snapshots, name="snapshots")
    r.add_route("*", "/snapshots/{name}", snapshot_item, name="snapshot")
    r.add_get("/operations", operation_status, name="operations")
    r.add_route("*", "/_emulator/faults", admin_faults, name="admin-faults")
    r.add_route("*", "/_emulator/requests", admin_requests, name="admin-requests")
    app.add_routes(list(extra_routes))
    return app


# -- middlewares ---------------------------------------------------------------------------


def route_name(request: web.Request) -> str:
    route = request.match_info.route
    if route.name:
        return route.name
    resource = route.resource
    return resource.canonical if resource is not None else "unknown"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.time()
    status = 0
    try:
        try:
            response = await handler(request)
        except ApiError as exc:
            response = exc.response()
        except web.HTTPException as exc:
            response = _http_exception_problem(exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = problem(500, "internal-error", "Internal server error", "the emulator failed; see its log")
        status = response.status
        response.headers["x-ms-request-id"] = str(uuid.uuid4())
        if "x-ms-client-request-id" in request.headers:
            response.headers["x-ms-client-request-id"] = request.headers["x-ms-client-request-id"]
        if request.path.startswith(DATA_PLANE_PREFIXES):
            response.headers["Sync-Token"] = request.app[EMULATOR].store.sync_token
        return response
    finally:
        request.app[EMULATOR].request_log.append(
            RequestRecord(
                method=request.method,
                route=route_name(request),
                path=request.raw_path,
                status=status,
                conditional="If-None-Match" in request.headers or "If-Match" in request.headers,
                time=started,
                duration_ms=(time.time() - started) * 1000,
            )
        )


def _http_exception_problem(exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (no route, wrong method, body too large) as problem+json."""
    details = {
        404: ("not-found", "Not found", "no such route; see docs/emulator.md for the routes the emulator serves"),
        405: ("method-not-allowed", "Method not allowed", "this route does not accept the method"),
        413: ("payload-too-large", "Payload too large", "the request body exceeds 1 MB"),
    }
    kind, title, detail = details.get(exc.status, ("http-error", exc.reason, exc.text or exc.reason))
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return problem(exc.status, kind, title, detail, headers=headers)


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_name(request)
    fault = None if route.startswith("admin-") else request.app[EMULATOR].faults.take(route)
    if fault is None:
        return await handler(request)
    if fault.latency_ms:
        await asyncio.sleep(fault.latency_ms / 1000)
    if fault.drop:
        if request.transport is not None:
            request.transport.abort()
        # aiohttp treats a cancelled handler as a client that went away: nothing is written or logged.
        raise asyncio.CancelledError()
    if fault.status is not None:
        headers = {"Retry-After": _seconds(fault.retry_after)} if fault.retry_after is not None else None
        return problem(fault.status, "injected-fault", "Injected fault", f"fault {fault.id} on route '{route}'",
                       headers=headers)  # fmt: skip
    return await handler(request)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(GUARDED_PREFIXES):
        return await handler(request)
    emulator = request.app[EMULATOR]
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        if emulator.issuer is None:
            return _unauthorized("Bearer tokens are only accepted with --tls; use the connection string (HMAC)")
        token = authorization[len("Bearer ") :].strip()
        if not any(emulator.issuer.verify(token, audience) for audience in AUDIENCES):
            return _unauthorized("the bearer token is invalid, expired or not for this audience")
        return await handler(request)
    if not authorization:
        return _unauthorized("no Authorization header; sign requests with the connection string")
    try:
        verify(
            emulator.credentials,
            authorization=authorization,
            method=request.method,
            path_and_query=request.raw_path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.read(),
        )
    except AuthError as exc:
        return _unauthorized(str(exc))
    return await handler(request)


def _unauthorized(detail: str) -> web.Response:
    challenge = f'HMAC-SHA256, Bearer error="invalid_token", error_description="{detail}"'
    return problem(401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


# -- request parsing -----------------------------------------------------------------------


def query(request: web.Request) -> MultiDict[str]:
    """Query parameters with lower-cased names: the SDK sends `After`, `$Select`; the service ignores case."""
    return MultiDict((k.lower(), v) for k, v in request.query.items())


def path_tail(request: web.Request, prefix: str) -> str:
    """The decoded remainder of the raw path, so `%2F` inside a key stays part of the key."""
    raw = request.raw_path.split("?", 1)[0]
    return unquote(raw[len(prefix) :])


def item_label(params: MultiDict[str]) -> Label:
    label = params.get("label")
    return None if label in (None, "", "\0", "\\0") else label


def check_key(key: str) -> None:
    if key in (".", "..") or "%" in key:
        raise bad_argument("key", f"key '{key}': '.', '..' and keys containing '%' are not allowed; rename the key")


def selection(params: MultiDict[str], *, key_param: str = "key", label_param: str = "label") -> Selection:
    try:
        return Selection(
            keys=parse_name_filter(key_param, params.get(key_param), allow_null=False),
            labels=parse_name_filter(label_param, params.get(label_param), allow_null=True),
            tags=parse_tag_filters(params.getall("tags", [])),
            as_of=None,
        )
    except FilterError as exc:
        raise bad_argument(exc.name, exc.detail) from None


def accept_datetime(request: web.Request) -> datetime | None:
    raw = request.headers.get("Accept-Datetime")
    if raw is None:
        return None
    try:
        return parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(400, "invalid-argument", "Invalid header 'Accept-Datetime'",
                           f"Accept-Datetime: '{raw}' is not an RFC 1123 date", "Accept-Datetime") from None  # fmt: skip


def select_fields(params: MultiDict[str], allowed: set[str]) -> list[str] | None:
    raw = params.get("$select")
    if raw is None:
        return None
    fields = [f.strip() for f in raw.split(",") if f.strip()]
    unknown = [f for f in fields if f not in allowed]
    if unknown:
        raise bad_argument("$select", f"$select: unknown field(s) {unknown}; choose from {sorted(allowed)}")
    return fields


def pick(data: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    return data if fields is None else {f: data[f] for f in fields if f in data}


async def json_body(request: web.Request) -> dict[str, Any]:
    ctype = request.content_type
    if request.body_exists and ctype and "json" not in ctype:
        raise ApiError(415, "unsupported-media-type", "Unsupported media type",
                       f"Content-Type '{ctype}': send the body as application/json")  # fmt: skip
    raw = await request.read()
    try:
        data = json.loads(raw) if raw else None
    except ValueError as exc:
        raise ApiError(400, "invalid-body", "Invalid request body", f"request body: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid-body", "Invalid request body", "request body: expected a JSON object")
    return data


def etag_in(header: str, etag: str | None) -> bool:
    """Does an If-Match/If-None-Match list name `etag`? `*` names any existing resource; W/ and quotes are ignored."""
    if etag is None:
        return False
    for part in header.split(","):
        tag = part.strip().removeprefix("W/").strip('"')
        if tag == "*" or tag == etag:
            return True
    return False


def precondition_failed(what: str) -> ApiError:
    return ApiError(412, "precondition-failed", "Precondition failed",
                    f"{what}: the If-Match/If-None-Match condition does not hold; fetch it again for its current etag")  # fmt: skip


def write_conditions(request: web.Request, what: str) -> Callable[[Any], None]:
    """A check for the store to run under its lock, so condition and write are atomic."""
    if_match = request.headers.get("If-Match")
    if_none_match = request.headers.get("If-None-Match")

    def check(current: Any) -> None:
        etag = current.etag if current is not None else None
        if if_match is not None and not etag_in(if_match, etag):
            raise precondition_failed(what)
        if if_none_match is not None and etag_in(if_none_match, etag):
            raise precondition_failed(what)

    return check


def json_response(data: Any, media: str, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode(),
        content_type=MEDIA + media,
        charset="utf-8",
        headers=headers,
    )


def kv_response(kv: KeyValue, *, status: int = 200, fields: list[str] | None = None) -> web.Response:
    headers = {"ETag": f'"{kv.etag}"', "Last-Modified": format_datetime(kv.last_modified, usegmt=True)}
    return json_response(pick(kv.to_json(), fields), "kv+json", status=status, headers=headers)


# -- paging --------------------------------------------------------------------------------


def encode_after(position: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_after(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        raise bad_argument("After", "After: not a continuation token from this emulator; follow @nextLink") from None


def paged(
    request: web.Request,
    path: str,
    rows: list[tuple[Any, dict[str, Any]]],
    media: str,
) -> web.Response:
    """One page of `rows` ((position, json) sorted by position), with `@nextLink`, `Link` and a page ETag.

    Answers 304 when If-None-Match names the page's ETag (with `Link` still set: the SDK reads the
    next page's address from it on a 304).
    """
    params = query(request)
    after = params.get("after")
    if after is not None:
        position = decode_after(after)
        rows = [row for row in rows if _position_key(row[0]) > _position_key(position)]
    page, more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
    body: dict[str, Any] = {"items": [item for _, item in page]}
    headers: dict[str, str] = {}
    if more:
        kept = [(k, v) for k, v in params.items() if k not in ("after", "api-version")]
        kept.append(("after", encode_after(page[-1][0])))
        if "api-version" in params:
            kept.append(("api-version", params["api-version"]))
        next_link = f"{path}?{urlencode(sorted(kept, key=lambda kv: kv[0]), quote_via=quote)}"
        body["@nextLink"] = next_link
        headers["Link"] = f'<{next_link}>; rel="next"'
    encoded = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    etag = hashlib.sha256(encoded).hexdigest()[:32]
    headers["ETag"] = f'"{etag}"'
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and etag_in(if_none_match, etag):
        return web.Response(status=304, headers=headers)
    if_match = request.headers.get("If-Match")
    if if_match is not None and not etag_in(if_match, etag):
        raise precondition_failed(f"page of {path}")
    return web.Response(body=encoded, content_type=MEDIA + media, charset="utf-8", headers=headers)


def _position_key(position: Any) -> Any:
    """Key-values page by (key, label) with the null label first; names page by themselves."""
    if isinstance(position, list):
        return sort_key((position[0], position[1]))
    return (0, "") if position is None else (1, position)


# -- key-values ----------------------------------------------------------------------------


async def list_kv(request: web.Request) -> web.Response:
    store = request.app[EMULATOR].store
    params = query(request)
    fields = select_fields(params, KV_FIELDS)
    name = params.get("snapshot")
    if name is not None:
        if any(p in params for p in ("key", "label", "tags")):
            raise bad_argument("snapshot", "snapshot: cannot be combined with key, label or tags filters")
        snap = store.snapshot(name)
        if snap is None:
            raise ApiError(404, "not-found", "Snapshot not found", f"snapshot '{name}' does not exist", "snapshot")
        items = list(snap.items)
    else:
        sel = selection(params)
        sel.as_of = accept_datetime(request)
        items = store.list(sel)
    rows = [([kv.key, kv.label], pick(kv.to_json(), fields)) for kv in items]
    return paged(request, "/kv", rows, "kvset+json")


async def kv_item(request: web.Request) -> web.Response:
    store = request.app[EMULATOR].store
    params = query(request)
    key = path_tail(request, "/kv/")
    label = item_label(params)
    what = f"key-value '{key}' (label {label!r})"
    if request.method in ("GET", "HEAD"):
        fields = select_fields(params, KV_FIELDS)
        kv = store.get(key, label, accept_datetime(request))
        if_match = request.headers.get("If-Match")
        if if_match is not None and not etag_in(if_match, kv.etag if kv else None):
            raise precondition_failed(what)
        if kv is None:
            raise ApiError(404, "not-found", "Key-value not found", f"{what} does not exist", "key")
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None and etag_in(if_none_match, kv.etag):
            return web.Response(status=304, headers={"ETag": f'"{kv.etag}"'})
        return kv_response(kv, fields=fields)
    if request.method == "PUT":
        check_key(key)
        body = await json_body(request)
        value, content_type, tags = _kv_fields(body, key)
        kv = store.put(key, label, value=value, content_type=content_type, tags=tags,
                       check=write_conditions(request, what))  # fmt: skip
        return kv_response(kv)
    if request.method == "DELETE":
        deleted = store.delete(key, label, check=write_conditions(request, what))
        return kv_response(deleted) if deleted is not None else web.Response(status=204)
    raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD", "PUT", "DELETE"])


def _kv_fields(body: dict[str, Any], key: str) -> tuple[str | None, str | None, dict[str, str | None]]:
    if body.get("key") not in (None, key):
        raise bad_argument("key", f"body key '{body['key']}' differs from the key in the path '{key}'")
    value = body.get("value")
    content_type = body.get("content_type")
    tags = body.get("tags") or {}
    for name, field_value in (("value", value), ("content_type", content_type)):
        if field_value is not None and not isinstance(field_value, str):
            raise bad_argument(name, f"{name}: must be a string or null, not {type(field_value).__name__}")
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in tags.items()
    ):
        raise bad_argument("tags", "tags: must be an object mapping tag names to string (or null) values")
    return value, content_type, tags


async def lock_item(request: web.Request) -> web.Response:
    if request.method not in ("PUT", "DELETE"):
        raise web.HTTPMethodNotAllowed(request.method, ["PUT", "DELETE"])
    params = query(request)
    key = path_tail(request, "/locks/")
    label = item_label(params)
    what = f"key-value '{key}' (label {label!r})"
    kv = request.app[EMULATOR].store.set_lock(
        key, label, request.method == "PUT", check=write_conditions(request, what)
    )
    if kv is None:
        raise ApiError(404, "not-found", "Key-value not found", f"{what} does not exist", "key")
    return kv_response(kv)


async def list_keys(request: web.Request) -> web.Response:
    params = query(request)
    names = _names_filter(params)
    keys = sorted({kv.key for kv in request.app[EMULATOR].store.list(_everything()) if names.matches(kv.key)})
    return paged(request, "/keys", [(k, {"name": k}) for k in keys], "keyset+json")


async def list_labels(request: web.Request) -> web.Response:
    params = query(request)
    names = _names_filter(params, allow_null=True)
    fields = select_fields(params, {"name"})
    labels = {kv.label for kv in request.app[EMULATOR].store.list(_everything()) if names.matches(kv.label)}
    ordered = sorted(labels, key=lambda label: (label is not None, label or ""))
    return paged(request, "/labels", [(label, pick({"name": label}, fields)) for label in ordered], "labelset+json")


def _names_filter(params: MultiDict[str], allow_null: bool = False) -> NameFilter:
    try:
        return parse_name_filter("name", params.get("name"), allow_null=allow_null)
    except FilterError as exc:
        raise bad_argument(exc.name, exc.detail) from None


def _everything() -> Selection:
    return selection(MultiDict())


async def list_revisions(request: web.Request) -> web.Response:
    params = query(request)
    fields = select_fields(params, KV_FIELDS)
    sel = selection(params)
    sel.as_of = accept_datetime(request)
    revisions = request.app[EMULATOR].store.revisions(sel)
    # Newest first; the position is the index in that order, stable while nothing changes.
    rows = [(i, pick(kv.to_json(), fields)) for i, kv in enumerate(revisions)]
    return paged(request, "/revisions", rows, "kvset+json")


# -- snapshots -----------------------------------------------------------------------------


def snapshot_response(snap: Snapshot, *, status: int = 200, fields: list[str] | None = None,
                      headers: dict[str, str] | None = None) -> web.Response:  # fmt: skip
    all_headers = {"ETag": f'"{snap.etag}"', **(headers or {})}
    return json_response(pick(snap.to_json(), fields), "snapshot+json", status=status, headers=all_headers)


async def list_snapshots(request: web.Request) -> web.Response:
    params = query(request)
    fields = select_fields(params, SNAPSHOT_FIELDS)
    names = _names_filter(params)
    statuses = {s.strip() for s in params.get("status", "").split(",") if s.strip()}
    snaps = [
        s
        for s in request.app[EMULATOR].store.snapshots()
        if names.matches(s.name) and (not statuses or s.status in statuses)
    ]
    return paged(request, "/snapshots", [(s.name, pick(s.to_json(), fields)) for s in snaps], "snapshotset+json")


async def snapshot_item(request: web.Request) -> web.Response:
    store = request.app[EMULATOR].store
    name = request.match_info["name"]
    if request.method in ("GET", "HEAD"):
        fields = select_fields(query(request), SNAPSHOT_FIELDS)
        snap = store.snapshot(name)
        if snap is None:
            raise ApiError(404, "not-found", "Snapshot not found", f"snapshot '{name}' does not exist", "name")
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None and etag_in(if_none_match, snap.etag):
            return web.Response(status=304, headers={"ETag": f'"{snap.etag}"'})
        if_match = request.headers.get("If-Match")
        if if_match is not None and not etag_in(if_match, snap.etag):
            raise precondition_failed(f"snapshot '{name}'")
        return snapshot_response(snap, fields=fields)
    if request.method == "PUT":
        return await create_snapshot(request, name)
    if request.method == "PATCH":
        body = await json_body(request)
        status = body.get("status")
        if status not in ("ready", "archived"):
            raise bad_argument("status", f"status: '{status}' cannot be set; use 'archived' or 'ready'")
        snap = store.set_snapshot_status(name, status, check=write_conditions(request, f"snapshot '{name}'"))
        return snapshot_response(snap)
    raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD", "PUT", "PATCH"])


async def create_snapshot(request: web.Request, name: str) -> web.Response:
    """Snapshots are built at once; the 201 still says `provisioning` and points at an operation, like the service,
    so the SDK's poller runs its normal course (`retry-after-ms` keeps its first poll short)."""
    if len(name) > 256:
        raise bad_argument("name", f"snapshot name '{name[:20]}...': at most 256 characters")
    body = await json_body(request)
    filters = _snapshot_filters(body.get("filters"))
    composition = body.get("composition_type") or "key"
    if composition not in ("key", "key_label"):
        raise bad_argument("composition_type", f"composition_type: '{composition}' is not 'key' or 'key_label'")
    retention = body.get("retention_period", DEFAULT_RETENTION)
    if not isinstance(retention, int) or not MIN_RETENTION <= retention <= MAX_RETENTION:
        raise bad_argument("retention_period",
                           f"retention_period: must be whole seconds from {MIN_RETENTION} to {MAX_RETENTION}")  # fmt: skip
    tags = body.get("tags") or {}
    if not isinstance(tags, dict):
        raise bad_argument("tags", "tags: must be an object of string values")

    def select(flt: SnapshotFilter) -> Selection:
        params = MultiDict([("key", flt.key), ("label", flt.label if flt.label is not None else "\0")])
        params.extend(("tags", t) for t in flt.tags)
        return selection(params)

    for flt in filters:
        select(flt)  # validate filter syntax before creating anything
    snap = request.app[EMULATOR].store.create_snapshot(
        name, filters, composition, retention, {str(k): str(v) for k, v in tags.items()},
        body.get("description"), select,
    )  # fmt: skip
    api_version = query(request).get("api-version")
    operation = f"{request.scheme}://{request.host}/operations?snapshot={quote(name, safe='')}"
    if api_version:
        operation += f"&api-version={quote(api_version)}"
    provisioning = replace(snap, status="provisioning")
    headers = {"Operation-Location": operation, "retry-after-ms": "100"}
    return snapshot_response(provisioning, status=201, headers=headers)


def _snapshot_filters(raw: Any) -> list[SnapshotFilter]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_SNAPSHOT_FILTERS:
        raise bad_argument("filters", f"filters: give 1 to {MAX_SNAPSHOT_FILTERS} filters like {{\"key\": \"app/*\"}}")
    filters = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise bad_argument("filters", f"filters[{i}]: needs a string 'key'")
        tags = item.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise bad_argument("filters", f"filters[{i}].tags: must be a list of 'name=value' strings")
        filters.append(SnapshotFilter(item["key"], item.get("label"), tuple(tags)))
    return filters


async def operation_status(request: web.Request) -> web.Response:
    name = query(request).get("snapshot")
    if not name:
        raise bad_argument("snapshot", "snapshot: required; follow the Operation-Location of the create request")
    if request.app[EMULATOR].store.snapshot(name) is None:
        raise ApiError(404, "not-found", "Operation not found", f"no operation for snapshot '{name}'", "snapshot")
    return web.json_response({"id": name, "status": "Succeeded"})


# -- admin API -----------------------------------------------------------------------------


async def admin_faults(request: web.Request) -> web.Response:
    faults = request.app[EMULATOR].faults
    if request.method == "GET":
        return web.json_response({"items": [f.to_json() for f in faults.list()]})
    if request.method == "POST":
        body = await json_body(request)
        try:
            fault = faults.add(Fault.from_json(body))
        except ValueError as exc:
            raise ApiError(400, "invalid-body", "Invalid fault", str(exc)) from None
        return web.json_response(fault.to_json(), status=201)
    if request.method == "DELETE":
        faults.clear()
        return web.Response(status=204)
    raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST", "DELETE"])


async def admin_requests(request: web.Request) -> web.Response:
    log_ = request.app[EMULATOR].request_log
    if request.method == "GET":
        params = query(request)
        try:
            status = int(params["status"]) if "status" in params else None
        except ValueError:
            raise bad_argument("status", "status: must be a number like 304") from None
        conditional = params["conditional"].lower() == "true" if "conditional" in params else None
        records = log_.records(route=params.get("route"), method=params.get("method"), status=status,
                               conditional=conditional)  # fmt: skip
        return web.json_response({"items": [r.to_json() for r in records]})
    if request.method == "DELETE":
        log_.clear()
        return web.Response(status=204)
    raise web.HTTPMethodNotAllowed(request.method, ["GET", "DELETE"])
