"""The ledger's invariants under any order of events (docs/guarantees.md #6).

A Hypothesis state machine drives the real services on the test database: signups with and
without a code (and from the referrer's own browser), purchases around the program's
minimum by known and unknown customers, redeliveries, refunds (also before the purchase),
time passing with the hold release and expiry, and payouts requested and paid. After every
step the database must keep the invariants below. Each example starts from empty tables.
"""

import itertools
import secrets
from collections import defaultdict
from datetime import timedelta

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from auth.services import register_participant
from core.errors import DomainError
from extensions import db
from models import COUNTED_STATUSES, Conversion, Payout, Referral, Reward, User, utcnow
from referral.services import default_program, ensure_default_program
from rewards import ledger
from rewards.conversions import record_event
from rewards.events import EventIn
from rewards.services import expire_rewards, release_held_rewards
from tests import databases, factories
from tests.intensity import repetitions

pytestmark = pytest.mark.slow

MINIMUM = 2000  # the default program's minimum purchase
PAYOUT_MINIMUM = 500  # a friend's 5.00 is enough, so payouts happen within a few steps
AMOUNTS = st.sampled_from((MINIMUM - 1, MINIMUM, MINIMUM + 1, 2500, 12_000, 0))
LIVE = ("review", "pending", "approved", "paid", "redeemed")
HELD = ("review", "pending")
COUNTING = (*HELD, "approved", "paid")  # cancelled, rejected, expired count in no balance
# Shrinking a program that runs against a database takes minutes (past pytest's timeout), so
# a failure is reported as generated: the printed steps replay it.
SETTINGS = settings(
    max_examples=repetitions(full=40, quick=10),
    stateful_step_count=25,
    deadline=None,
    database=None,
    phases=[phase for phase in Phase if phase is not Phase.shrink],
)


@pytest.fixture
def config_overrides():
    return {"PAYOUT_MINIMUM": PAYOUT_MINIMUM, "MAIL_BACKEND": "locmem"}


