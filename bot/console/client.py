"""What a console request says about the browser behind it: the address login throttling
counts against. Behind a trusted proxy, `bot.forwarded` has already set the request's
remote address and scheme from the proxy's own X-Forwarded-* hop (`[server] trust_proxy`)."""

from __future__ import annotations

import ipaddress

from aiohttp import web


def client_ip(request: web.Request) -> str:
    """The address login throttling counts against.

    Behind a trusted proxy it is the address the proxy saw (`bot.forwarded`). An IPv6
    client counts as its /64, since one household or phone usually holds a whole /64.
    """
    raw = request.remote or ""
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
