"""The OpenAPI 3.1 document of the JSON API and the incoming webhooks (`GET /api/openapi.json`).

Why a document kept here, by hand, rather than apiflask, flask-smorest or spectree: each of them
wants the views rewritten around its own request and response schemas (apiflask also replaces
the app class), and each parses the request body before the view runs. The webhooks must verify
the signature over the raw bytes before any JSON is read, the API answers errors in its own
`{"error": {"code", "message"}}` shape from one handler (core/errors.py), and the URLs and
payloads are a published contract: rewriting every view to describe what it already does would
risk the contract for no gain. So the document is plain data, built from the same constants the
code and the database constraints use (models' allowed values, the API key scopes), and
`tests/test_openapi.py` holds it against the code: every API and webhook rule of the URL map is
documented with its methods and nothing else is, the document validates as OpenAPI 3.1, and
schemathesis (in the suite, and `make api-check` against a real server) sends generated requests
and validates every real answer against the documented status codes and schemas.
"""

import copy

from flask import Blueprint, current_app, jsonify

from core.api_keys import SCOPES
from core.errors import JSON_ONLY_PATHS
from models import (
    CONVERSION_KINDS,
    OUTCOMES,
    REFERRAL_SOURCES,
    REFERRAL_STATUSES,
    REWARD_KINDS,
    REWARD_ROLES,
    REWARD_STATUSES,
    WEBHOOK_EVENTS,
)

openapi_bp = Blueprint("openapi", __name__)

DOCUMENT_PATH = "/api/openapi.json"


@openapi_bp.record_once
def _answer_errors_as_json(state) -> None:
    """Every documented path answers its errors as the documented JSON, whatever the
    request's content type or Accept header."""
    state.app.extensions[JSON_ONLY_PATHS] = frozenset(PATHS)


@openapi_bp.get(DOCUMENT_PATH)
def serve_document():
    return jsonify(document(current_app.config.get("PUBLIC_URL")))


def document(public_url: str | None = None) -> dict:
    """The whole document, a copy to change at will; `servers` names PUBLIC_URL when it is
    set (else this host)."""
    return copy.deepcopy(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "InviteLoop API",
                "version": "1",
                "summary": "Referral data as JSON, conversion events and shop webhooks.",
                "description": (
                    "Amounts are integers in the currency's minor units (2500 = 25.00). "
                    'Every error answers `{"error": {"code", "message"}}`: `code` is stable, '
                    "`message` is for people. A 5xx means nothing was written: send it again."
                ),
            },
            "servers": [{"url": (public_url or "").rstrip("/") or "/"}],
            "paths": PATHS,
            "webhooks": OUTBOUND_WEBHOOKS,
            "components": COMPONENTS,
        }
    )


# --- small builders ------------------------------------------------------------------------


def _schema(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **extra) -> dict:
    return {"type": [kind, "null"], **extra}


def _object(properties: dict, required: tuple = (), *, closed: bool = True) -> dict:
    """A response object lists every field it has (closed); a request body may carry more."""
    schema = {"type": "object", "properties": properties, "required": list(required)}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    response = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _errors(*statuses: int) -> dict:
    return {
        str(status): {"$ref": f"#/components/responses/{ERRORS[status][0]}"} for status in statuses
    }


def _query(name: str, description: str, schema: dict) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _header(name: str, description: str) -> dict:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


PAGE = _query(
    "page",
    "1-based page; anything not a positive number is page 1, a page past 1,000,000 is 400.",
    {"type": "string"},
)
INTEGER = {"type": "integer"}
COUNT = {"type": "integer", "minimum": 0}
TEXT = {"type": "string"}
MOMENT = {"type": "string", "format": "date-time"}
PAGES = {
    "page": {"type": "integer", "minimum": 1},
    "pages": {"type": "integer", "minimum": 0, "description": "0 when there is nothing to list."},
}

