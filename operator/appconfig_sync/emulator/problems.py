"""`application/problem+json` error bodies, shaped like the service's."""

from __future__ import annotations

import json

from aiohttp import web

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://azconfig.io/errors/"


def problem(
    status: int,
    kind: str,
    title: str,
    detail: str | None = None,
    name: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An error response; `kind` becomes the `type` URI (e.g. `invalid-argument`)."""
    body: dict[str, object] = {"type": TYPE_BASE + kind, "title": title, "status": status}
    if name is not None:
        body["name"] = name
    if detail is not None:
        body["detail"] = detail
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type=PROBLEM_JSON,
        charset="utf-8",
        headers=headers,
    )


class ApiError(Exception):
    """A request refused with a problem+json answer; raised anywhere below the handlers."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        name: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.name = name
        self.headers = headers

    def response(self) -> web.Response:
        return problem(self.status, self.kind, self.title, self.detail, self.name, self.headers)


def bad_argument(name: str, detail: str) -> ApiError:
    return ApiError(400, "invalid-argument", f"Invalid request parameter '{name}'", detail, name)
