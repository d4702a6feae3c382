"""LOG_FORMAT=json: one JSON object per line, a request id from the request to the jobs it
caused, and no secret in any line (docs/guarantees.md #36)."""

import io
import json
import logging
import re
import time

import pytest

from app import create_app
from config import ConfigError
from core.api_keys import create_api_key
from core.logs import configure_logging, redact
from extensions import db
from tests.apps import app_config
from tests.events_api import SECRET, purchase, signed_delivery
from tests.helpers import csrf_token, log_in, take_outbox

PUBLIC_URL = "https://refer.example.com"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase for fred"
RESET_PATH = re.compile(r"/auth/reset/([A-Za-z0-9_.\-]+)")
WAIT_SECONDS = 10


@pytest.fixture
def config_overrides():
    return {
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "MAIL_BACKEND": "locmem",
        "PUBLIC_URL": PUBLIC_URL,
        "EVENTS_WEBHOOK_SECRET": SECRET,
    }


@pytest.fixture
def output(app):
    """What the app's own log handler writes to standard output during the test."""
    configure_logging(app.config)  # this module's settings, whatever app came before
    [handler] = [h for h in logging.getLogger().handlers if getattr(h, "_inviteloop", False)]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def lines_of(stream: io.StringIO) -> list[dict]:
    """Every line, parsed: each must be one JSON object."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def sign_up_through_link(client, code: str, email: str, request_id: str):
    client.get(f"/r/{code}")
    data = {
        "csrf_token": csrf_token(client, "/auth/signup"),
        "name": "Fred Friend",
        "email": email,
        "password": PASSWORD,
    }
    return client.post("/auth/signup", data=data, headers={"X-Request-ID": request_id})


def test_a_sane_request_id_is_kept_and_any_other_replaced(client):
    assert (
        client.get("/health", headers={"X-Request-ID": "lb-7f3a.42"}).headers["X-Request-ID"]
        == "lb-7f3a.42"
    )
    for offered in ("", "has space", "<script>", "x" * 129, "ünïcode"):
        answered = client.get("/health", headers={"X-Request-ID": offered}).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", answered), offered
    first = client.get("/no-such-page").headers["X-Request-ID"]
    assert first != client.get("/no-such-page").headers["X-Request-ID"]


def test_every_line_is_one_json_object_with_the_request_id(app, client, output):
    response = client.post(
        "/api/v1/events", data=b"{}", headers={"X-Request-ID": "req-refused-1"}
    )  # unsigned: refused with a warning line
    assert response.status_code == 400
    assert response.headers["X-Request-ID"] == "req-refused-1"
    lines = lines_of(output)
    refused = [line for line in lines if line["logger"] == "rewards.webhooks"]
    assert refused and refused[0]["level"] == "WARNING"
    assert refused[0]["request_id"] == "req-refused-1"
    assert refused[0]["message"] == "events webhook refused: missing_signature"
    assert set(lines[0]) >= {"time", "level", "logger", "message", "request_id"}


def test_the_email_a_request_caused_is_logged_with_its_request_id(app, make_participant, output):
    """A reset request's email goes through the outbox; a Celery task delivers it in another
    thread, and its lines still name the request."""
    fred = make_participant("Fred Friend")
    take_outbox(app)
    app.config["OUTBOX_DELIVERY"] = "celery"  # Celery runs eagerly here: no broker configured
    client = app.test_client()
    token = csrf_token(client, "/auth/reset")
    answer = client.post(
        "/auth/reset",
        data={"csrf_token": token, "email": fred["email"]},
        headers={"X-Request-ID": "req-reset-1"},
    )
    assert answer.status_code == 200
    # The delivery's line is written once the email has gone: wait for that line.
    deadline = time.monotonic() + WAIT_SECONDS
    while '"logger": "core.outbox"' not in output.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    [email] = take_outbox(app)
    assert email.to == [fred["email"]]
    delivered = [line for line in lines_of(output) if line["logger"] == "core.outbox"]
    assert [line["request_id"] for line in delivered] == ["req-reset-1"]
    assert "done" in delivered[0]["message"]
    sent = [line for line in lines_of(output) if line["logger"] == "core.mail"]
    assert [line["request_id"] for line in sent] == ["req-reset-1"]


def test_no_secret_reaches_the_log(app, make_participant, output):
    """A signup through a link, a reset, a login, API calls with a key and a signed event:
    neither the passwords, the reset token, the API key nor the webhook secret is written,
    not even when code logs them carelessly."""
    rita = make_participant("Rita Referrer")
    client = app.test_client()
    assert sign_up_through_link(client, rita["code"], "fred@example.com", "r1").status_code == 302
    take_outbox(app)

    stranger = app.test_client()
    token = csrf_token(stranger, "/auth/reset")
    stranger.post("/auth/reset", data={"csrf_token": token, "email": "fred@example.com"})
    [email] = take_outbox(app)
    reset_token = RESET_PATH.search(email.body).group(1)
    page = stranger.get(f"/auth/reset/{reset_token}")
    form_token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
    choose = {"csrf_token": form_token.group(1), "password": NEW_PASSWORD}
    assert stranger.post(f"/auth/reset/{reset_token}", data=choose).status_code == 302
    assert log_in(app.test_client(), "fred@example.com", "wrong password!").status_code == 401
    assert log_in(app.test_client(), "fred@example.com", NEW_PASSWORD).status_code == 302

    with app.app_context():
        _row, api_key = create_api_key("shop", ["codes:issue"])
        db.session.commit()
    issued = app.test_client().post(
        "/codes/issue",
        json={"email": "fred@example.com"},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert issued.status_code == 200
    bad_key = api_key[:-4] + "AAAA"
    refused = app.test_client().post(
        "/codes/issue", json={"email": "x@example.com"}, headers={"X-Api-Key": bad_key}
    )
    assert refused.status_code == 401
    body, headers = signed_delivery(purchase("fred@example.com", order="o-logs"))
    assert app.test_client().post("/api/v1/events", data=body, headers=headers).status_code == 200

    careless = logging.getLogger("careless")
    careless.warning("login attempt password=%s", PASSWORD)
    careless.warning("link %s/auth/reset/%s", PUBLIC_URL, reset_token)
    careless.warning("calling with Authorization: Bearer %s", api_key)
    careless.warning("config %s", {"EVENTS_WEBHOOK_SECRET": SECRET, "api_key": api_key})

    written = output.getvalue()
    lines_of(output)  # every line still JSON after redaction
    assert len(written.splitlines()) > 10
    secret_part = api_key.split("_", 2)[2]
    secrets = (PASSWORD, NEW_PASSWORD, reset_token, secret_part, bad_key[-20:], SECRET)
    for secret in secrets:
        assert secret not in written
        assert secret[len(secret) // 2 :] not in written  # nor any tail of it
    assert f"{PUBLIC_URL}/auth/reset/[redacted]" in written
    assert "password=[redacted]" in written


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("password=hunter2 next", "password=[redacted]"),
        ("?token=abc&page=2", "?token=[redacted]&page=2"),
        ('{"new_password": "hunter2"}', '{"new_password": "[redacted]"}'),
        ("GET /auth/reset/abc.DEF-1?x=1", "GET /auth/reset/[redacted]?x=1"),
        ("key il_0123abcd_s3cr3t-_x used", "key il_0123abcd_[redacted] used"),
        ("Authorization: Bearer abc.def", "Authorization: [redacted]"),
        ("secret whsec_QUJD", "secret whsec_[redacted]"),
        ("sent 'Welcome' to f***@example.com", "sent 'Welcome' to f***@example.com"),
        ("password reset for user 5", "password reset for user 5"),
    ],
)
def test_redaction_keeps_what_is_not_secret(line, expected):
    assert redact(line) == expected


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be 'text' or 'json'"),
        ("METRICS_TOKEN", "short", "METRICS_TOKEN must be at least 16 characters"),
    ],
)
def test_a_bad_setting_stops_the_start_up(setting, value, message):
    with pytest.raises(ConfigError, match=message):
        create_app(app_config("sqlite:///:memory:", **{setting: value}))
