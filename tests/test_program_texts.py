"""A program's texts in each language (docs/guarantees.md #47): what an admin writes per
language, what each reader is shown, the fall-backs, the limits, and the programs screen in
Russian."""

import re
from functools import partial

import pytest
from flask_babel import force_locale
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from config import LANGUAGES
from core.money import CURRENCIES
from extensions import db
from models import LOCALES, AuditLog, Program, ProgramText, User
from referral.offer import offer_of
from referral.services import default_program
from rewards import programs
from tests import factories
from tests.helpers import (
    accepted_purchase,
    form_fields,
    log_in,
    logged_in,
    read_form,
    statements_during,
    take_outbox,
    text_of,
)
from tests.russian import english_leftovers, latin_words

RU = {"Accept-Language": "ru"}
EN = {"Accept-Language": "en"}
RUSSIAN_NAME = "Приглашайте друзей"
RUSSIAN_HEADLINE = "Дарите 5 $ — получайте 10 $"
RUSSIAN_DESCRIPTION = "Делитесь ссылкой с теми, кому понравится наш магазин."
RUSSIAN_SHARE = "Присоединяйтесь по моей ссылке к программе «{program}»:"
RUSSIAN_USAGE = "Бонусы копятся на балансе: их можно потратить при следующей покупке."


@pytest.fixture
def marketer(app, client):
    with app.app_context():
        person = factories.staff("marketer")
    log_in(client, person["email"])
    return person


def program_path(app) -> str:
    with app.app_context():
        return f"/admin/programs/{default_program().id}"


def save_texts(client, path: str, headers=None, **typed):
    """Post the program form as shown, with `typed` over it (`ru_name` -> texts_ru-name)."""
    fields = form_fields(client.get(path).get_data(True), path)
    changes = {_form_name(name): value for name, value in typed.items()}
    return client.post(path, data={**fields, **changes}, headers=headers or {})


def _form_name(name: str) -> str:
    language, _, field = name.partition("_")
    return f"texts_{language}-{field}" if language in LANGUAGES else name


def stored_texts(app) -> dict[tuple[str, str], str]:
    with app.app_context():
        rows = db.session.execute(select(ProgramText.locale, ProgramText.field, ProgramText.text))
        return {(locale, field): text for locale, field, text in rows}


def choose_language(app, person: dict, locale: str) -> None:
    """The person's saved choice of language, which wins over what the browser asks for."""
    with app.app_context():
        db.session.get(User, person["id"]).locale = locale
        db.session.commit()


def headline(page: str) -> str:
    return re.search(r'id="offer-headline">([^<]*)<', page)[1]


# --- an admin writes, each reader reads their own -------------------------------------------


def test_an_admin_saves_russian_texts_and_each_reader_sees_their_language(app, client, marketer):
    path = program_path(app)
    answer = save_texts(
        client,
        path,
        ru_name=RUSSIAN_NAME,
        ru_headline=RUSSIAN_HEADLINE,
        ru_description=RUSSIAN_DESCRIPTION,
        description="Share your link with anyone who would like our shop.",
    )
    assert answer.status_code == 302
    visitor = app.test_client()

    russian = text_of(visitor.get("/", headers=RU))
    assert f"<title>{RUSSIAN_NAME} · " in russian
    assert headline(russian) == RUSSIAN_HEADLINE
    assert RUSSIAN_DESCRIPTION in russian
    assert "Invite friends" not in russian

    english = text_of(visitor.get("/", headers=EN))
    assert "<title>Invite friends · " in english
    assert headline(english) == "Give $5, get $10"
    assert "Share your link with anyone who would like our shop." in english
    assert RUSSIAN_NAME not in english and RUSSIAN_DESCRIPTION not in english


def test_saving_texts_is_audit_logged_like_any_change_of_the_program(app, client, marketer):
    path = program_path(app)
    save_texts(client, path, ru_name=RUSSIAN_NAME, en_headline="Friends bring friends")
    save_texts(client, path, ru_name="", en_headline="Friends bring friends")
    with app.app_context():
        entries = db.session.execute(
            select(AuditLog.action, AuditLog.before, AuditLog.after)
            .where(AuditLog.target_type == "program")
            .order_by(AuditLog.id)
        ).all()
    assert entries == [
        (
            "program.update",
            {"text.en.headline": None, "text.ru.name": None},
            {"text.en.headline": "Friends bring friends", "text.ru.name": RUSSIAN_NAME},
        ),
        ("program.update", {"text.ru.name": RUSSIAN_NAME}, {"text.ru.name": None}),
    ]
    assert stored_texts(app) == {("en", "headline"): "Friends bring friends"}


