"""Staff panel — Operations: review queue, rewards, payouts, conversions.

Views parse the form, call one service, commit, then flash and redirect. Lists keep their
filters in the query string; the action pages carry them along and return to them.
"""

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import func, select

from admin import listing
from admin.operations import decisions, labels, purchases, queries
from admin.operations.forms import (
    ApproveRewardForm,
    CancelForm,
    CancelPayoutForm,
    DecisionForm,
    ManualPurchaseForm,
    PayForm,
)
from admin.policy import require
from core.errors import DomainError
from core.forms import submit
from extensions import db
from models import (
    CONVERSION_KINDS,
    CONVERSION_SOURCES,
    OUTCOMES,
    PAYOUT_STATUSES,
    REWARD_KINDS,
    REWARD_STATUSES,
    Conversion,
    Payout,
    Referral,
    Reward,
    utcnow,
)
from rewards import ledger, saleor_fulfilment

bp = Blueprint("operations", __name__)
bp.add_app_template_filter(labels.in_words, "in_words")
bp.add_app_template_filter(labels.conversion_reason, "conversion_reason")
bp.add_app_template_filter(labels.signal_detail, "signal_detail")

_QUEUES = {
    "referrals": queries.review_referrals_query,
    "purchases": queries.review_purchases_query,
}


# Query-string names that would collide with url_for's own arguments (or the export's `name`)
# when the filters are passed on as `**filters`: never kept.
_NOT_FILTERS = frozenset({"name", "endpoint"})


def _filters(with_page: bool = False) -> dict:
    """The list's filters as they came (and its page, to return to), kept in links."""
    return {
        key: value
        for key, value in request.args.items()
        if value
        and (with_page or key != "page")
        and key not in _NOT_FILTERS
        and not key.startswith("_")
    }


# --- review queue ----------------------------------------------------------------------------


def _queue(show: str):
    if show not in _QUEUES:
        abort(404)
    return _QUEUES[show](request.args)


def _count(query) -> int:
    return db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))


def _review_context(show: str, items: list) -> dict:
    """What each item needs on screen: the people it is about and their linked accounts."""
    if show == "referrals":
        people = [referral.referred for referral in items]
        return {"linked": decisions.linked_accounts(people), "held": {}}
    people = [conversion.participant for conversion in items if conversion.participant]
    return {
        "linked": decisions.linked_accounts(people),
        "held": queries.held_rewards(items),
    }


def _review_page(show: str, form: DecisionForm, status: int = 200):
    entries = listing.paginate(_queue(show))
    counts = {name: _count(query(request.args)) for name, query in _QUEUES.items()}
    return render_template(
        "admin/operations/review.html",
        show=show,
        entries=entries,
        counts=counts,
        form=form,
        **_review_context(show, entries.items),
    ), status


@bp.get("/review")
@require("review.decide")
def review_queue():
    show = request.args.get("show", "referrals")
    _queue(show)
    return _review_page(show, DecisionForm(formdata=None))


@bp.post("/review/<any(referrals, purchases):show>/decide")
@require("review.decide")
def decide_review(show: str):
    form = DecisionForm()
    submission = _decide(show, form)
    if not submission.done:
        return _review_page(show, form, submission.status)
    return _decided(show, form, submission.result)


def _decide(show: str, form: DecisionForm):
    """Apply the decision to the ticked items; a refusal goes to the error page."""
    decide = decisions.decide_referrals if show == "referrals" else decisions.decide_purchases
    return submit(
        form,
        lambda: decide(form.ids.data, bool(form.approve.data), form.reason.data, utcnow()),
        reraise=(DomainError,),
    )


def _decided(show: str, form: DecisionForm, result: decisions.Decided):
    _flash_decision(result, approved=bool(form.approve.data))
    return redirect(url_for(".review_queue", **{**_filters(with_page=True), "show": show}))


def _flash_decision(result: decisions.Decided, approved: bool) -> None:
    if result.changed:
        ids = "#" + ", #".join(map(str, result.changed))
        count = len(result.changed)
        if approved:
            done = ngettext(
                "%(num)d approved: %(ids)s.", "%(num)d approved: %(ids)s.", count, ids=ids
            )
        else:
            done = ngettext(
                "%(num)d rejected: %(ids)s.", "%(num)d rejected: %(ids)s.", count, ids=ids
            )
        flash(done, "success")
    if result.already_decided:
        ids = "#" + ", #".join(map(str, result.already_decided))
        flash(
            ngettext(
                "%(num)d no longer waiting (already decided by someone else): %(ids)s. "
                "Nothing was changed for them.",
                "%(num)d no longer waiting (already decided by someone else): %(ids)s. "
                "Nothing was changed for them.",
                len(result.already_decided),
                ids=ids,
            ),
            "warning",
        )


@bp.route("/review/<any(referrals, purchases):show>/<int:item_id>", methods=["GET", "POST"])
@require("review.decide")
def review_item(show: str, item_id: int):
    item = db.get_or_404(Referral if show == "referrals" else Conversion, item_id)
    form = DecisionForm()
    submission = _decide(show, form)
    if submission.done:
        return _decided(show, form, submission.result)
    return render_template(
        "admin/operations/review_item.html",
        show=show,
        item=item,
        form=form,
        **_review_context(show, [item]),
    ), submission.status


# --- rewards ---------------------------------------------------------------------------------


