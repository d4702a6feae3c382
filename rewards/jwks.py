"""The configured Saleor instance's signing keys, and the detached JWS check they serve.

Saleor signs each webhook body with RS256 as a detached JWS (`<header>..<signature>`, header
`b64: false`, RFC 7797): the signed input is the base64url header, a dot and the raw body bytes.
The public keys come only from the configured SALEOR_API_URL's `/.well-known/jwks.json`, never
from a header of the request.

The keys live in the Flask-Caching `cache`: with Redis configured every worker and process shares
one copy (one fetch per SALEOR_JWKS_CACHE_SECONDS for the whole deployment) and the unknown-kid
throttles below hold across workers, so an attacker cannot multiply our requests to the shop by
the number of workers (with Redis down, core.caching keeps them per process). Within a process
only one fetch runs at a time, and a forged kid on a cold cache or a slow shop costs at most one
short fetch per REFETCH_INTERVAL_SECONDS: no stream of posts can tie up the workers.
"""

import hashlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from jwt.algorithms import RSAAlgorithm
from jwt.exceptions import InvalidKeyError
from jwt.utils import base64url_decode

from core.errors import DomainError
from extensions import cache

log = logging.getLogger(__name__)

# The whole fetch (connect, headers, body) must finish within this.
FETCH_TIMEOUT_SECONDS = 3
# A request that finds another one fetching waits this long, then answers 503 (Saleor retries).
WAIT_FOR_FETCH_SECONDS = 0.5
MAX_JWKS_BYTES = 64 * 1024
MAX_SIGNATURE_HEADER_CHARS = 4096
MIN_KEY_BITS = 2048
# An unknown kid is looked up at the shop once, then not again for this long.
UNKNOWN_KID_RETRY_SECONDS = 300
# Whatever the kids, at most one refetch this often: a stream of invented kids cannot turn
# into a stream of requests to the shop. Also the pause after a failed fetch.
REFETCH_INTERVAL_SECONDS = 10

# One fetch at a time in this process, whatever the kid (single flight).
_FETCH_LOCK = threading.Lock()

_RS256 = RSAAlgorithm(RSAAlgorithm.SHA256)


class InvalidSignature(DomainError):
    status = 401
    code = "invalid_signature"
    message = _l("The webhook signature is missing or does not match.")


class SigningKeysUnavailable(DomainError):
    """The shop's keys could not be read now; Saleor retries a 5xx, so the event is not lost."""

    status = 503
    code = "signing_keys_unavailable"
    message = _l("The shop's signing keys could not be fetched; try again later.")


def jwks_url(api_url: str) -> str:
    """`https://shop.example.com/graphql/` → `https://shop.example.com/.well-known/jwks.json`."""
    parts = urlsplit(api_url)
    return f"{parts.scheme}://{parts.netloc}/.well-known/jwks.json"


def verify_detached_jws(signature: str, body: bytes, api_url: str) -> None:
    """Raise InvalidSignature unless `signature` is Saleor's RS256 signature of `body`."""
    header_segment, signature_bytes, kid = _parse(signature)
    jwk = signing_key(api_url, kid)
    if jwk is None:
        raise InvalidSignature(_("The webhook was signed with a key the shop does not publish."))
    signing_input = header_segment + b"." + body
    if not _RS256.verify(signing_input, _public_key(jwk), signature_bytes):
        raise InvalidSignature()


def _parse(signature: str) -> tuple[bytes, bytes, str]:
    """The header segment, the signature bytes and the kid; anything unexpected is refused."""
    if len(signature) > MAX_SIGNATURE_HEADER_CHARS or signature.count(".") != 2:
        raise InvalidSignature(_("The signature is not a detached JWS."))
    header_text, payload_segment, signature_text = signature.split(".")
    if payload_segment:
        raise InvalidSignature(_("The signature is not a detached JWS."))
    try:
        header = json.loads(base64url_decode(header_text.encode("ascii")))
        signature_bytes = base64url_decode(signature_text.encode("ascii"))
    except (ValueError, RecursionError):
        raise InvalidSignature(_("The signature is not a detached JWS.")) from None
    if not isinstance(header, dict):
        raise InvalidSignature(_("The signature is not a detached JWS."))
    _check_header(header)
    return header_text.encode("ascii"), signature_bytes, header["kid"]


def _check_header(header: dict) -> None:
    if header.get("alg") != "RS256":
        raise InvalidSignature(_("Only RS256 signatures are accepted."))
    if header.get("b64") is not False:
        raise InvalidSignature(_("The signature must cover the unencoded body (b64: false)."))
    # Recent PyJWT lists b64 in crit (RFC 7797 §6); Saleor releases on older PyJWT do not, and
    # PyJWT's own decode now refuses those, hence this check by hand. No other extension is
    # understood here, so any other critical one is refused (RFC 7515 §4.1.11).
    if header.get("crit", ["b64"]) != ["b64"]:
        raise InvalidSignature(_("The signature names a critical extension we do not support."))
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 200:
        raise InvalidSignature(_("The signature names no key."))