def test_a_new_program_is_created_with_its_texts_in_one_step(app, client, marketer):
    refused = save_texts(client, "/admin/programs/new", slug="Spring!", ru_name="Весна")
    assert refused.status_code == 400
    assert stored_texts(app) == {}

    answer = save_texts(
        client, "/admin/programs/new", slug="spring", name="Spring", ru_name="Весна"
    )
    assert answer.status_code == 302
    with app.app_context():
        program = db.session.scalar(select(Program).where(Program.slug == "spring"))
        assert [(row.locale, row.field, row.text) for row in program.texts] == [
            ("ru", "name", "Весна")
        ]


def test_a_text_not_written_in_russian_falls_back_to_the_default_language(app, client, marketer):
    path = program_path(app)
    save_texts(
        client,
        path,
        ru_name=RUSSIAN_NAME,
        en_headline="Friends bring friends",
        description="Share your link with anyone who would like our shop.",
    )
    page = text_of(app.test_client().get("/", headers=RU))
    assert f"<title>{RUSSIAN_NAME} · " in page
    assert headline(page) == "Friends bring friends"  # no Russian headline: the English one
    assert "Share your link with anyone who would like our shop." in page


def test_without_a_headline_the_offer_sentence_of_the_rules_is_shown(app, client, marketer):
    path = program_path(app)
    visitor = app.test_client()
    assert headline(text_of(visitor.get("/", headers=EN))) == "Give $5, get $10"

    save_texts(client, path, ru_headline=RUSSIAN_HEADLINE)
    assert headline(text_of(visitor.get("/", headers=RU))) == RUSSIAN_HEADLINE
    assert headline(text_of(visitor.get("/", headers=EN))) == "Give $5, get $10"

    save_texts(client, path, ru_headline="   ")  # emptied: back to the rules' sentence
    assert stored_texts(app) == {}
    with app.test_request_context(headers=RU), force_locale("ru"):
        made_from_rules = offer_of(default_program()).default_headline
    assert headline(text_of(visitor.get("/", headers=RU))) == made_from_rules


def test_the_dashboard_shows_the_offer_and_share_message_in_the_reader_language(
    app, client, marketer
):
    save_texts(
        client,
        program_path(app),
        ru_name=RUSSIAN_NAME,
        ru_headline=RUSSIAN_HEADLINE,
        ru_share_text=RUSSIAN_SHARE,
    )
    with app.app_context():
        person = factories.participant("Olga Ivanova")
    participant = logged_in(app, person)

    choose_language(app, person, "ru")
    russian = text_of(participant.get("/referral/dashboard"))
    assert f'id="offer-heading">{RUSSIAN_HEADLINE}<' in russian
    share = f"Присоединяйтесь по моей ссылке к программе «{RUSSIAN_NAME}»: http"
    assert share in russian  # {program} filled with the Russian name

    choose_language(app, person, "en")
    english = text_of(participant.get("/referral/dashboard"))
    assert 'id="offer-heading">Give $5, get $10<' in english
    assert "Присоединяйтесь" not in english


def test_the_ledger_tells_how_to_use_a_reward_in_the_reader_language(app, client, marketer):
    save_texts(
        client,
        program_path(app),
        reward_usage_text="Spend your credit at checkout.",
        ru_usage_text=RUSSIAN_USAGE,
    )
    with app.app_context():
        referrer = factories.participant("Olga Ivanova")
        friend = factories.participant("Pavel Orlov", invited_by=referrer["code"])
    accepted_purchase(app, friend["email"], "order-1")
    participant = logged_in(app, referrer)
    choose_language(app, referrer, "ru")
    assert RUSSIAN_USAGE in text_of(participant.get("/rewards/"))
    choose_language(app, referrer, "en")
    english = text_of(participant.get("/rewards/"))
    assert "Spend your credit at checkout." in english and RUSSIAN_USAGE not in english


