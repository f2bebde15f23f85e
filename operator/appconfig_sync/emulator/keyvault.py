"""A Key Vault secrets endpoint, so App Configuration Key Vault references resolve through the real SecretClient.

SecretClient first sends each request without a token; the 401 challenge it gets back names the tenant and
the resource to ask a token for. The emulator answers that challenge like Key Vault, pointing at its own
token issuer, and then accepts only tokens that issuer signed for https://vault.azure.net.
Secret values are never logged.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .identity import TokenIssuer

log = logging.getLogger(__name__)

VAULT_AUDIENCE = "https://vault.azure.net"
NAME_PATTERN = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
MAX_VALUE_BYTES = 25 * 1024  # the service's limit on a secret value


@dataclass(frozen=True)
class SecretVersion:
    name: str
    version: str
    value: str
    content_type: str | None
    tags: dict[str, str] | None
    created: int

    def bundle(self, origin: str, *, with_value: bool = True) -> dict[str, Any]:
        """The service's JSON for this version (`SecretBundle`, or `SecretItem` without the value)."""
        body: dict[str, Any] = {
            "id": f"{origin}/secrets/{self.name}/{self.version}",
            "attributes": {
                "enabled": True,
                "created": self.created,
                "updated": self.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
        }
        if with_value:
            body["value"] = self.value
        if self.content_type is not None:
            body["contentType"] = self.content_type
        if self.tags is not None:
            body["tags"] = self.tags
        return body


class VaultError(Exception):
    """An error answer in Key Vault's shape: `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self, headers: dict[str, str] | None = None) -> web.Response:
        body = {"error": {"code": self.code, "message": self.message}}
        return web.json_response(body, status=self.status, headers=headers)


class SecretVault:
    def __init__(self, issuer: TokenIssuer) -> None:
        self._issuer = issuer
        self._lock = threading.Lock()  # tests seed from their own thread while the server's loop reads
        self._secrets: dict[str, list[SecretVersion]] = {}

    def set_secret(self, name: str, value: str) -> str:
        """Store a new version of `name` (in-process seeding for tests); returns the version."""
        try:
            return self._store(name, value, None, None).version
        except VaultError as exc:
            raise ValueError(f"SecretVault.set_secret: {exc.message}") from None

    def _store(self, name: str, value: str, content_type: str | None, tags: dict[str, str] | None) -> SecretVersion:
        _check_name(name)
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise VaultError(400, "BadParameter",
                             f"The value of secret '{name}' exceeds the {MAX_VALUE_BYTES // 1024} KB limit.")
        secret = SecretVersion(name, uuid.uuid4().hex, value, content_type, tags, int(time.time()))
        with self._lock:
            self._secrets.setdefault(name.lower(), []).append(secret)
        log.debug("stored secret %s version %s", name, secret.version)
        return secret

    def _find(self, name: str, version: str) -> SecretVersion:
        """The given version of `name`, or its latest when `version` is empty."""
        _check_name(name)
        with self._lock:
            versions = list(self._secrets.get(name.lower(), ()))
        if not versions:
            raise _not_found(name)
        if not version:
            return versions[-1]
        for secret in versions:
            if secret.version == version.lower():
                return secret
        raise _not_found(f"{name}/{version}")

    # ---- HTTP ----

    def routes(self) -> list[web.RouteDef]:
        # Names are what the request log and fault injection match on.
        return [
            web.get("/secrets/{name}/versions", self._list_versions, name="vault-secret-versions"),
            # SecretClient asks for the latest version as "/secrets/{name}/" (an empty version).
            web.get("/secrets/{name}/{version:[^{}/]*}", self._get, name="vault-secret-version"),
            web.get("/secrets/{name}", self._get, name="vault-secret"),
            web.put("/secrets/{name}", self._put, name="vault-secret"),
        ]

    async def _get(self, request: web.Request) -> web.Response:
        try:
            self._authorize(request)
            secret = self._find(request.match_info["name"], request.match_info.get("version", ""))
        except VaultError as exc:
            return self._error(request, exc)
        return web.json_response(secret.bundle(_origin(request)))

    async def _put(self, request: web.Request) -> web.Response:
        try:
            self._authorize(request)
            value, content_type, tags = _parse_set_body(await request.read())
            secret = self._store(request.match_info["name"], value, content_type, tags)
        except VaultError as exc:
            return self._error(request, exc)
        return web.json_response(secret.bundle(_origin(request)))

    async def _list_versions(self, request: web.Request) -> web.Response:
        try:
            self._authorize(request)
            name = request.match_info["name"]
            self._find(name, "")
        except VaultError as exc:
            return self._error(request, exc)
        with self._lock:
            versions = list(self._secrets[name.lower()])
        origin = _origin(request)
        return web.json_response({"value": [v.bundle(origin, with_value=False) for v in versions], "nextLink": None})

    def _authorize(self, request: web.Request) -> None:
        authorization = request.headers.get("Authorization", "")
        if not authorization:
            raise VaultError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not self._issuer.verify(token.strip(), VAULT_AUDIENCE):
            raise VaultError(
                401, "Unauthorized",
                f"AKV10022: The bearer token is invalid, expired, or was not issued by this emulator for "
                f"'{VAULT_AUDIENCE}'.",
            )

    def _error(self, request: web.Request, exc: VaultError) -> web.Response:
        if exc.status != 401:
            return exc.response()
        # The challenge SecretClient parses: the tenant comes from the authorization URL's first path segment.
        challenge = (
            f'Bearer authorization="{_origin(request)}/{self._issuer.tenant_id}", resource="{VAULT_AUDIENCE}"'
        )
        return exc.response({"WWW-Authenticate": challenge})

    # ---- configuration ----

    @classmethod
    def from_args(cls, args: argparse.Namespace, issuer: TokenIssuer) -> "SecretVault":
        vault = cls(issuer)
        for name, value in args.vault_secret or ():
            vault.set_secret(name, value)
        return vault


def _origin(request: web.Request) -> str:
    return str(request.url.origin())


def _check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise VaultError(
            400, "BadParameter",
            f"The request URI contains an invalid name: '{name}'. Secret names are 1-127 letters, digits and '-'.",
        )


def _not_found(what: str) -> VaultError:
    return VaultError(404, "SecretNotFound", f"A secret with (name/id) {what} was not found in this key vault.")


def _parse_set_body(raw: bytes) -> tuple[str, str | None, dict[str, str] | None]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise VaultError(400, "BadParameter", "The request body is not valid JSON.") from None
    if not isinstance(body, dict) or not isinstance(body.get("value"), str):
        raise VaultError(400, "BadParameter", "Property 'value' is required and must be a string.")
    content_type = body.get("contentType")
    tags = body.get("tags")
    if content_type is not None and not isinstance(content_type, str):
        raise VaultError(400, "BadParameter", "Property 'contentType' must be a string.")
    if tags is not None and not (isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())):
        raise VaultError(400, "BadParameter", "Property 'tags' must map names to strings.")
    return body["value"], content_type, tags


def _vault_secret(value: str) -> tuple[str, str]:
    name, sep, secret = value.partition("=")
    if not sep or not NAME_PATTERN.match(name):
        raise argparse.ArgumentTypeError("expected NAME=VALUE with NAME made of 1-127 letters, digits and '-'")
    return name, secret


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Key Vault secrets (with --tls)")
    group.add_argument("--vault-secret", metavar="NAME=VALUE", action="append", type=_vault_secret,
                       help="seed a Key Vault secret served at /secrets/NAME; repeatable")
