"""Phone sign-in as a person does it: ask for a code, read it from the console SMS backend's
log (the `sms_log` fixture), type it."""

import re

from auth import phone
from extensions import db
from tests.helpers import csrf_token, read_form, text_of

# The code is the only six digits in the text, whatever its language.
SMS_LINE = re.compile(r"SMS to (\+\d+): \D*(\d{6})\D")
NUMBER = "+14155550132"
OTHER_NUMBER = "+14155550199"


def request_code(client, number, ip="127.0.0.1", query=None, **fields):
    token = csrf_token(client, "/auth/phone")
    data = {"csrf_token": token, "phone": number, **fields}
    return client.post(
        "/auth/phone", data=data, query_string=query, environ_base={"REMOTE_ADDR": ip}
    )


def enter_code(client, code, ip="127.0.0.1", query=None):
    page = client.get("/auth/phone/verify", query_string=query)
    assert page.status_code == 200, "no code is waiting in this browser"
    token = read_form(page).values["csrf_token"]
    return client.post(
        "/auth/phone/verify",
        data={"csrf_token": token, "code": code},
        query_string=query,
        environ_base={"REMOTE_ADDR": ip},
    )


def texts(caplog) -> list[tuple[str, str]]:
    """(number, code) of every text the console backend sent, in order."""
    found = []
    for record in caplog.records:
        if record.name == "inviteloop.sms":
            match = SMS_LINE.search(record.getMessage())
            assert match, record.getMessage()
            found.append(match.groups())
    return found


def last_code(caplog, number=NUMBER) -> str:
    codes = [code for to, code in texts(caplog) if to == number]
    assert codes, f"no text was sent to {number}"
    return codes[-1]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def sign_in(client, caplog, number=NUMBER, **fields):
    sent = request_code(client, number, **fields)
    assert sent.status_code == 302, text_of(sent)
    return enter_code(client, last_code(caplog, phone.normalize_phone(number, "US")))


def phone_participant(app, number=NUMBER, name="Pat Phone") -> int:
    """A committed participant who signed up by phone (through the service the view uses)."""
    with app.app_context():
        user, created = phone.sign_in(number, name=name)
        db.session.commit()
        assert created
        return user.id
