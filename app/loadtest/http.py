"""A small HTTP/1.1 client on asyncio streams: keep-alive, Content-Length and chunked bodies.

Why not urllib or tornado's client: a browser keeps its connection open between the
clicks of a questionnaire; one connection per simulated participant, kept alive, costs
the server what a browser costs it (tornado's simple client opens one per request).
Loopback and plain HTTP only (the harness never leaves the machine).
"""
from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class HttpError(RuntimeError):
    pass


class Connection:
    def __init__(self, host: str, port: int, timeout: float = 30.0):
        self.host, self.port, self.timeout = host, port, timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (OSError, ConnectionError):
                pass
        self._reader = self._writer = None

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout)

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request; a connection the server closed meanwhile is reopened and the request
        sent again once (as browsers do; the app's POSTs are idempotent)."""
        for attempt in (0, 1):
            fresh = self._writer is None
            if fresh:
                await self._open()
            try:
                return await asyncio.wait_for(self._exchange(method, path, body, headers or {}), self.timeout)
            except (ConnectionError, asyncio.IncompleteReadError, HttpError, OSError):
                await self.close()
                if attempt or fresh:
                    raise
        raise AssertionError("not reached")

    async def _exchange(self, method, path, body, headers):
        assert self._reader is not None and self._writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Connection: keep-alive",
                 "User-Agent: protoproto-loadtest"]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self._writer.drain()
        status_line = await self._reader.readline()
        if not status_line:
            raise HttpError("connection closed")
        parts = status_line.decode("latin-1").split(" ", 2)
        status = int(parts[1])
        head: dict[str, str] = {}
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            head[name.strip().lower()] = value.strip()
        if head.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self._reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self._reader.readline()
                    break
                chunks.append(await self._reader.readexactly(size))
                await self._reader.readline()
            data = b"".join(chunks)
        elif "content-length" in head:
            data = await self._reader.readexactly(int(head["content-length"]))
        elif method == "HEAD" or status in (204, 304):
            data = b""
        else:
            data = await self._reader.read()
            await self.close()
        if head.get("connection", "").lower() == "close":
            await self.close()
        return status, head, data


def split_url(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"{url}: the load harness speaks plain http:// to this machine only")
    return parts.hostname, parts.port or 80, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
