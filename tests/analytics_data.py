"""The analytics data set, its logged-in admin and the page reader, shared by the analytics
and roll-up tests (their figures are worked out by hand in test_admin_analytics.py).

The range R is ten UTC days, d0..d9, forty days ago; P, the ten days before it (d-10..d-1),
is what R's headline cards compare with. Who is who:

    Ann (joined d-5) and Ben (d-3) refer; Ben also holds a code of "Spring" (campaign
    "Spring push", EUR, 7.00 cash to the referrer, 50 points to the friend), issued d-3.
    Pia d-4 12:00 by Ann clicked d-4 11:00; purchase oP d-2 10:00 20.00 (in P)
    C0 d-1 by Ann        purchase o0 d3 10:00 20.00, refunded d24 after approval
    C1 d1 10:00 by Ann   clicked d1 09:00 (3600 s); purchase o1 d2 10:00 50.00
    C2 d2 12:00 by Ann   clicked d2 11:30 (1800 s); purchase o2 d3 18:00 30.00, refunded d5
    C3 d4 09:00 by Ben's Spring code, clicked d4 08:59:30 (30 s); purchase o3 d5 11:00 40.00 EUR
    C4 d6 15:00 by Ann   held for review
    C5 d7 10:00 by Ben   rejected
    C6 d8 10:00 by Ben   approved after review (risk 50), clicked d8 09:59 (60 s);
                         purchase o6 d8 16:00 25.00
    C8 d8 20:00 by Ben   pending, risk 10
    C7 d11 by Ann        (after the range)
    N  d5 10:00          nobody's friend; purchase d6 (unattributed)
Ann's link was also clicked on d-4 at 10:00 and 11:00 (in P).
Holds end for rewards written up to d6 when the release runs on d20 (those become approved
and their referrals rewarded); C6's stay pending, so C6 stays qualified.
"""

from datetime import UTC, datetime, time, timedelta
from html.parser import HTMLParser

import pytest
from sqlalchemy import insert, update

from extensions import cache, db
from models import Campaign, Click, Program, Referral, ReferralCode, User, utcnow
from referral import services as referral_services
from rewards.conversions import record_event
from rewards.events import EventIn
from rewards.services import release_held_rewards
from tests import factories
from tests.apps import seeded_once, sign_in_once, signed_in

D0 = datetime.now(UTC).date() - timedelta(days=40)


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(D0 + timedelta(days=day), time(hour, minute, second), UTC)


def day(n: int) -> str:
    return (D0 + timedelta(days=n)).isoformat()


RANGE = {"start": day(0), "end": day(9)}


# --- reading the page ---------------------------------------------------------------------


class _Texts(HTMLParser):
    """Text of every element with an id, and the rows of every table with an id."""

    def __init__(self):
        super().__init__()
        self.texts: dict[str, list[str]] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self._open: list[str | None] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in ("br", "input", "rect", "line", "meta", "link"):
            return
        ident = dict(attrs).get("id")
        self._open.append(ident)
        if ident:
            self.texts[ident] = []
        if tag == "table" and ident:
            self._table = ident
            self.tables[ident] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append(" ".join(" ".join(self._cell).split()))
            self._cell = None
        if tag == "table":
            self._table = None
        if self._open and tag not in ("br", "input", "rect", "line"):
            self._open.pop()

    def handle_data(self, data):
        for ident in self._open:
            if ident:
                self.texts[ident].append(data)
        if self._cell is not None:
            self._cell.append(data)


def read(page) -> _Texts:
    parser = _Texts()
    parser.feed(page.get_data(as_text=True))
    return parser


def text(parsed: _Texts, ident: str) -> str:
    return " ".join(" ".join(parsed.texts[ident]).split())


# --- the data set -------------------------------------------------------------------------


def _purchase(email, order, amount, when, currency="USD"):
    return EventIn(
        source="api",
        kind="purchase",
        external_id=f"evt-{order}",
        customer_email=email,
        amount=amount,
        currency=currency,
        order_id=order,
        occurred_at=when,
    )


def _refund(order, when):
    return EventIn(
        source="api",
        kind="refund",
        external_id=f"evt-refund-{order}",
        order_id=order,
        occurred_at=when,
    )


def spring_program() -> Program:
    """The Spring program of the campaign \"Spring push\" (and an empty campaign)."""
    campaign = Campaign(name="Spring push", channel="referral", starts_on=D0 - timedelta(days=30))
    empty = Campaign(name="Autumn push", channel="referral", starts_on=D0)
    db.session.add_all([campaign, empty])
    db.session.flush()
    spring = Program(
        name="Spring",
        slug="spring",
        starts_at=utcnow() - timedelta(days=365),
        currency="EUR",
        min_purchase_amount=0,
        referrer_reward_kind="cash",
        referrer_reward_value=700,
        friend_reward_kind="points",
        friend_reward_basis="fixed",
        friend_reward_value=50,
        campaign_id=campaign.id,
    )
    db.session.add(spring)
    db.session.commit()
    return spring


