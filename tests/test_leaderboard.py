"""The public board: order, shared ranks for ties, periods, paging, own rank, caching and its
JSON (docs/guarantees.md #27)."""

from datetime import timedelta

from sqlalchemy import select, update

from extensions import db
from models import Referral, User, utcnow
from tests import factories


def _invite(app, inviter_code: str, count: int, *, prefix: str, when=None):
    with app.app_context():
        for index in range(count):
            factories.participant(f"{prefix} Friend{index}", invited_by=inviter_code, now=when)


def test_order_by_count_then_who_got_there_first_and_ties_share_a_rank(
    app, make_participant, client
):
    alice = make_participant("Alice Zimmer")
    bob = make_participant("Bob Young")
    carol = make_participant("Carol Xu")
    start = utcnow() - timedelta(hours=5)
    _invite(app, bob["code"], 2, prefix="Bb", when=start)  # Bob reached 2 first...
    _invite(app, alice["code"], 2, prefix="Aa", when=start + timedelta(hours=1))
    _invite(app, carol["code"], 3, prefix="Cc", when=start + timedelta(hours=2))
    rows = client.get("/api/v1/leaderboard").json["rows"]
    assert rows == [
        {"rank": 1, "display_name": "Carol X.", "referrals": 3},
        {"rank": 2, "display_name": "Bob Y.", "referrals": 2},
        {"rank": 2, "display_name": "Alice Z.", "referrals": 2},  # tied with Bob
    ]
    page = client.get("/referral/leaderboard").get_data(as_text=True)
    assert page.index("Carol X.") < page.index("Bob Y.") < page.index("Alice Z.")


def test_rejected_and_review_referrals_do_not_count(app, make_participant, client):
    alice = make_participant("Alice Zimmer")
    _invite(app, alice["code"], 3, prefix="Aa")
    with app.app_context():
        from referral.services import recount_referrals

        first, second, _ = db.session.scalars(select(Referral).order_by(Referral.id)).all()
        # Decisions a reviewer will take (admin issue); the counter is recounted from rows.
        first.status, first.reason = "rejected", "test"
        second.status = "review"
        recount_referrals()
        db.session.commit()
    rows = client.get("/api/v1/leaderboard").json["rows"]
    assert rows == [{"rank": 1, "display_name": "Alice Z.", "referrals": 1}]


def test_pages_of_twenty_and_bad_parameters_fall_back(app, client):
    with app.app_context():
        for index in range(25):
            person = factories.participant(f"Leader Number{index:02d}")
            factories.participant(f"Guest Number{index:02d}", invited_by=person["code"])
    first = client.get("/api/v1/leaderboard").json
    assert first["total"] == 25 and first["pages"] == 2 and len(first["rows"]) == 20
    second = client.get("/api/v1/leaderboard?page=2").json
    # One referral each: all 25 share first place, on the second page too.
    assert [row["rank"] for row in second["rows"]] == [1] * 5
    for query in (
        "page=-3",
        "page=abc",
        "page=",
        "page=1e9",
        "period=year",
        "period=<b>",
        "period=week&page=0",
    ):
        response = client.get(f"/api/v1/leaderboard?{query}")
        assert response.status_code == 200, query
        assert response.json["rows"], query
        html = client.get(f"/referral/leaderboard?{query}")
        assert html.status_code == 200, query
        assert "<b>" not in html.get_data(as_text=True)
    past_end = client.get("/api/v1/leaderboard?page=50").json
    assert past_end["page"] == 2  # the last page, not an empty one


def test_month_and_week_count_only_that_period(app, make_participant, client):
    alice = make_participant("Alice Zimmer")
    bob = make_participant("Bob Young")
    now = utcnow()
    _invite(app, alice["code"], 3, prefix="Old", when=now - timedelta(days=70))
    _invite(app, bob["code"], 1, prefix="New", when=now)
    all_time = client.get("/api/v1/leaderboard?period=all").json["rows"]
    assert [row["display_name"] for row in all_time] == ["Alice Z.", "Bob Y."]
    for period in ("month", "week"):
        rows = client.get(f"/api/v1/leaderboard?period={period}").json["rows"]
        assert rows == [{"rank": 1, "display_name": "Bob Y.", "referrals": 1}], period


