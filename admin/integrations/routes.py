"""Staff panel — Integrations: API keys, outbound webhooks; the audit log. Admins only.

Importing admin.integrations imports rewards.outbound, which connects the outbound webhook
receivers to the referral and rewards signals: this module is imported by admin.routes when
the app registers its blueprints, so every app (web, worker, CLI) publishes its events.
"""

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from admin import exports, listing
from admin import integrations as services
from admin.integrations_forms import ActionForm, ApiKeyForm, ConfirmForm, EndpointForm
from admin.policy import require
from core import api_keys
from core.errors import DomainError
from core.forms import show_domain_error
from extensions import db
from models import DELIVERY_STATUSES, WEBHOOK_EVENTS, ApiKey

bp = Blueprint("integrations", __name__)

MANAGE = "integrations.manage"

exports.register(
    "deliveries",
    MANAGE,
    [
        ("id", lambda row: row.id),
        ("endpoint_id", lambda row: row.endpoint_id),
        ("message_id", lambda row: row.message_id),
        ("event", lambda row: row.event_type),
        ("status", lambda row: row.status),
        ("attempts", lambda row: row.attempts),
        ("last_status_code", lambda row: row.last_status_code),
        ("last_error", lambda row: row.last_error),
        ("created_at", lambda row: row.created_at),
        ("last_attempt_at", lambda row: row.last_attempt_at),
        ("delivered_at", lambda row: row.delivered_at),
    ],
    services.deliveries_query,
)
exports.register(
    "audit",
    "audit.view",
    [
        ("id", lambda row: row.id),
        ("time", lambda row: row.created_at),
        ("actor", lambda row: row.actor_label),
        ("action", lambda row: row.action),
        ("target_type", lambda row: row.target_type),
        ("target_id", lambda row: row.target_id),
        ("before", lambda row: _json(row.before)),
        ("after", lambda row: _json(row.after)),
        ("ip", lambda row: row.ip),
    ],
    services.audit_query,
)


def _json(value) -> str:
    return "" if value is None else current_app.json.dumps(value, sort_keys=True)


def _no_store(response):
    """Pages that show a secret must not sit in a cache or the browser's history store."""
    response = make_response(response)
    response.headers["Cache-Control"] = "no-store"
    return response


# --- The integrations page and API keys -------------------------------------------------


@bp.get("/integrations")
@require(MANAGE)
def show_integrations():
    return _integrations_page(ApiKeyForm())


def _integrations_page(key_form: ApiKeyForm, status: int = 200):
    return render_template(
        "admin/integrations/index.html",
        keys=listing.paginate(api_keys.api_keys_query(), "keys_page"),
        endpoints=listing.paginate(services.endpoints_query(), "endpoints_page"),
        key_form=key_form,
    ), status


@bp.post("/integrations/api-keys")
@require(MANAGE)
def create_api_key():
    """The full key is in this response only: never flashed, stored or logged."""
    form = ApiKeyForm()
    if not form.validate():
        return _integrations_page(form, 400)
    try:
        key, secret = api_keys.create_api_key(form.name.data, form.scopes.data)
    except DomainError as error:
        return _integrations_page(form, show_domain_error(form, error))
    db.session.commit()
    return _no_store(render_template("admin/integrations/key_created.html", key=key, secret=secret))


@bp.route("/integrations/api-keys/<int:key_id>/revoke", methods=["GET", "POST"])
@require(MANAGE)
def revoke_api_key(key_id: int):
    key = db.session.get(ApiKey, key_id)
    if key is None:
        raise api_keys.UnknownApiKey()
    form = ConfirmForm()
    if form.validate_on_submit():
        api_keys.revoke_api_key(key_id)
        db.session.commit()
        flash(f"API key {key.name!r} (il_{key.prefix}_…) is revoked.", "success")
        return redirect(url_for(".show_integrations"))
    return _confirm(
        form,
        title=f"Revoke the API key {key.name!r}?",
        explanation="Systems using it get 401 from the next request on.",
        cancel=url_for(".show_integrations"),
    )


def _confirm(form: ConfirmForm, *, title: str, explanation: str, cancel: str):
    status = 400 if form.is_submitted() else 200
    return render_template(
        "admin/integrations/confirm.html",
        form=form,
        title=title,
        explanation=explanation,
        cancel=cancel,
    ), status


# --- Webhook endpoints ------------------------------------------------------------------


@bp.route("/integrations/webhooks/new", methods=["GET", "POST"])
@require(MANAGE)
def new_endpoint():
    form = EndpointForm()
    if form.validate_on_submit():
        try:
            endpoint = services.create_endpoint(
                form.url.data, form.description.data, form.events.data, _allow_private()
            )
        except DomainError as error:
            return _endpoint_form(form, None, show_domain_error(form, error))
        db.session.commit()
        flash("Endpoint added. Give its signing secret to the receiving system.", "success")
        return redirect(url_for(".show_endpoint", endpoint_id=endpoint.id))
    return _endpoint_form(form, None, 400 if form.is_submitted() else 200)


