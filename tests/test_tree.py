"""The referral tree: levels below a participant with counts and rewards from the ledger, on
the dashboard, as JSON and for staff; branches loaded a page at a time."""

import itertools
import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from extensions import db
from models import Conversion, Reward, User, utcnow
from referral import tree
from referral.services import default_program
from rewards import programs
from rewards.conversions import record_event
from rewards.events import EventIn
from rewards.services import release_held_rewards
from tests import factories
from tests.apps import seeded_once, sign_in_once, signed_in
from tests.helpers import logged_in

PAGE_SIZE = 2
_events = itertools.count(1)


@pytest.fixture
def config_overrides():
    return {"DASHBOARD_PAGE_SIZE": PAGE_SIZE, "ADMIN_PAGE_SIZE": PAGE_SIZE}


def purchase(app, buyer: dict, order: str, kind: str = "purchase") -> None:
    with app.app_context():
        outcome = record_event(
            EventIn(
                source="api",
                kind=kind,
                external_id=f"{kind}-{order}-{next(_events)}",
                customer_email=buyer["email"],
                amount=2500 if kind == "purchase" else None,
                currency="USD",
                order_id=order,
            ),
            utcnow(),
        )
        db.session.commit()
    assert outcome.outcome == "accepted", outcome


def extra_entry(app, beneficiary: dict, **fields) -> None:
    """A ledger row the engine could have written (a points reward, a cancelled one)."""
    with app.app_context():
        conversion = Conversion(
            source="manual",
            kind="purchase",
            external_id=f"extra-{next(_events)}",
            order_id=f"X-{next(_events)}",
            participant_id=beneficiary["id"],
            outcome="accepted",
            currency="USD",
            amount=2500,
        )
        db.session.add(conversion)
        db.session.flush()
        db.session.add(
            Reward(
                program_id=default_program().id,
                conversion_id=conversion.id,
                beneficiary_id=beneficiary["id"],
                role="referrer",
                currency="USD",
                **fields,
            )
        )
        db.session.commit()


@seeded_once
def family(app):
    """Rita at the top. Level 1: Amy, Ben, Cal. Level 2: Ada and Abe (Amy's), Bea (Ben's).
    Level 3: Dot (Ada's). Level 4: Zed (Dot's), past the depth of 3. Nora and Nick are
    another tree. Amy, Ada, Bea, Dot and Zed bought; Bea's order was refunded after the
    hold, so Rita's level-2 share of it is reversed. Rita, Amy and Nora, a manager and an
    operator are signed in once (`signed_in_as`)."""

    def make_participant(name, **kwargs):
        with app.app_context():
            return factories.participant(name, **kwargs)

    with app.app_context():
        programs.update_program(default_program(), {"level_shares": [50, 20]})
        db.session.commit()
    people = {"rita": make_participant("Rita Root")}
    for name, inviter in (
        ("Amy Apple", "rita"),
        ("Ben Brook", "rita"),
        ("Cal Cole", "rita"),
        ("Ada Ash", "amy"),
        ("Abe Ash", "amy"),
        ("Bea Brook", "ben"),
        ("Dot Deep", "ada"),
        ("Zed Zero", "dot"),
        ("Nora Noise", None),
        ("Nick Noise", "nora"),
    ):
        code = people[inviter]["code"] if inviter else None
        people[name.split()[0].lower()] = make_participant(name, invited_by=code)
    for buyer in ("amy", "ada", "bea", "dot", "zed"):
        purchase(app, people[buyer], f"order-{buyer}")
    with app.app_context():
        release_held_rewards(utcnow() + timedelta(days=15))
        db.session.commit()
    purchase(app, people["bea"], "order-bea", kind="refund")
    extra_entry(app, people["rita"], kind="points", amount=40, status="approved", level=1)
    extra_entry(
        app,
        people["rita"],
        kind="credit",
        amount=9999,
        status="cancelled",
        reason="cancelled_by_staff",
        level=1,
    )
    with app.app_context():
        staff = {role: factories.staff(role) for role in ("manager", "operator")}
    signing_in = {name: people[name] for name in ("rita", "amy", "nora")} | staff
    sign_ins = {who: sign_in_once(app, person["email"]) for who, person in signing_in.items()}
    return {**people, "sign_ins": sign_ins}


