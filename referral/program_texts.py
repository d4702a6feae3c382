"""A program's texts as an admin wrote them, in the reader's language.

The default language's name, description, share text and usage text live on the program's
own row (programs.*); every other text (those of the other languages, and the headline and
the email intro in any language) is a row of program_texts. `program_text` is the one place
that chooses: the reader's language, else the installation's default language; None when
nobody wrote that text, and referral/offer.py then makes it from the rules. A page reads the
texts without a query of its own: they are cached per program until one of them is saved.
"""

from functools import partial

from flask import current_app, g, has_app_context
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy import select

from core import audit
from core.database import after_commit
from core.errors import DomainError
from extensions import cache, db
from models import LOCALES, PROGRAM_TEXT_FIELDS, Program, ProgramText

# Where the default language's texts are kept on the program's own row.
ON_PROGRAM_ROW = {
    "name": "name",
    "description": "description",
    "share_text": "share_text",
    "usage_text": "reward_usage_text",
}
# The longest text of each field (the same as the program's own columns allow).
MAX_LENGTH = {
    "name": 120,
    "description": 2000,
    "headline": 120,
    "share_text": 280,
    "usage_text": 500,
    "email_intro": 1000,
}
CACHE_SECONDS = 600
_CACHE_KEY = "program-texts:{}"
_G_KEY = "_program_texts"


class InvalidText(DomainError):
    code = "invalid_text"

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def reader_locale() -> str:
    """The language of the page, email or SMS being written (core/i18n.py chooses it)."""
    return str(get_locale() or current_app.config["DEFAULT_LOCALE"])


def program_text(program: Program, field: str, locale: str | None = None) -> str | None:
    """The program's `field` as written for a reader of `locale` (the current one by
    default), else as written in the default language; None when nobody wrote it."""
    if field not in PROGRAM_TEXT_FIELDS:
        raise ValueError(f"{field} is not a program text")
    if not has_app_context():  # a program on its own, with no reader: its own columns
        return _on_program_row(program, field)
    default = current_app.config["DEFAULT_LOCALE"]
    for language in dict.fromkeys((locale or reader_locale(), default)):
        text = written_text(program, field, language)
        if text:
            return text
    return None


def written_text(program: Program, field: str, locale: str) -> str | None:
    """What was written for exactly this language, with no fall-back."""
    if not stored_in_rows(locale, field):
        return _on_program_row(program, field)
    return _texts_of(program.id).get(f"{locale}:{field}")


def _on_program_row(program: Program, field: str) -> str | None:
    if field not in ON_PROGRAM_ROW:
        return None
    return (getattr(program, ON_PROGRAM_ROW[field]) or "").strip() or None


def stored_in_rows(locale: str, field: str) -> bool:
    """Whether this text is a row of program_texts (not a column of the program)."""
    return not (locale == current_app.config["DEFAULT_LOCALE"] and field in ON_PROGRAM_ROW)


def _texts_of(program_id: int | None) -> dict[str, str]:
    """ "locale:field" -> text: from this request, else the shared cache, else the database."""
    if program_id is None:  # a program not saved yet has no texts of its own
        return {}
    known = g.setdefault(_G_KEY, {})
    if program_id in known:
        return known[program_id]
    texts = cache.get(_CACHE_KEY.format(program_id))
    if not isinstance(texts, dict):
        rows = db.session.execute(
            select(ProgramText.locale, ProgramText.field, ProgramText.text).where(
                ProgramText.program_id == program_id
            )
        )
        texts = {f"{locale}:{field}": text for locale, field, text in rows}
        cache.set(_CACHE_KEY.format(program_id), texts, timeout=CACHE_SECONDS)
    known[program_id] = texts
    return texts


def forget(program_id: int) -> None:
    """Drop the cached texts once a change is committed, so every machine reads them anew."""
    cache.delete(_CACHE_KEY.format(program_id))
    if has_app_context():
        g.get(_G_KEY, {}).pop(program_id, None)


def cleaned(field: str, text: str | None) -> str | None:
    """A text as it is stored: the description keeps its lines, the others are one line."""
    if field == "description":
        return (text or "").strip() or None
    return " ".join((text or "").split()) or None


def check_text(locale: str, field: str, text: str | None) -> None:
    if locale not in LOCALES or field not in PROGRAM_TEXT_FIELDS:
        raise InvalidText(field, _("There is no such text of a program."))
    if text and len(text) > MAX_LENGTH[field]:
        raise InvalidText(
            field,
            _("Keep it to %(max)d characters or fewer.", max=MAX_LENGTH[field]),
        )


def set_texts(program: Program, texts: dict[tuple[str, str], str | None]) -> None:
    """Save `texts` ((locale, field) -> text; empty: nobody's, the reader gets the fall-back)
    in the current transaction, audit-logged as a change of the program. Only the texts kept
    in program_texts: the default language's columns change through rewards.programs."""
    wanted = {key: cleaned(key[1], text) for key, text in texts.items()}
    for (locale, field), text in wanted.items():
        check_text(locale, field, text)
        if not stored_in_rows(locale, field):
            raise InvalidText(field, _("This text is one of the program's own settings."))
    rows = {(row.locale, row.field): row for row in program.texts}
    before = {key: row.text for key, row in rows.items()}
    for key, text in wanted.items():
        row = rows.get(key)
        if row is not None and text is None:
            program.texts.remove(row)
        elif row is not None:
            row.text = text
        elif text is not None:
            program.texts.append(ProgramText(locale=key[0], field=key[1], text=text))
    db.session.flush()
    after = {(row.locale, row.field): row.text for row in program.texts}
    keys = sorted(set(before) | set(after))
    old, new = audit.changes(
        {f"text.{locale}.{field}": before.get((locale, field)) for locale, field in keys},
        {f"text.{locale}.{field}": after.get((locale, field)) for locale, field in keys},
    )
    if new:
        audit.record("program.update", "program", program.id, before=old, after=new)
        after_commit(partial(forget, program.id))