@bp.route("/integrations/webhooks/<int:endpoint_id>/edit", methods=["GET", "POST"])
@require(MANAGE)
def edit_endpoint(endpoint_id: int):
    endpoint = services.get_endpoint(endpoint_id)
    form = EndpointForm(obj=endpoint)
    if form.validate_on_submit():
        try:
            services.update_endpoint(
                endpoint_id,
                url=form.url.data,
                description=form.description.data,
                events=form.events.data,
                active=form.active.data,
                allow_private=_allow_private(),
            )
        except DomainError as error:
            return _endpoint_form(form, endpoint, show_domain_error(form, error))
        db.session.commit()
        flash("Endpoint saved.", "success")
        return redirect(url_for(".show_endpoint", endpoint_id=endpoint_id))
    return _endpoint_form(form, endpoint, 400 if form.is_submitted() else 200)


def _endpoint_form(form: EndpointForm, endpoint, status: int):
    return render_template(
        "admin/integrations/endpoint_form.html", form=form, endpoint=endpoint
    ), status


def _allow_private() -> bool:
    return current_app.config["WEBHOOK_ALLOW_PRIVATE_URLS"]


@bp.get("/integrations/webhooks/<int:endpoint_id>")
@require(MANAGE)
def show_endpoint(endpoint_id: int):
    endpoint = services.get_endpoint(endpoint_id)
    filters = {key: request.args.get(key, "") for key in ("status", "event")}
    args = {**{key: value for key, value in filters.items() if value}, "endpoint_id": endpoint_id}
    page = render_template(
        "admin/integrations/endpoint.html",
        endpoint=endpoint,
        deliveries=listing.paginate(services.deliveries_query(args), "page"),
        filters=filters,
        export_args=args,
        statuses=DELIVERY_STATUSES,
        events=WEBHOOK_EVENTS,
        action_form=ActionForm(),
    )
    return _no_store(page)


@bp.post("/integrations/webhooks/<int:endpoint_id>/enable")
@require(MANAGE)
def enable_endpoint(endpoint_id: int):
    return _set_active(endpoint_id, True)


@bp.post("/integrations/webhooks/<int:endpoint_id>/disable")
@require(MANAGE)
def disable_endpoint(endpoint_id: int):
    return _set_active(endpoint_id, False)


def _set_active(endpoint_id: int, active: bool):
    if ActionForm().validate_on_submit():
        services.set_endpoint_active(endpoint_id, active)
        db.session.commit()
        flash("Endpoint enabled." if active else "Endpoint disabled: nothing more is sent.")
    return redirect(url_for(".show_endpoint", endpoint_id=endpoint_id))


@bp.route("/integrations/webhooks/<int:endpoint_id>/delete", methods=["GET", "POST"])
@require(MANAGE)
def delete_endpoint(endpoint_id: int):
    endpoint = services.get_endpoint(endpoint_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        services.delete_endpoint(endpoint_id)
        db.session.commit()
        flash("Endpoint deleted, with its delivery log.", "success")
        return redirect(url_for(".show_integrations"))
    return _confirm(
        form,
        title=f"Delete the endpoint {endpoint.url}?",
        explanation="Nothing more is sent to it, and its delivery log is deleted too.",
        cancel=url_for(".show_endpoint", endpoint_id=endpoint_id),
    )


@bp.route("/integrations/webhooks/<int:endpoint_id>/rotate-secret", methods=["GET", "POST"])
@require(MANAGE)
def rotate_secret(endpoint_id: int):
    endpoint = services.get_endpoint(endpoint_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        services.rotate_secret(endpoint_id)
        db.session.commit()
        flash("New signing secret made: give it to the receiving system.", "success")
        return redirect(url_for(".show_endpoint", endpoint_id=endpoint_id))
    return _confirm(
        form,
        title=f"Make a new signing secret for {endpoint.url}?",
        explanation="The old secret stops working at once: the receiver must get the new one.",
        cancel=url_for(".show_endpoint", endpoint_id=endpoint_id),
    )


@bp.post("/integrations/deliveries/<int:delivery_id>/redeliver")
@require(MANAGE)
def redeliver(delivery_id: int):
    endpoint_id = services.get_delivery(delivery_id).endpoint_id
    back = redirect(url_for(".show_endpoint", endpoint_id=endpoint_id))
    if not ActionForm().validate_on_submit():
        return back
    try:
        message_id = services.redeliver(delivery_id).message_id
    except services.EndpointDisabled as error:
        db.session.rollback()
        flash(error.message, "danger")
        return back
    db.session.commit()  # in eager mode the attempt runs here, right after the commit
    flash(f"Message {message_id} queued again.", "success")
    return back


# --- The audit log ----------------------------------------------------------------------


@bp.get("/audit")
@require("audit.view")
def show_audit():
    filters = services.audit_filters(request.args)
    entries = listing.paginate(services.audit_query(request.args), "page")
    return render_template(
        "admin/integrations/audit.html",
        entries=entries,
        filters=filters,
        actions=services.audit_actions(),
        changed_fields=services.changed_fields,
    )
