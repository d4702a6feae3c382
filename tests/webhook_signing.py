"""Signing webhook bodies the way Saleor and Stripe do, and the forgeries they must refuse."""

import hashlib
import hmac
import json
import secrets
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwt import api_jws
from jwt.algorithms import RSAAlgorithm
from jwt.utils import base64url_encode


class SigningKey:
    """A locally generated RSA key, as a Saleor instance holds one."""

    def __init__(self, kid: str | None = None):
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = kid or secrets.token_hex(8)

    def public_jwk(self) -> dict:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def sign(self, body: bytes) -> str:
        """Saleor's `Saleor-Signature`: RS256, payload detached and unencoded (PyJWT's own)."""
        return api_jws.encode(
            body,
            self.private_key,
            algorithm="RS256",
            headers={"kid": self.kid},
            is_payload_detached=True,
        )

    def sign_without_crit(self, body: bytes) -> str:
        """As Saleor releases on older PyJWT sign: `b64: false` without listing it in `crit`."""
        header = {"alg": "RS256", "b64": False, "kid": self.kid, "typ": "JWT"}
        return self.sign_header(header, body)

    def sign_header(self, header: dict, body: bytes) -> str:
        """A detached JWS with any header, RS256-signed by this key."""
        header_segment = base64url_encode(json.dumps(header).encode())
        signature = self.private_key.sign(
            header_segment + b"." + body, padding.PKCS1v15(), hashes.SHA256()
        )
        return f"{header_segment.decode()}..{base64url_encode(signature).decode()}"


def forged_jws(header: dict, signature: bytes = b"") -> str:
    """A detached JWS with any header and signature bytes (alg none, HS256 forgeries...)."""
    header_segment = base64url_encode(json.dumps(header).encode()).decode()
    return f"{header_segment}..{base64url_encode(signature).decode()}"


def hs256_jws(body: bytes, secret: bytes, kid: str) -> str:
    """The algorithm-confusion forgery: HMAC keyed with something public, claiming HS256."""
    header = {"alg": "HS256", "b64": False, "crit": ["b64"], "kid": kid}
    header_segment = base64url_encode(json.dumps(header).encode())
    mac = hmac.new(secret, header_segment + b"." + body, hashlib.sha256).digest()
    return f"{header_segment.decode()}..{base64url_encode(mac).decode()}"


def stripe_signature(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """`t=<unix>,v1=<hex>`: HMAC-SHA256 of "<t>.<body>" keyed with the whsec_ string."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={stripe_v1(body, secret, timestamp)}"


def stripe_v1(body: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
