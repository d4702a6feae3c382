"""The installation's own brand: the admin sets a name, logo, colour and support address on
the branding screen; every page and email shows them; a refused value changes nothing; other
staff cannot open it; with nothing set, pages are as they always were. docs/guarantees.md #32."""

import io
import re

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core import branding
from extensions import db
from models import AuditLog, SiteBranding, utcnow
from tests import factories
from tests.helpers import (
    configure,
    count,
    csrf_token,
    form_fields,
    log_in,
    read_form,
    statements_during,
    take_outbox,
)

PATH = "/admin/settings/branding"
PUBLIC_URL = "https://refer.example.com"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(32)
SAFE_SVG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
    b'<title>Acme</title><circle cx="5" cy="5" r="4" fill="#fff"/></svg>'
)
GREEN = "#146c43"  # Bootstrap's green-700: 6.5:1 against white


@pytest.fixture
def config_overrides():
    return {"MAIL_BACKEND": "locmem", "PUBLIC_URL": PUBLIC_URL}


@pytest.fixture
def admin_client(app):
    with app.app_context():
        person = factories.staff("admin")
    client = app.test_client()
    assert log_in(client, person["email"]).status_code == 302
    return client


def save(client, logo: tuple[bytes, str] | None = None, **changes):
    """Post the branding form as shown, with `changes` typed over it and `logo` uploaded."""
    fields = form_fields(client.get(PATH).get_data(True), PATH)
    fields.pop("remove_logo", None)
    data = {**fields, **changes}
    if logo is not None:
        data["logo"] = (io.BytesIO(logo[0]), logo[1])
    return client.post(PATH, data=data, content_type="multipart/form-data")


def stored(app) -> dict | None:
    with app.app_context():
        row = db.session.get(SiteBranding, 1)
        if row is None:
            return None
        return {
            "site_name": row.site_name,
            "support_email": row.support_email,
            "primary_color": row.primary_color,
            "logo_type": row.logo_type,
            "logo": row.logo,
        }


def audit_entries(app) -> list[AuditLog]:
    with app.app_context():
        query = select(AuditLog).where(AuditLog.target_type == "site_branding")
        return list(db.session.scalars(query.order_by(AuditLog.id)))


def brand_acme(client, **changes):
    values = {
        "site_name": "Acme Rewards",
        "support_email": "help@acme.example.com",
        "primary_color": GREEN,
        **changes,
    }
    response = save(client, logo=(PNG, "acme.png"), **values)
    assert response.status_code == 302, response.get_data(True)
    return response


def logo_url(page: str) -> str:
    [url] = set(re.findall(r'src="(/brand/logo-[0-9a-f]{16}\.\w+)"', page))
    return url


# --- nothing set: today's output ---------------------------------------------------------------


def test_with_nothing_set_pages_show_inviteloop_as_before(client):
    page = client.get("/").get_data(True)
    assert re.search(r"<title>[^<]* · InviteLoop</title>", page)
    assert 'href="/">InviteLoop</a>' in page
    assert "InviteLoop — an open, self-hosted referral program.</div>" in page
    assert '<meta name="theme-color" content="#0a58ca">' in page
    assert '<meta property="og:site_name" content="InviteLoop">' in page
    assert f'<meta property="og:image" content="{PUBLIC_URL}/static/social-card.png">' in page
    assert 'href="/static/manifest.webmanifest"' in page
    assert "/brand/" not in page


# --- the form's refusals change nothing --------------------------------------------------------


def test_a_colour_too_light_for_white_text_is_refused_with_its_ratio(app, admin_client):
    response = save(admin_client, site_name="Acme Rewards", primary_color="#777777")
    assert response.status_code == 400
    [error] = read_form(response).field_errors["primary_color"]
    assert "4.48:1" in error and "4.5:1" in error
    assert read_form(response).values["site_name"] == "Acme Rewards"  # typed input kept
    assert stored(app) is None
    assert audit_entries(app) == []
    # Yellow on white is far worse; a colour that is no colour is named as such.
    yellow = save(admin_client, primary_color="#ffdd00")
    assert "1.3" in read_form(yellow).field_errors["primary_color"][0]
    blue = save(admin_client, primary_color="blue")
    assert "six hex digits" in read_form(blue).field_errors["primary_color"][0]
    assert stored(app) is None


def test_a_bad_support_email_is_refused_and_changes_nothing(app, admin_client):
    brand_acme(admin_client)
    before = stored(app)
    response = save(admin_client, support_email="help at acme")
    assert response.status_code == 400
    assert "not valid" in read_form(response).field_errors["support_email"][0]
    assert stored(app) == before
    assert len(audit_entries(app)) == 1


@pytest.mark.parametrize(
    ("typed", "message"),
    [("A" * 61, "at most 60 characters"), ("Acme\x07Bell", "control characters")],
)
def test_a_bad_site_name_is_refused_and_changes_nothing(app, admin_client, typed, message):
    response = save(admin_client, site_name=typed, primary_color=GREEN)
    assert response.status_code == 400
    assert message in read_form(response).field_errors["site_name"][0]
    assert stored(app) is None
    assert audit_entries(app) == []


