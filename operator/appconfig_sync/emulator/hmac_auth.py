"""HMAC-SHA256 request authentication, verified the way App Configuration does it.

The client signs `METHOD\\n<path and query>\\n<values of SignedHeaders joined by ';'>` with the
base64-decoded secret. We check the credential id, that the signed headers cover date, host and
content hash, that the content hash is the body's, that the date is within 15 minutes, and the
signature. Failures say what was wrong but never echo the secret or a valid signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

MAX_SKEW = timedelta(minutes=15)
REQUIRED_HEADERS = ({"x-ms-date", "date"}, {"host"}, {"x-ms-content-sha256"})


class AuthError(Exception):
    """Why a request is not authenticated; the message is safe to send back."""


@dataclass(frozen=True)
class Credentials:
    id: str
    secret: str  # base64, as in the connection string

    @classmethod
    def generate(cls) -> Credentials:
        return cls(id="emulator-" + secrets.token_hex(4), secret=base64.b64encode(secrets.token_bytes(32)).decode())

    def __post_init__(self) -> None:
        if not self.id or any(c in self.id for c in ";&= "):
            raise ValueError("credential id: must be non-empty without ';', '&', '=' or spaces; pass another --id")
        try:
            key = base64.b64decode(self.secret, validate=True)
        except ValueError:
            key = b""
        if not key:
            raise ValueError("credential secret: must be non-empty base64; pass another --secret")

    def connection_string(self, endpoint: str) -> str:
        return f"Endpoint={endpoint};Id={self.id};Secret={self.secret}"

    def __repr__(self) -> str:
        return f"Credentials(id={self.id!r}, secret=<hidden>)"


def content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def parse_date(text: str) -> datetime:
    """The Python SDK sends `Dec, 04 2026 14:58:43.173054 GMT`; other SDKs send RFC 1123 dates."""
    for fmt in ("%b, %d %Y %H:%M:%S.%f GMT", "%b, %d %Y %H:%M:%S GMT"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise AuthError(f"x-ms-date: '{text}' is not a date") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def verify(
    credentials: Credentials,
    *,
    authorization: str,
    method: str,
    path_and_query: str,
    headers: dict[str, str],
    body: bytes,
    now: datetime | None = None,
) -> None:
    """Raise AuthError unless `authorization` is a valid HMAC-SHA256 signature of this request.

    `headers` maps lower-cased header names to values.
    """
    scheme, _, params_text = authorization.partition(" ")
    if scheme != "HMAC-SHA256":
        raise AuthError("Authorization: expected the HMAC-SHA256 scheme")
    params: dict[str, str] = {}
    for part in params_text.split("&"):
        name, sep, value = part.strip().partition("=")
        if sep:
            params[name] = value
    missing = [p for p in ("Credential", "SignedHeaders", "Signature") if p not in params]
    if missing:
        raise AuthError(f"Authorization: missing {', '.join(missing)}")
    if not hmac.compare_digest(params["Credential"], credentials.id):
        raise AuthError("Authorization: unknown Credential; use the Id from the emulator's connection string")

    signed = [h.strip().lower() for h in params["SignedHeaders"].split(";") if h.strip()]
    for group in REQUIRED_HEADERS:
        if not group & set(signed):
            raise AuthError(f"SignedHeaders: must include {' or '.join(sorted(group))}")
    for name in signed:
        if name not in headers:
            raise AuthError(f"SignedHeaders: header '{name}' is signed but not sent")

    if not hmac.compare_digest(headers["x-ms-content-sha256"], content_hash(body)):
        raise AuthError("x-ms-content-sha256: does not match the request body")
    sent = parse_date(headers["x-ms-date"] if "x-ms-date" in signed else headers["date"])
    skew = abs((now or datetime.now(timezone.utc)) - sent)
    if skew > MAX_SKEW:
        raise AuthError(f"x-ms-date: off by {int(skew.total_seconds())} s; at most 15 minutes are allowed")

    key = base64.b64decode(credentials.secret)
    values = ";".join(headers[name] for name in signed)
    # A client whose endpoint ends in '/' signs the path without its leading '/'.
    for target in (path_and_query, path_and_query[1:]):
        string_to_sign = f"{method.upper()}\n{target}\n{values}"
        expected = base64.b64encode(hmac.new(key, string_to_sign.encode(), hashlib.sha256).digest()).decode()
        if hmac.compare_digest(expected, params["Signature"]):
            return
    raise AuthError("Signature: invalid; sign with the Secret from the emulator's connection string")


def sign(
    credentials: Credentials,
    *,
    method: str,
    host: str,
    path_and_query: str,
    body: bytes = b"",
    now: datetime | None = None,
) -> dict[str, str]:
    """Headers for a signed request, exactly as the SDK's policy builds them (used by the admin client and bench)."""
    date = (now or datetime.now(timezone.utc)).strftime("%b, %d %Y %H:%M:%S.%f ") + "GMT"
    digest = content_hash(body)
    string_to_sign = f"{method.upper()}\n{path_and_query}\n{date};{host};{digest}"
    signature = base64.b64encode(
        hmac.new(base64.b64decode(credentials.secret), string_to_sign.encode(), hashlib.sha256).digest()
    ).decode()
    return {
        "x-ms-date": date,
        "x-ms-content-sha256": digest,
        "Authorization": f"HMAC-SHA256 Credential={credentials.id}&SignedHeaders=x-ms-date;host;x-ms-content-sha256"
        f"&Signature={signature}",
    }
