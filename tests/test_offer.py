"""The offer up front and every status explained (docs/guarantees.md #26): the sentences made
from a program's rules, the pages that show them, a changed rule changing every one of them,
the texts staff set, and each referral's timeline."""

import html
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from sqlalchemy import select, update

from extensions import db
from models import Program, Reward, utcnow
from referral.offer import Offer, milestone_progress
from rewards import review
from rewards import services as reward_services
from rewards.conversions import record_event
from rewards.events import EventIn
from tests import factories
from tests.helpers import (
    accepted_purchase,
    configure,
    form_fields,
    logged_in,
    text_of,
)

_DEFAULT_RULES = {
    "name": "Invite friends",
    "currency": "USD",
    "trigger_event": "first_purchase",
    "min_purchase_amount": 2000,
    "referrer_reward_kind": "credit",
    "referrer_reward_basis": "fixed",
    "referrer_reward_value": 1000,
    "friend_reward_kind": "credit",
    "friend_reward_basis": "fixed",
    "friend_reward_value": 500,
    "hold_days": 14,
    "max_depth": 3,
    "level_shares": [],
}


def _program(**rules) -> Program:
    return Program(**(_DEFAULT_RULES | rules))


def _page(response) -> str:
    """The page's text with entities decoded, as a reader sees it."""
    return html.unescape(text_of(response))


# --- the sentences, for several rule sets -------------------------------------------------


def test_the_default_rules_read_give_5_get_10_on_a_first_purchase_of_20():
    offer = Offer(_program())
    assert offer.headline == "Give $5, get $10"
    assert offer.referrer_sentence == (
        "You get $10.00 credit when a friend you invite makes their first purchase"
        " of $20.00 or more."
    )
    assert offer.friend_sentence == (
        "Your friend gets $5.00 credit on their first purchase of $20.00 or more."
    )
    assert offer.invitation("Ann L.") == (
        "Ann L. invited you — get $5.00 credit on your first purchase of $20.00 or more."
    )
    assert offer.hold_sentence == (
        "Rewards stay on hold for 14 days in case the order is returned, then they are yours."
    )
    assert offer.share_text == (
        "Get $5.00 credit on your first purchase of $20.00 or more when you join with my link:"
    )
    assert offer.empty_ledger.startswith("No rewards yet. You get $10.00 credit when a friend")
    assert offer.usage_text.startswith("Credit collects in your balance")
    assert offer.milestone_sentence is None and offer.network_sentence is None


def test_every_purchase_with_a_percent_and_a_coupon_and_no_hold():
    offer = Offer(
        _program(
            currency="EUR",
            trigger_event="every_purchase",
            min_purchase_amount=0,
            referrer_reward_kind="cash",
            referrer_reward_basis="percent",
            referrer_reward_value=1250,
            friend_reward_kind="coupon",
            friend_reward_value=250,
            hold_days=0,
        )
    )
    assert offer.headline == "Give €2.50, get 12.5%"
    assert offer.referrer_sentence == (
        "You get 12.5% of the purchase in cash each time a friend you invite makes a purchase."
    )
    assert (
        offer.invitation("Ann L.") == "Ann L. invited you — get a €2.50 coupon on every purchase."
    )
    assert offer.hold_sentence == "Rewards are yours as soon as they are earned."
    assert "copy it and enter it at checkout" in offer.usage_text
    assert offer.usage_text.startswith("Cash collects")


def test_signup_points_without_a_friend_reward_with_milestones_and_network_shares():
    offer = Offer(
        _program(
            name="Points club",
            currency="JPY",
            trigger_event="signup",
            min_purchase_amount=0,
            referrer_reward_kind="points",
            referrer_reward_value=500,
            friend_reward_kind=None,
            friend_reward_basis=None,
            friend_reward_value=None,
            milestone_every=3,
            milestone_amount=100,
            level_shares=[50, 20],
            hold_days=1,
        )
    )
    assert offer.headline == "Get 500 points for each friend who joins"
    assert offer.referrer_sentence == (
        "You get 500 points for each friend who signs up with your link."
    )
    assert offer.friend_sentence is None and offer.welcome is None
    assert offer.invitation("Ann L.") == "Ann L. invited you to join."
    assert offer.share_text == "Join me with my link:"
    assert offer.milestone_sentence == (
        "On top of that, every 3rd friend who qualifies earns you a bonus of 100 points."
    )
    assert offer.network_sentence == (
        "When friends you invited bring in friends of their own, you also get 50% of their"
        " reward, and 20% from the levels further down."
    )
    assert offer.hold_sentence == "Rewards stay on hold for 1 day, then they are yours."
    progress = milestone_progress(offer.program, 4)
    assert progress.sentence == (
        "1 of 3 friends toward your next bonus of 100 points: 2 more friends to go."
    )


