"""`appconfig-sync emulator`: run the local App Configuration service until Ctrl-C or SIGTERM.

Prints the connection string as the first line on stdout (then, with --tls, the CA certificate
path) so scripts can read it; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from .hmac_auth import Credentials
from .server import EmulatorServer

log = logging.getLogger("appconfig_sync.emulator")


def _optional(name: str) -> ModuleType | None:
    """The TLS, identity and Key Vault parts are optional: without them the emulator serves HMAC over HTTP."""
    try:
        return __import__(f"{__package__}.{name}", fromlist=[name])
    except ImportError:
        return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default)")
    parser.add_argument("--data", type=Path, metavar="FILE",
                        help="YAML or JSON file to seed from and persist every change to (default: memory only)")
    parser.add_argument("--id", default=os.environ.get("APPCONFIG_EMULATOR_ID") or None,
                        help="credential id for the connection string (env APPCONFIG_EMULATOR_ID; default random)")
    parser.add_argument("--secret", default=os.environ.get("APPCONFIG_EMULATOR_SECRET") or None,
                        help="base64 credential secret (env APPCONFIG_EMULATOR_SECRET; default random)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    tls = parser.add_argument_group("TLS (needed for Entra ID tokens and Key Vault)")
    tls.add_argument("--tls", action="store_true", help="serve HTTPS, Entra ID tokens and Key Vault secrets")
    tls.add_argument("--tls-dir", type=Path, metavar="DIR",
                     help="where the CA and server certificate are kept (default: a new temporary directory)")
    tls.add_argument("--ca-cert", type=Path, metavar="FILE", help="use this CA certificate (PEM) instead of a new one")
    tls.add_argument("--ca-key", type=Path, metavar="FILE", help="the private key (PEM) of --ca-cert")
    for name in ("identity", "keyvault"):
        module = _optional(name)
        if module is not None:
            module.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    try:
        server = build_server(args)
    except (ValueError, OSError) as exc:
        print(f"appconfig-sync emulator: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(server))
    except OSError as exc:
        print(f"appconfig-sync emulator: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


def build_server(args: argparse.Namespace) -> EmulatorServer:
    if (args.id is None) != (args.secret is None):
        raise ValueError("--id and --secret (or APPCONFIG_EMULATOR_ID/SECRET) go together; give both or neither")
    credentials = Credentials(args.id, args.secret) if args.id is not None else Credentials.generate()
    if not args.tls and (args.ca_cert or args.ca_key or args.tls_dir):
        raise ValueError("--tls-dir, --ca-cert and --ca-key only apply with --tls; add --tls")
    if (args.ca_cert is None) != (args.ca_key is None):
        raise ValueError("--ca-cert and --ca-key go together; give both or neither")
    if not args.tls:
        return EmulatorServer(host=args.host, port=args.port, data=args.data, credentials=credentials)
    tls_mod, identity_mod, keyvault_mod = _optional("tls"), _optional("identity"), _optional("keyvault")
    if tls_mod is None or identity_mod is None:
        raise ValueError("--tls: this build has no TLS/identity support; run without --tls")
    directory = args.tls_dir or Path(tempfile.mkdtemp(prefix="appconfig-emulator-tls-"))
    hosts = tuple(dict.fromkeys([args.host, "127.0.0.1", "localhost"]))
    material = tls_mod.ensure_tls(directory, hosts, ca_cert=args.ca_cert, ca_key=args.ca_key)
    issuer = identity_mod.TokenIssuer.from_args(args)
    vault = keyvault_mod.SecretVault.from_args(args, issuer) if keyvault_mod is not None else None
    return EmulatorServer(host=args.host, port=args.port, data=args.data, credentials=credentials,
                          tls=material, issuer=issuer, vault=vault)  # fmt: skip


async def serve(server: EmulatorServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.serve()
    print(server.connection_string, flush=True)
    if server.tls is not None:
        print(server.tls.ca_cert, flush=True)
    log.info("emulator listening on %s (data: %s)", server.endpoint, server.store.path or "memory only")
    try:
        await stop.wait()
    finally:
        await server.close()
        log.info("emulator stopped")