def _public_key(jwk: dict) -> RSAPublicKey:
    try:
        key = RSAAlgorithm.from_jwk(jwk)
    except (InvalidKeyError, ValueError, TypeError, KeyError):
        raise InvalidSignature(_("The shop publishes this key in a form we cannot use.")) from None
    if not isinstance(key, RSAPublicKey) or key.key_size < MIN_KEY_BITS:
        raise InvalidSignature(_("The shop publishes this key in a form we cannot use."))
    return key


def signing_key(api_url: str, kid: str) -> dict | None:
    """The JWK the configured shop publishes under `kid`, from the cache when possible.

    A kid we do not know triggers one refetch (a key rotation); the same unknown kid is not
    looked up again for UNKNOWN_KID_RETRY_SECONDS. Whatever the kids, the shop gets at most one
    request at a time from this process (others wait WAIT_FOR_FETCH_SECONDS, then 503), and
    none for REFETCH_INTERVAL_SECONDS after a fetch that failed or lacked the kid asked for.
    """
    keys = cache.get(_keys_cache_key(api_url))
    if keys is not None:
        if kid in keys:
            return keys[kid]
        if cache.get(_unknown_kid_cache_key(api_url, kid)):
            return None
    if not _FETCH_LOCK.acquire(timeout=WAIT_FOR_FETCH_SECONDS):
        raise SigningKeysUnavailable(_("The shop's keys are being fetched; try again."))
    try:
        return _fetch_for(api_url, kid)
    finally:
        _FETCH_LOCK.release()


def _fetch_for(api_url: str, kid: str) -> dict | None:
    """With the fetch lock held: look again (another thread may just have fetched), then
    fetch unless the shop was asked a moment ago."""
    keys = cache.get(_keys_cache_key(api_url))
    refetch_key = _refetch_cache_key(api_url)
    if keys is not None:
        if kid in keys:
            return keys[kid]
        if cache.get(_unknown_kid_cache_key(api_url, kid)):
            return None
        # Claimed across processes (with Redis) before the request goes out.
        if not cache.add(refetch_key, True, timeout=REFETCH_INTERVAL_SECONDS):
            raise SigningKeysUnavailable(_("Signing keys were refreshed a moment ago; try again."))
    elif cache.get(refetch_key):
        # No keys yet, and the shop failed or lacked a kid moments ago: do not ask again.
        raise SigningKeysUnavailable(_("Signing keys were fetched a moment ago; try again."))
    try:
        keys = _fetch_and_cache(api_url)
    except SigningKeysUnavailable:
        cache.set(refetch_key, True, timeout=REFETCH_INTERVAL_SECONDS)
        raise
    if kid not in keys:
        cache.set(_unknown_kid_cache_key(api_url, kid), True, timeout=UNKNOWN_KID_RETRY_SECONDS)
        cache.set(refetch_key, True, timeout=REFETCH_INTERVAL_SECONDS)
    return keys.get(kid)


def _fetch_and_cache(api_url: str) -> dict:
    keys = fetch_jwks(jwks_url(api_url))
    timeout = current_app.config["SALEOR_JWKS_CACHE_SECONDS"]
    cache.set(_keys_cache_key(api_url), keys, timeout=timeout)
    return keys


def fetch_jwks(url: str) -> dict[str, dict]:
    """The RSA keys published at `url`, by kid. SigningKeysUnavailable if they cannot be read
    within FETCH_TIMEOUT_SECONDS in all (a server that trickles its answer is cut off too)."""
    deadline = time.monotonic() + FETCH_TIMEOUT_SECONDS
    # http(s) only: the config refuses any other scheme for SALEOR_API_URL.
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
            raw = _read_until(response, deadline)
        document = json.loads(raw)
    except (urllib.error.URLError, OSError, ValueError) as error:
        log.warning("could not fetch Saleor JWKS from %s: %s", url, error.__class__.__name__)
        raise SigningKeysUnavailable() from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        log.warning("Saleor JWKS at %s has no key list", url)
        raise SigningKeysUnavailable()
    return {
        entry["kid"]: entry
        for entry in entries
        if isinstance(entry, dict)
        and entry.get("kty") == "RSA"
        and isinstance(entry.get("kid"), str)
    }


def _read_until(response, deadline: float) -> bytes:
    """The body, at most MAX_JWKS_BYTES, read before `deadline` (TimeoutError otherwise)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("JWKS answer too slow")
        chunk = response.read1(16 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_JWKS_BYTES:
            raise ValueError("JWKS too large")
        chunks.append(chunk)


def _keys_cache_key(api_url: str) -> str:
    return f"saleor-jwks:{_digest(jwks_url(api_url))}"


def _unknown_kid_cache_key(api_url: str, kid: str) -> str:
    return f"saleor-jwks-unknown:{_digest(jwks_url(api_url) + ' ' + kid)}"


def _refetch_cache_key(api_url: str) -> str:
    return f"saleor-jwks-refetch:{_digest(jwks_url(api_url))}"


def _digest(text: str) -> str:
    # Cache keys of bounded length whatever the kid an attacker invents.
    return hashlib.sha256(text.encode()).hexdigest()[:32]