def test_gift_cards_caps_expiry_and_an_end_date_are_in_the_fine_print():
    offer = Offer(
        _program(
            currency="JPY",
            min_purchase_amount=3000,
            friend_reward_kind="gift_card",
            friend_reward_value=1000,
            cap_per_day=2,
            cap_per_month=10,
            cap_total=500,
            reward_expiry_days=90,
            ends_at=datetime(2027, 1, 31, tzinfo=UTC),
        )
    )
    assert offer.invitation("Ann L.") == (
        "Ann L. invited you — get a ¥1,000 gift card on your first purchase of ¥3,000 or more."
    )
    assert offer.fine_print == [
        "Rewards stay on hold for 14 days in case the order is returned, then they are yours.",
        "Use your rewards within 90 days of them becoming available.",
        "You can earn up to 2 rewards a day and 10 rewards a month. The program pays at most"
        " 500 referral rewards in all.",
        "The offer runs until 2027-01-31.",
    ]


def test_a_programs_own_share_text_gets_its_placeholders_filled_from_the_rules():
    program = _program(share_text="{friend_reward} off at {program} (over {minimum})!")
    assert Offer(program).share_text == "$5.00 credit off at Invite friends (over $20.00)!"
    program.friend_reward_value = 800
    assert Offer(program).share_text == "$8.00 credit off at Invite friends (over $20.00)!"


# --- the pages -----------------------------------------------------------------------------


def _sentences_on_every_page(app, alice: dict) -> dict[str, str]:
    """Each page that carries the offer, as a visitor, a newcomer or Alice sees it."""
    visitor = app.test_client()
    follow = visitor.get(f"/r/{alice['code']}", follow_redirects=True)
    alice_client = logged_in(app, alice)
    dashboard = alice_client.get("/referral/dashboard")
    return {
        "landing": _page(app.test_client().get("/")),
        "landing through a link": _page(app.test_client().get(f"/?ref={alice['code']}")),
        "signup through a link": _page(follow),
        "dashboard": _page(dashboard),
        "share links": unquote(" ".join(re.findall(r'href="([^"]+)"', text_of(dashboard)))),
        "ledger": _page(alice_client.get("/rewards/")),
    }


def test_every_page_shows_the_offer_and_a_changed_rule_changes_every_sentence(
    app, make_participant
):
    alice = make_participant("Alice Zimmer")
    pages = _sentences_on_every_page(app, alice)
    referrer = "You get $10.00 credit when a friend you invite makes their first purchase of $20.00"
    invitation = "Alice Z. invited you — get $5.00 credit on your first purchase of $20.00 or more."
    assert "Give $5, get $10" in pages["landing"] and referrer in pages["landing"]
    assert invitation in pages["landing through a link"]
    assert invitation in pages["signup through a link"]
    assert 'og:title" content="Alice Z. invited you: $5 for you"' in pages["signup through a link"]
    assert (
        "get $5.00 credit on your first purchase of $20.00 or more"
        in (re.search(r'og:description" content="([^"]+)"', pages["signup through a link"])[1])
    )
    assert "Give $5, get $10" in pages["dashboard"] and referrer in pages["dashboard"]
    assert (
        "Get $5.00 credit on your first purchase of $20.00 or more when you join"
        in (pages["share links"])
    )
    assert f"/r/{alice['code']}" in pages["share links"]
    assert referrer in pages["ledger"] and "No rewards yet" in pages["ledger"]

    configure(
        app,
        referrer_reward_value=1500,
        friend_reward_value=700,
        min_purchase_amount=3000,
        trigger_event="every_purchase",
    )
    pages = _sentences_on_every_page(app, alice)
    referrer = "You get $15.00 credit each time a friend you invite makes a purchase of $30.00"
    invitation = "Alice Z. invited you — get $7.00 credit on every purchase of $30.00 or more."
    assert "Give $7, get $15" in pages["landing"] and referrer in pages["landing"]
    assert invitation in pages["landing through a link"]
    assert invitation in pages["signup through a link"]
    assert "Give $7, get $15" in pages["dashboard"] and referrer in pages["dashboard"]
    assert "Get $7.00 credit on every purchase of $30.00 or more" in pages["share links"]
    assert referrer in pages["ledger"]
    for name, page in pages.items():
        assert "$10.00" not in page and "$5.00" not in page and "$20.00" not in page, name