def _set_referral(user_id: int, **values) -> None:
    db.session.execute(update(Referral).where(Referral.referred_id == user_id).values(**values))
    db.session.commit()


def _clicks(code_id: int, *moments: datetime) -> None:
    db.session.execute(
        insert(Click),
        [
            {"code_id": code_id, "visitor_id": f"v{i}", "created_at": m}
            for i, m in enumerate(moments)
        ],
    )
    db.session.commit()


def code_id_of(code: str) -> int:
    return db.session.scalar(db.select(ReferralCode.id).where(ReferralCode.code == code))


def data_set(app) -> dict:
    """The data set, and an admin signed in once; returns ids by name and the admin's
    cookies."""
    with app.app_context():
        spring = spring_program()
        person = factories.participant
        ann = person("Ann Able", now=at(-5, 8))
        ben = person("Ben Best", now=at(-3, 8))
        spring_code = referral_services.issue_code(db.session.get(User, ben["id"]), spring)
        spring_code.created_at = at(-3, 9)  # a Spring participant since before the range
        spring_code = spring_code.code
        db.session.commit()
        pia = person("Pia Prior", invited_by=ann["code"], now=at(-4, 12))
        c0 = person("Cleo Zero", invited_by=ann["code"], now=at(-1, 10))
        c1 = person("Carl One", invited_by=ann["code"], now=at(1, 10))
        c2 = person("Cora Two", invited_by=ann["code"], now=at(2, 12))
        c3 = person("Cid Three", invited_by=spring_code, now=at(4, 9))
        nobody = person("Nora None", now=at(5, 10))
        c4 = person("Cay Four", invited_by=ann["code"], now=at(6, 15))
        c5 = person("Cyd Five", invited_by=ben["code"], now=at(7, 10))
        c6 = person("Cal Six", invited_by=ben["code"], now=at(8, 10))
        c8 = person("Cy Eight", invited_by=ben["code"], now=at(8, 20))
        person("Cole Seven", invited_by=ann["code"], now=at(11, 10))
        _set_referral(pia["id"], clicked_at=at(-4, 11))
        _set_referral(c1["id"], clicked_at=at(1, 9))
        _set_referral(c2["id"], clicked_at=at(2, 11, 30))
        _set_referral(c3["id"], clicked_at=at(4, 8, 59, 30))
        _set_referral(c4["id"], status="review", risk_score=60)
        _set_referral(c5["id"], status="rejected", reason="self_referral", risk_score=100)
        _set_referral(c6["id"], status="approved", risk_score=50, clicked_at=at(8, 9, 59))
        _set_referral(c8["id"], risk_score=10)
        ann_code, ben_code = code_id_of(ann["code"]), code_id_of(ben["code"])
        _clicks(
            ann_code,
            at(-4, 10),
            at(-4, 11),
            at(-1, 23, 59, 59),
            at(1, 8),
            at(1, 9),
            at(2, 11, 30),
            at(6, 12),
        )
        _clicks(ann_code, at(9, 23, 59, 59), at(10))
        _clicks(ben_code, at(5, 10), at(7, 9), at(8, 9))
        _clicks(code_id_of(spring_code), at(4, 8, 59, 30), at(4, 12))
        events = [
            (_purchase(pia["email"], "oP", 2000, at(-2, 10)), "accepted"),
            (_purchase(c1["email"], "o1", 5000, at(2, 10)), "accepted"),
            (_purchase(c0["email"], "o0", 2000, at(3, 10)), "accepted"),
            (_purchase(c2["email"], "o2", 3000, at(3, 18)), "accepted"),
            (_refund("o2", at(5, 12)), "accepted"),
            (_purchase(c3["email"], "o3", 4000, at(5, 11), "EUR"), "accepted"),
            (_purchase(nobody["email"], "oN", 1000, at(6, 10)), "unattributed"),
            (_purchase(c6["email"], "o6", 2500, at(8, 16)), "accepted"),
            (_purchase(c1["email"], "o1b", 2500, at(9, 10)), "ignored"),
        ]
        for event, expected in events:
            assert record_event(event, now=event.occurred_at).outcome == expected
            db.session.commit()
        release_held_rewards(at(20))
        db.session.commit()
        assert record_event(_refund("o0", at(24)), now=at(24)).outcome == "accepted"
        db.session.commit()
        admin = factories.staff("admin")
        spring_id = spring.id
    admin_cookies = sign_in_once(app, admin["email"])
    with app.app_context():
        cache.clear()
    return {
        "ann": ann["id"],
        "ben": ben["id"],
        "spring": spring_id,
        "admin": admin,
        "admin_cookies": admin_cookies,
    }


data = seeded_once(data_set, name="data")


@pytest.fixture
def staff_client(client, data):
    signed_in(client, data["admin_cookies"])
    return client


def page(client, **args):
    response = client.get("/admin/", query_string=args)
    return response, read(response)
