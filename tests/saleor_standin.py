"""A local Saleor stand-in on 127.0.0.1, built from Saleor's published schema.

It executes the real GraphQL documents InviteLoop sends with graphql-core against
../shared/saleor/schema.graphql, with in-memory resolvers for the few fields used (`app`,
`giftCards`, `giftCardCreate`); checks the app token; serves its RS256 key at
/.well-known/jwks.json and signs webhook bodies with it. `fail` makes it answer every GraphQL
call with an error or too slowly (a timeout), for fault tests.

with SaleorStandIn() as shop:
    token = shop.issue_token()          # what Saleor would send to tokenTargetUrl
    shop.sign(body)                     # a Saleor-Signature header value
    shop.gift_cards                     # what was issued
    shop.log                            # one line per call, in order
"""

import functools
import itertools
import json
import re
import secrets
import threading
import time
from base64 import b64encode
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from graphql import build_schema, graphql_sync

from tests.webhook_signing import SigningKey

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "shared" / "saleor" / "schema.graphql"
JWKS_PATH = "/.well-known/jwks.json"
GRAPHQL_PATH = "/graphql/"
OPERATION_NAME = re.compile(r"\b(?:query|mutation)\s+(\w+)")


@functools.cache
def saleor_schema():
    """Saleor's schema, built once per process (it is large)."""
    return build_schema(SCHEMA_PATH.read_text())


@dataclass
class GiftCard:
    id: str
    code: str
    balance: float
    currency: str
    user_email: str | None
    tags: list[str]
    note: str | None
    metadata: dict[str, str]
    private_metadata: dict[str, str]
    is_active: bool = True
    spent: float = 0.0  # what the shop's customers have paid with it so far

    def as_node(self) -> dict:
        return {
            "id": self.id,
            "code": self.code,
            "isActive": self.is_active,
            "lastUsedOn": "2026-12-01" if self.spent else None,
            "initialBalance": {"amount": self.balance, "currency": self.currency},
            "currentBalance": {"amount": self.balance - self.spent, "currency": self.currency},
        }


@dataclass
class Voucher:
    id: str
    code: str
    name: str
    single_use: bool
    usage_limit: int | None
    value_type: str
    discounts: dict[str, float] = field(default_factory=dict)  # channel id -> value
    used: int = 0  # orders that used it at the shop

    def as_node(self) -> dict:
        return {"id": self.id, "code": self.code, "used": self.used, "usageLimit": self.usage_limit}


