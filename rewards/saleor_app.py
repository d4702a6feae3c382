"""InviteLoop as a Saleor App: the manifest a Saleor dashboard installs it from, the token
registration, the app's own events (uninstall) and the page the dashboard opens (appUrl).
docs/guarantees.md #38.
"""

import logging

from flask import Blueprint, current_app, jsonify, make_response, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core.embedding import frame_policy
from core.errors import DomainError
from core.mail import absolute_url
from core.security import framed_csp
from extensions import csrf, db, limiter
from rewards import saleor_customers, saleor_install
from rewards.events import unhandled
from rewards.jwks import InvalidSignature
from rewards.saleor import (
    InvalidSaleorPayload,
    SaleorNotConfigured,
    check_signature,
    parse_body,
)
from rewards.saleor_queries import (
    APP_DELETED_SUBSCRIPTION,
    CUSTOMER_CREATED_SUBSCRIPTION,
    ORDER_EVENTS_SUBSCRIPTION,
)

log = logging.getLogger(__name__)

saleor_app_bp = Blueprint("saleor_app", __name__)
csrf.exempt(saleor_app_bp)  # Saleor authenticates by signature and token, not by a session

APP_ID = "app.inviteloop.referrals"
APP_VERSION = "1.0.0"
PERMISSIONS = ["MANAGE_ORDERS", "MANAGE_USERS", "MANAGE_GIFT_CARD", "MANAGE_DISCOUNTS"]
ORDER_EVENTS = ["ORDER_CONFIRMED", "ORDER_FULLY_PAID", "ORDER_REFUNDED", "ORDER_FULLY_REFUNDED"]


class NoPublicUrl(DomainError):
    status = 503
    code = "public_url_missing"
    message = _l("Set PUBLIC_URL: Saleor needs absolute addresses to call InviteLoop back.")


@saleor_app_bp.get("/saleor/manifest")
def show_manifest():
    return jsonify(manifest())


def manifest() -> dict:
    """The App manifest: what InviteLoop is, what it may do in the shop, and where Saleor
    sends the token and the events (all under PUBLIC_URL)."""
    order_url = _url("rewards.saleor.receive_order_event")
    app_events_url = _url("rewards.saleor_app.receive_app_event")
    return {
        "id": APP_ID,
        "version": APP_VERSION,
        "name": "InviteLoop",
        "about": (
            "Referral program: customers invite friends with their own link or code; "
            "InviteLoop rewards them with gift cards and vouchers issued in this shop."
        ),
        "author": "InviteLoop",
        "permissions": PERMISSIONS,
        "appUrl": _url("rewards.saleor_app.show_app"),
        "tokenTargetUrl": _url("rewards.saleor_app.register"),
        "homepageUrl": _url("referral.landing"),
        "webhooks": [
            _webhook("InviteLoop orders", ORDER_EVENTS, ORDER_EVENTS_SUBSCRIPTION, order_url),
            _webhook(
                "InviteLoop customers",
                ["CUSTOMER_CREATED"],
                CUSTOMER_CREATED_SUBSCRIPTION,
                app_events_url,
            ),
            _webhook(
                "InviteLoop uninstall", ["APP_DELETED"], APP_DELETED_SUBSCRIPTION, app_events_url
            ),
        ],
        "extensions": [],
    }


def _webhook(name: str, events: list[str], query: str, target_url: str) -> dict:
    return {
        "name": name,
        "asyncEvents": events,
        "query": query.strip(),
        "targetUrl": target_url,
        "isActive": True,
    }


def _url(endpoint: str) -> str:
    url = absolute_url(endpoint)
    if url is None:
        raise NoPublicUrl()
    return url


# Limited: a request naming the allowed Saleor makes InviteLoop call it, so a stream of
# made-up tokens must not become a stream of calls to the shop. Saleor registers once.
@saleor_app_bp.post("/saleor/register")
@limiter.limit(lambda: current_app.config["SALEOR_REGISTER_LIMITS"])
def register():
    if not saleor_install.allowed_api_urls():
        raise SaleorNotConfigured()
    payload = request.get_json(silent=True)
    token = payload.get("auth_token") if isinstance(payload, dict) else None
    saleor_install.register(request.headers.get("saleor-api-url"), token)
    db.session.commit()
    return jsonify(success=True)


@saleor_app_bp.post("/saleor/events")
def receive_app_event():
    """The app's own signed events: APP_DELETED forgets the token; CUSTOMER_CREATED makes
    the customer a participant (rewards/saleor_customers.py)."""
    api_url = _signing_instance(request.headers.get("Saleor-Api-Url"))
    body = request.get_data()
    check_signature(request.headers, body, api_url, current_app.config["SALEOR_WEBHOOK_SECRET"])
    event_name = request.headers.get("Saleor-Event", "").strip().lower()
    if event_name == "customer_created":
        outcome = saleor_customers.on_customer_created(parse_body(body))
        db.session.commit()
        return jsonify(outcome.as_json()), 200
    if event_name != "app_deleted":
        return jsonify(unhandled(event_name).as_json()), 200
    payload = parse_body(body)
    installation = saleor_install.installation_for(api_url)
    app = payload.get("app") if isinstance(payload.get("app"), dict) else {}
    if payload.get("__typename") != "AppDeleted":
        raise InvalidSaleorPayload(_("The signed payload is not an AppDeleted event."))
    if installation is None:
        return jsonify(outcome="ignored", reason="not_installed"), 200
    if app.get("id") not in (None, installation.app_id):
        return jsonify(outcome="ignored", reason="another_app"), 200
    saleor_install.forget(api_url)
    db.session.commit()
    return jsonify(outcome="accepted", reason="uninstalled"), 200


def _signing_instance(claimed: str | None) -> str:
    """The allowed Saleor whose keys must have signed this event: the one the header names
    when it is allowed, else the configured one (whose check then refuses a foreign header)."""
    configured = current_app.config["SALEOR_API_URL"]
    if claimed:
        allowed = saleor_install.allowed_api_url(claimed)
        if allowed:
            return allowed
        if configured:
            return configured
        raise InvalidSignature(_("The webhook comes from a Saleor instance not allowed here."))
    if not configured:
        raise SaleorNotConfigured()
    return configured


@saleor_app_bp.get("/saleor/app")
def show_app():
    """The page the Saleor dashboard opens for the app: is it connected, and where to go."""
    installation = saleor_install.current_installation()
    response = make_response(
        render_template(
            "rewards/saleor_app.html",
            configured_url=current_app.config["SALEOR_API_URL"],
            installation=installation,
        )
    )
    # The dashboard shows this page in a frame: its origins may, nobody else.
    origins = current_app.config["SALEOR_DASHBOARD_FRAME_ORIGINS"]
    response.headers["Content-Security-Policy"] = framed_csp(frame_policy(origins))
    return response
