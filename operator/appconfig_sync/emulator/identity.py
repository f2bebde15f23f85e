"""A local Entra ID: issues the access tokens azure-identity asks for, and checks them for the data planes.

Served flows, each answered the way the real service answers so the unmodified credentials work:
- client credentials with a client secret (ClientSecretCredential: MSAL reads the OpenID document first);
- client credentials with a federated assertion (WorkloadIdentityCredential: a Kubernetes service-account
  token); its iss/sub/aud are matched against the registered federated credential, and its signature is
  checked only when that credential names a JWKS file (the emulator cannot reach every issuer's keys);
- managed identity, App Service style (IDENTITY_ENDPOINT + IDENTITY_HEADER) and IMDS style
  (AZURE_POD_IDENTITY_AUTHORITY_HOST).
Every URL in a document or token is derived from the request, because the port is chosen at bind time.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

log = logging.getLogger(__name__)

DEFAULT_TENANT_ID = "00000000-0000-4000-8000-000000000001"
DEFAULT_TOKEN_LIFETIME = 3600
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# OIDC scopes MSAL may add; they do not name a resource.
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
# Asymmetric only: an HMAC algorithm here would let anyone who knows the public JWKS forge assertions.
ASSERTION_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
APP_SERVICE_PATH = "/msi/token"
IMDS_PATH = "/metadata/identity/oauth2/token"
# Token answers must not be cached by anything in between, as Entra says.
_NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


@dataclass(frozen=True)
class FederatedCredential:
    """Who may exchange an external token for this app's tokens, as configured on an Entra app registration."""

    issuer: str
    subject: str
    # When set, the assertion's signature must verify against one of these keys.
    jwks: jwt.PyJWKSet | None = None


