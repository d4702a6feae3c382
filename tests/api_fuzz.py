"""What schemathesis needs to fuzz the API against core/openapi.py's document, shared by
tests/test_openapi.py (in process) and `make api-check` (tests/api_check.py, a real server):
the data it finds there, the credentials each operation gets, and the check that no webhook
post without a valid signature is answered 2xx.

Loaded by the schemathesis command line as its hooks module (SCHEMATHESIS_HOOKS=tests.api_fuzz):
then the credentials come from the environment (API_CHECK_KEY, API_CHECK_SESSION) and the
check and the auth below are registered with it.
"""

import itertools
import os
from dataclasses import dataclass, field

import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.api_keys import SCOPES, create_api_key
from extensions import db
from tests import factories

# Incoming webhooks: a 2xx answer means "accepted", which needs a valid signature (or, on the
# events API, an API key with events:write).
SIGNED_PATHS = ("/api/v1/events", "/webhooks/stripe", "/webhooks/order-confirmed")
# Where the seeded API key is sent: always to the partner API and to an event's outcome (so
# the lookup is reached, not only the refusal), to every other events post (so half reach the
# body's parsing, half the signature check).
KEYED_PATHS = ("/codes/issue", "/referral/process_referral", "/api/v1/events/{inbox_id}")
SESSION_PREFIX = "/api/v1/me"
CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsigned_webhook_accepted",
)


@dataclass
class Credentials:
    api_key: str | None = None  # every scope
    session_cookie: str | None = None  # a participant with referrals and rewards
    _events_posts: itertools.count = field(default_factory=itertools.count)

    def apply(self, case) -> None:
        """Give a generated case the credentials its operation gets (replacing generated ones)."""
        path = case.operation.path
        if path in KEYED_PATHS or (path == "/api/v1/events" and next(self._events_posts) % 2):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {self.api_key}"}
        elif path.startswith(SESSION_PREFIX):
            case.cookies = {**(case.cookies or {}), "session": self.session_cookie}


credentials = Credentials(os.environ.get("API_CHECK_KEY"), os.environ.get("API_CHECK_SESSION"))


def unsigned_webhook_accepted(ctx, response, case):
    """A webhook post answered 2xx must have carried the seeded events:write key: schemathesis
    cannot forge a valid signature, so any other 2xx accepted an unsigned post."""
    if case.operation.path not in SIGNED_PATHS or not 200 <= response.status_code < 300:
        return None
    if response.request.method != "POST":  # an OPTIONS probe: answered by Flask, reads nothing
        return None
    sent = response.request.headers.get("Authorization", "")
    if case.operation.path == "/api/v1/events" and sent == f"Bearer {credentials.api_key}":
        return None
    raise AssertionError(
        f"{case.operation.label} answered {response.status_code} to a post without a valid "
        f"signature: {response.text[:200]}"
    )


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsigned_webhook_accepted,
]


def seed() -> dict:
    """Inside an app context: a participant with an inviter and invitees, a referred purchase
    (so their lists, timelines and ledger have rows to validate), and an API key with every
    scope."""
    inviter = factories.participant("Ian Inviter")  # so `invited_by` has a name to check
    referrer = factories.participant("Rita Referrer", invited_by=inviter["code"])
    friend = factories.participant("Fred Friend", invited_by=referrer["code"])
    factories.participant("Gina Guest", invited_by=referrer["code"])
    factories.participant("Hal Grandchild", invited_by=friend["code"])
    factories.purchase(friend["email"], "order-seeded", 5000)
    _row, key = create_api_key("api check", list(SCOPES))
    db.session.commit()
    return {"api_key": key, "email": referrer["email"], "password": factories.PASSWORD}


if os.environ.get("API_CHECK_KEY"):  # loaded by the schemathesis command line
    schemathesis.check(unsigned_webhook_accepted)

    @schemathesis.auth()
    class SeededCredentials:
        """The seeded key and session, sent where `credentials` says."""

        def get(self, case, ctx):
            return credentials

        def set(self, case, data, ctx):
            data.apply(case)