def test_own_rank_is_shown_even_off_the_page(app, client, login):
    with app.app_context():
        for index in range(21):
            leader = factories.participant(f"Leader Number{index:02d}")
            for guest in range(2):
                factories.participant(f"Guest N{index:02d}x{guest}", invited_by=leader["code"])
        me = factories.participant("Zed Last")
        factories.participant("Only Friend", invited_by=me["code"])
    login(me["email"])
    page = client.get("/referral/leaderboard").get_data(as_text=True)
    assert "Zed L." not in page.split('id="my-rank"')[1].split("</div>", 1)[1]  # not on page 1
    assert "You are <strong>#22</strong> with 1 referral" in page
    week = client.get("/referral/leaderboard?period=week").get_data(as_text=True)
    assert "You are <strong>#22</strong>" in week


def test_a_participant_without_referrals_is_told_how_to_get_on(
    app, make_participant, login, client
):
    alice = make_participant("Alice Zimmer")
    login(alice["email"])
    page = client.get("/referral/leaderboard").get_data(as_text=True)
    assert "You are not on the board yet" in page
    assert "The first referral takes the top spot" in page


def test_a_new_referral_shows_at_once_despite_the_cache(app, make_participant, client):
    alice = make_participant("Alice Zimmer")
    assert client.get("/api/v1/leaderboard").json["rows"] == []  # now cached
    _invite(app, alice["code"], 1, prefix="Aa")
    assert client.get("/api/v1/leaderboard").json["rows"][0]["referrals"] == 1


def test_deactivated_participants_leave_the_board(app, make_participant, client):
    alice = make_participant("Alice Zimmer")
    _invite(app, alice["code"], 1, prefix="Aa")
    with app.app_context():
        db.session.execute(update(User).where(User.id == alice["id"]).values(active=False))
        db.session.commit()
        from referral import leaderboard

        leaderboard.invalidate()
    assert client.get("/api/v1/leaderboard").json["rows"] == []


def test_display_names_are_first_name_and_initial_and_escaped(app, client):
    with app.app_context():
        sneaky = factories.participant("<img src=x onerror=alert(1)> Smith", email="s@example.com")
        factories.participant("Plain Guest", invited_by=sneaky["code"])
    body = client.get("/referral/leaderboard").get_data(as_text=True)
    assert "<img src=x" not in body
    assert "&lt;img" in body
    assert client.get("/api/v1/leaderboard").headers["Access-Control-Allow-Origin"] == "*"


def _set_counts(app, counts: list[int]) -> list[dict]:
    """Participants whose counters read `counts`, in board order (earlier reached first)."""
    start = utcnow() - timedelta(days=1)
    with app.app_context():
        people = [factories.participant(f"Rank Person{index:02d}") for index in range(len(counts))]
        for index, (person, referrals) in enumerate(zip(people, counts, strict=True)):
            db.session.execute(
                update(User)
                .where(User.id == person["id"])
                .values(referral_count=referrals, last_referral_at=start + timedelta(minutes=index))
            )
        db.session.commit()
        from referral import leaderboard

        leaderboard.invalidate()
    return people


def test_ties_share_a_rank_across_pages_and_in_ones_own_place(app, client, login):
    # Positions 19 to 22 are tied at 3 and straddle the page break after 20.
    counts = [40 - index for index in range(18)] + [3, 3, 3, 3, 2, 1, 1]
    people = _set_counts(app, counts)
    first = client.get("/api/v1/leaderboard").json["rows"]
    assert [row["rank"] for row in first] == [*range(1, 19), 19, 19]
    second = client.get("/api/v1/leaderboard?page=2").json["rows"]
    assert [row["rank"] for row in second] == [19, 19, 23, 24, 24]
    assert [row["referrals"] for row in second] == [3, 3, 2, 1, 1]

    login(people[21]["email"])  # the last of the four tied at 3, on page 2
    page = client.get("/referral/leaderboard?page=2").get_data(as_text=True)
    assert "You are <strong>#19</strong> with 3 referrals" in page
    board = page.split("<tbody>", 1)[1]  # the navbar marks the current language too
    mine = board.split('aria-current="true"', 1)[1].split("</tr>", 1)[0]
    assert ">19<" in mine and "Rank P." in mine and ">You<" in mine
    assert board.count('aria-current="true"') == 1


def test_the_signed_in_row_is_marked_only_for_its_owner(app, client, login):
    people = _set_counts(app, [2, 2])
    login(people[1]["email"])
    page = client.get("/referral/leaderboard").get_data(as_text=True)
    rows = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0].split("</tr>")
    assert 'aria-current="true"' not in rows[0] and ">You<" not in rows[0]
    assert 'aria-current="true"' in rows[1] and ">You<" in rows[1]
    assert "You are <strong>#1</strong> with 2 referrals" in page