class LedgerMachine(RuleBasedStateMachine):
    participants = Bundle("participants")
    purchases = Bundle("purchases")
    deliveries = Bundle("deliveries")
    anyone = st.none() | participants

    def __init__(self, app):
        super().__init__()
        self.app = app
        self.now = utcnow()
        self.numbers = itertools.count(1)
        self.upcoming_order = self._order_id()
        self.trigger = None
        with app.app_context():
            databases.empty_tables(db)
            ensure_default_program().starts_at = self.now - timedelta(days=365)
            db.session.commit()

    # --- the program ---------------------------------------------------------------------

    @initialize(
        trigger=st.sampled_from(("first_purchase", "every_purchase")),
        expiry_days=st.sampled_from((None, 20)),
        level_shares=st.sampled_from(([], [50])),
    )
    def choose_program(self, trigger, expiry_days, level_shares):
        with self.app.app_context():
            program = default_program()
            program.trigger_event, program.reward_expiry_days = trigger, expiry_days
            program.level_shares, program.max_depth = level_shares, 2
            db.session.commit()
        self.trigger = trigger

    @initialize(target=participants)
    def founders(self):
        """Rita invited Fred and Gina; Fred invited Hugo (so Rita is Hugo's level 2)."""
        rita = self._register(None)
        fred, gina = self._register(rita), self._register(rita)
        return multiple(rita, fred, gina, self._register(fred))

    # --- people ----------------------------------------------------------------------------

    @rule(target=participants, inviter=anyone, through_shop=st.booleans())
    def sign_up(self, inviter, through_shop):
        """A signup on InviteLoop's form, or a shop's new customer reported by a signup
        event; with the inviter's code or without one."""
        if not through_shop:
            return self._register(inviter)
        email = f"shopper{next(self.numbers)}@example.com"
        self._send("signup", email=email, ref_code=inviter and inviter["code"])
        with self.app.app_context():
            return self._as_dict(factories.user_by_email(email))

    @rule(target=participants, referrer=participants, same_address=st.booleans())
    def sign_up_from_the_referrers_browser(self, referrer, same_address):
        """The referrer's own device: held for review; with their address too, refused."""
        if not referrer["device_id"]:  # a shop's customer, never seen in a browser
            return multiple()
        ip = referrer["ip"] if same_address else factories.distinct_ip()
        person = self._register(referrer, referrer["device_id"], ip)
        with self.app.app_context():
            status, reason = db.session.execute(
                select(Referral.status, Referral.reason).where(Referral.referred_id == person["id"])
            ).one()
        assert (status, reason) == (
            ("rejected", "self_referral") if same_address else ("review", "same_device")
        )
        return person

    def _register(self, inviter, device_id=None, ip=None) -> dict:
        """A participant signing up on InviteLoop's form, by default from a browser and a
        network of their own."""
        number = next(self.numbers)
        with self.app.app_context():
            user = register_participant(
                name=f"Person Number{number}",
                email=f"person{number}@example.com",
                password=factories.PASSWORD,
                typed_code=inviter["code"] if inviter else None,
                device_id=device_id or secrets.token_hex(8),
                ip=ip or factories.distinct_ip(),
                now=self.now,
            )
            db.session.commit()
            return self._as_dict(user)

    @staticmethod
    def _as_dict(user: User) -> dict:
        code = factories.code_of(user.id)
        return dict(
            id=user.id, email=user.email, code=code, device_id=user.device_id, ip=user.signup_ip
        )

    # --- purchases and refunds ---------------------------------------------------------------

    @rule(target=purchases, buyer=anyone, amount=AMOUNTS, code_owner=anyone)
    def purchase(self, buyer, amount, code_owner):
        """A purchase by a participant, or by a customer InviteLoop has never seen (None),
        perhaps carrying someone's code (even the buyer's own)."""
        email = buyer["email"] if buyer else f"stranger{next(self.numbers)}@example.com"
        order, self.upcoming_order = self.upcoming_order, self._order_id()
        event, outcome = self._send(
            "purchase",
            email=email,
            amount=amount,
            order=order,
            ref_code=code_owner and code_owner["code"],
        )
        if buyer is None and code_owner is None:
            assert (outcome.outcome, outcome.reason) == ("unattributed", "unknown_customer")
        if amount < MINIMUM:
            assert outcome.outcome != "accepted"
            assert not self._exists(Reward.conversion_id == outcome.conversion_id)
        return event

    @rule(target=deliveries, purchase=st.none() | purchases)
    def refund(self, purchase):
        """A refund of an earlier purchase, or (None) one that overtakes its purchase: the
        next purchase made is of that order."""
        order = purchase.order_id if purchase else self.upcoming_order
        event, outcome = self._send("refund", order=order)
        if purchase is None:
            assert (outcome.outcome, outcome.reason) == ("unattributed", "refund_before_purchase")
        return event

    @rule(event=purchases | deliveries)
    def deliver_again(self, event):
        outcome = self._record(event)
        assert (outcome.outcome, outcome.reason) == ("duplicate", "already_received")

    def _send(self, kind, *, email=None, amount=None, order=None, ref_code=None):
        event = EventIn(
            source="api",
            kind=kind,
            external_id=f"evt-{next(self.numbers)}",
            customer_email=email,
            ref_code=ref_code,
            amount=amount,
            currency="USD" if amount is not None else None,
            order_id=order,
            occurred_at=self.now,
        )
        return event, self._record(event)

    def _record(self, event: EventIn):
        with self.app.app_context():
            outcome = record_event(event, now=self.now)
            db.session.commit()
            return outcome

    def _order_id(self) -> str:
        return f"order-{next(self.numbers)}"

    def _exists(self, *conditions) -> bool:
        with self.app.app_context():
            return db.session.scalar(select(func.count()).where(*conditions)) > 0

    # --- time ----------------------------------------------------------------------------------

    @rule(days=st.sampled_from((1, 7, 15, 30)))
    def time_passes(self, days):
        """The periodic jobs run: held rewards are released, overdue ones expire."""
        self.now += timedelta(days=days)
        with self.app.app_context():
            release_held_rewards(self.now)
            expire_rewards(self.now)
            db.session.commit()
        assert not self._exists(Reward.status == "pending", Reward.available_at <= self.now)
        unclaimed = (Reward.status == "approved", Reward.amount > 0, Reward.payout_id.is_(None))
        assert not self._exists(*unclaimed, Reward.expires_at <= self.now)

    # --- payouts -------------------------------------------------------------------------------

    @precondition(
        lambda self: self._exists(Reward.status == "approved", Reward.payout_id.is_(None))
    )
    @rule(data=st.data())
    def request_payout(self, data):
        """Someone with approved credit asks for it (refused below the minimum)."""
        with self.app.app_context():
            holders = db.session.scalars(
                select(Reward.beneficiary_id)
                .where(Reward.status == "approved", Reward.payout_id.is_(None))
                .distinct()
                .order_by(Reward.beneficiary_id)
            ).all()
            user = db.session.get(User, data.draw(st.sampled_from(holders), label="person"))
            try:
                ledger.request_payout(user, "credit", "USD", self.now)
                db.session.commit()
            except DomainError:
                db.session.rollback()

    @precondition(lambda self: self._exists(Payout.status == "requested"))
    @rule(data=st.data(), pay=st.booleans())
    def staff_settle_payout(self, data, pay):
        """Staff pay (or cancel) an open payout request."""
        with self.app.app_context():
            requests = db.session.scalars(
                select(Payout).where(Payout.status == "requested").order_by(Payout.id)
            ).all()
            payout = data.draw(st.sampled_from(requests), label="payout")
            try:
                if pay:
                    ledger.mark_payout_paid(payout, "bank transfer 42", self.now)
                else:
                    ledger.cancel_payout(payout, "account closed")
                db.session.commit()
            except DomainError:
                db.session.rollback()

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def one_reward_per_conversion_beneficiary_role_level_and_one_row_per_event(self):
        assert (
            self._repeated(Reward.conversion_id, Reward.beneficiary_id, Reward.role, Reward.level)
            == []
        )
        assert self._repeated(Conversion.source, Conversion.kind, Conversion.external_id) == []

    def _repeated(self, *key, where=()) -> list:
        with self.app.app_context():
            query = select(*key, func.count()).where(*where).group_by(*key)
            return db.session.execute(query.having(func.count() > 1)).all()

    @invariant()
    def nobody_rewarded_for_themselves_or_a_refused_referral(self):
        with self.app.app_context():
            rows = db.session.execute(
                select(Reward.role, Reward.beneficiary_id, Referral, Conversion.participant_id)
                .join(Referral, Referral.id == Reward.referral_id)
                .join(Conversion, Conversion.id == Reward.conversion_id)
                .where(Reward.amount > 0)
            ).all()
        for role, beneficiary, referral, buyer in rows:
            assert referral.status != "rejected", referral.reason
            if role == "referrer":
                assert beneficiary not in (referral.referred_id, buyer)

    @invariant()
    def balances_equal_the_sum_of_entries(self):
        with self.app.app_context():
            expected = defaultdict(lambda: [0, 0, 0, 0])
            for reward in db.session.scalars(select(Reward).where(Reward.status.in_(COUNTING))):
                key = (reward.beneficiary_id, reward.kind, reward.currency)
                expected[key][_bucket(reward)] += reward.amount
            beneficiaries = select(Reward.beneficiary_id).distinct()
            shown = {}
            for user in db.session.scalars(select(User).where(User.id.in_(beneficiaries))):
                for b in ledger.balances(user):
                    sums = [b.available, b.on_hold, b.requested, b.paid]
                    shown[user.id, b.kind, b.currency] = sums
        assert shown == expected

    @invariant()
    def payouts_are_worth_exactly_what_they_claimed(self):
        entry_status = {"requested": "approved", "paid": "paid"}
        with self.app.app_context():
            for payout in db.session.scalars(select(Payout).where(Payout.status != "cancelled")):
                claimed = select(func.sum(Reward.amount)).where(
                    Reward.payout_id == payout.id, Reward.status == entry_status[payout.status]
                )
                assert db.session.scalar(claimed) == payout.amount >= PAYOUT_MINIMUM

    @invariant()
    def referral_counts_equal_counted_referrals(self):
        with self.app.app_context():
            counted = (
                select(func.count())
                .where(Referral.referrer_id == User.id, Referral.status.in_(COUNTED_STATUSES))
                .correlate(User)
                .scalar_subquery()
            )
            wrong = db.session.execute(
                select(User.id, User.referral_count, counted).where(User.referral_count != counted)
            ).all()
        assert wrong == []

    @invariant()
    def a_refunded_order_keeps_no_live_reward(self):
        """Unless one reversing entry offsets it (a refund after approval or payout)."""
        refund, reversal = aliased(Conversion), aliased(Reward)
        refunded = (refund.kind == "refund") & (refund.source == Conversion.source)
        live = (
            select(Reward.id, Reward.status, Conversion.order_id)
            .join(Conversion, Conversion.id == Reward.conversion_id)
            .where(Conversion.kind == "purchase", Reward.amount > 0, Reward.status.in_(LIVE))
            .where(
                select(refund.id).where(refunded, refund.order_id == Conversion.order_id).exists()
            )
            .where(~select(reversal.id).where(reversal.reverses_id == Reward.id).exists())
        )
        with self.app.app_context():
            assert db.session.execute(live).all() == []

    @invariant()
    def only_reversals_are_negative_and_they_mirror_their_entry(self):
        with self.app.app_context():
            for reward in db.session.scalars(select(Reward)):
                if reward.reverses_id is None:
                    assert reward.amount > 0
                else:
                    original = db.session.get(Reward, reward.reverses_id)
                    mirrored = (-original.amount, original.beneficiary_id)
                    assert (reward.amount, reward.beneficiary_id) == mirrored

    @invariant()
    def no_reward_approved_before_its_hold_ended(self):
        released = (Reward.status.in_(("approved", "paid")), Reward.reverses_id.is_(None))
        assert not self._exists(*released, Reward.available_at > self.now)

    @invariant()
    def a_first_purchase_program_pays_each_referral_once(self):
        if self.trigger == "first_purchase":
            kept = Reward.status.not_in(("cancelled", "rejected"))
            paid = (Reward.role == "referrer", Reward.level == 1, Reward.amount > 0, kept)
            assert self._repeated(Reward.referral_id, where=paid) == []


def _bucket(reward: Reward) -> int:
    """Which balance an entry counts in: 0 available, 1 on hold, 2 requested or 3 paid."""
    if reward.status == "approved":
        return 0 if reward.payout_id is None else 2
    return 1 if reward.status in HELD else 3


def test_the_ledger_keeps_its_invariants_whatever_happens(app):
    run_state_machine_as_test(lambda: LedgerMachine(app), settings=SETTINGS)