def test_a_site_name_is_kept_on_one_line(app, admin_client):
    assert save(admin_client, site_name="  Acme\r\nBcc: x@example.com ").status_code == 302
    assert stored(app)["site_name"] == "Acme Bcc: x@example.com"


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"GIF89a" + bytes(40), "logo.png", "is not a PNG, WebP or SVG image"),
        (b"%PDF-1.7 hello", "logo.svg", "is not a PNG, WebP or SVG image"),
        (PNG + bytes(256 * 1024), "logo.png", "larger than 256 KB"),
        (b"", "logo.png", "empty"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "logo.svg",
            "<script> is not allowed",
        ),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><rect onload="alert(1)"/></svg>',
            "logo.svg",
            "attribute “onload”",
        ),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:x="http://www.w3.org/1999/xlink">'
            b'<use x:href="https://evil.example/a.svg#b"/></svg>',
            "logo.svg",
            "outside themselves",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa">]>'
            b'<svg xmlns="http://www.w3.org/2000/svg"><text>&a;</text></svg>',
            "logo.svg",
            "DOCTYPE",
        ),
        (
            b'<?xml version="1.0"?><?xml-stylesheet href="https://evil.example/x.css"?>'
            b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>',
            "logo.svg",
            "processing instructions",
        ),
    ],
    ids=[
        "gif",
        "pdf-named-svg",
        "too-big",
        "empty",
        "script",
        "handler",
        "remote",
        "entity",
        "stylesheet",
    ],
)
def test_a_logo_refused_by_its_content_changes_nothing(app, admin_client, content, name, message):
    brand_acme(admin_client)
    before = stored(app)
    response = save(admin_client, logo=(content, name), site_name="Other Name")
    assert response.status_code in (413, 415)
    assert message in read_form(response).field_errors["logo"][0]
    assert stored(app) == before
    assert len(audit_entries(app)) == 1


def test_a_logo_is_known_by_its_content_not_its_name(app, admin_client):
    save(admin_client, logo=(PNG, "logo.svg"))
    assert stored(app)["logo_type"] == "image/png"
    save(admin_client, logo=(WEBP, "logo.png"))
    assert stored(app)["logo_type"] == "image/webp"
    save(admin_client, logo=(SAFE_SVG, "logo.txt"))
    assert stored(app)["logo_type"] == "image/svg+xml"


# --- only the admin ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["manager", "marketer", "operator", "member"])
def test_other_roles_get_403_and_change_nothing(app, client, role):
    with app.app_context():
        person = factories.staff(role) if role != "member" else factories.participant()
    log_in(client, person["email"])
    assert client.get(PATH).status_code == 403
    token = csrf_token(client, "/auth/profile")
    response = client.post(PATH, data={"csrf_token": token, "site_name": "Hijacked"})
    assert response.status_code == 403
    assert stored(app) is None
    if role != "member":
        assert "Branding" not in client.get("/admin/").get_data(True)


# --- a saved brand is everywhere ---------------------------------------------------------------


def test_a_saved_brand_shows_on_the_landing_dashboard_and_staff_panel(
    app, client, admin_client, make_participant
):
    brand_acme(admin_client)
    landing = client.get("/").get_data(True)
    assert re.search(r"<title>[^<]* · Acme Rewards</title>", landing)
    assert re.search(
        r'class="navbar-brand[^>]*><img class="brand-logo[^>]*>Acme Rewards</a>', landing
    )
    assert '<meta property="og:site_name" content="Acme Rewards">' in landing
    preview = f'<meta property="og:image" content="{PUBLIC_URL}{logo_url(landing)}">'
    assert preview in landing and "social-card.png" not in landing
    assert f'<meta name="theme-color" content="{GREEN}">' in landing
    assert '<link rel="stylesheet" href="/brand/theme-146c43.css">' in landing
    assert 'href="mailto:help@acme.example.com"' in landing
    assert "InviteLoop" not in landing

    person = make_participant("Dana Dash")
    participant = app.test_client()
    log_in(participant, person["email"])
    dashboard = participant.get("/referral/dashboard").get_data(True)
    assert "· Acme Rewards</title>" in dashboard and logo_url(dashboard) == logo_url(landing)

    panel = admin_client.get(PATH).get_data(True)
    assert "· Acme Rewards</title>" in panel and ">Acme Rewards</a>" in panel
    assert read_form(admin_client.get(PATH)).values["primary_color"] == GREEN