# Status -> (the component response's name, what it means here).
ERRORS = {
    400: ("BadRequest", "Bad request: an unreadable parameter, signature header or CSRF token."),
    401: ("Unauthorized", "No valid credentials: sign in, or send a valid key or signature."),
    403: ("Forbidden", "The API key lacks the scope, or the role may not do this."),
    404: ("NotFound", "No such thing here."),
    409: ("Conflict", "The request conflicts with what is already recorded."),
    413: ("PayloadTooLarge", "The body is over 1 MB."),
    422: ("Unprocessable", "The body is malformed or a rule of the program refuses it."),
    429: ("TooManyRequests", "Rate limited: wait and send it again."),
    503: (
        "Unavailable",
        "Not configured yet, or the database or the shop's key server cannot be reached; "
        "nothing was written. Send it again later.",
    ),
}

# --- schemas ---------------------------------------------------------------------------------

ERROR = _object(
    {
        "error": _object(
            {
                "code": {"type": "string", "description": "Stable, e.g. `invalid_event`."},
                "message": {"type": "string", "description": "For people."},
            },
            ("code", "message"),
        )
    },
    ("error",),
)

OUTCOME = _object(
    {
        "outcome": {"enum": list(OUTCOMES)},
        "reason": _nullable("string", description="Why, e.g. `unhandled_event_type`."),
    },
    ("outcome", "reason"),
)

EVENT_QUEUED = _object(
    {
        "id": {"type": "integer", "description": "The event's id here: `GET /api/v1/events/{id}`."},
        "status": {"const": "queued"},
    },
    ("id", "status"),
)

EVENT_STATUS = _object(
    {
        "id": INTEGER,
        "status": {"enum": ["queued", "processed"]},
        "received_at": MOMENT,
        "processed_at": {"type": ["string", "null"], "format": "date-time"},
        "outcome": {
            "oneOf": [_schema("Outcome"), _schema("Error"), {"type": "null"}],
            "description": "Once processed, the body the synchronous request would have got: "
            "an Outcome, or the Error of a refusal (the status in `outcome_status`).",
        },
        "outcome_status": _nullable(
            "integer", description="The HTTP status the synchronous request would have got."
        ),
    },
    ("id", "status", "received_at", "processed_at", "outcome", "outcome_status"),
)

LEADERBOARD = _object(
    {
        "period": {"enum": ["all", "month", "week"]},
        **PAGES,
        "total": COUNT,
        "rows": {
            "type": "array",
            "items": _object(
                {
                    "rank": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "Ties share a rank: 1, 1, 3 (one more than the number"
                        " of participants with more referrals).",
                    },
                    "display_name": TEXT,
                    "referrals": COUNT,
                },
                ("rank", "display_name", "referrals"),
            ),
        },
    },
    ("period", "page", "pages", "total", "rows"),
)

SENTENCE = _nullable("string", description="Null while the program is paused.")

OFFER = _object(
    {
        "program": TEXT,
        "running": {"type": "boolean", "description": "False: paused, it promises nothing."},
        "headline": {**SENTENCE, "examples": ["Give $5, get $10"]},
        "referrer": _nullable(
            "string", description="What the participant gets, and when; null while paused."
        ),
        "friend": _nullable(
            "string", description="What the friend gets; null without a friend's reward."
        ),
        "milestone": {
            "oneOf": [
                {"type": "null"},
                _object(
                    {
                        "every": {"type": "integer", "minimum": 1},
                        "done": COUNT,
                        "left": {"type": "integer", "minimum": 1},
                        "bonus": TEXT,
                        "sentence": TEXT,
                    },
                    ("every", "done", "left", "bonus", "sentence"),
                ),
            ],
            "description": "Progress to the next milestone bonus, when the program has one.",
        },
        "fine_print": {"type": "array", "items": TEXT},
        "share_message": _nullable(
            "string", description="The share text with the link; null without an active code."
        ),
    },
    (
        "program",
        "running",
        "headline",
        "referrer",
        "friend",
        "milestone",
        "fine_print",
        "share_message",
    ),
)

ME = _object(
    {
        "id": INTEGER,
        "name": TEXT,
        "display_name": TEXT,
        "email": _nullable("string", description="Null for a participant who signed up by phone."),
        "code": _nullable("string"),
        "link": _nullable("string", format="uri"),
        "invited_by": _nullable(
            "string", description="The public name of who invited them; null when nobody did."
        ),
        "stats": _object(
            {
                "clicks": COUNT,
                "signups": COUNT,
                "qualified": COUNT,
                "in_review": {**COUNT, "description": "Joined, held for review: not counted yet."},
                "not_counted": {**COUNT, "description": "Joined, refused by the checks."},
            },
            ("clicks", "signups", "qualified", "in_review", "not_counted"),
        ),
        "offer": _schema("Offer"),
    },
    ("id", "name", "display_name", "email", "code", "link", "invited_by", "stats", "offer"),
)

