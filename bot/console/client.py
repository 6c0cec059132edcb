"""What a console request says about the browser behind it: the address login throttling
counts against, and whether it came over HTTPS. X-Forwarded-* headers count only behind
a trusted proxy (`console.trust_proxy`)."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from core.config import ConsoleConfig


def client_ip(request: web.Request, cfg: ConsoleConfig) -> str:
    """The address login throttling counts against.

    Behind a trusted proxy it is the right-most X-Forwarded-For entry — the one our proxy
    added; anything left of it came from the client and could be anything. An IPv6 client
    counts as its /64, since one household or phone usually holds a whole /64.
    """
    raw = request.remote or ""
    if cfg.trust_proxy:
        forwarded = [p.strip() for p in request.headers.get("X-Forwarded-For", "").split(",")]
        forwarded = [p for p in forwarded if p]
        if forwarded:
            raw = forwarded[-1]
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def is_https(request: web.Request, cfg: ConsoleConfig) -> bool:
    if request.secure:
        return True
    if cfg.trust_proxy:
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return proto == "https"
    return False
