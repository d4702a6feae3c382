"""GET /r/<code> without Redis (docs/guarantees.md #48): the link comes from each process's
cache, the click is one INSERT, and a change made by another process (a code disabled, a
participant deactivated, a program edited) holds from the next click on."""

from sqlalchemy import func, select

from admin.people import roles
from admin.people import services as people
from extensions import db
from models import Click, Program
from rewards import programs
from tests.apps import other_app
from tests.helpers import log_in, statements_during


def _clicks(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Click.id)))


def _follow(client, code: str):
    return client.get(f"/r/{code}")


def test_a_cached_click_is_one_insert_and_nothing_else(app, make_participant):
    alice = make_participant()
    visitor = app.test_client()
    assert _follow(visitor, alice["code"]).status_code == 302  # reads the link once

    answers = []
    sent = statements_during(app, lambda: answers.append(_follow(visitor, alice["code"])))

    assert answers[0].status_code == 302
    assert answers[0].headers["Location"].endswith(f"/auth/signup?ref={alice['code']}")
    sql = [statement for statement in sent if not statement.startswith("BEGIN")]
    assert len(sql) == 1 and sql[0].startswith("INSERT INTO clicks")
    # The 302 carries no X-RateLimit-* headers: reading them back cost two Redis commands.
    assert "X-RateLimit-Limit" not in answers[0].headers
    assert _clicks(app) == 2


def test_a_code_disabled_by_another_process_stops_at_the_next_click(
    app, database_url, make_participant
):
    alice = make_participant()
    visitor = app.test_client()
    assert _follow(visitor, alice["code"]).status_code == 302  # now cached here

    with other_app(database_url) as staff_app, staff_app.app_context():
        code_id = db.session.scalar(select(Click.code_id))
        people.disable_code(alice["id"], code_id)
        db.session.commit()

    answer = _follow(visitor, alice["code"])
    assert answer.headers["Location"].endswith("/")  # the home page, crediting nobody
    assert "il_ref" not in answer.headers.get("Set-Cookie", "")
    assert _clicks(app) == 1


def test_a_deactivated_participant_link_stops_and_comes_back_when_reactivated(
    app, database_url, make_participant
):
    alice = make_participant()
    visitor = app.test_client()
    assert _follow(visitor, alice["code"]).status_code == 302

    with other_app(database_url) as staff_app, staff_app.app_context():
        roles.set_user_active(alice["id"], False, None)
        db.session.commit()
    assert _follow(visitor, alice["code"]).headers["Location"].endswith("/")

    with other_app(database_url) as staff_app, staff_app.app_context():
        roles.set_user_active(alice["id"], True, None)
        db.session.commit()
    assert "/auth/signup?ref=" in _follow(visitor, alice["code"]).headers["Location"]
    assert _clicks(app) == 2


def test_a_program_edited_elsewhere_sends_the_next_click_to_its_new_landing_page(
    app, database_url, make_participant
):
    alice = make_participant()
    visitor = app.test_client()
    assert "/auth/signup" in _follow(visitor, alice["code"]).headers["Location"]

    with other_app(database_url) as staff_app, staff_app.app_context():
        program = db.session.scalar(select(Program).where(Program.is_default))
        programs.update_program(program, {"landing_url": "https://shop.example/welcome"})
        db.session.commit()

    answer = _follow(visitor, alice["code"])
    assert answer.headers["Location"] == f"https://shop.example/welcome?ref={alice['code']}"

    with other_app(database_url) as staff_app, staff_app.app_context():
        program = db.session.scalar(select(Program).where(Program.is_default))
        programs.set_program_active(program, False)
        db.session.commit()
    assert _follow(visitor, alice["code"]).headers["Location"].endswith("/")
    assert _clicks(app) == 2


def test_a_signed_in_participant_following_a_friends_link_is_counted(app, make_participant):
    alice = make_participant()
    bob = make_participant("Bob Baker")
    browser = app.test_client()
    log_in(browser, bob["email"])  # his session's transaction is open when the click is written

    answer = _follow(browser, alice["code"])

    assert answer.status_code == 302 and "/auth/signup?ref=" in answer.headers["Location"]
    assert _clicks(app) == 1