class EntraError(Exception):
    """One OAuth error answer, shaped like Entra's so azure-identity surfaces its description."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description

    def response(self, origin: str) -> web.Response:
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        body = {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.description} Trace ID: {trace_id} "
            f"Correlation ID: {correlation_id} Timestamp: {stamp}",
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{origin}/error?code={self.code}",
        }
        return web.json_response(body, status=self.status, headers=_NO_STORE)


class ManagedIdentityError(Exception):
    """A managed identity endpoint's refusal; App Service and IMDS word their bodies differently."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class TokenIssuer:
    def __init__(
        self,
        tenant_id: str = DEFAULT_TENANT_ID,
        token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
        identity_header: str | None = None,
    ) -> None:
        if token_lifetime < 1:
            raise ValueError(f"TokenIssuer: token_lifetime is {token_lifetime}; pass a number of seconds >= 1")
        self.tenant_id = tenant_id
        self.token_lifetime = token_lifetime
        # The App Service endpoint's shared secret: pods get it as IDENTITY_HEADER.
        self.identity_header = identity_header or secrets.token_urlsafe(24)
        # Per process: tokens from another emulator run, or signed by anyone else, never verify.
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        self._kid = hashlib.sha256(json.dumps(self._jwk, sort_keys=True).encode()).hexdigest()[:32]
        self._client_secrets: dict[str, str] = {}
        self._federated: dict[str, list[FederatedCredential]] = {}
        self._managed: set[str | None] = set()

    # ---- registration (flags, or tests in process) ----

    def add_client_secret(self, client_id: str, secret: str) -> None:
        self._client_secrets[client_id] = secret

    def add_federated_credential(self, client_id: str, issuer: str, subject: str, jwks: Path | None = None) -> None:
        key_set = _load_jwks(jwks, client_id) if jwks else None
        self._federated.setdefault(client_id, []).append(FederatedCredential(issuer, subject, key_set))

    def add_managed_identity(self, client_id: str | None = None) -> None:
        """Register a user-assigned identity by client ID, or the system-assigned one with None."""
        self._managed.add(client_id)

    @property
    def system_assigned_client_id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.tenant_id}/system-assigned-identity"))

    # ---- tokens ----

    def verify(self, token: str, audience: str) -> bool:
        """True for an unexpired token this issuer signed for `audience` ("X" and "X/" are the same)."""
        base = audience.rstrip("/")
        try:
            jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["RS256"],
                audience=[base, base + "/"],
                options={"require": ["exp", "iat", "aud", "iss"]},
            )
        except jwt.InvalidTokenError:
            return False
        return True

    def _issue(self, origin: str, client_id: str, resource: str) -> tuple[str, int, int]:
        """Return (token, expires_in, expires_on) for `client_id` on `resource`."""
        now = int(time.time())
        expires_on = now + self.token_lifetime
        object_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.tenant_id}/{client_id}"))
        claims = {
            "aud": resource,
            "iss": self._issuer_url(origin),
            "iat": now,
            "nbf": now,
            "exp": expires_on,
            "tid": self.tenant_id,
            "oid": object_id,
            "sub": object_id,
            "appid": client_id,
            "idtyp": "app",
            "ver": "2.0",
            "uti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})
        log.debug("issued a token for client %s, audience %s", client_id, resource)
        return token, self.token_lifetime, expires_on

    def _issuer_url(self, origin: str) -> str:
        return f"{origin}/{self.tenant_id}/v2.0"

    # ---- HTTP ----

    def routes(self) -> list[web.RouteDef]:
        # Names are what the request log and fault injection match on.
        return [
            web.post("/{tenant}/oauth2/v2.0/token", self._token, name="entra-token"),
            web.get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid_configuration,
                    name="entra-openid-configuration"),
            web.get("/{tenant}/discovery/v2.0/keys", self._keys, name="entra-keys"),
            web.get(APP_SERVICE_PATH, self._app_service_token, name="msi-app-service"),
            web.get(IMDS_PATH, self._imds_token, name="msi-imds"),
        ]

    async def _openid_configuration(self, request: web.Request) -> web.Response:
        origin = str(request.url.origin())
        try:
            self._check_tenant(request.match_info["tenant"])
        except EntraError as exc:
            return exc.response(origin)
        base = f"{origin}/{self.tenant_id}"
        return web.json_response(
            {
                "issuer": self._issuer_url(origin),
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                # Required by MSAL and OIDC discovery; interactive sign-in is not emulated, so it is never called.
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                "response_types_supported": ["token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": sorted(RESERVED_SCOPES),
                "tenant_region_scope": None,
            }
        )

    async def _keys(self, request: web.Request) -> web.Response:
        try:
            self._check_tenant(request.match_info["tenant"])
        except EntraError as exc:
            return exc.response(str(request.url.origin()))
        return web.json_response({"keys": [dict(self._jwk, kid=self._kid, use="sig", alg="RS256")]})

    async def _token(self, request: web.Request) -> web.Response:
        origin = str(request.url.origin())
        try:
            self._check_tenant(request.match_info["tenant"])
            form = await request.post()
            client_id, resource = self._check_request(form)
            if "client_secret" in form:
                self._check_client_secret(client_id, str(form["client_secret"]))
            elif form.get("client_assertion_type") == JWT_BEARER and "client_assertion" in form:
                self._check_assertion(client_id, str(form["client_assertion"]))
            else:
                raise EntraError(
                    401, "invalid_client", 7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                )
        except EntraError as exc:
            log.info("token request refused: AADSTS%s", exc.code)
            return exc.response(origin)
        token, expires_in, _ = self._issue(origin, client_id, resource)
        return web.json_response(
            {"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": token},
            headers=_NO_STORE,
        )

    def _check_tenant(self, tenant: str) -> None:
        if tenant != self.tenant_id:
            raise EntraError(
                400, "invalid_tenant", 90002,
                f"Tenant '{tenant}' not found. The emulator serves tenant '{self.tenant_id}': "
                "set AZURE_TENANT_ID (or tenant_id=) to it.",
            )

    def _check_request(self, form: Mapping[str, Any]) -> tuple[str, str]:
        for required in ("grant_type", "client_id"):
            if not form.get(required):
                raise EntraError(400, "invalid_request", 900144,
                                 f"The request body must contain the following parameter: '{required}'.")
        grant = form["grant_type"]
        if grant != "client_credentials":
            raise EntraError(
                400, "unsupported_grant_type", 70003,
                f"The app requested an unsupported grant type '{grant}'. The emulator serves 'client_credentials'.",
            )
        return str(form["client_id"]), _resource_of_scope(str(form.get("scope", "")))

    def _unknown_client(self, client_id: str) -> EntraError:
        return EntraError(
            401, "invalid_client", 700016,
            f"Application with identifier '{client_id}' was not found in the directory '{self.tenant_id}'. "
            "Register it with the emulator (--service-principal or --federated-credential).",
        )

    def _check_client_secret(self, client_id: str, secret: str) -> None:
        expected = self._client_secrets.get(client_id)
        if expected is None:
            raise self._unknown_client(client_id)
        if not hmac.compare_digest(expected.encode(), secret.encode()):
            raise EntraError(
                401, "invalid_client", 7000215,
                f"Invalid client secret provided for application '{client_id}'. Ensure the secret being sent "
                "in the request is the client secret value, not the client secret ID.",
            )

    def _check_assertion(self, client_id: str, assertion: str) -> None:
        credentials = self._federated.get(client_id)
        if not credentials:
            raise self._unknown_client(client_id)
        try:
            # The signature is checked later, and only against a registered JWKS; time is always checked.
            claims = jwt.decode(assertion, options={"verify_signature": False, "verify_exp": True, "verify_nbf": True})
        except jwt.ExpiredSignatureError:
            raise EntraError(
                401, "invalid_client", 700024,
                "Client assertion is not within its valid time range: it has expired. Mount a fresh "
                "service-account token.",
            ) from None
        except jwt.InvalidTokenError:
            raise EntraError(401, "invalid_client", 50027, "JWT token is invalid or malformed.") from None
        issuer, subject, audience = claims.get("iss"), claims.get("sub"), claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        by_issuer = [c for c in credentials if c.issuer == issuer]
        if not by_issuer:
            raise _no_federated_match(700211, "issuer", issuer)
        matching = [c for c in by_issuer if c.subject == subject]
        if not matching:
            raise _no_federated_match(700213, "subject", subject)
        if TOKEN_EXCHANGE_AUDIENCE not in audiences:
            raise _no_federated_match(700212, "audience", audience)
        if not any(c.jwks is None or _signed_by(assertion, c.jwks) for c in matching):
            raise EntraError(
                401, "invalid_client", 700027,
                f"Client assertion failed signature validation against the keys registered for issuer '{issuer}'.",
            )

    # ---- managed identity ----

    async def _app_service_token(self, request: web.Request) -> web.Response:
        origin = str(request.url.origin())
        try:
            sent = request.headers.get("X-IDENTITY-HEADER", "")
            if not hmac.compare_digest(sent.encode(), self.identity_header.encode()):
                raise ManagedIdentityError(
                    401, "The X-IDENTITY-HEADER does not match the emulator's identity header; "
                    "set IDENTITY_HEADER to the value given with --identity-header.",
                )
            client_id, resource = self._managed_identity_request(request.query)
        except ManagedIdentityError as exc:
            return web.json_response({"statusCode": exc.status, "message": exc.message}, status=exc.status)
        token, _, expires_on = self._issue(origin, client_id, resource)
        return web.json_response(
            {"access_token": token, "expires_on": str(expires_on), "resource": resource,
             "token_type": "Bearer", "client_id": client_id},
            headers=_NO_STORE,
        )

    async def _imds_token(self, request: web.Request) -> web.Response:
        origin = str(request.url.origin())
        try:
            if request.headers.get("Metadata", "").lower() != "true":
                raise ManagedIdentityError(400, "Required metadata header not specified")
            client_id, resource = self._managed_identity_request(request.query)
        except ManagedIdentityError as exc:
            return web.json_response({"error": "invalid_request", "error_description": exc.message}, status=exc.status)
        token, expires_in, expires_on = self._issue(origin, client_id, resource)
        now = expires_on - expires_in
        return web.json_response(
            {"access_token": token, "client_id": client_id, "expires_in": str(expires_in),
             "expires_on": str(expires_on), "ext_expires_in": str(expires_in), "not_before": str(now),
             "resource": resource, "token_type": "Bearer"},
            headers=_NO_STORE,
        )

    def _managed_identity_request(self, query: Mapping[str, str]) -> tuple[str, str]:
        """Return (client_id, resource) for a managed identity token request, or refuse it."""
        resource = query.get("resource", "")
        if not resource:
            raise ManagedIdentityError(400, "Required audience parameter not specified")
        if any(name in query for name in ("object_id", "principal_id", "mi_res_id", "msi_res_id")):
            raise ManagedIdentityError(
                400, "Identity not found: the emulator selects user-assigned identities by client_id only."
            )
        client_id = query.get("client_id") or None
        if client_id not in self._managed:
            which = f"user-assigned identity '{client_id}'" if client_id else "system-assigned identity"
            raise ManagedIdentityError(
                400, f"Identity not found: the {which} is not registered with the emulator (--managed-identity)."
            )
        return client_id or self.system_assigned_client_id, resource.removesuffix("/.default")

    # ---- configuration ----

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "TokenIssuer":
        issuer = cls(tenant_id=args.tenant_id, token_lifetime=args.token_lifetime, identity_header=args.identity_header)
        for client_id, secret in args.service_principal or ():
            issuer.add_client_secret(client_id, secret)
        for client_id, iss, subject, jwks in args.federated_credential or ():
            issuer.add_federated_credential(client_id, iss, subject, jwks)
        for client_id in args.managed_identity or ():
            issuer.add_managed_identity(client_id)
        return issuer


def _resource_of_scope(scope: str) -> str:
    scopes = [s for s in scope.split() if s not in RESERVED_SCOPES]
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        raise EntraError(
            400, "invalid_scope", 1002012,
            f"The provided value for scope '{scope}' is not valid. Client credential flows must have a scope "
            "value with /.default suffixed to the resource identifier (application ID URI).",
        )
    return scopes[0].removesuffix("/.default")


def _no_federated_match(code: int, claim: str, value: object) -> EntraError:
    return EntraError(
        401, "invalid_client", code,
        f"No matching federated identity record found for presented assertion {claim} '{value}'. Please check "
        "your federated identity credential Subject, Audience and Issuer against the presented assertion "
        f"(the audience must be '{TOKEN_EXCHANGE_AUDIENCE}').",
    )


def _load_jwks(path: Path, client_id: str) -> jwt.PyJWKSet:
    try:
        return jwt.PyJWKSet.from_json(path.read_text())
    except (OSError, jwt.PyJWKSetError, jwt.InvalidKeyError, ValueError) as exc:
        raise ValueError(
            f"federated credential for client '{client_id}': cannot load JWKS file {path} ({exc}); "
            f"save the issuer's keys there, e.g. `kubectl get --raw /openid/v1/jwks > {path}`"
        ) from None


def _signed_by(assertion: str, key_set: jwt.PyJWKSet) -> bool:
    try:
        kid = jwt.get_unverified_header(assertion).get("kid")
    except jwt.InvalidTokenError:
        return False
    for key in key_set.keys:
        if kid is not None and key.key_id not in (None, kid):
            continue
        try:
            jwt.decode(assertion, key.key, algorithms=ASSERTION_ALGORITHMS,
                       options={"verify_aud": False, "verify_exp": False})
        except (jwt.InvalidTokenError, TypeError, ValueError):
            # TypeError: the token's alg does not fit this key's type (RS256 against the API server's EC
            # key): not signed by it, rather than a 500.
            continue
        return True
    return False


# ---- command line ----

def _service_principal(value: str) -> tuple[str, str]:
    client_id, sep, secret = value.partition(":")
    if not (sep and client_id and secret):
        raise argparse.ArgumentTypeError("expected CLIENT_ID:SECRET (both non-empty)")
    return client_id, secret


def _federated_credential(value: str) -> tuple[str, str, str, Path | None]:
    parts = value.split(",")
    if len(parts) not in (3, 4) or not all(parts):
        raise argparse.ArgumentTypeError(
            f"expected CLIENT_ID,ISSUER,SUBJECT[,JWKS_FILE], got {value!r}"
        )
    return parts[0], parts[1], parts[2], Path(parts[3]) if len(parts) == 4 else None


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of seconds >= 1, got {value!r}")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Entra ID token issuer (with --tls)")
    group.add_argument("--tenant-id", default=DEFAULT_TENANT_ID,
                       help="tenant the issuer serves; clients set AZURE_TENANT_ID to it (default: %(default)s)")
    group.add_argument("--service-principal", metavar="CLIENT_ID:SECRET", action="append", type=_service_principal,
                       help="accept this client secret (ClientSecretCredential); repeatable")
    group.add_argument("--federated-credential", metavar="CLIENT_ID,ISSUER,SUBJECT[,JWKS_FILE]", action="append",
                       type=_federated_credential,
                       help="accept assertions with this iss and sub for the client (WorkloadIdentityCredential); "
                            "with JWKS_FILE their signature is checked too; repeatable")
    group.add_argument("--managed-identity", metavar="CLIENT_ID", action="append", nargs="?", const=None,
                       help="serve this user-assigned managed identity, or the system-assigned one without a value; "
                            "repeatable")
    group.add_argument("--identity-header", metavar="VALUE",
                       help="the App Service X-IDENTITY-HEADER value clients must send (their IDENTITY_HEADER); "
                            "random when not given")
    group.add_argument("--token-lifetime", metavar="SECONDS", type=_positive_int, default=DEFAULT_TOKEN_LIFETIME,
                       help="lifetime of issued access tokens (default: %(default)s)")