# referral/timeline.py's step states (tests/test_openapi.py holds them to the code).
TIMELINE_STATES = ("done", "now", "next", "stopped")

TIMELINE_STEP = _object(
    {
        "state": {
            "enum": list(TIMELINE_STATES),
            "description": "done; now: what it waits for; next: to come; stopped: it ended here.",
        },
        "title": TEXT,
        "detail": _nullable("string"),
        "at": _nullable("string", format="date-time"),
    },
    ("state", "title", "detail", "at"),
)

MASKED_EMAIL = {"type": "string", "description": "Masked: `a***@example.com` (`—` when none)."}

MY_REFERRALS = _object(
    {
        **PAGES,
        "total": COUNT,
        "referrals": {
            "type": "array",
            "items": _object(
                {
                    "name": TEXT,
                    "display_name": TEXT,
                    "email": MASKED_EMAIL,
                    "joined_at": MOMENT,
                    "status": {"enum": list(REFERRAL_STATUSES)},
                    "source": {"enum": list(REFERRAL_SOURCES)},
                    "timeline": {
                        "type": "array",
                        "items": _schema("TimelineStep"),
                        "description": "The referral's story in plain words, as the dashboard"
                        " tells it.",
                    },
                },
                ("name", "display_name", "email", "joined_at", "status", "source", "timeline"),
            ),
        },
    },
    ("page", "pages", "total", "referrals"),
)

TREE_REWARD = _object(
    {"currency": TEXT, "kind": {"enum": list(REWARD_KINDS)}, "amount": INTEGER, "formatted": TEXT},
    ("currency", "kind", "amount", "formatted"),
)

TREE = _object(
    {
        "depth": {"type": "integer", "minimum": 1},
        "per_page": {"type": "integer", "minimum": 1},
        "total": COUNT,
        "levels": {
            "type": "array",
            "items": _object(
                {
                    "level": {"type": "integer", "minimum": 1},
                    "count": COUNT,
                    "rewards": {"type": "array", "items": TREE_REWARD},
                    **PAGES,
                    "members": {
                        "type": "array",
                        "items": _object(
                            {
                                "id": INTEGER,
                                "display_name": TEXT,
                                "email": MASKED_EMAIL,
                                "joined_at": MOMENT,
                                "invitees": _nullable(
                                    "integer", description="Null on the deepest level shown."
                                ),
                            },
                            ("id", "display_name", "email", "joined_at", "invitees"),
                        ),
                    },
                },
                ("level", "count", "rewards", "page", "pages", "members"),
            ),
        },
    },
    ("depth", "per_page", "total", "levels"),
)

REWARD = _object(
    {
        "id": INTEGER,
        "kind": {"enum": list(REWARD_KINDS)},
        "role": {"enum": list(REWARD_ROLES)},
        "level": INTEGER,
        "amount": {"type": "integer", "description": "Minor units; only reversals are negative."},
        "currency": TEXT,
        "status": {"enum": list(REWARD_STATUSES)},
        "reason": _nullable("string"),
        "available_at": _nullable("string", format="date-time"),
        "expires_at": _nullable("string", format="date-time"),
        "created_at": _nullable("string", format="date-time"),
    },
    (
        "id",
        "kind",
        "role",
        "level",
        "amount",
        "currency",
        "status",
        "reason",
        "available_at",
        "expires_at",
        "created_at",
    ),
)

BALANCE = _object(
    {
        "kind": {"enum": list(REWARD_KINDS)},
        "currency": TEXT,
        "available": INTEGER,
        "on_hold": INTEGER,
        "requested": INTEGER,
        "paid": INTEGER,
        "payable": _nullable("integer", description="What a payout request would claim now."),
    },
    ("kind", "currency", "available", "on_hold", "requested", "paid", "payable"),
)

