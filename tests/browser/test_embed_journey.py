"""The snippet and the widget on a shop's own pages, in a real browser (docs/guarantees.md
#42): a shop served from another port follows a `?ref=` link, keeps the code and records the
click with InviteLoop; the participant signs in inside the widget's frame and sees their link
and numbers; a shop InviteLoop does not allow gets no frame and counts no click."""

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Click
from tests import factories
from tests.apps import start_afresh
from tests.browser.chromium import problems
from tests.server import running_server

pytestmark = [pytest.mark.server, pytest.mark.browser]

_PAGES = {
    # The shop's landing page: only the snippet.
    "/": '<script src="{base}/embed/v1/ref.js"></script>',
    # The shop's "invite friends" page: the snippet, then the widget where it should appear.
    "/friends": (
        '<script src="{base}/embed/v1/ref.js"></script>'
        '<div id="invite"></div>'
        '<script src="{base}/embed/v1/widget.js" data-target="invite"></script>'
    ),
}


class _Shop:
    """A storefront on a port of its own. Allowed as http://127.0.0.1:<port>; the same pages
    as http://localhost:<port> are another origin, one InviteLoop does not allow."""

    def __init__(self):
        self.inviteloop = ""
        shop = self

        class Pages(BaseHTTPRequestHandler):
            def do_GET(self):
                body = _PAGES.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                page = (
                    "<!doctype html><html lang='en'><head><title>Shop</title></head><body>"
                    + body.format(base=shop.inviteloop)
                    + "</body></html>"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
        port = self.server.server_address[1]
        self.origin = f"http://127.0.0.1:{port}"
        self.foreign_origin = f"http://localhost:{port}"


@contextlib.contextmanager
def _shop():
    shop = _Shop()
    thread = threading.Thread(target=shop.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield shop
    finally:
        shop.server.shutdown()
        shop.server.server_close()


@pytest.fixture(scope="module")
def database_url(database_kind, request):
    """The worker's own database, emptied below: this journey needs no demo data."""
    return request.getfixturevalue(f"{database_kind}_url")


@pytest.fixture(scope="module")
def app(database_url, shared_apps):
    return shared_apps.get(database_url, {})


@pytest.fixture(scope="module")
def shop(app, database_url):
    start_afresh(app)
    with (
        _shop() as running,
        running_server(
            database_url, workers=1, threads=4, EMBED_ALLOWED_ORIGINS=running.origin
        ) as base_url,
    ):
        running.inviteloop = base_url
        yield running


@pytest.fixture(scope="module")
def ann(app, shop):
    with app.app_context():
        return factories.participant("Ann Lee")


@pytest.fixture
def page(browser):
    context = browser.new_context()
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def _clicks(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Click.id)))


def test_a_shop_keeps_the_code_records_the_click_and_frames_the_participants_widget(
    app, shop, ann, page
):
    before = _clicks(app)
    page.goto(f"{shop.origin}/?ref={ann['code']}&utm_source=newsletter")
    assert page.evaluate("() => window.InviteLoop.ready") == ann["code"]
    assert page.evaluate("() => window.InviteLoop.refCode()") == ann["code"]
    kept = {cookie["name"]: cookie for cookie in page.context.cookies(shop.origin)}
    assert kept["inviteloop_ref"]["value"] == ann["code"]
    assert kept["inviteloop_ref"]["expires"] > 0  # for the attribution window, not the visit
    assert _clicks(app) == before + 1

    # Later, on another page of the shop, without ?ref=: the widget offers to join with it.
    page.goto(f"{shop.origin}/friends")
    assert page.evaluate("() => window.InviteLoop.refCode()") == ann["code"]
    widget = page.frame_locator("iframe.inviteloop-widget")
    assert widget.locator("#signup-referral_code").input_value() == ann["code"]

    # Ann signs in inside the frame and sees her own link and the click.
    widget.locator("#login-email").fill(ann["email"])
    widget.locator("#login-password").fill(factories.PASSWORD)
    widget.get_by_role("button", name="Log in").click()
    assert f"/r/{ann['code']}" in widget.locator("#widget-link").input_value()
    assert widget.locator("#widget-clicks").inner_text() == "1"
    assert widget.get_by_role("link", name="WhatsApp").count() == 1


def test_a_shop_that_is_not_allowed_gets_no_frame_and_counts_no_click(app, shop, ann, page):
    before = _clicks(app)
    refused = []
    page.on("console", lambda message: refused.append(message.text))
    page.goto(f"{shop.foreign_origin}/?ref={ann['code']}")
    page.evaluate("() => window.InviteLoop.ready")
    assert _clicks(app) == before

    page.goto(f"{shop.foreign_origin}/friends")
    page.wait_for_load_state("load")
    frame = page.locator("iframe.inviteloop-widget").element_handle().content_frame()
    assert frame.locator("#widget").count() == 0
    assert any("frame-ancestors" in text for text in refused), refused


def test_the_widget_reads_well_at_a_narrow_width(browser, shop, ann):
    """The frame is as narrow as a shop's sidebar: no axe-core blocker, no sideways scroll."""
    context = browser.new_context(viewport={"width": 320, "height": 600})
    try:
        page = context.new_page()
        page.goto(f"{shop.inviteloop}/embed/v1/widget?ref={ann['code']}")
        assert problems(page) == []
    finally:
        context.close()
