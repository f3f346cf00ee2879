"""A lean open-loop HTTP/1.1 load generator for the benchmarks.

Requests start on a fixed schedule (``rate`` per second) whatever the latency
of earlier ones, so queueing in the server shows in the percentiles instead of
slowing the client down (closed-loop tools such as wrk hide it). It speaks
just enough HTTP/1.1 over asyncio streams (keep-alive, Content-Length bodies)
to cost the shared CPU far less than a full client library would: on a
2-core machine the generator competes with the server it measures.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Result:
    requests: int
    seconds: float
    latencies: list[float] = field(repr=False)
    errors: int
    statuses: dict[int, int]
    late_starts: int  # requests that started more than 1 ms behind schedule

    def summary(self) -> dict:
        lat = sorted(self.latencies)

        def pct(p: float) -> float:
            return round(1000 * lat[min(len(lat) - 1, round(p / 100 * (len(lat) - 1)))], 2)

        return {
            "requests": self.requests,
            "achieved_per_s": round(self.requests / self.seconds, 1),
            "p50_ms": pct(50) if lat else None,
            "p90_ms": pct(90) if lat else None,
            "p99_ms": pct(99) if lat else None,
            "max_ms": round(1000 * lat[-1], 2) if lat else None,
            "errors": self.errors,
            "late_starts": self.late_starts,
        }


def request_bytes(host: str, path: str, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode()


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def roundtrip(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status


async def _run(targets: list[tuple[str, int, list[bytes]]], rate: float, seconds: float) -> Result:
    """Request k goes to target k mod len(targets) (host, port, its requests)."""
    free: list[list[_Conn]] = [[] for _ in targets]
    lat: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    late = 0

    async def one(t: int, raw: bytes, t0: float) -> None:
        nonlocal errors
        host, port, _ = targets[t]
        conn = free[t].pop() if free[t] else _Conn(*await asyncio.open_connection(host, port))
        try:
            status = await conn.roundtrip(raw)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            conn.writer.close()
            lat.append(time.perf_counter() - t0)
            return
        lat.append(time.perf_counter() - t0)
        statuses[status] = statuses.get(status, 0) + 1
        if status != 200:
            errors += 1
        free[t].append(conn)

    n = int(rate * seconds)
    tasks = []
    start = time.perf_counter()
    for k in range(n):
        due = start + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.001:
            late += 1
        t = k % len(targets)
        raws = targets[t][2]
        tasks.append(asyncio.create_task(one(t, raws[(k // len(targets)) % len(raws)], due)))
    await asyncio.gather(*tasks)
    took = time.perf_counter() - start
    for pool in free:
        for c in pool:
            c.writer.close()
    return Result(n, took, lat, errors, statuses, late)


def open_loop(url: str, paths: list[tuple[str, str | None]], rate: float, seconds: float) -> Result:
    """GET ``paths`` (path, bearer token) round-robin at ``rate`` per second for
    ``seconds``; latency is measured from when each request was due to start
    (so a generator falling behind cannot hide queueing)."""
    return open_loop_many([url], paths, rate, seconds)


def open_loop_many(
    urls: list[str], paths: list[tuple[str, str | None]], rate: float, seconds: float
) -> Result:
    """:func:`open_loop` spread over several servers in turn (nodes of one
    service behind a round-robin balancer): ``rate`` is the total."""
    targets = []
    for url in urls:
        u = urlsplit(url)
        raws = [request_bytes(u.netloc, p, t) for p, t in paths]
        targets.append((u.hostname or "127.0.0.1", u.port or 80, raws))
    return asyncio.run(_run(targets, rate, seconds))
