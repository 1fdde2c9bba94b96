"""Where webhooks may point: public addresses only, unless a host is on the allow-list.

A webhook URL naming an internal address (loopback, private ranges, link-local such as the
cloud metadata service 169.254.169.254, ...) is refused at creation; a host name is resolved
again at every delivery and refused when any of its addresses is not public, and the request
then goes to the address that was checked (the name only travels in the Host header and TLS
SNI), so a name that resolves to a public address for the check and to an internal one for the
connection (DNS rebinding) gets nowhere. Hosts on ``allow_hosts`` (names or IPs; local
development, tests, an internal receiver on purpose) are let through as they are.

>>> g = HostGuard()
>>> g.refusal("169.254.169.254"), g.refusal("example.com")
('169.254.169.254 is not a public address', None)
>>> HostGuard(["127.0.0.1"]).refusal("127.0.0.1") is None
True
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

__all__ = ["HostGuard", "Blocked"]

_LOCAL_NAMES = ("localhost", "localhost.localdomain")

Resolver = Callable[[str, int], Awaitable[list[str]]]


class Blocked(Exception):
    """A delivery's host resolves to an address that is not public (and is not allowed)."""


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


class HostGuard:
    """Checks webhook hosts against public addresses and an allow-list.

    Parameters
    ----------
    allow_hosts : iterable of str
        Host names or IP addresses allowed even when internal (case-insensitive names).
    resolve : async callable, optional
        ``(host, port) -> [ip, ...]``; the system resolver by default (tests swap it).
    """

    def __init__(self, allow_hosts: Iterable[str] = (), resolve: Resolver | None = None):
        self.allow: frozenset[str] = frozenset(self._norm(h) for h in allow_hosts if h and h.strip())
        self._resolve = resolve or _getaddrinfo

    @staticmethod
    def _norm(host: str) -> str:
        ip = _ip(host.strip())
        return str(ip) if ip is not None else host.strip().lower().rstrip(".")

    def allowed(self, host: str) -> bool:
        return self._norm(host) in self.allow

    def refusal(self, host: str) -> str | None:
        """Why ``host`` (a URL's host) is refused without resolving it, or None (creation time)."""
        if self.allowed(host):
            return None
        name = self._norm(host)
        ip = _ip(name)
        if ip is not None:
            return None if _public(ip) else f"{ip} is not a public address"
        if name in _LOCAL_NAMES or name.endswith(".localhost"):
            return f"{name} is a local address"
        return None

    async def target(self, host: str, port: int) -> str | None:
        """Return the IP to connect to for ``host`` (None: connect by name, allow-listed).

        Raises
        ------
        Blocked
            The host is, or resolves to, an address that is neither public nor allowed.
        """
        if self.allowed(host):
            return None
        ip = _ip(host)
        if ip is not None:
            if not _public(ip):
                raise Blocked(f"{ip} is not a public address")
            return str(ip)
        reason = self.refusal(host)
        if reason:
            raise Blocked(reason)
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            raise OSError(f"cannot resolve {host}: {exc}") from None
        if not addresses:
            raise OSError(f"cannot resolve {host}")
        for text in addresses:
            found = _ip(text)
            if found is None or not (_public(found) or str(found) in self.allow):
                raise Blocked(f"{host} resolves to {text}, not a public address")
        return addresses[0]