def test_the_dashboard_shows_progress_to_the_next_milestone(app, make_participant):
    configure(app, milestone_every=3, milestone_amount=2500, hold_days=0)
    alice = make_participant("Alice Zimmer")
    bob = make_participant("Bob Baker", invited_by=alice["code"])
    accepted_purchase(app, bob["email"], "order-1", 2500)

    page = _page(logged_in(app, alice).get("/referral/dashboard"))
    assert "1 of 3 friends toward your next bonus of $25.00: 2 more friends to go." in page
    assert re.search(r'<progress[^>]*value="1" max="3"', page)


def test_a_paused_program_promises_nothing(app, make_participant):
    alice = make_participant("Alice Zimmer")
    configure(app, active=False)
    landing = _page(app.test_client().get("/"))
    dashboard = _page(logged_in(app, alice).get("/referral/dashboard"))
    assert "$10.00" not in landing and "Give $5" not in landing
    assert "Invite friends is paused" in dashboard and "$10.00" not in dashboard
    # Nor do the share message and buttons (docs/guarantees.md #33).
    assert "$5.00" not in dashboard and "$5 for you" not in unquote(dashboard)
    assert "Join me with my link:" in dashboard


def test_the_friends_ledger_says_what_their_invitation_earns_them(app, make_participant):
    alice = make_participant("Alice Zimmer")
    bob = make_participant("Bob Baker", invited_by=alice["code"])
    page = _page(logged_in(app, bob).get("/rewards/"))
    assert (
        "You joined through a friend's link. Get $5.00 credit on your first purchase of $20.00"
        " or more." in page
    )


# --- the texts staff set -------------------------------------------------------------------


def _submit(client, path: str, **changes):
    """Post the form of `path` as shown, with `changes` typed over it."""
    fields = form_fields(client.get(path).get_data(True), path)
    return client.post(path, data={**fields, **changes})


def _default_program_id(app) -> int:
    with app.app_context():
        return db.session.scalar(select(Program.id).where(Program.is_default))


def test_staff_set_the_share_text_and_the_usage_text_and_participants_read_them(
    app, make_participant
):
    with app.app_context():
        marketer = factories.staff("marketer")
    staff = logged_in(app, marketer)
    program_id = _default_program_id(app)
    form_page = _page(staff.get(f"/admin/programs/{program_id}"))
    assert "Empty: “Get $5.00 credit on your first purchase of $20.00 or more" in form_page

    path = f"/admin/programs/{program_id}"
    refused = _submit(staff, path, share_text="Use {coupon} now")
    assert refused.status_code == 400
    assert "{coupon} is not a placeholder" in _page(refused)
    with app.app_context():
        assert db.session.get(Program, program_id).share_text is None

    saved = _submit(
        staff,
        path,
        share_text="{friend_reward} for you at {program}, grab it:",
        reward_usage_text="Spend it in our shop: it is taken off at checkout.",
    )
    assert saved.status_code == 302

    alice = make_participant("Alice Zimmer")
    _alice_earns_a_reward(app, alice)
    alice_client = logged_in(app, alice)
    links = unquote(text_of(alice_client.get("/referral/dashboard")))
    assert "$5.00 credit for you at Invite friends, grab it: http" in links
    ledger = _page(alice_client.get("/rewards/"))
    assert "How to use your rewards" in ledger
    assert "Spend it in our shop: it is taken off at checkout." in ledger


def _alice_earns_a_reward(app, alice: dict) -> None:
    """Alice earns her first reward the real way: Bob joins and buys."""
    with app.app_context():
        bob = factories.participant("Bob Baker", invited_by=alice["code"])
        assert factories.purchase(bob["email"], "order-usage", 2500).outcome == "accepted"
        db.session.commit()


