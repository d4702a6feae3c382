"""Helpers the test modules share: acting like a browser, reading pages, setting up data
through the real services and reading the database. Call them outside an app context."""

import re
import threading
from contextlib import contextmanager
from html.parser import HTMLParser
from urllib.parse import urlsplit

import requests
from limits import parse_many
from sqlalchemy import event, func, select, update

from extensions import db
from models import Referral, User
from referral.services import default_program
from rewards import programs
from tests import factories

CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client, path: str) -> str:
    page = client.get(path)
    match = CSRF_FIELD.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def log_in(client, email, password=factories.PASSWORD, query=None, **extra):
    """Log `client` in through the real form; returns the response."""
    token = csrf_token(client, "/auth/login")
    data = {"csrf_token": token, "email": email, "password": password, **extra}
    return client.post("/auth/login", data=data, query_string=query)


def logged_in(app, participant: dict):
    client = app.test_client()
    assert log_in(client, participant["email"]).status_code == 302
    return client


# --- reading pages ------------------------------------------------------------------------


class _FormPage(HTMLParser):
    """The inputs of a page (name -> value attribute, None when absent), the messages shown
    beneath each input, and the page-wide alerts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.values: dict[str, str | None] = {}
        self.field_errors: dict[str, list[str]] = {}
        self.alerts: list[str] = []
        self._last_input: str | None = None
        self._collecting: list[str] | None = None
        self._depth = 0
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("input", "select", "textarea") and attributes.get("name"):
            self._last_input = attributes["name"]
            self.values[self._last_input] = attributes.get("value")
            return
        if tag == "option" and "selected" in attributes and self._last_input:
            self.values[self._last_input] = attributes.get("value")
            return
        if tag != "div":
            return
        if self._collecting is not None:
            self._depth += 1
            return
        classes = (attributes.get("class") or "").split()
        if "invalid-feedback" in classes and self._last_input:
            self._collecting = self.field_errors.setdefault(self._last_input, [])
        elif "alert" in classes:
            self._collecting = self.alerts
        else:
            return
        self._depth = 1
        self._text = []

    def handle_endtag(self, tag):
        if tag != "div" or self._collecting is None:
            return
        self._depth -= 1
        if self._depth == 0:
            self._collecting.append(" ".join("".join(self._text).split()))
            self._collecting = None

    def handle_data(self, data):
        if self._collecting is not None:
            self._text.append(data)


class _FormFields(HTMLParser):
    """The values a browser would submit with the page's form posting to `action`."""

    def __init__(self, action: str):
        super().__init__()
        self.action, self.inside = action, False
        self.fields, self._select, self._textarea = {}, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("action") == self.action
        if not self.inside or ("name" not in attrs and tag != "option"):
            return
        if tag == "input" and attrs.get("type") not in ("submit", "checkbox"):
            self.fields[attrs["name"]] = attrs.get("value") or ""
        elif tag == "select":
            self._select = attrs["name"]
            self.fields.setdefault(self._select, None)
        elif tag == "option" and self._select:
            if self.fields[self._select] is None or "selected" in attrs:
                self.fields[self._select] = attrs.get("value", "")
        elif tag == "textarea":
            self._textarea = attrs["name"]
            self._first_line = True
            self.fields[self._textarea] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self.inside = False

    def handle_data(self, data):
        if self._textarea:
            if self._first_line:  # browsers drop the newline that opens a textarea
                data, self._first_line = data.removeprefix("\r").removeprefix("\n"), False
            self.fields[self._textarea] += data


def form_fields(html: str, action: str) -> dict:
    parser = _FormFields(action)
    parser.feed(html)
    return parser.fields


def read_form(response) -> _FormPage:
    page = _FormPage()
    page.feed(response.get_data(as_text=True))
    page.close()
    return page


def text_of(response) -> str:
    return response.get_data(as_text=True)


def location_path(response) -> str:
    """The path a redirect sends the browser to; fails if it would leave the site."""
    parts = urlsplit(response.headers["Location"])
    assert parts.scheme in ("", "http", "https")
    assert parts.netloc in ("", "inviteloop.test"), response.headers["Location"]
    return parts.path


def is_logged_in(client) -> bool:
    response = client.get("/referral/dashboard")
    if response.status_code == 200:
        return True
    assert response.status_code == 302
    assert location_path(response) == "/auth/login"
    return False


# --- data through the real services ------------------------------------------------------


def configure(app, **changes):
    with app.app_context():
        programs.update_program(default_program(), changes)
        db.session.commit()


