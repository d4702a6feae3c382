"""The configured Saleor instance's signing keys, and the detached JWS check they serve.

Saleor signs each webhook body with RS256 as a detached JWS (`<header>..<signature>`, header
`b64: false`, RFC 7797): the signed input is the base64url header, a dot and the raw body bytes.
The public keys come only from the configured SALEOR_API_URL's `/.well-known/jwks.json`, never
from a header of the request.

The keys live in the Flask-Caching `cache`: with Redis configured every worker and process shares
one copy (one fetch per SALEOR_JWKS_CACHE_SECONDS for the whole deployment) and the unknown-kid
throttles below hold across workers, so an attacker cannot multiply our requests to the shop by
the number of workers.
"""

import hashlib
import json
import logging
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from flask import current_app
from jwt.algorithms import RSAAlgorithm
from jwt.exceptions import InvalidKeyError
from jwt.utils import base64url_decode

from core.errors import DomainError
from extensions import cache

log = logging.getLogger(__name__)

FETCH_TIMEOUT_SECONDS = 5
MAX_JWKS_BYTES = 64 * 1024
MAX_SIGNATURE_HEADER_CHARS = 4096
MIN_KEY_BITS = 2048
# An unknown kid is looked up at the shop once, then not again for this long.
UNKNOWN_KID_RETRY_SECONDS = 300
# Whatever the kids, at most one refetch this often: a stream of invented kids cannot turn
# into a stream of requests to the shop.
REFETCH_INTERVAL_SECONDS = 10

_RS256 = RSAAlgorithm(RSAAlgorithm.SHA256)


class InvalidSignature(DomainError):
    status = 401
    code = "invalid_signature"
    message = "The webhook signature is missing or does not match."


class SigningKeysUnavailable(DomainError):
    """The shop's keys could not be read now; Saleor retries a 5xx, so the event is not lost."""

    status = 503
    code = "signing_keys_unavailable"
    message = "The shop's signing keys could not be fetched; try again later."


def jwks_url(api_url: str) -> str:
    """`https://shop.example.com/graphql/` → `https://shop.example.com/.well-known/jwks.json`."""
    parts = urlsplit(api_url)
    return f"{parts.scheme}://{parts.netloc}/.well-known/jwks.json"


def verify_detached_jws(signature: str, body: bytes, api_url: str) -> None:
    """Raise InvalidSignature unless `signature` is Saleor's RS256 signature of `body`."""
    header_segment, signature_bytes, kid = _parse(signature)
    jwk = signing_key(api_url, kid)
    if jwk is None:
        raise InvalidSignature("The webhook was signed with a key the shop does not publish.")
    signing_input = header_segment + b"." + body
    if not _RS256.verify(signing_input, _public_key(jwk), signature_bytes):
        raise InvalidSignature()


def _parse(signature: str) -> tuple[bytes, bytes, str]:
    """The header segment, the signature bytes and the kid; anything unexpected is refused."""
    if len(signature) > MAX_SIGNATURE_HEADER_CHARS or signature.count(".") != 2:
        raise InvalidSignature("The signature is not a detached JWS.")
    header_text, payload_segment, signature_text = signature.split(".")
    if payload_segment:
        raise InvalidSignature("The signature is not a detached JWS.")
    try:
        header = json.loads(base64url_decode(header_text.encode("ascii")))
        signature_bytes = base64url_decode(signature_text.encode("ascii"))
    except (ValueError, RecursionError):
        raise InvalidSignature("The signature is not a detached JWS.") from None
    if not isinstance(header, dict):
        raise InvalidSignature("The signature is not a detached JWS.")
    _check_header(header)
    return header_text.encode("ascii"), signature_bytes, header["kid"]


def _check_header(header: dict) -> None:
    if header.get("alg") != "RS256":
        raise InvalidSignature("Only RS256 signatures are accepted.")
    if header.get("b64") is not False:
        raise InvalidSignature("The signature must cover the unencoded body (b64: false).")
    # Recent PyJWT lists b64 in crit (RFC 7797 §6); Saleor releases on older PyJWT do not, and
    # PyJWT's own decode now refuses those, hence this check by hand. No other extension is
    # understood here, so any other critical one is refused (RFC 7515 §4.1.11).
    if header.get("crit", ["b64"]) != ["b64"]:
        raise InvalidSignature("The signature names a critical extension we do not support.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 200:
        raise InvalidSignature("The signature names no key.")


def _public_key(jwk: dict) -> RSAPublicKey:
    try:
        key = RSAAlgorithm.from_jwk(jwk)
    except (InvalidKeyError, ValueError, TypeError, KeyError):
        raise InvalidSignature("The shop publishes this key in a form we cannot use.") from None
    if not isinstance(key, RSAPublicKey) or key.key_size < MIN_KEY_BITS:
        raise InvalidSignature("The shop publishes this key in a form we cannot use.")
    return key


def signing_key(api_url: str, kid: str) -> dict | None:
    """The JWK the configured shop publishes under `kid`, from the cache when possible.

    A kid we do not know triggers one refetch (a key rotation); the same unknown kid is not
    looked up again for UNKNOWN_KID_RETRY_SECONDS.
    """
    keys = cache.get(_keys_cache_key(api_url))
    if keys is not None:
        if kid in keys:
            return keys[kid]
        if cache.get(_unknown_kid_cache_key(api_url, kid)):
            return None
        if not cache.add(_refetch_cache_key(api_url), True, timeout=REFETCH_INTERVAL_SECONDS):
            raise SigningKeysUnavailable("Signing keys were refreshed a moment ago; try again.")
    keys = _fetch_and_cache(api_url)
    if kid not in keys:
        cache.set(_unknown_kid_cache_key(api_url, kid), True, timeout=UNKNOWN_KID_RETRY_SECONDS)
    return keys.get(kid)


def _fetch_and_cache(api_url: str) -> dict:
    keys = fetch_jwks(jwks_url(api_url))
    timeout = current_app.config["SALEOR_JWKS_CACHE_SECONDS"]
    cache.set(_keys_cache_key(api_url), keys, timeout=timeout)
    return keys


def fetch_jwks(url: str) -> dict[str, dict]:
    """The RSA keys published at `url`, by kid. SigningKeysUnavailable if they cannot be read."""
    # http(s) only: the config refuses any other scheme for SALEOR_API_URL.
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
            raw = response.read(MAX_JWKS_BYTES + 1)
        if len(raw) > MAX_JWKS_BYTES:
            raise ValueError("JWKS too large")
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


def _keys_cache_key(api_url: str) -> str:
    return f"saleor-jwks:{_digest(jwks_url(api_url))}"


def _unknown_kid_cache_key(api_url: str, kid: str) -> str:
    return f"saleor-jwks-unknown:{_digest(jwks_url(api_url) + ' ' + kid)}"


def _refetch_cache_key(api_url: str) -> str:
    return f"saleor-jwks-refetch:{_digest(jwks_url(api_url))}"


def _digest(text: str) -> str:
    # Cache keys of bounded length whatever the kid an attacker invents.
    return hashlib.sha256(text.encode()).hexdigest()[:32]