def signed_in_as(app, family, who: str):
    """A client of the sign-in the family's seed made for `who`."""
    return signed_in(app.test_client(), family["sign_ins"][who])


def text_of(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, f"no #{element_id}"
    return match.group(1)


# --- counts and rewards ----------------------------------------------------------------------


@pytest.mark.module_data
def test_each_level_counts_its_people_and_sums_what_it_earned(app, family):
    with app.app_context():
        rita = db.session.get(User, family["rita"]["id"])
        levels = tree.level_summary(rita, 3)
    assert [(level.level, level.count) for level in levels] == [(1, 3), (2, 3), (3, 1)]
    rewards = {level.level: [r.as_json() for r in level.rewards] for level in levels}
    assert rewards[1] == [
        {"currency": "USD", "kind": "credit", "amount": 1000, "formatted": "$10.00"},
        {"currency": "USD", "kind": "points", "amount": 40, "formatted": "40 points"},
    ]
    # Ada's share (500) and Bea's (500, reversed by the refund: -500).
    assert rewards[2] == [
        {"currency": "USD", "kind": "credit", "amount": 500, "formatted": "$5.00"}
    ]
    assert rewards[3] == [
        {"currency": "USD", "kind": "credit", "amount": 200, "formatted": "$2.00"}
    ]


@pytest.mark.module_data
def test_the_dashboard_shows_the_levels_with_public_names_and_masked_emails(app, family):
    html = signed_in_as(app, family, "rita").get("/referral/dashboard").get_data(as_text=True)
    tree_html = html.split('id="tree"')[1]
    assert [text_of(tree_html, f"level-{n}-count") for n in (1, 2, 3)] == ["3", "3", "1"]
    assert text_of(tree_html, "level-1-rewards") == "$10.00, 40 points"
    assert text_of(tree_html, "level-2-rewards") == "$5.00"
    assert text_of(tree_html, "level-3-rewards") == "$2.00"
    assert "level-4" not in tree_html and "Zed" not in html
    # Each level lists its newest people first, two a page.
    level_two = tree_html.split('id="level-2"')[1].split("</ul>")[0]
    assert "Bea B." in level_two and "Abe A." in level_two and "Ada A." not in level_two
    assert "b***@example.com" in level_two and "bea.brook@example.com" not in html
    assert "Dot D." in tree_html.split('id="level-3"')[1]
    assert "dot.deep@example.com" not in html
    assert 'src="/static/js/tree.js"' in html


def test_a_newcomer_sees_an_empty_tree_with_what_to_do(app, make_participant):
    newcomer = make_participant("Nia New")
    client = logged_in(app, newcomer)
    html = client.get("/referral/dashboard").get_data(as_text=True)
    assert "Nobody has joined through you yet" in html
    body = client.get("/api/v1/me/tree").get_json()
    assert body["total"] == 0
    assert [(level["count"], level["members"], level["pages"]) for level in body["levels"]] == [
        (0, [], 0)
    ] * 3


# --- JSON ------------------------------------------------------------------------------------


@pytest.mark.module_data
def test_the_api_gives_the_same_levels_as_json(app, family):
    body = signed_in_as(app, family, "rita").get("/api/v1/me/tree").get_json()
    assert (body["depth"], body["total"], body["per_page"]) == (3, 7, PAGE_SIZE)
    assert [(level["level"], level["count"]) for level in body["levels"]] == [
        (1, 3),
        (2, 3),
        (3, 1),
    ]
    assert [r["formatted"] for r in body["levels"][0]["rewards"]] == ["$10.00", "40 points"]
    assert body["levels"][1]["rewards"][0]["amount"] == 500
    [dot] = body["levels"][2]["members"]
    assert dot["display_name"] == "Dot D." and dot["email"] == "d***@example.com"
    assert dot["id"] == family["dot"]["id"] and dot["invitees"] is None  # the last level
    assert dot["joined_at"].startswith(str(utcnow().year))
    first = body["levels"][0]
    assert (first["page"], first["pages"]) == (1, 2)
    assert [m["display_name"] for m in first["members"]] == ["Cal C.", "Ben B."]
    assert first["members"][1]["invitees"] == 1
    emails = [m["email"] for level in body["levels"] for m in level["members"]]
    assert emails and all(re.fullmatch(r"[a-z]\*\*\*@example\.com", e) for e in emails)
    assert "Zed" not in str(body)


@pytest.mark.module_data
def test_the_api_pages_one_level(app, family):
    client = signed_in_as(app, family, "rita")
    second = client.get("/api/v1/me/tree?level=1&page=2").get_json()
    [level] = second["levels"]
    assert (level["level"], level["count"], level["page"], level["pages"]) == (1, 3, 2, 2)
    assert [m["display_name"] for m in level["members"]] == ["Amy A."]
    past_the_end = client.get("/api/v1/me/tree?level=1&page=99").get_json()
    assert past_the_end["levels"][0]["page"] == 2
    unknown = client.get("/api/v1/me/tree?level=4")
    assert unknown.status_code == 404
    assert unknown.get_json()["error"]["code"] == "unknown_level"


# --- paging and branches ---------------------------------------------------------------------


@pytest.mark.module_data
def test_a_level_is_paged_without_script(app, family):
    client = signed_in_as(app, family, "rita")
    dashboard = client.get("/referral/dashboard").get_data(as_text=True)
    assert 'data-tree-page href="/referral/tree?page=2&amp;level=1"' in dashboard
    page = client.get("/referral/tree?level=1&page=2")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html
    assert "Amy A." in html and "Ben B." not in html
    assert "Page 2 of 2" in html


@pytest.mark.module_data
def test_a_branch_loads_as_a_fragment_and_as_a_page(app, family):
    client = signed_in_as(app, family, "rita")
    amy, ada = family["amy"], family["ada"]
    fragment = client.get(f"/referral/tree?node={amy['id']}&partial=1")
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in html
    assert "Ada A." in html and "Abe A." in html and "a***@example.com" in html
    assert "ada.ash@example.com" not in html
    # Ada invited Dot: expandable, lazily; Abe invited nobody: a plain line.
    assert f'data-tree-src="/referral/tree?node={ada["id"]}&amp;partial=1"' in html
    assert f"node={family['abe']['id']}" not in html
    page = client.get(f"/referral/tree?node={ada['id']}").get_data(as_text=True)
    assert "<html" in page and "Dot D." in page and "Invited by Ada A." in page
    # Dot is on the last level: whom he invited is past the depth.
    assert client.get(f"/referral/tree?node={family['dot']['id']}").status_code == 404


@pytest.mark.module_data
def test_nobody_opens_a_branch_outside_their_own_tree(app, family):
    rita = signed_in_as(app, family, "rita")
    for node in (family["nora"]["id"], family["zed"]["id"], 999_999, "abc", "-1"):
        assert rita.get(f"/referral/tree?node={node}").status_code == 404, node
    assert rita.get("/referral/tree?level=4").status_code == 404
    nora = signed_in_as(app, family, "nora")
    for node in (family["amy"]["id"], family["rita"]["id"]):
        answer = nora.get(f"/referral/tree?node={node}&partial=1")
        assert answer.status_code == 404
        assert "Amy" not in answer.get_data(as_text=True)
    # Someone in the middle sees only below themselves.
    amy = signed_in_as(app, family, "amy")
    assert amy.get(f"/referral/tree?node={family['ada']['id']}").status_code == 200
    assert amy.get(f"/referral/tree?node={family['ben']['id']}").status_code == 404


def test_a_loop_in_the_data_neither_hangs_nor_counts_the_root(app, family):
    with app.app_context():
        # Bad data the services never write: Rita "invited" by Dot, three levels below her.
        db.session.execute(
            update(User)
            .where(User.id == family["rita"]["id"])
            .values(referred_by_id=family["dot"]["id"])
        )
        db.session.commit()
        rita = db.session.get(User, family["rita"]["id"])
        assert [level.count for level in tree.level_summary(rita, 10)] == [3, 3, 1, 1] + [0] * 6
        assert tree.level_of(rita, family["zed"]["id"], 10) == 4


# --- who invited whom, and one naming rule (docs/guarantees.md #27) -------------------------


def test_each_person_below_level_one_shows_who_invited_them(app, family):
    with app.app_context():
        db.session.execute(
            update(User).where(User.id == family["amy"]["id"]).values(display_name="Amy the Great")
        )
        db.session.commit()
    client = logged_in(app, family["rita"])
    html = client.get("/referral/dashboard").get_data(as_text=True).split('id="tree"')[1]
    level_one = html.split('id="level-1"')[1].split("</ul>")[0]
    assert "invited by" not in level_one  # Rita invited them herself
    level_two = html.split('id="level-2"')[1].split("</ul>")[0]
    # Newest first: Bea (Ben's) then Abe (Amy's, under the public name she chose).
    assert re.search(r"Bea B\.</span>.*?invited by Ben B\.<", level_two, re.S)
    assert re.search(r"Abe A\.</span>.*?invited by Amy the Great<", level_two, re.S)
    level_three = html.split('id="level-3"')[1].split("</ul>")[0]
    assert "invited by Ada A." in level_three
    page_two = client.get("/referral/tree?level=2&page=2").get_data(as_text=True)
    assert "invited by Amy the Great" in page_two  # Ada, on the second page
    assert "Amy Apple" not in page_two


@pytest.mark.module_data
def test_the_dashboard_names_friends_by_the_same_rule_as_the_tree(app, family):
    client = signed_in_as(app, family, "rita")
    invited = "".join(
        client.get(f"/referral/dashboard?page={page}").get_data(as_text=True).split('id="tree"')[0]
        for page in (1, 2)  # two a page
    )
    for full, public in (("Amy Apple", "Amy A."), ("Ben Brook", "Ben B."), ("Cal Cole", "Cal C.")):
        assert full not in invited and f'data-label="Name">{public}<' in invited


@pytest.mark.module_data
def test_staff_see_full_names_of_inviters_too(app, family):
    manager = signed_in_as(app, family, "manager")
    page = manager.get(f"/admin/participants/{family['rita']['id']}").get_data(as_text=True)
    assert "invited by Ben Brook" in page.split('id="level-2"')[1]


# --- who may see it --------------------------------------------------------------------------


@pytest.mark.module_data
def test_staff_see_a_participants_whole_tree_with_names_and_emails(app, family):
    manager = signed_in_as(app, family, "manager")
    rita, amy = family["rita"], family["amy"]
    page = manager.get(f"/admin/participants/{rita['id']}").get_data(as_text=True)
    assert [text_of(page, f"level-{n}-count") for n in (1, 2, 3)] == ["3", "3", "1"]
    assert text_of(page, "level-2-rewards") == "$5.00"
    assert "Dot Deep" in page.split('id="level-3"')[1] and "dot.deep@example.com" in page
    branch = manager.get(f"/admin/participants/{rita['id']}/tree?node={amy['id']}&partial=1")
    html = branch.get_data(as_text=True)
    assert branch.status_code == 200 and "Ada Ash" in html and "ada.ash@example.com" in html
    assert f'href="/admin/participants/{family["ada"]["id"]}"' in html
    expand = f"/admin/participants/{rita['id']}/tree?node={family['ada']['id']}&amp;partial=1"
    assert expand in html
    full = manager.get(f"/admin/participants/{rita['id']}/tree?level=2&page=2")
    assert full.status_code == 200 and "Ada Ash" in full.get_data(as_text=True)
    outside = f"/admin/participants/{rita['id']}/tree?node={family['nick']['id']}"
    assert manager.get(outside).status_code == 404


@pytest.mark.module_data
def test_staff_without_the_permission_and_participants_are_refused(app, family):
    operator = signed_in_as(app, family, "operator")
    path = f"/admin/participants/{family['rita']['id']}/tree"
    assert operator.get(path).status_code == 403
    assert signed_in_as(app, family, "amy").get(path).status_code == 403


def test_a_visitor_is_sent_to_log_in(client):
    page = client.get("/referral/tree?level=1")
    assert page.status_code == 302 and "/auth/login" in page.headers["Location"]
    api = client.get("/api/v1/me/tree")
    assert api.status_code == 401
    assert api.get_json()["error"]["code"] == "login_required"
    admin = client.get("/admin/participants/1/tree")
    assert admin.status_code == 302 and "/auth/login" in admin.headers["Location"]
