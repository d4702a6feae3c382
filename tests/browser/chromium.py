"""The browser side of the browser tests: starting Chromium, signing in through the real
form, and what every page is checked for (axe-core and no sideways page scroll)."""

import os
from pathlib import Path

from axe_playwright_python.base import AXE_FILE_PATH

from tests import databases

# Debian's chromium-headless-shell: the headless-only build Playwright itself runs for headless
# tests. The same engine as the full browser (apt package chromium) with none of its window
# machinery: the browser tests take 40 % less CPU in it. INVITELOOP_CHROMIUM names another.
HEADLESS_SHELL = Path("/usr/bin/chromium-headless-shell")
CHROMIUM = Path(os.environ.get("INVITELOOP_CHROMIUM", HEADLESS_SHELL))
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
VIEWPORTS = {"phone": PHONE, "desktop": DESKTOP}
# axe-core's two worst levels: a page with any of these fails.
BLOCKING_IMPACTS = frozenset({"serious", "critical"})
SCREENSHOTS = os.environ.get("INVITELOOP_SCREENSHOTS") == "1"
DOCS = Path(__file__).resolve().parents[2] / "docs"

# axe-core, from the PyPI package axe-playwright-python (which would send all 570 kB of it to
# the page again before every check).
AXE_CORE = Path(AXE_FILE_PATH)
_AXE_SOURCE = AXE_CORE.read_text(encoding="utf-8")
# Element selectors cost axe-core a fifth of its time: worked out again only to name the
# elements of a violation that fails the page.
_QUICK_CHECK = {"resultTypes": ["violations"], "selectors": False}
_NAMING_CHECK = {"resultTypes": ["violations"]}


def launch(playwright):
    """Chromium from the system (a Playwright browser download is not possible everywhere):
    skipped with the reason when it is missing, failed in CI."""
    if not CHROMIUM.exists():
        databases.service_missing(
            "Chromium",
            FileNotFoundError(
                f"{CHROMIUM} not found; install it with `apt-get install chromium-headless-shell`"
            ),
        )
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
    )


def log_in(page, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    # The form's POST always navigates (to where the login leads, or back to the form with
    # its message): waited for, not merely the page in hand to have loaded.
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    assert "/auth/login" not in page.url, f"{email} could not log in"


def visit(page, url: str) -> tuple[int, list[str]]:
    """Open `url`; its status and every file the page then asked for in vain (a favicon
    missing on every page would show here)."""
    missing = []

    def note(response):
        if response.status >= 400 and response.request.resource_type != "document":
            missing.append(f"{response.status} {response.url}")

    page.on("response", note)
    try:
        response = page.goto(url)
        page.wait_for_load_state("load")
    finally:
        page.remove_listener("response", note)
    assert response is not None, url
    return response.status, missing


def problems(page) -> list[str]:
    """What a person would trip over on the page now open: serious or critical axe-core
    violations, and a page wider than the window (sideways scrolling)."""
    found = []
    blocking = _blocking_violations(page, _QUICK_CHECK)
    if blocking:
        blocking = _blocking_violations(page, _NAMING_CHECK)
    for violation in blocking:
        targets = ", ".join(str(node["target"][0]) for node in violation["nodes"][:4])
        found.append(f"axe {violation['id']} ({violation['impact']}): {targets}")
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if widths[0] > widths[1]:
        found.append(f"page scrolls sideways: {widths[0]} px wide in a {widths[1]} px window")
    return found


def load_axe_on_every_page(context) -> None:
    """For a context whose pages are nearly all checked: axe-core is then part of each page
    from its start instead of being sent to it before each check."""
    context.add_init_script(path=str(AXE_CORE))


def _blocking_violations(page, options: dict) -> list[dict]:
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(_AXE_SOURCE)
    results = page.evaluate("options => axe.run(document, options)", options)
    return [item for item in results["violations"] if item["impact"] in BLOCKING_IMPACTS]


def screenshot(page, name: str, viewport: str, whole_page: bool = False) -> None:
    """docs/NAME.png (desktop) or docs/NAME-phone.png: the first screen, or the whole page;
    for the README, only when INVITELOOP_SCREENSHOTS=1."""
    if SCREENSHOTS:
        suffix = "-phone" if viewport == "phone" else ""
        page.screenshot(path=str(DOCS / f"{name}{suffix}.png"), full_page=whole_page)


def screenshot_section(page, selector: str, name: str, viewport: str) -> None:
    """Like screenshot, of one part of the page (desktop only)."""
    if SCREENSHOTS and viewport == "desktop":
        page.locator(selector).screenshot(path=str(DOCS / f"{name}.png"))