MY_REWARDS = _object(
    {
        **PAGES,
        "rewards": {"type": "array", "items": _schema("Reward")},
        "balances": {"type": "array", "items": _schema("Balance")},
    },
    ("page", "pages", "rewards", "balances"),
)

CUSTOMER_ID = {"type": "string", "maxLength": 100, "description": "The shop's customer id."}
EMAIL = {"type": "string", "format": "email"}
REF_CODE = {"type": "string", "description": "A participant's referral code, e.g. `AB3K9Z`."}

CUSTOMER = _object({"external_id": CUSTOMER_ID, "email": EMAIL}, closed=False)

EVENT = _object(
    {
        "type": {
            "type": "string",
            "description": f"{', '.join(CONVERSION_KINDS)}; any other type is answered "
            "`ignored` and stored nowhere.",
        },
        "id": {
            "type": "string",
            "maxLength": 200,
            "description": "The event's id at the sender: a redelivery carries the same one.",
        },
        "customer": CUSTOMER,
        "ref_code": REF_CODE,
        "amount": {"type": "integer", "description": "Minor units."},
        "currency": {"type": "string", "description": "ISO 4217; the program's when absent."},
        "occurred_at": {
            "type": "string",
            "format": "date-time",
            "description": "With a time zone, between 1970 and 2100.",
        },
        "order_id": {
            "type": "string",
            "maxLength": 200,
            "description": "The order a purchase pays for and a refund gives back.",
        },
        "channel": {
            "type": "string",
            "description": "The sales channel's slug, checked by a program's channel filter.",
        },
        "country": {
            "type": "string",
            "description": "ISO 3166 alpha-2 country the order ships to (else is billed to),"
            " checked by a program's country filter.",
        },
        "lines": {
            "type": "array",
            "maxItems": 500,
            "description": "The order's lines; with a category filter only lines in those"
            " categories count toward the minimum and percent rewards.",
            "items": _object(
                {"category": {"type": "string"}, "amount": {"type": "integer", "minimum": 0}},
                ("amount",),
                closed=False,
            ),
        },
    },
    ("type", "id"),
    closed=False,
)
EVENT["examples"] = [
    {
        "type": "purchase",
        "id": "evt_1001",
        "customer": {"external_id": "cust-42", "email": "ann@example.com"},
        "ref_code": "AB3K9Z",
        "amount": 2500,
        "currency": "USD",
        "occurred_at": "2026-11-21T10:00:00Z",
        "order_id": "order-1001",
    }
]

ISSUE_CODE = _object({"external_id": CUSTOMER_ID, "email": EMAIL}, closed=False)
ISSUE_CODE["description"] = "At least one of `external_id` and a valid `email`."
ISSUE_CODE["examples"] = [{"external_id": "cust-42", "email": "ann@example.com"}]

PROCESS_REFERRAL = _object(
    {
        "external_id": CUSTOMER_ID,
        "email": EMAIL,
        "ref_code": REF_CODE,
        "referral_code": {"type": "string", "description": "Read when `ref_code` is absent."},
    },
    closed=False,
)
PROCESS_REFERRAL["description"] = "`external_id` or `email`, and the inviter's code."
PROCESS_REFERRAL["examples"] = [{"external_id": "cust-42", "ref_code": "AB3K9Z"}]

ISSUED_CODE = _object(
    {
        "participant_id": INTEGER,
        "external_id": _nullable("string"),
        "email": _nullable("string"),
        "code": TEXT,
        "link": {"type": "string", "format": "uri"},
    },
    ("participant_id", "external_id", "email", "code", "link"),
)

STRIPE_EVENT = _object(
    {
        "id": TEXT,
        "type": {
            "type": "string",
            "description": "Acted on: checkout.session.completed, "
            "checkout.session.async_payment_succeeded, invoice.paid (purchase), "
            "charge.refunded (refund); others are answered `ignored`.",
        },
        "created": INTEGER,
        "data": _object(
            {"object": _object({"id": TEXT}, ("id",), closed=False)}, ("object",), closed=False
        ),
    },
    ("type", "data"),
    closed=False,
)

SALEOR_EVENT = _object(
    {
        "__typename": {
            "enum": ["OrderConfirmed", "OrderFullyPaid", "OrderRefunded", "OrderFullyRefunded"]
        },
        "issuedAt": MOMENT,
        "order": _object({"id": TEXT}, ("id",), closed=False),
    },
    ("__typename", "order"),
    closed=False,
)