def buy(app, email, order, amount=2500, now=None, source="api"):
    """A committed purchase through the event intake; returns its outcome."""
    with app.app_context():
        outcome = factories.purchase(email, order, amount, now=now, source=source)
        db.session.commit()
        return outcome


def accepted_purchase(app, email: str, order: str, amount: int = 2500, *, now=None) -> None:
    """A setup purchase through the event intake; it must be accepted."""
    assert buy(app, email, order, amount, now=now).outcome == "accepted"


# --- reading the database ----------------------------------------------------------------


def referral_of(app, user_id) -> Referral | None:
    with app.app_context():
        return factories.referral_of(user_id)


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def set_active(app, user_id, active):
    with app.app_context():
        db.session.execute(update(User).where(User.id == user_id).values(active=active))
        db.session.commit()


def take_outbox(app) -> list:
    """The emails the app has sent since the last look (Flask-Mailman's locmem backend)."""
    outbox = getattr(app.extensions["mailman"], "outbox", [])
    sent = list(outbox)
    outbox.clear()
    return sent


def reset_link_path(app, email: str, public_url: str) -> str:
    """The path of the reset link, under `public_url`, in the one email just sent to `email`."""
    [message] = take_outbox(app)
    assert message.to == [email]
    assert message.subject == "Reset your InviteLoop password"
    [link] = re.findall(re.escape(public_url) + r"/auth/reset/[A-Za-z0-9_.\-]+", message.body)
    return urlsplit(link).path


def smallest_limit(limits: str) -> int:
    return min(item.amount for item in parse_many(limits))


def scheme_seen(base_url: str) -> str:
    """The scheme of the absolute links a real server writes (the landing page's share
    preview) for a request a proxy marked as HTTPS."""
    page = requests.get(f"{base_url}/", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert page.status_code == 200
    return re.search(r'<meta property="og:url" content="([^"]+)"', page.text)[1].split("://")[0]


def statements_during(app, action) -> list[str]:
    """The SQL statements the app sent while `action()` ran (e.g. a request). On SQLite, a
    connection taken from the pool during `action()`, and the clicks' writer's own
    (referral/clicks.py), are watched through SQLite's own trace, so a statement sent on the
    DBAPI connection without SQLAlchemy's execution layer is seen too."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine
    trace = _SqliteTrace(seen)

    def remember(connection, _cursor, statement, *_args):
        if id(connection.connection.dbapi_connection) not in trace.traced:
            seen.append(statement)

    watching = [(engine, "before_cursor_execute", remember)]
    batches = app.extensions.get("click_batches")
    own = batches.write.own.get() if batches is not None else None
    if engine.dialect.name == "sqlite":
        watching += [(engine.pool, "checkout", trace.start), (engine.pool, "checkin", trace.stop)]
        if own is not None:
            trace.start(own)
    for target, name, listener in watching:
        event.listen(target, name, listener)
    try:
        action()
    finally:
        for target, name, listener in watching:
            event.remove(target, name, listener)
        if own is not None:
            trace.stop(own)
    return seen


class _SqliteTrace:
    """Statements as SQLite ran them on the DBAPI connections it is started on; like
    SQLAlchemy's events, it leaves out COMMIT, ROLLBACK, savepoints and triggers."""

    # What SQLite's trace reports that SQLAlchemy's before_cursor_execute does not.
    NOT_SENT_AS_STATEMENTS = ("--", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen
        self.traced: set[int] = set()  # the DBAPI connections reported on
        self.last: str | None = None

    def start(self, dbapi_connection, *_args) -> None:
        self.traced.add(id(dbapi_connection))
        dbapi_connection.set_trace_callback(self._remember)

    def stop(self, dbapi_connection, *_args) -> None:
        self.traced.discard(id(dbapi_connection))
        dbapi_connection.set_trace_callback(None)

    def _remember(self, statement: str) -> None:
        # Python's callback reports a statement again at the start of each trigger it runs.
        again, self.last = statement == self.last, statement
        if not again and not statement.lstrip().upper().startswith(self.NOT_SENT_AS_STATEMENTS):
            self.seen.append(statement)


@contextmanager
def a_request_in_flight(app):
    """A request the app's process is serving until the block ends (a slow page, say), as
    its embedded background threads see it (core/background.py RequestsInFlight)."""
    let_go = threading.Event()
    served = app.extensions["requests_in_flight"].counting(
        lambda _environ, _start: [let_go.wait(30)]
    )
    request = threading.Thread(target=served, args=({}, None))
    request.start()
    try:
        yield
    finally:
        let_go.set()
        request.join(30)