def test_every_email_carries_the_brand_in_sender_subject_and_footer(
    app, admin_client, make_participant
):
    brand_acme(admin_client)
    rita = make_participant("Rita Referrer", email="rita@example.com")
    make_participant("Fred Friend", invited_by=rita["code"])
    [message] = take_outbox(app)
    assert message.subject == "A friend joined Acme Rewards through you"
    assert message.from_email == "Acme Rewards <no-reply@localhost>"
    assert "just joined Acme Rewards through your invitation" in message.body
    assert "— Acme Rewards\nQuestions? Write to help@acme.example.com" in message.body
    assert "InviteLoop" not in message.body

    visitor = app.test_client()
    token = csrf_token(visitor, "/auth/reset")
    visitor.post("/auth/reset", data={"csrf_token": token, "email": rita["email"]})
    [reset] = take_outbox(app)
    assert reset.subject == "Reset your Acme Rewards password"
    assert reset.from_email == "Acme Rewards <no-reply@localhost>"
    assert "help@acme.example.com" in reset.body


def test_with_nothing_set_emails_are_as_before(app, make_participant):
    rita = make_participant("Rita Referrer", email="rita@example.com")
    make_participant("Fred Friend", invited_by=rita["code"])
    [message] = take_outbox(app)
    assert message.subject == "A friend joined InviteLoop through you"
    assert message.from_email == app.config["MAIL_DEFAULT_SENDER"]
    assert "\n— InviteLoop\n" in message.body and "Questions?" not in message.body


def test_saving_is_audit_logged_with_before_and_after(app, admin_client):
    brand_acme(admin_client)
    save(admin_client, primary_color="")
    first, second = audit_entries(app)
    assert first.action == second.action == "branding.update"
    assert first.after["site_name"] == "Acme Rewards" and first.before["site_name"] is None
    assert first.after["logo_type"] == "image/png"
    assert second.before == {"primary_color": GREEN} and second.after == {"primary_color": None}
    assert save(admin_client).status_code == 302  # saved unchanged: nothing logged
    assert len(audit_entries(app)) == 2


def test_the_share_text_may_name_the_site(app, admin_client, make_participant):
    brand_acme(admin_client)
    configure(app, share_text="Join me on {site}:")
    person = make_participant("Sam Share")
    participant = app.test_client()
    log_in(participant, person["email"])
    assert "Join me on Acme Rewards:" in participant.get("/referral/dashboard").get_data(True)


# --- assets: the logo, the theme, the manifest -------------------------------------------------


def test_the_logo_is_served_with_its_type_and_cached_for_a_year(app, client, admin_client):
    brand_acme(admin_client)
    url = logo_url(client.get("/").get_data(True))
    response = client.get(url)
    assert response.status_code == 200
    assert response.data == PNG
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["X-Content-Type-Options"] == "nosniff"

    save(admin_client, logo=(SAFE_SVG, "acme.svg"))
    new_url = logo_url(client.get("/").get_data(True))
    assert new_url != url and new_url.endswith(".svg")
    assert client.get(url).status_code == 404  # the old logo's address is gone
    svg = client.get(new_url)
    assert svg.headers["Content-Type"] == "image/svg+xml"
    assert "sandbox" in svg.headers["Content-Security-Policy"]

    save(admin_client, remove_logo="y")
    assert "/brand/logo-" not in client.get("/").get_data(True)
    assert client.get(new_url).status_code == 404


def test_the_theme_paints_bootstrap_in_the_colour_and_refuses_others(client):
    response = client.get("/brand/theme-146c43.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"
    assert "--bs-primary: #146c43" in response.get_data(True)
    assert ".site-nav { background-color: #146c43" in response.get_data(True)
    assert "max-age=31536000" in response.headers["Cache-Control"]
    for refused in ("777777", "ffdd00", "zzzzzz", "146C43", "abc"):
        assert client.get(f"/brand/theme-{refused}.css").status_code == 404


def test_the_manifest_names_the_brand(client, admin_client):
    brand_acme(admin_client)
    page = client.get("/").get_data(True)
    assert 'rel="manifest" href="/brand/manifest.webmanifest"' in page
    manifest = client.get("/brand/manifest.webmanifest").get_json(force=True)
    assert manifest["name"] == "Acme Rewards" and manifest["theme_color"] == GREEN
    assert manifest["icons"][0]["src"] == logo_url(page)


# --- read cheaply, the same everywhere ---------------------------------------------------------


def test_a_cached_brand_costs_no_query_and_saving_drops_the_cache(app, client, admin_client):
    brand_acme(admin_client)
    client.get("/")  # fills the cache
    queries = statements_during(app, lambda: client.get("/"))
    assert not [sql for sql in queries if "site_branding" in sql]
    save(admin_client, site_name="Acme Club")
    assert "· Acme Club</title>" in client.get("/").get_data(True)


def test_a_job_outside_any_request_reads_the_same_brand(app, admin_client):
    brand_acme(admin_client)
    with app.app_context():
        brand = branding.current()
    assert (brand.name, brand.support_email, brand.primary_color) == (
        "Acme Rewards",
        "help@acme.example.com",
        GREEN,
    )


def test_only_one_branding_row_can_exist(app):
    with app.app_context():
        db.session.add(SiteBranding(id=2, site_name="Second", updated_at=utcnow()))
        with pytest.raises(IntegrityError):
            db.session.flush()
        db.session.rollback()
    assert count(app, SiteBranding) == 0
