"""`EmulatorServer`: the emulator in a background thread with its own event loop, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .app import Emulator, build_app
from .faults import FaultSet
from .hmac_auth import Credentials
from .requestlog import RequestLog
from .store import Store

if TYPE_CHECKING:  # the colleague modules are optional at runtime
    from .identity import TokenIssuer
    from .keyvault import SecretVault
    from .tls import TLSMaterial


class EmulatorServer:
    """Serves on `host` (port 0 picks a free port) until `stop()`; `with EmulatorServer() as server: ...`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        data: Path | None = None,
        credentials: Credentials | None = None,
        tls: TLSMaterial | None = None,
        issuer: TokenIssuer | None = None,
        vault: SecretVault | None = None,
    ) -> None:
        self.host = host
        self.store = Store(data)
        self.credentials = credentials or Credentials.generate()
        self.faults = FaultSet()
        self.request_log = RequestLog()
        self.tls = tls
        self.issuer = issuer
        self.vault = vault
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        # A wildcard bind address is not something a client can connect to.
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def connection_string(self) -> str:
        return self.credentials.connection_string(self.endpoint)

    def app(self) -> web.Application:
        routes: list[web.RouteDef] = []
        if self.issuer is not None:
            routes += self.issuer.routes()
        if self.vault is not None:
            routes += self.vault.routes()
        emulator = Emulator(self.store, self.credentials, self.faults, self.request_log, self.issuer)
        return build_app(emulator, routes)

    async def serve(self) -> None:
        """Start listening on the running loop; sets `port` to the bound port."""
        ssl_context: ssl.SSLContext | None = self.tls.server_context() if self.tls else None
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ssl_context)
        await site.start()
        server: Any = site._server  # aiohttp exposes the bound sockets only here
        self.port = server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> EmulatorServer:
        """Run in a daemon thread; returns once the port is bound (or raises what prevented it)."""
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self.serve())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.close())
            self._loop.close()

        self._thread = threading.Thread(target=run, name=f"appconfig-emulator-{id(self)}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