OUTBOUND_EVENT = _object(
    {
        "type": {"enum": list(WEBHOOK_EVENTS)},
        "timestamp": MOMENT,
        "data": {"type": "object"},
    },
    ("type", "timestamp", "data"),
    closed=False,
)

# --- operations -----------------------------------------------------------------------------

SESSION = [{"session": []}]
EVENT_WRITERS = [
    {"standardWebhooks": []},
    {"apiKeyBearer": ["events:write"]},
    {"apiKeyHeader": ["events:write"]},
]


def _with_key(scope: str) -> list:
    return [{"apiKeyBearer": [scope]}, {"apiKeyHeader": [scope]}]


def _portal(operation_id: str, summary: str, schema: str, parameters=(), errors=()) -> dict:
    """A GET of the signed-in participant's own data."""
    return {
        "get": {
            "operationId": operation_id,
            "tags": ["participant"],
            "summary": summary,
            "security": SESSION,
            "parameters": list(parameters),
            "responses": {
                "200": _json(_schema(schema), "The participant's data."),
                **_errors(400, 401, *errors),
            },
        }
    }


def _body(schema: str, *, form: bool = False) -> dict:
    content = {"application/json": {"schema": _schema(schema)}}
    if form:
        content["application/x-www-form-urlencoded"] = {"schema": _schema(schema)}
    return {"required": True, "content": content}


OUTCOME_RESPONSE = _json(
    _schema("Outcome"), "Received: what became of it (`duplicate` on redelivery)."
)

