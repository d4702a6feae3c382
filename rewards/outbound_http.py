"""The one way InviteLoop calls out to a URL an admin typed: refused unless it is public.

Outbound webhooks POST to URLs staff enter, so a URL must not reach the app's own network
(SSRF): https only, and every address the host resolves to must be public (no private,
loopback, link-local, multicast or reserved ranges) unless WEBHOOK_ALLOW_PRIVATE_URLS is on
(local testing, which also allows http). The check runs when the URL is saved and again at
each delivery, and the connection goes to the very address that was checked, so a DNS answer
that changes in between (rebinding) cannot redirect it. Redirects are not followed.
"""

import contextlib
import http.client
import ipaddress
import socket
import ssl
from urllib.parse import SplitResult, urlsplit

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core.errors import DomainError

_ANSWER_BYTES = 4096  # read (and drop) this much of an answer; only the status is kept


class UnsafeUrl(DomainError):
    code = "unsafe_url"
    field = "url"
    message = _l("Use an https:// URL of a public server.")


# --- URLs and addresses -----------------------------------------------------------------


def check_url(url: str, allow_private: bool) -> SplitResult:
    """The URL's parts if its form is acceptable: https (http only when private URLs are
    allowed, i.e. local testing), a host, no credentials, a valid port."""
    parts = urlsplit((url or "").strip())
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise UnsafeUrl()
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl(_("Leave credentials out of the URL; the signature authenticates us."))
    try:
        parts.port  # noqa: B018 - parsing the port raises on a bad one
    except ValueError:
        raise UnsafeUrl(_("The port in this URL is not valid.")) from None
    return parts


def check_new_url(url: str, allow_private: bool) -> str:
    """For the endpoint form: the normalised URL, refused when its host resolves to a
    non-public address. A host that does not resolve yet is accepted (delivery checks again)."""
    parts = check_url(url, allow_private)
    with contextlib.suppress(OSError):  # not resolvable now: delivery will say so
        resolve_public(parts.hostname, _port(parts), allow_private)
    return parts.geturl()


def resolve_public(host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses to connect to; refuses a host with any private, loopback, link-local,
    multicast or otherwise non-public address (SSRF), unless private URLs are allowed."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4][0] for info in found))
    if not allow_private:
        refused = [address for address in addresses if not _is_public(address)]
        if refused:
            raise UnsafeUrl(
                _(
                    "%(host)s resolves to a non-public address (%(address)s).",
                    host=host,
                    address=refused[0],
                )
            )
    return addresses


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def post(url: str, body: bytes, headers: dict, timeout: float, allow_private: bool) -> int:
    """POST `body` to `url` and return the answer's status. The host is resolved and checked
    here, and the connection goes to a checked address (TLS still verifies the name)."""
    parts = check_url(url, allow_private)
    port = _port(parts)
    addresses = resolve_public(parts.hostname, port, allow_private)
    pinned = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    connection = pinned(parts.hostname, port, addresses, timeout)
    try:
        connection.request("POST", (parts.path or "/") + _query(parts), body, headers)
        answer = connection.getresponse()
        answer.read(_ANSWER_BYTES)
        return answer.status
    finally:
        connection.close()


def _query(parts: SplitResult) -> str:
    return f"?{parts.query}" if parts.query else ""


def _connect_any(addresses: list[str], port: int, timeout: float) -> socket.socket:
    """A connection to the first of the checked addresses that answers."""
    failure: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout)
        except OSError as error:
            failure = error
    raise failure or OSError("no address to connect to")


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, addresses: list[str], timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses

    def connect(self):
        self.sock = _connect_any(self.addresses, self.port, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, addresses: list[str], timeout: float):
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.addresses = addresses

    def connect(self):
        sock = _connect_any(self.addresses, self.port, self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)
