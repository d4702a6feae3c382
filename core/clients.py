"""The privacy-preserving prefix of a client address. The address itself is
flask_limiter.util.get_remote_address: after ProxyFix, only trusted hops count."""

import functools
import ipaddress


@functools.lru_cache(maxsize=4096)  # a visitor clicks again from the same address
def ip_prefix(address: str) -> str | None:
    """The network an address belongs to (IPv4 /24, IPv6 /48): enough for fraud checks,
    not enough to single out a household."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
