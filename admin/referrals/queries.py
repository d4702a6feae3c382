"""The referrals list and its exports: every referral with the screen's filters
(`referrals.csv`), and the clicks on referral links of the same dates and programs
(`clicks.csv`). The page and the files run the same query functions, so a file holds exactly
the rows its page lists."""

from dataclasses import dataclass
from datetime import date, timedelta
from operator import attrgetter

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import aliased, joinedload
from werkzeug.datastructures import MultiDict

from admin.crm.queries import campaign_choices
from admin.exports import CsvExport
from admin.operations.queries import program_choices
from admin.referrals.forms import ReferralFilterForm
from core.dates import EARLIEST_DAY, LATEST_DAY, midnight
from core.errors import DomainError
from extensions import db
from models import Campaign, Click, Program, Referral, ReferralCode, User

DAY_OUT_OF_RANGE = _l(
    "Pick a day between %(first)s and %(last)s.",
    first=EARLIEST_DAY.isoformat(),
    last=LATEST_DAY.isoformat(),
)


class InvalidFilters(DomainError):
    """One or more filters cannot be used; the message names each of them."""

    code = "invalid_filter"


@dataclass(frozen=True)
class Filters:
    text: str = ""
    status: str | None = None
    source: str | None = None
    program_id: int | None = None
    campaign_id: int | None = None
    since: date | None = None
    until: date | None = None


def filter_form(args: MultiDict) -> ReferralFilterForm:
    form = ReferralFilterForm(formdata=args)
    form.fill_choices(program_choices(), campaign_choices())
    return form


def check_filters(form: ReferralFilterForm) -> Filters | None:
    """The form's filters, or None with every bad field's message on the field."""
    form.validate()
    for field in (form.since, form.until):
        if field.data and not EARLIEST_DAY <= field.data <= LATEST_DAY:
            field.errors = [*field.errors, DAY_OUT_OF_RANGE]
    if form.since.data and form.until.data and form.since.data > form.until.data:
        form.until.errors = [*form.until.errors, _("This date is before the first one; swap them.")]
    for name, model, message in (
        ("program", Program, _("There is no such program.")),
        ("campaign", Campaign, _("There is no such campaign.")),
    ):
        chosen = form[name].data
        if not form[name].errors and chosen is not None and db.session.get(model, chosen) is None:
            form[name].errors = [message]
    if any(form[name].errors for name in form._fields):
        return None
    return Filters(
        text=form.q.data or "",
        status=form.status.data or None,
        source=form.source.data or None,
        program_id=form.program.data,
        campaign_id=form.campaign.data,
        since=form.since.data,
        until=form.until.data,
    )


def filters_of(args: MultiDict) -> Filters:
    """The query string's filters; InvalidFilters (400) naming every bad one."""
    form = filter_form(args)
    filters = check_filters(form)
    if filters is None:
        messages = [
            _("%(field)s: %(error)s", field=form[name].label.text, error=error)
            for name in form._fields
            for error in form[name].errors
        ]
        raise InvalidFilters(" ".join(messages))
    return filters


def _in_programs(column, filters: Filters) -> list:
    """Conditions on a program id column: the chosen program, and the chosen campaign's."""
    conditions = []
    if filters.program_id is not None:
        conditions.append(column == filters.program_id)
    if filters.campaign_id is not None:
        of_campaign = select(Program.id).where(Program.campaign_id == filters.campaign_id)
        conditions.append(column.in_(of_campaign))
    return conditions


def _between(column, filters: Filters) -> list:
    conditions = []
    if filters.since:
        conditions.append(column >= midnight(filters.since))
    if filters.until:
        conditions.append(column < midnight(filters.until + timedelta(days=1)))
    return conditions


def _search(text: str):
    """Referrer's or friend's name or email containing `text` (any case), or the code."""
    lower = text.lower()
    people = select(User.id).where(
        or_(
            func.lower(User.name).contains(lower, autoescape=True),
            User.email.contains(lower, autoescape=True),  # stored lower-case
        )
    )
    codes = select(ReferralCode.id).where(ReferralCode.code.contains(text.upper(), autoescape=True))
    return or_(
        Referral.referrer_id.in_(people),
        Referral.referred_id.in_(people),
        Referral.code_id.in_(codes),
    )


def _filtered(query: Select, filters: Filters) -> Select:
    """The filters' conditions on a query of referrals, newest first."""
    if filters.status:
        query = query.where(Referral.status == filters.status)
    if filters.source:
        query = query.where(Referral.source == filters.source)
    if filters.text:
        query = query.where(_search(filters.text))
    query = query.where(
        *_in_programs(Referral.program_id, filters),
        *_between(Referral.created_at, filters),
    )
    return query.order_by(Referral.created_at.desc(), Referral.id.desc())


