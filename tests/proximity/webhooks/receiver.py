"""A real webhook receiver for tests: HTTP/1.1 on 127.0.0.1, verifying every signature.

It runs on the test's event loop (``asyncio.start_server``), keeps connections alive like a
real server, and can be made slow, failing (any status per request) or unreachable (port
closed, connections dropped) and then healed on the same port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from proximity.webhooks import SignatureError, verify

__all__ = ["Receiver", "Request"]


@dataclass
class Request:
    """One delivery as received."""

    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any]
    status: int = 200

    @property
    def delivery_id(self) -> str:
        return self.payload["delivery_id"]

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.payload["events"]

    @property
    def device_id(self) -> str:
        return self.events[0]["device_id"]


#: Decides the answer to a request: (HTTP status, seconds to wait before answering).
Behaviour = Callable[[Request], "tuple[int, float]"]


@dataclass
class Receiver:
    """Records deliveries; answers per ``behaviour`` (default: 200 at once)."""

    secrets: dict[str, str] = field(default_factory=dict)  # webhook id -> secret
    behaviour: Behaviour = lambda request: (200, 0.0)
    requests: list[Request] = field(default_factory=list)  # every request, in arrival order
    bad_signatures: list[str] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set = field(default_factory=set)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> Receiver:
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def open(self) -> None:
        """Listen (again, on the same port once one was chosen)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop every open connection (the receiver is 'down')."""
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()
            self._server = None

    # -- what the tests look at ---------------------------------------------------------------

    def accepted(self) -> list[Request]:
        """Requests answered 2xx, in arrival order."""
        return [r for r in self.requests if 200 <= r.status < 300]

    def delivered(self, webhook_id: str | None = None) -> dict[str, list[tuple]]:
        """Events accepted per device, each delivery counted once (first acceptance), in order.

        An event is ``(device_id, ts)``.
        """
        seen: set[str] = set()
        out: dict[str, list[tuple]] = {}
        for r in self.accepted():
            if r.delivery_id in seen or (webhook_id and r.payload["webhook_id"] != webhook_id):
                continue
            seen.add(r.delivery_id)
            for e in r.events:
                out.setdefault(e["device_id"], []).append((e["device_id"], e["ts"]))
        return out

    def count(self) -> int:
        return sum(len(v) for v in self.delivered().values())

    # -- HTTP ---------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, delay_s = await self._answer(headers, body)
                if delay_s:
                    await asyncio.sleep(delay_s)
                extra = "Location: http://127.0.0.1:1/elsewhere\r\n" if 300 <= status < 400 else ""
                writer.write(f"HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, headers: dict[str, str], body: bytes) -> tuple[int, float]:
        payload = orjson.loads(body)
        request = Request(headers, body, payload)
        secret = self.secrets.get(payload.get("webhook_id"))
        try:
            if secret is None:
                raise SignatureError("mismatch", None, "unknown webhook")
            verify(secret, headers.get("proximity-signature"), body)
        except SignatureError as exc:
            self.bad_signatures.append(str(exc))
            request.status = 400
            self.requests.append(request)
            return 400, 0.0
        request.status, delay_s = self.behaviour(request)
        self.requests.append(request)
        return request.status, delay_s