# --- limits and the database ----------------------------------------------------------------


def test_a_text_too_long_is_refused_with_its_limit_and_nothing_is_saved(app, client, marketer):
    path = program_path(app)
    answer = save_texts(client, path, ru_name=RUSSIAN_NAME, ru_headline="Я" * 121, name="Renamed")
    assert answer.status_code == 400
    errors = read_form(answer).field_errors
    assert errors["texts_ru-headline"] == ["Keep it to 120 characters or fewer (it has 121)."]
    assert stored_texts(app) == {}
    with app.app_context():
        assert default_program().name == "Invite friends"
        assert db.session.scalar(select(AuditLog.id)) is None

    choose_language(app, marketer, "ru")
    in_russian = save_texts(client, path, ru_headline="Я" * 121)
    assert read_form(in_russian).field_errors["texts_ru-headline"] == [
        "Сократите текст до 120 знаков: сейчас их 121."
    ]


def test_a_share_text_with_an_unknown_placeholder_is_refused(app, client, marketer):
    answer = save_texts(client, program_path(app), ru_share_text="Моя ссылка {link}:")
    assert answer.status_code == 400
    [error] = read_form(answer).field_errors["texts_ru-share_text"]
    assert error.startswith("{link} is not a placeholder; use {friend_reward}")
    assert stored_texts(app) == {}


@pytest.mark.parametrize(
    ("locale", "field"), [("de", "name"), ("ru", "slogan"), ("", "name"), ("ru", "")]
)
def test_the_database_refuses_an_unknown_language_or_text(app, locale, field):
    with app.app_context():
        program_id = default_program().id
        db.session.add(ProgramText(program_id=program_id, locale=locale, field=field, text="x"))
        with pytest.raises(IntegrityError):
            db.session.flush()
        db.session.rollback()


def test_the_database_keeps_one_text_per_program_language_and_field(app):
    with app.app_context():
        program_id = default_program().id
        for text in ("Первый", "Второй"):
            db.session.add(ProgramText(program_id=program_id, locale="ru", field="name", text=text))
        with pytest.raises(IntegrityError):
            db.session.flush()
        db.session.rollback()


def test_the_texts_go_with_their_program(app):
    with app.app_context():
        program = default_program()
        program.texts.append(ProgramText(locale="ru", field="name", text=RUSSIAN_NAME))
        db.session.commit()
        db.session.execute(delete(Program).where(Program.id == program.id))
        db.session.commit()
    assert stored_texts(app) == {}


def test_the_languages_of_texts_are_the_languages_of_the_site():
    assert LOCALES == LANGUAGES


# --- what reading them costs ----------------------------------------------------------------


def test_reading_the_texts_costs_no_more_queries_than_a_page_without_them(app, client, marketer):
    with app.app_context():
        person = factories.participant("Olga Ivanova")
    participant = logged_in(app, person)
    visitor = app.test_client()
    pages = ((visitor, "/"), (participant, "/referral/dashboard"))

    def queries(headers) -> list[int]:
        choose_language(app, person, headers["Accept-Language"])
        counts = []
        for who, path in pages:
            visit = partial(who.get, path, headers=headers)
            visit()  # fills the caches
            counts.append(len(statements_during(app, visit)))
        return counts

    without_texts = queries(EN)
    save_texts(
        client,
        program_path(app),
        ru_name=RUSSIAN_NAME,
        ru_headline=RUSSIAN_HEADLINE,
        ru_share_text=RUSSIAN_SHARE,
        ru_description=RUSSIAN_DESCRIPTION,
    )
    assert queries(RU) == without_texts
    assert queries(EN) == without_texts


# --- the programs screen in Russian ---------------------------------------------------------


def screen(page: str) -> str:
    """The staff screen itself (the menu and the site's frame belong to other screens)."""
    return page.split('<div class="col-md-9 col-lg-10">', 1)[1].split("</main>", 1)[0]


def made_from_rules(app) -> set[str]:
    """The words of the texts the rules make (referral/offer.py) for the default program and
    a new one, as a Russian reader gets them: whatever language those are in, they are not
    this screen's own words."""
    made = []
    with app.test_request_context(headers=RU), force_locale("ru"):
        for program in (default_program(), programs.draft_program("USD")):
            offer = offer_of(program)
            made += [offer.default_headline, offer.default_share_text, offer.default_usage_text]
    return set(latin_words(" ".join(made)))