PATHS = {
    "/api/v1/leaderboard": {
        "get": {
            "operationId": "getLeaderboard",
            "tags": ["public"],
            "summary": "The public leaderboard, a page at a time.",
            "security": [],
            "parameters": [
                _query(
                    "period",
                    "all (default), month or week (UTC calendar periods); anything else is all.",
                    {"type": "string"},
                ),
                PAGE,
            ],
            "responses": {
                "200": _json(
                    _schema("Leaderboard"),
                    "One page of the board.",
                    headers={
                        "Access-Control-Allow-Origin": {
                            "required": True,
                            "description": "`*`: the board may be shown on other sites.",
                            "schema": {"const": "*"},
                        },
                        "ETag": {
                            "required": True,
                            "description": "Send it back as `If-None-Match` to get `304` "
                            "while the board is unchanged.",
                            "schema": {"type": "string"},
                        },
                    },
                ),
                "304": {"description": "Unchanged since the `ETag` sent in `If-None-Match`."},
                **_errors(400, 429),
            },
        }
    },
    "/api/v1/me": _portal(
        "getMe",
        "The signed-in participant: code, link, stats, who invited them and the offer.",
        "Me",
    ),
    "/api/v1/me/referrals": _portal(
        "getMyReferrals",
        "The people they invited, newest first, each with its timeline.",
        "MyReferrals",
        [PAGE],
    ),
    "/api/v1/me/tree": _portal(
        "getMyTree",
        "Their referral tree, level by level; `level` and `page` page through one level.",
        "Tree",
        [_query("level", "One level only (1 to the program's depth); unknown: 404.", TEXT), PAGE],
        errors=(404,),
    ),
    "/api/v1/me/rewards": _portal(
        "getMyRewards", "Their ledger entries and balances.", "MyRewards", [PAGE]
    ),
    "/api/v1/events": {
        "post": {
            "operationId": "postEvent",
            "tags": ["incoming"],
            "summary": "A conversion event (signup, purchase, refund); takes effect once.",
            "description": (
                "Signed per Standard Webhooks with `EVENTS_WEBHOOK_SECRET` (HMAC-SHA256 over "
                "`<webhook-id>.<webhook-timestamp>.<raw body>`, timestamp within 5 minutes), "
                "or sent with an API key of scope `events:write`. A missing, malformed or stale "
                "signature is 400, a wrong one 401; nothing is written."
            ),
            "security": EVENT_WRITERS,
            "parameters": [
                _header("webhook-id", "The message id (Standard Webhooks)."),
                _header("webhook-timestamp", "Unix seconds when it was signed."),
                _header(
                    "Prefer",
                    "`respond-async` (RFC 7240): answered `202` once the event is stored, and "
                    "processed by a worker; its outcome is then at `Location`. The same checks "
                    "refuse a malformed event at once (nothing stored). A redelivery gets the "
                    "same id. A type InviteLoop does not act on is answered `200` at once.",
                ),
            ],
            "requestBody": _body("Event"),
            "responses": {
                "200": OUTCOME_RESPONSE,
                "202": _json(
                    _schema("EventQueued"),
                    "Stored, to be processed (`Prefer: respond-async`).",
                    headers={
                        "Location": {
                            "required": True,
                            "description": "`/api/v1/events/{id}`: where its outcome will be.",
                            "schema": {"type": "string"},
                        },
                        "Preference-Applied": {
                            "required": True,
                            "description": "`respond-async`.",
                            "schema": {"const": "respond-async"},
                        },
                    },
                ),
                **_errors(400, 401, 403, 413, 422, 429, 503),
            },
        }
    },
    "/api/v1/events/{inbox_id}": {
        "get": {
            "operationId": "getEvent",
            "tags": ["incoming"],
            "summary": "An event answered `202`: queued, or processed with its outcome.",
            "description": (
                "Only its sender reads it: the same API key (scope `events:write`), or for "
                "signed events a Standard Webhooks signature over an empty body. Another "
                "sender's event is 404, as is an unknown id."
            ),
            "security": EVENT_WRITERS,
            "parameters": [
                {
                    "name": "inbox_id",
                    "in": "path",
                    "required": True,
                    "description": "The `id` of the `202` answer.",
                    "schema": {"type": "integer", "minimum": 1},
                },
                _header("webhook-id", "The message id (Standard Webhooks)."),
                _header("webhook-timestamp", "Unix seconds when it was signed."),
            ],
            "responses": {
                "200": _json(_schema("EventStatus"), "The event's state and outcome."),
                **_errors(400, 401, 403, 404, 429, 503),
            },
        }
    },
    "/codes/issue": {
        "post": {
            "operationId": "issueCode",
            "tags": ["partner"],
            "summary": "The shop customer's participant (created if new) and referral code.",
            "description": (
                "An API key of scope `codes:issue`, or a manager's or admin's session with "
                "its CSRF token (`X-CSRFToken`)."
            ),
            "security": [*_with_key("codes:issue"), {"session": ["manager", "admin"]}],
            "requestBody": _body("IssueCode", form=True),
            "responses": {
                "200": _json(_schema("IssuedCode"), "The participant and their active code."),
                **_errors(400, 401, 403, 413, 422, 429, 503),
            },
        }
    },
    "/referral/process_referral": {
        "post": {
            "operationId": "processReferral",
            "tags": ["partner"],
            "summary": "Record that a signup made elsewhere was referred.",
            "description": (
                "For someone who already has an account the claim rules apply: never a staff "
                "account (422 `staff_account`), only within the claim window "
                "(422 `claim_window_closed`); nothing is written when refused."
            ),
            "security": _with_key("referrals:write"),
            "requestBody": _body("ProcessReferral", form=True),
            "responses": {
                "200": OUTCOME_RESPONSE,
                **_errors(400, 401, 403, 409, 413, 422, 429, 503),
            },
        }
    },
    "/webhooks/stripe": {
        "post": {
            "operationId": "receiveStripeEvent",
            "tags": ["incoming"],
            "summary": "Stripe events: paid checkout sessions and invoices, refunded charges.",
            "description": (
                "Verified with `STRIPE_WEBHOOK_SECRET` over the raw body; a missing, wrong, "
                "stale or future signature is 400 and writes nothing."
            ),
            "security": [{"stripeSignature": []}],
            "requestBody": _body("StripeEvent"),
            "responses": {"200": OUTCOME_RESPONSE, **_errors(400, 413, 422, 429, 503)},
        }
    },
    "/webhooks/order-confirmed": {
        "post": {
            "operationId": "receiveSaleorEvent",
            "tags": ["incoming"],
            "summary": "Saleor order events: confirmed or fully paid (purchase), refunded.",
            "description": (
                "The body is what the app's subscription query selects (rewards/saleor.py). "
                "`Saleor-Signature` is a detached RS256 JWS checked against the keys of "
                "`SALEOR_API_URL` only; a bad one is 401 and writes nothing. Not rate limited: "
                "Saleor does not retry a 429."
            ),
            "security": [{"saleorSignature": []}],
            "parameters": [
                _header(
                    "Saleor-Event",
                    "order_confirmed, order_fully_paid, order_refunded or order_fully_refunded; "
                    "it must agree with the signed body's `__typename`; others are `ignored`.",
                ),
                _header("Saleor-Api-Url", "When sent, it must name the configured instance."),
                _header("Saleor-Domain", "The shop's domain (informative)."),
            ],
            "requestBody": _body("SaleorEvent"),
            "responses": {"200": OUTCOME_RESPONSE, **_errors(400, 401, 413, 422, 503)},
        }
    },
    DOCUMENT_PATH: {
        "get": {
            "operationId": "getOpenApiDocument",
            "tags": ["public"],
            "summary": "This document.",
            "security": [],
            "responses": {
                "200": _json({"type": "object", "required": ["openapi"]}, "OpenAPI 3.1."),
                **_errors(400),
            },
        }
    },
}


