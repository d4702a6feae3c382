"""Staff panel — Integrations: API keys, outbound webhooks; the audit log. Admins only."""

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
from flask_babel import gettext as _

from admin import listing
from admin.integrations import outbox as outbox_screen
from admin.integrations import services
from admin.integrations.forms import ActionForm, ApiKeyForm, ConfirmForm, EndpointForm
from admin.operations import labels
from admin.policy import can, require
from core import api_keys
from core.errors import DomainError
from core.forms import submit
from extensions import db
from models import DELIVERY_STATUSES, WEBHOOK_EVENTS, ApiKey, Reward
from rewards import saleor_fulfilment, saleor_install

bp = Blueprint("integrations", __name__)

MANAGE = "integrations.manage"


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
        installation=saleor_install.current_installation(),
        configured_url=current_app.config["SALEOR_API_URL"],
        waiting_in_saleor=saleor_fulfilment.waiting_rewards(),
        awaiting_staff=saleor_fulfilment.awaiting_staff(),
        saleor_counts=saleor_fulfilment.state_counts(),
    ), status


@bp.route("/integrations/saleor/rewards/<int:reward_id>/pay-out", methods=["GET", "POST"])
@require("rewards.manage")
def pay_out_reward(reward_id: int):
    """Staff's "Pay out" for a reward the program's rollout left waiting (docs/guarantees.md
    #41): confirmed with a ticked box, then queued for Saleor."""
    reward = db.get_or_404(Reward, reward_id)
    # Managers pay out from the rewards screen; only admins may open this one.
    back = (
        url_for(".show_integrations") if can(MANAGE) else url_for("admin.operations.list_rewards")
    )
    form = ConfirmForm()
    submission = submit(form, lambda: saleor_fulfilment.pay_out(reward_id), reraise=(DomainError,))
    if submission.done:
        flash(
            _("Reward #%(id)s is queued: Saleor issues its code shortly.", id=reward_id), "success"
        )
        return redirect(back)
    return _confirm(
        form,
        submission.status,
        title=_("Pay out reward #%(id)s in Saleor?", id=reward_id),
        explanation=_(
            "Saleor issues a %(kind)s of the reward's amount and the participant is emailed its"
            " code.",
            kind=labels.in_words(reward.kind, "reward_kind"),
        ),
        cancel=back,
    )


@bp.post("/integrations/api-keys")
@require(MANAGE)
def create_api_key():
    """The full key is in this response only: never flashed, stored or logged."""
    form = ApiKeyForm()
    submission = submit(form, lambda: api_keys.create_api_key(form.name.data, form.scopes.data))
    if not submission.done:
        return _integrations_page(form, submission.status)
    key, secret = submission.result
    return _no_store(render_template("admin/integrations/key_created.html", key=key, secret=secret))


@bp.route("/integrations/api-keys/<int:key_id>/revoke", methods=["GET", "POST"])
@require(MANAGE)
def revoke_api_key(key_id: int):
    key = db.session.get(ApiKey, key_id)
    if key is None:
        raise api_keys.UnknownApiKey()
    form = ConfirmForm()
    submission = submit(form, lambda: api_keys.revoke_api_key(key_id), reraise=(DomainError,))
    if submission.done:
        flash(
            _(
                "API key %(name)s (%(prefix)s) is revoked.",
                name=repr(key.name),
                prefix=f"il_{key.prefix}_…",
            ),
            "success",
        )
        return redirect(url_for(".show_integrations"))
    return _confirm(
        form,
        submission.status,
        title=_("Revoke the API key %(name)s?", name=repr(key.name)),
        explanation=_("Systems using it get 401 from the next request on."),
        cancel=url_for(".show_integrations"),
    )


def _confirm(form: ConfirmForm, status: int, *, title: str, explanation: str, cancel: str):
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
    submission = submit(
        form,
        lambda: services.create_endpoint(
            form.url.data, form.description.data, form.events.data, _allow_private()
        ),
    )
    if not submission.done:
        return _endpoint_form(form, None, submission.status)
    flash(_("Endpoint added. Give its signing secret to the receiving system."), "success")
    return redirect(url_for(".show_endpoint", endpoint_id=submission.result.id))


