"""uvicorn's HTTP protocol with one socket write per response instead of two.

uvicorn writes a response's status line and headers as soon as the app sends
``http.response.start``, and the body at ``http.response.body``: two ``send`` calls, two TCP
segments and two wake-ups of the client for every small response. On loopback and in a
container each ``send`` also runs the receiver's side of TCP in the caller, so for the phone
path (a few hundred bytes per response) they were the single largest cost in the server's
profile. :class:`CoalescingHttpProtocol` hands uvicorn a transport that gathers the writes made
during one turn of the event loop and sends them together at the end of that turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingHttpProtocol"]


class _CoalescingTransport:
    """A transport proxy: :meth:`write` buffers until the end of the loop's current turn;
    ``close`` sends what is buffered first; everything else goes to the real transport."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport, self._loop = transport, loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpProtocol(HttpToolsProtocol):
    """``uvicorn.run(..., http=CoalescingHttpProtocol)``: httptools, one write per response."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