def _outbound(event_type: str) -> dict:
    return {
        "post": {
            "operationId": f"outbound_{event_type.replace('.', '_')}",
            "summary": f"`{event_type}`, sent to the endpoints registered in the staff panel.",
            "description": (
                "Signed per Standard Webhooks with the endpoint's secret; retried with backoff "
                "until a 2xx."
            ),
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _schema("OutboundEvent")}},
            },
            "responses": {"2XX": {"description": "Received."}},
        }
    }


OUTBOUND_WEBHOOKS = {event_type: _outbound(event_type) for event_type in WEBHOOK_EVENTS}

COMPONENTS = {
    "schemas": {
        "Error": ERROR,
        "Outcome": OUTCOME,
        "EventQueued": EVENT_QUEUED,
        "EventStatus": EVENT_STATUS,
        "Leaderboard": LEADERBOARD,
        "Me": ME,
        "Offer": OFFER,
        "MyReferrals": MY_REFERRALS,
        "TimelineStep": TIMELINE_STEP,
        "Tree": TREE,
        "Reward": REWARD,
        "Balance": BALANCE,
        "MyRewards": MY_REWARDS,
        "Event": EVENT,
        "IssueCode": ISSUE_CODE,
        "IssuedCode": ISSUED_CODE,
        "ProcessReferral": PROCESS_REFERRAL,
        "StripeEvent": STRIPE_EVENT,
        "SaleorEvent": SALEOR_EVENT,
        "OutboundEvent": OUTBOUND_EVENT,
    },
    "responses": {
        name: _json(_schema("Error"), description) for name, description in ERRORS.values()
    },
    "securitySchemes": {
        "apiKeyBearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "il_<prefix>_<secret>",
            "description": "An API key (`flask admin create-api-key`); its scopes: "
            + "; ".join(f"`{scope}` {what}" for scope, what in SCOPES.items())
            + ". A wrong or revoked key is 401, a key without the scope 403.",
        },
        "apiKeyHeader": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Api-Key",
            "description": "The same API key, when `Authorization` is not a bearer token.",
        },
        "session": {
            "type": "apiKey",
            "in": "cookie",
            "name": "session",
            "description": "The browser session of a signed-in participant (or staff member).",
        },
        "standardWebhooks": {
            "type": "apiKey",
            "in": "header",
            "name": "webhook-signature",
            "description": "Standard Webhooks: `v1,<base64>` entries, space-separated (any one "
            "valid is enough while a secret rotates), with `webhook-id` and `webhook-timestamp`.",
        },
        "stripeSignature": {
            "type": "apiKey",
            "in": "header",
            "name": "Stripe-Signature",
            "description": "`t=<unix>,v1=<hex>`: HMAC-SHA256 over `<t>.<raw body>`.",
        },
        "saleorSignature": {
            "type": "apiKey",
            "in": "header",
            "name": "Saleor-Signature",
            "description": "A detached JWS (`<header>..<signature>`, RS256, unencoded payload) "
            "by a key of the configured Saleor's `/.well-known/jwks.json`.",
        },
    },
}