@bp.route("/integrations/webhooks/<int:endpoint_id>/edit", methods=["GET", "POST"])
@require(MANAGE)
def edit_endpoint(endpoint_id: int):
    endpoint = services.get_endpoint(endpoint_id)
    form = EndpointForm(obj=endpoint)
    submission = submit(
        form,
        lambda: services.update_endpoint(
            endpoint_id,
            url=form.url.data,
            description=form.description.data,
            events=form.events.data,
            active=form.active.data,
            allow_private=_allow_private(),
        ),
    )
    if not submission.done:
        return _endpoint_form(form, endpoint, submission.status)
    flash(_("Endpoint saved."), "success")
    return redirect(url_for(".show_endpoint", endpoint_id=endpoint_id))


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
    submission = submit(
        ActionForm(),
        lambda: services.set_endpoint_active(endpoint_id, active),
        reraise=(DomainError,),
    )
    if submission.done:
        flash(_("Endpoint enabled.") if active else _("Endpoint disabled: nothing more is sent."))
    return redirect(url_for(".show_endpoint", endpoint_id=endpoint_id))


@bp.route("/integrations/webhooks/<int:endpoint_id>/delete", methods=["GET", "POST"])
@require(MANAGE)
def delete_endpoint(endpoint_id: int):
    endpoint = services.get_endpoint(endpoint_id)
    form = ConfirmForm()
    submission = submit(form, lambda: services.delete_endpoint(endpoint_id), reraise=(DomainError,))
    if submission.done:
        flash(_("Endpoint deleted, with its delivery log."), "success")
        return redirect(url_for(".show_integrations"))
    return _confirm(
        form,
        submission.status,
        title=_("Delete the endpoint %(url)s?", url=endpoint.url),
        explanation=_("Nothing more is sent to it, and its delivery log is deleted too."),
        cancel=url_for(".show_endpoint", endpoint_id=endpoint_id),
    )


@bp.route("/integrations/webhooks/<int:endpoint_id>/rotate-secret", methods=["GET", "POST"])
@require(MANAGE)
def rotate_secret(endpoint_id: int):
    endpoint = services.get_endpoint(endpoint_id)
    form = ConfirmForm()
    submission = submit(form, lambda: services.rotate_secret(endpoint_id), reraise=(DomainError,))
    if submission.done:
        flash(_("New signing secret made: give it to the receiving system."), "success")
        return redirect(url_for(".show_endpoint", endpoint_id=endpoint_id))
    return _confirm(
        form,
        submission.status,
        title=_("Make a new signing secret for %(url)s?", url=endpoint.url),
        explanation=_("The old secret stops working at once: the receiver must get the new one."),
        cancel=url_for(".show_endpoint", endpoint_id=endpoint_id),
    )


@bp.post("/integrations/deliveries/<int:delivery_id>/redeliver")
@require(MANAGE)
def redeliver(delivery_id: int):
    endpoint_id = services.get_delivery(delivery_id).endpoint_id
    back = redirect(url_for(".show_endpoint", endpoint_id=endpoint_id))
    try:
        # In eager mode the attempt runs right after the commit.
        submission = submit(
            ActionForm(),
            lambda: services.redeliver(delivery_id).message_id,
            reraise=(DomainError,),
        )
    except services.EndpointDisabled as error:
        flash(error.message, "danger")
        return back
    if submission.done:
        flash(_("Message %(id)s queued again.", id=submission.result), "success")
    return back


# --- The outbox: what waits to leave -----------------------------------------------------


@bp.get("/outbox")
@require(MANAGE)
def show_outbox():
    filters = outbox_screen.outbox_filters(request.args)
    return render_template(
        "admin/integrations/outbox.html",
        messages=listing.paginate(outbox_screen.outbox_query(filters), "page"),
        filters=filters,
        statuses=outbox_screen.STATUS_FILTERS,
        jobs=outbox_screen.job_names(),
    )


@bp.route("/outbox/<int:message_id>/retry", methods=["GET", "POST"])
@require(MANAGE)
def retry_outbox_message(message_id: int):
    message = outbox_screen.get_message(message_id)
    back = url_for(".show_outbox")
    form = ConfirmForm()
    submission = submit(
        form, lambda: outbox_screen.retry_now(message_id), reraise=(outbox_screen.AlreadySent,)
    )
    if submission.done:
        flash(_("Message %(id)s (%(job)s) is due now.", id=message_id, job=message.job), "success")
        return redirect(back)
    return _confirm(
        form,
        submission.status,
        title=_("Retry message %(id)s (%(job)s) now?", id=message_id, job=message.job),
        explanation=_(
            "It is sent again at once, whatever its wait or its failed attempts. A message that"
            " reached its receiver before (without being marked sent) arrives twice, with the"
            " same Message-ID or webhook-id."
        ),
        cancel=back,
    )


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