@bp.get("/rewards")
@require("rewards.manage")
def list_rewards():
    entries = listing.paginate(queries.rewards_query(request.args))
    return render_template(
        "admin/operations/rewards.html",
        entries=entries,
        # Paid out by issuing them in Saleor (a rollout left them for staff), not by hand.
        saleor_pay_out=saleor_fulfilment.awaiting_staff_among([r.id for r in entries.items]),
        statuses=REWARD_STATUSES,
        kinds=REWARD_KINDS,
        programs=queries.program_choices(),
        filters=_filters(),
    )


def _confirm(form, *, title: str, record, action, done: str, back: str):
    """The confirmation page of one action; on a valid POST, do it once and go back."""
    submission = submit(form, lambda: action(form))
    if submission.done:
        flash(done, "success")
        return redirect(back)
    return render_template(
        "admin/operations/confirm.html", form=form, title=title, record=record, back=back
    ), submission.status


def _reward_action(reward_id: int, form, title: str, action, done: str):
    """`title` names the reward with %(id)s."""
    reward = db.get_or_404(Reward, reward_id)
    return _confirm(
        form,
        title=title % {"id": reward.id},
        record=reward,
        action=lambda form: action(reward, form),
        done=done,
        back=url_for(".list_rewards", **_filters(with_page=True)),
    )


@bp.route("/rewards/<int:reward_id>/approve", methods=["GET", "POST"])
@require("rewards.manage")
def approve_reward(reward_id: int):
    return _reward_action(
        reward_id,
        ApproveRewardForm(),
        _("Approve before the hold ends: reward #%(id)s"),
        lambda reward, form: ledger.approve_reward_early(reward, utcnow()),
        _("Reward #%(id)s approved before its hold ended (staff override).", id=reward_id),
    )


@bp.route("/rewards/<int:reward_id>/cancel", methods=["GET", "POST"])
@require("rewards.manage")
def cancel_reward(reward_id: int):
    return _reward_action(
        reward_id,
        CancelForm(),
        _("Cancel reward #%(id)s"),
        lambda reward, form: ledger.cancel_reward(reward, form.reason.data, utcnow()),
        _("Reward #%(id)s cancelled.", id=reward_id),
    )


@bp.route("/rewards/<int:reward_id>/pay", methods=["GET", "POST"])
@require("rewards.manage")
def pay_reward(reward_id: int):
    return _reward_action(
        reward_id,
        PayForm(),
        _("Mark paid: reward #%(id)s"),
        lambda reward, form: ledger.mark_reward_paid(reward, form.reference.data, utcnow()),
        _("Reward #%(id)s marked paid.", id=reward_id),
    )


# --- payouts ---------------------------------------------------------------------------------


@bp.get("/payouts")
@require("payouts.manage")
def list_payouts():
    return render_template(
        "admin/operations/payouts.html",
        entries=listing.paginate(queries.payouts_query(request.args)),
        statuses=PAYOUT_STATUSES,
        filters=_filters(),
    )


def _payout_action(payout_id: int, form, title: str, action, done: str):
    """`title` names the payout request with %(id)s."""
    payout = db.get_or_404(Payout, payout_id)
    return _confirm(
        form,
        title=title % {"id": payout.id},
        record=payout,
        action=lambda form: action(payout, form),
        done=done,
        back=url_for(".list_payouts", **_filters(with_page=True)),
    )


@bp.route("/payouts/<int:payout_id>/pay", methods=["GET", "POST"])
@require("payouts.manage")
def pay_payout(payout_id: int):
    return _payout_action(
        payout_id,
        PayForm(),
        _("Mark paid: payout request #%(id)s"),
        lambda payout, form: ledger.mark_payout_paid(payout, form.reference.data, utcnow()),
        _("Payout request #%(id)s marked paid.", id=payout_id),
    )


@bp.route("/payouts/<int:payout_id>/cancel", methods=["GET", "POST"])
@require("payouts.manage")
def cancel_payout(payout_id: int):
    return _payout_action(
        payout_id,
        CancelPayoutForm(),
        _("Cancel payout request #%(id)s"),
        lambda payout, form: ledger.cancel_payout(payout, form.reason.data),
        _("Payout request #%(id)s cancelled; its rewards are available again.", id=payout_id),
    )


# --- conversions -----------------------------------------------------------------------------


@bp.get("/conversions")
@require("conversions.manage")
def list_conversions():
    return render_template(
        "admin/operations/conversions.html",
        entries=listing.paginate(queries.conversions_query(request.args)),
        sources=CONVERSION_SOURCES,
        kinds=CONVERSION_KINDS,
        outcomes=OUTCOMES,
        filters=_filters(),
    )


@bp.route("/conversions/new", methods=["GET", "POST"])
@require("conversions.manage")
def record_purchase():
    form = ManualPurchaseForm()
    submission = submit(
        form,
        lambda: purchases.record_manual_purchase(
            email=form.email.data,
            order_id=form.order_id.data,
            amount=form.amount.data,
            currency=form.currency.data,
            day=form.occurred_on.data,
            now=utcnow(),
        ),
    )
    if not submission.done:
        page = render_template("admin/operations/record_purchase.html", form=form)
        return page, submission.status
    outcome = submission.result
    flash(
        _("Order %(id)s: %(outcome)s", id=form.order_id.data, outcome=purchases.describe(outcome)),
        "warning" if outcome.outcome == "duplicate" else "success",
    )
    return redirect(url_for(".list_conversions", source="manual"))
