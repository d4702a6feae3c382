"""Random bytes and text (NUL, lone surrogates, huge numbers, junk) in any query parameter or
form field of every route never give a 5xx (docs/guarantees.md #18).

Every rule of the app's URL map is tried, GET with random query strings and POST with random
form fields beside a valid CSRF token, by a visitor and by a logged-in admin (who may open
every page). The form fields tried are the ones the route's own page shows, plus the names the
views read from query strings.
"""

import re
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from werkzeug.routing import AnyConverter, IntegerConverter

from extensions import db
from tests import events_api, factories
from tests.helpers import csrf_token, log_in
from tests.intensity import repetitions

# Routes that end the session the fuzzing runs in; what they read is tried on other routes.
SKIPPED = {"auth.logout", "auth.end_other_sessions", "static", "bootstrap.static"}
# Names the views read from query strings and forms, so random values reach real code.
KNOWN_NAMES = (
    "page", "ledger_page", "q", "ref", "next", "period", "node", "level", "partial", "status",
    "program", "participant", "since", "until", "start", "end", "campaign", "lead", "service",
    "channel", "endpoint_id", "event", "actor", "action", "target_type", "target_id", "show",
    "role", "email", "password", "name", "code", "phone", "referral_code", "utm_source",
)  # fmt: skip
INPUT_NAME = re.compile(r'<(?:input|select|textarea)[^>]*\bname="([^"]+)"')
# Shrinking replays requests against a database for minutes; a failure is reported as found.
SETTINGS = settings(
    max_examples=repetitions(full=300, quick=75),
    deadline=None,
    database=None,
    phases=[phase for phase in Phase if phase is not Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

VALUES = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.sampled_from(["\x00", "\ud800", "a\x00b", "\udfff\x00", "²", "١٢٣"]).map(
        lambda text: text.encode("utf-8", "surrogatepass")
    ),
    st.integers(min_value=-(10**30), max_value=10**30).map(lambda n: str(n).encode()),
    st.just(b"9" * 5000),
)
NAMES = st.one_of(
    st.sampled_from(KNOWN_NAMES).map(str.encode),
    st.binary(min_size=1, max_size=10),
)
# A few random parameters, or one value in every parameter a view reads at once.
PAIRS = st.one_of(
    st.lists(st.tuples(NAMES, VALUES), min_size=1, max_size=4),
    VALUES.map(lambda value: [(name.encode(), value) for name in KNOWN_NAMES]),
)


@pytest.fixture
def config_overrides():
    # Every endpoint configured, so that none answers its deliberate 503 "not configured".
    return {
        "RATELIMIT_ENABLED": False,
        "MAIL_BACKEND": "locmem",
        "EVENTS_WEBHOOK_SECRET": events_api.SECRET,
        "STRIPE_WEBHOOK_SECRET": "whsec_fuzz_" + "3" * 32,
        "SALEOR_API_URL": "http://127.0.0.1:9/graphql/",  # never fetched: nothing is signed
    }


def url_for_rule(rule) -> str:
    values = {}
    for name, converter in rule._converters.items():
        if isinstance(converter, AnyConverter):
            values[name] = sorted(converter.items)[0]
        elif isinstance(converter, IntegerConverter):
            values[name] = 1
        else:
            values[name] = "x"
    path = rule.rule
    for name, value in values.items():
        path = re.sub(rf"<[^>]*\b{name}>", str(value), path)
    return path


def routes(app) -> list[tuple[str, str, tuple[str, ...]]]:
    """(method, path, form field names) for every rule of the app."""
    found = []
    client = app.test_client()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIPPED:
            continue
        path = url_for_rule(rule)
        for method in sorted(rule.methods & {"GET", "POST"}):
            fields = ()
            if method == "POST" and "GET" in rule.methods:
                fields = tuple(INPUT_NAME.findall(client.get(path).get_data(as_text=True)))
            found.append((method, path, fields))
    return found


def encoded(pairs) -> str:
    return "&".join(f"{quote_from_bytes(k)}={quote_from_bytes(v)}" for k, v in pairs)


def test_random_input_in_any_parameter_of_any_route_is_never_a_5xx(app):
    with app.app_context():
        factories.participant("Fuzz Target")  # id 1: what <int:...> names in the URLs
        admin = factories.staff("admin")
        db.session.commit()
    visitor = app.test_client()
    staff = app.test_client()
    assert log_in(staff, admin["email"]).status_code == 302
    tokens = {id(visitor): csrf_token(visitor, "/auth/login")}
    tokens[id(staff)] = csrf_token(staff, "/auth/profile")
    table = routes(app)

    @SETTINGS
    @given(
        route=st.sampled_from(table),
        as_staff=st.booleans(),
        pairs=PAIRS,
        field_values=st.data(),
    )
    def check(route, as_staff, pairs, field_values):
        method, path, fields = route
        client = staff if as_staff else visitor
        if method == "GET":
            response = client.get(f"{path}?{encoded(pairs)}")
        else:
            own = [
                (name.encode(), field_values.draw(VALUES, label=name))
                for name in fields
                if name != "csrf_token"
            ]
            body = encoded([(b"csrf_token", tokens[id(client)].encode()), *own, *pairs])
            response = client.post(
                f"{path}?{encoded(pairs[:1])}",
                data=body,
                content_type="application/x-www-form-urlencoded",
            )
        assert response.status_code < 500, (method, path, response.status_code)

    check()
