"""The signed events API as a sender uses it: the shared secret, the signature, the payloads."""

import base64
import hashlib
import hmac

SECRET = "whsec_" + base64.b64encode(b"events-secret-for-tests-32bytes!").decode()


def sign(body: bytes, message_id: str, timestamp: int, secret: str = SECRET) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def purchase(email: str, order: str = "order-1", amount: int = 2500, **extra) -> dict:
    return {
        "type": "purchase",
        "id": f"evt-{order}",
        "order_id": order,
        "customer": {"email": email},
        "amount": amount,
        "currency": "USD",
        **extra,
    }


def refund(order: str = "order-1", event_id: str | None = None) -> dict:
    return {"type": "refund", "id": event_id or f"evt-refund-{order}", "order_id": order}