def test_an_available_coupon_shows_its_code_with_a_copy_button_a_held_one_does_not(
    app, make_participant
):
    configure(app, friend_reward_kind="coupon", hold_days=0)
    alice = make_participant("Alice Zimmer")
    bob = make_participant("Bob Baker", invited_by=alice["code"])
    accepted_purchase(app, bob["email"], "order-1", 2500)
    with app.app_context():
        code = db.session.scalar(select(Reward.coupon_code).where(Reward.role == "referee"))
    page = _page(logged_in(app, bob).get("/rewards/"))
    assert re.search(rf'<code class="coupon-code" id="coupon-(\d+)">{code}</code>', page)
    assert f'aria-label="Copy code {code}"' in page

    with app.app_context():
        db.session.execute(update(Reward).where(Reward.role == "referee").values(status="pending"))
        db.session.commit()
    held = _page(logged_in(app, bob).get("/rewards/"))
    assert code not in held and "Its code shows here when it becomes available." in held


# --- each referral's timeline, and counts that agree with the list ------------------------


def _timeline(page: str, name: str) -> str:
    """The text of the timeline in the row of `name` (a public name, as the list shows)."""
    row = re.search(rf"<tr>\s*<td[^>]*>{name}</td>.*?</tr>", page, re.S)[0]
    return " ".join(re.sub(r"<[^>]+>", " ", row).split())


def test_a_held_referral_is_explained_and_no_count_or_empty_state_contradicts_it(
    app, make_participant
):
    alice = make_participant("Alice Zimmer", ip="10.200.0.1")
    make_participant("Bob Baker", invited_by=alice["code"], ip="10.200.0.1")  # same IP: held

    app.config["REVIEW_DAYS"] = 7  # this test's app only: the next test starts afresh
    page = _page(logged_in(app, alice).get("/referral/dashboard"))
    steps = _timeline(page, "Bob B.")
    assert "Under review" in steps
    assert "It came from the same network or device as your own account" in steps
    assert "usually within 7 days" in steps
    deadline = (utcnow() + timedelta(days=7)).strftime("%Y-%m-%d")
    assert f"expect an answer by {deadline}" in steps
    assert "same_ip" not in page and "same ip" not in page.lower()
    assert re.search(r'<details class="timeline mt-1" id="timeline-\d+" open>', page)
    assert '<div class="stat-value" id="stat-signups">0</div>' in page
    assert "+1 under review" in page
    assert "Nobody has joined through you yet" not in page
    assert "1 person who joined through you is under review" in page


def test_the_timeline_follows_a_purchase_through_the_hold_to_approval(app, make_participant):
    alice = make_participant("Alice Zimmer")
    bob = make_participant("Bob Baker", invited_by=alice["code"])
    alice_client = logged_in(app, alice)

    waiting = _timeline(_page(alice_client.get("/referral/dashboard")), "Bob B.")
    assert "Joined with your code" in waiting
    assert "When Bob makes their first purchase of $20.00 or more, you get $10.00 credit." in (
        waiting
    )

    bought = utcnow()
    accepted_purchase(app, bob["email"], "order-1", 2500, now=bought)
    on_hold = _timeline(_page(alice_client.get("/referral/dashboard")), "Bob B.")
    hold_ends = (bought + timedelta(days=14)).strftime("%Y-%m-%d")
    assert "Qualifying purchase: you earned $10.00" in on_hold
    assert f"Reward on hold until {hold_ends}" in on_hold
    assert "When Bob makes" not in on_hold

    with app.app_context():
        reward_services.release_held_rewards(bought + timedelta(days=15))
        db.session.commit()
    approved = _timeline(_page(alice_client.get("/referral/dashboard")), "Bob B.")
    assert "Reward approved" in approved and "It is in your rewards." in approved
    assert "on hold" not in approved


def test_a_refunded_purchase_shows_why_and_what_comes_next(app, make_participant):
    alice = make_participant("Alice Zimmer")
    bob = make_participant("Bob Baker", invited_by=alice["code"])
    accepted_purchase(app, bob["email"], "order-1", 2500)
    with app.app_context():
        record_event(
            EventIn(
                source="api",
                kind="refund",
                external_id="evt-refund-1",
                order_id="order-1",
                customer_email=bob["email"],
                currency="USD",
            )
        )
        db.session.commit()
    steps = _timeline(_page(logged_in(app, alice).get("/referral/dashboard")), "Bob B.")
    assert "Cancelled" in steps and "The order was refunded" in steps
    assert "Another qualifying purchase" in steps


