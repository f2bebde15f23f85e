"""How many sentinel checks answered 304 the emulator serves per second.

Starts `appconfig-sync emulator` as a subprocess, stores a `Sentinel`, then has several concurrent
aiohttp clients send what the provider sends on refresh (a HMAC-signed `GET /kv/Sentinel?label=%00`
with `If-None-Match`) for a fixed time, and prints requests per second and p50/p99 latency.

    .venv/bin/python bench/emulator_rps.py [--seconds 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from appconfig_sync.emulator.hmac_auth import Credentials, sign


def parse_connection_string(line: str) -> tuple[str, Credentials]:
    parts = dict(part.split("=", 1) for part in line.strip().split(";"))
    return parts["Endpoint"], Credentials(parts["Id"], parts["Secret"])


async def request(session: aiohttp.ClientSession, endpoint: str, credentials: Credentials, method: str, path: str,
                  body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, CIMultiDict[str]]:  # fmt: skip
    url = URL(endpoint + path, encoded=True)
    signed = sign(credentials, method=method, host=url.raw_authority, path_and_query=url.raw_path_qs, body=body)
    async with session.request(method, url, data=body, headers={**signed, **(headers or {})}) as response:
        await response.read()
        return response.status, response.headers.copy()


async def worker(session: aiohttp.ClientSession, endpoint: str, credentials: Credentials, etag: str,
                 deadline: float, latencies: list[float]) -> None:  # fmt: skip
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        status, _ = await request(session, endpoint, credentials, "GET", "/kv/Sentinel?api-version=2026-04-01&label=%00",
                                  headers={"If-None-Match": etag})  # fmt: skip
        if status != 304:
            raise RuntimeError(f"sentinel check: expected 304, got {status}")
        latencies.append(time.perf_counter() - started)


async def measure(endpoint: str, credentials: Credentials, seconds: float, concurrency: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        status, headers = await request(session, endpoint, credentials, "PUT", "/kv/Sentinel",
                                        json.dumps({"value": "1"}).encode(), {"Content-Type": "application/json"})  # fmt: skip
        if status != 200:
            raise RuntimeError(f"storing the sentinel: HTTP {status}")
        etag = headers["ETag"]
        warmup: list[float] = []
        await asyncio.gather(*(worker(session, endpoint, credentials, etag, time.perf_counter() + 0.5, warmup)
                               for _ in range(concurrency)))  # fmt: skip
        latencies: list[float] = []
        started = time.perf_counter()
        await asyncio.gather(*(worker(session, endpoint, credentials, etag, started + seconds, latencies)
                               for _ in range(concurrency)))  # fmt: skip
        elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"sentinel 304s: {len(latencies)} in {elapsed:.1f} s = {len(latencies) / elapsed:.0f} req/s "
          f"with {concurrency} concurrent clients; latency p50 {p50:.2f} ms, p99 {p99:.2f} ms")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    emulator = subprocess.Popen([sys.executable, "-m", "appconfig_sync", "emulator", "--log-level", "WARNING"],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert emulator.stdout is not None
        endpoint, credentials = parse_connection_string(emulator.stdout.readline())
        asyncio.run(measure(endpoint, credentials, args.seconds, args.concurrency))
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