@dataclass
class SaleorStandIn:
    app_id: str = "QXBwOjE="
    fail: str | None = None  # None, "error" (a GraphQL error) or "timeout" (a slow answer)
    failing_operation: str | None = None  # only this operation fails; None: every one
    slow_seconds: float = 3.0
    key: SigningKey = field(default_factory=SigningKey)
    tokens: set[str] = field(default_factory=set)
    gift_cards: list[GiftCard] = field(default_factory=list)
    vouchers: list[Voucher] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)  # object id -> public
    orders: list[dict] = field(default_factory=list)  # paid Order nodes, oldest first

    def __post_init__(self):
        self._lock = threading.Lock()
        self._busy = threading.Condition()
        self._in_flight = 0
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def api_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{GRAPHQL_PATH}"

    def __enter__(self):
        saleor_schema()
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        return token

    def sign(self, body: bytes) -> str:
        return self.key.sign(body)

    def reset(self) -> None:
        with self._lock:
            self.tokens.clear()
            self.gift_cards.clear()
            self.vouchers.clear()
            self.log.clear()
            self.metadata.clear()
            self.orders.clear()
            self.fail = self.failing_operation = None

    # --- GraphQL ---------------------------------------------------------------------------

    def wait_until_idle(self, timeout: float = 10) -> None:
        """Until every call has finished, even those whose caller gave up waiting."""
        with self._busy:
            assert self._busy.wait_for(lambda: self._in_flight == 0, timeout)

    def answer(self, body: dict, token: str) -> tuple[int, dict]:
        """The HTTP status and JSON body Saleor would answer this POST with."""
        with self._busy:
            self._in_flight += 1
        try:
            return self._answer(body, token)
        finally:
            with self._busy:
                self._in_flight -= 1
                self._busy.notify_all()

    def _answer(self, body: dict, token: str) -> tuple[int, dict]:
        named = OPERATION_NAME.search(body.get("query") or "")
        operation = named.group(1) if named else "anonymous"
        if token not in self.tokens:
            self.log.append(f"{operation}: refused (unknown token)")
            return 401, {"errors": [{"message": "Invalid token."}]}
        failing = self.fail if self.failing_operation in (None, operation) else None
        if failing == "timeout":
            self.log.append(f"{operation}: too slow")
            time.sleep(self.slow_seconds)
        if failing == "error":
            self.log.append(f"{operation}: failed")
            return 200, {"data": None, "errors": [{"message": "Internal error."}]}
        answer = self.execute(body["query"], body.get("variables") or {})
        self.log.append(f"{operation}: {'errors' if 'errors' in answer else 'ok'}")
        return 200, answer

    def execute(self, document: str, variables: dict) -> dict:
        root = {
            "app": self._app,
            "giftCards": self._gift_cards,
            "giftCardCreate": self._gift_card_create,
            "giftCard": self._gift_card,
            "giftCardDeactivate": self._gift_card_deactivate,
            "vouchers": self._vouchers,
            "voucher": self._voucher,
            "updateMetadata": self._update_metadata,
            "orders": self._orders,
            "voucherCreate": self._voucher_create,
            "voucherChannelListingUpdate": self._voucher_listing,
        }
        result = graphql_sync(saleor_schema(), document, root_value=root, variable_values=variables)
        answer = {"data": result.data}
        if result.errors:
            answer["errors"] = [{"message": error.message} for error in result.errors]
        return answer

    def _app(self, _info, id=None):  # noqa: A002 - the argument's name in the schema
        return {"id": self.app_id, "name": "InviteLoop", "isActive": True}

    def _gift_cards(self, _info, filter=None, first=None, **_):  # noqa: A002
        wanted = {item["key"]: item.get("value") for item in (filter or {}).get("metadata", [])}
        with self._lock:
            found = [
                card
                for card in self.gift_cards
                if all(card.metadata.get(key) == value for key, value in wanted.items())
            ]
        edges = [{"node": card.as_node(), "cursor": card.id} for card in found[: first or 100]]
        return {"edges": edges, "totalCount": len(found)}

    def _card(self, card_id: str) -> GiftCard | None:
        return next((card for card in self.gift_cards if card.id == card_id), None)

    def _gift_card(self, _info, id):  # noqa: A002
        card = self._card(id)
        return card.as_node() if card else None

    def _gift_card_deactivate(self, _info, id):  # noqa: A002
        with self._lock:
            card = self._card(id)
            if card is None:
                error = {"field": "id", "code": "NOT_FOUND", "message": "No such gift card."}
                return {"giftCard": None, "errors": [error]}
            card.is_active = False
        return {"giftCard": card.as_node(), "errors": []}

    def _orders(self, _info, first=None, after=None, **_):
        """Every paid order, `first` at a time (the cursor is the index of the next one)."""
        start, size = int(after or 0), first or 100
        with self._lock:
            page = self.orders[start : start + size]
            more = start + size < len(self.orders)
        edges = [{"node": node, "cursor": str(start + i)} for i, node in enumerate(page)]
        return {
            "edges": edges,
            "pageInfo": {"hasNextPage": more, "endCursor": str(start + size) if more else None},
        }

    def _update_metadata(self, _info, id, input):  # noqa: A002
        with self._lock:
            self.metadata.setdefault(id, {}).update({item["key"]: item["value"] for item in input})
        return {"errors": []}

    def _voucher(self, _info, id, **_):  # noqa: A002
        found = next((voucher for voucher in self.vouchers if voucher.id == id), None)
        return found.as_node() if found else None

    def _vouchers(self, _info, filter=None, first=None, **_):  # noqa: A002
        search = ((filter or {}).get("search") or "").lower()
        found = [voucher for voucher in self.vouchers if search in voucher.code.lower()]
        edges = [{"node": voucher.as_node(), "cursor": voucher.id} for voucher in found]
        return {"edges": edges[: first or 100], "totalCount": len(found)}

    def _voucher_create(self, _info, input):  # noqa: A002
        codes = input.get("addCodes") or []
        with self._lock:
            if any(voucher.code in codes for voucher in self.vouchers):
                error = {"field": "code", "code": "UNIQUE", "message": "Code already exists."}
                return {"voucher": None, "errors": [error]}
            voucher = Voucher(
                id=b64encode(f"Voucher:{next(self._ids)}".encode()).decode(),
                code=codes[0],
                name=input.get("name"),
                single_use=input.get("singleUse"),
                usage_limit=input.get("usageLimit"),
                value_type=input.get("discountValueType"),
            )
            self.vouchers.append(voucher)
        return {"voucher": voucher.as_node(), "errors": []}

    def _voucher_listing(self, _info, id, input):  # noqa: A002
        voucher = next((voucher for voucher in self.vouchers if voucher.id == id), None)
        if voucher is None:
            return {"voucher": None, "errors": [{"code": "NOT_FOUND", "message": "No voucher."}]}
        for listing in input.get("addChannels") or []:
            voucher.discounts[listing["channelId"]] = float(listing["discountValue"])
        return {"voucher": voucher.as_node(), "errors": []}

    def _gift_card_create(self, _info, input):  # noqa: A002
        balance = input["balance"]
        with self._lock:
            number = next(self._ids)
            card = GiftCard(
                id=b64encode(f"GiftCard:{number}".encode()).decode(),
                code=f"{secrets.token_hex(2)}-{secrets.token_hex(2)}-{number:04d}".upper(),
                balance=float(balance["amount"]),
                currency=balance["currency"],
                user_email=input.get("userEmail"),
                tags=list(input.get("addTags") or []),
                note=input.get("note"),
                metadata={m["key"]: m["value"] for m in input.get("metadata") or []},
                private_metadata={m["key"]: m["value"] for m in input.get("privateMetadata") or []},
                is_active=input["isActive"],
            )
            self.gift_cards.append(card)
        return {"giftCard": card.as_node(), "errors": []}


def _handler_for(shop: SaleorStandIn):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            if self.path != JWKS_PATH:
                self.send_error(404)
                return
            self._json(200, {"keys": [shop.key.public_jwk()]})

        def do_POST(self):  # noqa: N802
            if self.path != GRAPHQL_PATH:
                self.send_error(404)
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            self._json(*shop.answer(body, token))

        def _json(self, status: int, payload: dict):
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def log_message(self, format, *args):  # keep the test output quiet
            pass

    return Handler