def test_a_refused_referral_says_it_does_not_count(app, make_participant, client):
    alice = make_participant("Alice Zimmer")
    client.get(f"/r/{alice['code']}")
    with app.app_context():
        # Alice's own mailbox under another spelling: refused as a self-referral.
        factories.participant(
            "Alice Again", email="alice.zimmer+2@example.com", invited_by=alice["code"]
        )
    page = _page(logged_in(app, alice).get("/referral/dashboard"))
    steps = _timeline(page, "Alice A.")
    assert "Not counted" in steps and "It looks like your own account." in steps
    assert "1 not counted" in page


def test_once_staff_approve_a_held_referral_its_timeline_says_so_and_counts_agree(
    app, make_participant
):
    alice = make_participant("Alice Zimmer", ip="10.201.0.1")
    bob = make_participant("Bob Baker", invited_by=alice["code"], ip="10.201.0.1")
    with app.app_context():
        review.approve_referral(factories.referral_of(bob["id"]), utcnow())
        db.session.commit()

    page = _page(logged_in(app, alice).get("/referral/dashboard"))
    steps = _timeline(page, "Bob B.")
    assert "Approved after review Bob counts as your referral." in steps
    assert "When Bob makes their first purchase of $20.00 or more" in steps
    assert "Under review" not in steps and "under review" not in page
    assert '<div class="stat-value" id="stat-signups">1</div>' in page


# --- the same, in the participant JSON API ----------------------------------------------------


def test_the_portal_api_tells_the_offer_the_inviter_and_each_timeline_as_the_dashboard_does(
    app, make_participant
):
    """docs/guarantees.md #33: /api/v1/me and /api/v1/me/referrals say what the dashboard
    says, in its words: the offer, who invited me (a public name only), each timeline."""
    configure(app, milestone_every=3, milestone_amount=2500)
    alice = make_participant("Alice Zimmer", ip="10.200.0.1")
    bob = make_participant("Bob Baker", invited_by=alice["code"], ip="10.200.0.2")
    make_participant("Cara Held", invited_by=alice["code"], ip="10.200.0.1")  # same IP: held
    bought = utcnow()
    accepted_purchase(app, bob["email"], "order-1", 2500, now=bought)

    alice_client = logged_in(app, alice)
    me = alice_client.get("/api/v1/me").get_json()
    assert me["invited_by"] is None
    assert me["stats"] == {
        "clicks": 0,
        "signups": 1,
        "qualified": 1,
        "in_review": 1,
        "not_counted": 0,
    }
    told = me["offer"]
    assert told["running"] is True and told["headline"] == "Give $5, get $10"
    assert told["referrer"].startswith("You get $10.00 credit when a friend you invite")
    assert told["friend"].startswith("Your friend gets $5.00 credit on their first purchase")
    assert told["milestone"]["sentence"] == (
        "1 of 3 friends toward your next bonus of $25.00: 2 more friends to go."
    )
    assert told["share_message"].endswith(f"/r/{alice['code']}")
    dashboard = _page(alice_client.get("/referral/dashboard"))
    for sentence in (told["headline"], told["referrer"], told["friend"], *told["fine_print"]):
        assert sentence in dashboard

    listed = alice_client.get("/api/v1/me/referrals").get_json()["referrals"]
    stories = {row["display_name"]: row["timeline"] for row in listed}
    hold_ends = (bought + timedelta(days=14)).strftime("%Y-%m-%d")
    assert [step["title"] for step in stories["Bob B."]] == [
        "Joined with your code",
        "Qualifying purchase: you earned $10.00",
        f"Reward on hold until {hold_ends}",
    ]
    assert stories["Bob B."][1]["state"] == "done" and stories["Bob B."][1]["at"]
    held = stories["Cara H."]
    assert [step["state"] for step in held][:2] == ["done", "now"]
    assert held[1]["title"] == "Under review" and "same_ip" not in str(held)
    for name, steps in stories.items():
        row = _timeline(dashboard, name)
        assert all(step["title"] in row for step in steps), name

    bob_me = logged_in(app, bob).get("/api/v1/me").get_json()
    assert bob_me["invited_by"] == "Alice Z."  # never her email or full name


def test_a_paused_program_promises_nothing_in_the_api_either(app, make_participant):
    alice = make_participant("Alice Zimmer")
    configure(app, active=False)
    told = logged_in(app, alice).get("/api/v1/me").get_json()["offer"]
    assert told["running"] is False
    assert (told["headline"], told["referrer"], told["friend"], told["milestone"]) == ((None,) * 4)
    assert told["fine_print"] == [] and "$" not in str(told)
    assert told["share_message"].startswith("Join me with my link: ")