def referrals_for(filters: Filters) -> Select:
    """The screen's page: referrals with their people, code and program."""
    query = select(Referral).options(
        joinedload(Referral.referrer),
        joinedload(Referral.referred),
        joinedload(Referral.code).joinedload(ReferralCode.program),
    )
    return _filtered(query, filters)


def referral_rows_for(filters: Filters) -> Select:
    """The same referrals as plain rows of the file's columns: no objects to build, so tens
    of thousands stream quickly."""
    referrer, friend = aliased(User), aliased(User)
    query = (
        select(
            Referral.id,
            Referral.created_at,
            Referral.status,
            Referral.reason,
            Referral.program_id,
            Program.name.label("program"),
            Program.campaign_id,
            Referral.source,
            ReferralCode.code,
            Referral.referrer_id,
            referrer.name.label("referrer_name"),
            referrer.email.label("referrer_email"),
            Referral.referred_id.label("friend_id"),
            friend.name.label("friend_name"),
            friend.email.label("friend_email"),
            Referral.risk_score,
            Referral.clicked_at,
            Referral.first_purchase_at,
        )
        .join(referrer, referrer.id == Referral.referrer_id)
        .join(friend, friend.id == Referral.referred_id)
        .join(ReferralCode, ReferralCode.id == Referral.code_id)
        .join(Program, Program.id == Referral.program_id)
    )
    return _filtered(query, filters)


def referral_rows_query(args: MultiDict) -> Select:
    return referral_rows_for(filters_of(args))


def clicks_for(filters: Filters) -> Select:
    """Clicks on referral links in the date range and programs (no visitor addresses: the
    screen shows none)."""
    return (
        select(
            Click.id,
            Click.created_at,
            ReferralCode.program_id,
            Program.name.label("program"),
            ReferralCode.code,
            ReferralCode.user_id.label("referrer_id"),
            Click.referrer.label("referring_page"),
            Click.utm_source,
            Click.utm_medium,
            Click.utm_campaign,
            Click.utm_term,
            Click.utm_content,
        )
        .join(ReferralCode, ReferralCode.id == Click.code_id)
        .join(Program, Program.id == ReferralCode.program_id)
        .where(
            *_in_programs(ReferralCode.program_id, filters),
            *_between(Click.created_at, filters),
        )
        .order_by(Click.created_at.desc(), Click.id.desc())
    )


def clicks_query(args: MultiDict) -> Select:
    return clicks_for(filters_of(args))


# --- CSV exports -----------------------------------------------------------------------------


CSV_EXPORTS = (
    CsvExport(
        name="referrals",
        permission="referrals.view",
        columns=(
            (_l("id"), attrgetter("id")),
            (_l("created_at"), attrgetter("created_at")),
            (_l("status"), attrgetter("status")),
            (_l("reason"), attrgetter("reason")),
            (_l("program_id"), attrgetter("program_id")),
            (_l("program"), attrgetter("program")),
            (_l("campaign_id"), attrgetter("campaign_id")),
            (_l("source"), attrgetter("source")),
            (_l("code"), attrgetter("code")),
            (_l("referrer_id"), attrgetter("referrer_id")),
            (_l("referrer_name"), attrgetter("referrer_name")),
            (_l("referrer_email"), attrgetter("referrer_email")),
            (_l("friend_id"), attrgetter("friend_id")),
            (_l("friend_name"), attrgetter("friend_name")),
            (_l("friend_email"), attrgetter("friend_email")),
            (_l("risk_score"), attrgetter("risk_score")),
            (_l("clicked_at"), attrgetter("clicked_at")),
            (_l("first_purchase_at"), attrgetter("first_purchase_at")),
        ),
        query=referral_rows_query,
    ),
    CsvExport(
        name="clicks",
        permission="referrals.view",
        columns=(
            (_l("id"), lambda c: c.id),
            (_l("clicked_at"), lambda c: c.created_at),
            (_l("program_id"), lambda c: c.program_id),
            (_l("program"), lambda c: c.program),
            (_l("code"), lambda c: c.code),
            (_l("referrer_id"), lambda c: c.referrer_id),
            (_l("referring_page"), lambda c: c.referring_page),
            # The UTM parameters keep their names in every language: marketers type them in links.
            ("utm_source", lambda c: c.utm_source),
            ("utm_medium", lambda c: c.utm_medium),
            ("utm_campaign", lambda c: c.utm_campaign),
            ("utm_term", lambda c: c.utm_term),
            ("utm_content", lambda c: c.utm_content),
        ),
        query=clicks_query,
    ),
)
