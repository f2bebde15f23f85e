"""HTTPS material for the emulator: a local CA and a serving certificate it signs.

The Azure SDKs refuse bearer tokens over plain HTTP, so Entra ID and Key Vault flows need TLS.
Clients trust the CA file (`connection_verify=`, `REQUESTS_CA_BUNDLE`), never the serving cert itself.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server-key.pem"

CA_LIFETIME = datetime.timedelta(days=3650)
CERT_LIFETIME = datetime.timedelta(days=397)
# A serving cert this close to expiry is replaced rather than reused.
RENEW_BEFORE = datetime.timedelta(days=30)

# A given CA may be RSA; what we generate is EC P-256 (fast, accepted by every TLS stack the SDKs use).
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class TLSMaterial:
    ca_cert: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def ensure_tls(
    directory: Path,
    hosts: Sequence[str] = ("127.0.0.1", "localhost"),
    ca_cert: Path | None = None,
    ca_key: Path | None = None,
) -> TLSMaterial:
    """Return a CA and a serving cert for `hosts` in `directory`, creating only what is missing or stale.

    With `ca_cert`/`ca_key` the serving cert is signed by that CA (e.g. one the cluster already trusts);
    otherwise a CA is generated once in `directory` and reused, so clients keep trusting it across restarts.
    """
    if (ca_cert is None) != (ca_key is None):
        raise ValueError("ensure_tls: ca_cert and ca_key go together; pass both (to sign with your CA) or neither")
    if not hosts:
        raise ValueError("ensure_tls: hosts is empty; pass at least one host name or IP for the serving cert")
    directory.mkdir(parents=True, exist_ok=True)
    if ca_cert is None or ca_key is None:
        ca_cert, ca_key = directory / CA_CERT_FILE, directory / CA_KEY_FILE
        if not (ca_cert.exists() and ca_key.exists()):
            _write_ca(ca_cert, ca_key)
    ca, signing_key = _load_ca(ca_cert, ca_key)
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    if not _reusable(cert_path, key_path, ca, hosts):
        _write_serving_cert(cert_path, key_path, ca, signing_key, hosts)
    return TLSMaterial(ca_cert=ca_cert, cert=cert_path, key=key_path)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: SigningKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _write_ca(cert_path: Path, key_path: Path) -> None:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "appconfig-sync emulator CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _load_ca(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, SigningKey]:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"TLS CA: cannot read certificate {cert_path} or key {key_path} ({exc.__class__.__name__}); "
            "pass an unencrypted PEM certificate and key, or remove them to generate a new CA"
        ) from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ValueError(f"TLS CA: key {key_path} is not an RSA or EC private key; pass one of those")
    if cert.public_key() != key.public_key():
        raise ValueError(f"TLS CA: key {key_path} does not belong to certificate {cert_path}; pass the matching pair")
    return cert, key


def _san_entries(hosts: Sequence[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for host in hosts:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return entries


def _reusable(cert_path: Path, key_path: Path, ca: x509.Certificate, hosts: Sequence[str]) -> bool:
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    covered = set(names)
    return all(entry in covered for entry in _san_entries(hosts)) and cert.not_valid_after_utc - _now() > RENEW_BEFORE


def _write_serving_cert(
    cert_path: Path, key_path: Path, ca: x509.Certificate, ca_key: SigningKey, hosts: Sequence[str]
) -> None:
    key = _new_key()
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + CERT_LIFETIME, ca.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(_san_entries(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_encipherment=False, key_cert_sign=False, crl_sign=False,
                content_commitment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
