"""The signed events API as a sender uses it: the shared secret, the signature, the payloads."""

import base64
import hashlib
import hmac
import json
import threading
import time

import requests

from tests.server import GENEROUS_LIMITS, running_server

# Senders against a real server (tests.server): generous, since a CI machine may be slow.
REQUEST_TIMEOUT = 60
BARRIER_TIMEOUT = 30

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


# --- against a real server ------------------------------------------------------------


def signed_delivery(event: dict) -> tuple[bytes, dict]:
    """One delivery as a sender makes it; a retry resends the very same bytes and headers."""
    body = json.dumps(event).encode()
    message_id, timestamp = f"msg_{event.get('id', 'none')}", int(time.time())
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(body, message_id, timestamp),
        "Content-Type": "application/json",
    }
    return body, headers


def send_all_at_once(pool, base_url: str, events: list[dict]) -> list[tuple[int, dict]]:
    """Each event from its own sender thread; all wait at a barrier, then post together.
    Returns (status, JSON answer) per event, in order."""
    deliveries = [signed_delivery(event) for event in events]
    barrier = threading.Barrier(len(deliveries), timeout=BARRIER_TIMEOUT)

    def deliver(delivery: tuple[bytes, dict]) -> tuple[int, dict]:
        body, headers = delivery
        with requests.Session() as sender:
            barrier.wait()
            response = sender.post(
                f"{base_url}/api/v1/events", data=body, headers=headers, timeout=REQUEST_TIMEOUT
            )
            answer = response.json() if response.status_code < 500 else {}
            response.close()
            return response.status_code, answer

    return list(pool.map(deliver, deliveries))


def events_server(database_url: str):
    return running_server(database_url, EVENTS_WEBHOOK_SECRET=SECRET, EVENTS_LIMITS=GENEROUS_LIMITS)