def test_the_programs_screen_in_russian_has_no_english_left(app, client, marketer):
    choose_language(app, marketer, "ru")
    allowed = set(CURRENCIES) | made_from_rules(app) | {"Invite", "friends"}
    path = program_path(app)

    listing = text_of(client.get("/admin/programs", headers=RU))
    assert "<title>Программы · " in listing
    assert english_leftovers(screen(listing), allowed) == []
    assert "Реферальные программы" in listing and "первую покупку" in listing

    nothing = text_of(client.get("/admin/programs?q=zzz", headers=RU))
    assert english_leftovers(screen(nothing), allowed) == []

    new = text_of(client.get("/admin/programs/new", headers=RU))
    assert english_leftovers(screen(new), allowed) == []

    edit = text_of(client.get(path, headers=RU))
    assert english_leftovers(screen(edit), allowed) == []
    assert "Если поле пустое, берётся текст на языке «Английский»." in edit
    assert 'id="texts-ru"><legend class="h6">Русский</legend>' in edit

    fields = form_fields(edit, path)
    preview = client.post(path, data={**fields, "preview": "y"}, headers=RU)
    assert preview.status_code == 200
    assert english_leftovers(screen(text_of(preview)), allowed) == []
    assert "Что бы выплатили эти правила за последние 30 дней" in text_of(preview)

    for typed in ({"texts_ru-name": "Я" * 121}, {"referrer_reward_value": "ten", "name": ""}):
        refused = client.post(path, data={**fields, **typed}, headers=RU)
        assert refused.status_code == 400
        assert english_leftovers(screen(text_of(refused)), allowed) == []


def test_the_programs_screen_in_english_is_unchanged(app, client, marketer):
    page = text_of(client.get(program_path(app), headers=EN))
    assert "Deactivate: its links and codes stop attributing and its conversions stop paying" in (
        page
    )
    assert 'id="texts-en"><legend class="h6">English</legend>' in page
    assert "Empty: the text in English." in page


# --- the email introduction ---------------------------------------------------------------

RUSSIAN_INTRO = "Спасибо, что рассказываете о нас друзьям!"
ENGLISH_INTRO = "Thank you for telling your friends about us!"


@pytest.fixture
def config_overrides():
    return {"MAIL_BACKEND": "locmem"}  # the sent emails kept for the test to read


def body_to(messages, email: str) -> str:
    [message] = [message for message in messages if message.to == [email]]
    return message.body


def test_the_email_introduction_opens_the_programs_emails_in_the_readers_language(
    app, client, marketer
):
    answer = save_texts(
        client,
        program_path(app),
        en_email_intro=ENGLISH_INTRO,
        ru_email_intro=RUSSIAN_INTRO,
        ru_name=RUSSIAN_NAME,
    )
    assert answer.status_code == 302
    with app.app_context():
        rita = factories.participant("Rita Referrer")
        sam = factories.participant("Sam Sharer")
    choose_language(app, rita, "ru")
    choose_language(app, sam, "en")
    take_outbox(app)

    with app.app_context():
        factories.participant("Fred Friend", invited_by=rita["code"])
        factories.participant("Gina Guest", invited_by=sam["code"])

    sent = take_outbox(app)
    russian = body_to(sent, rita["email"])
    first, second, third = russian.split("\n\n")[:3]
    assert first == "Здравствуйте, Rita Referrer!"
    assert second == RUSSIAN_INTRO
    assert "Fred F." in third and ENGLISH_INTRO not in russian
    english = body_to(sent, sam["email"])
    assert english.split("\n\n")[:2] == ["Hi Sam Sharer,", ENGLISH_INTRO]
    assert RUSSIAN_INTRO not in english


def test_without_an_introduction_the_email_starts_as_before(app, client, marketer):
    with app.app_context():
        rita = factories.participant("Rita Referrer")
    take_outbox(app)
    with app.app_context():
        factories.participant("Fred Friend", invited_by=rita["code"])
    body = body_to(take_outbox(app), rita["email"])
    assert body.startswith("Hi Rita Referrer,\n\nFred F. (f***@example.com) just joined")
