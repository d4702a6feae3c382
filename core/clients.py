"""Who is asking: the client address (after ProxyFix) and its privacy-preserving prefix."""

import ipaddress

from flask import request


def client_ip() -> str:
    """The client's address; X-Forwarded-For counts only when TRUSTED_PROXY_COUNT says so."""
    return request.remote_addr or "unknown"


def ip_prefix(address: str) -> str | None:
    """The network an address belongs to (IPv4 /24, IPv6 /48): enough for fraud checks,
    not enough to single out a household."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
