"""Staff panel — Operations: review queue, rewards, payouts, conversions.

Views parse the form, call one service, commit, then flash and redirect. Lists keep their
filters in the query string; the action pages carry them along and return to them.
"""

from operator import attrgetter

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import func, select

from admin import exports, listing, operations
from admin.operations_forms import (
    ApproveRewardForm,
    CancelForm,
    CancelPayoutForm,
    DecisionForm,
    ManualPurchaseForm,
    PayForm,
)
from admin.policy import require
from core.errors import DomainError
from core.forms import show_domain_error
from core.templating import mask_email
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
from rewards import ledger

bp = Blueprint("operations", __name__)

_QUEUES = {
    "referrals": operations.review_referrals_query,
    "purchases": operations.review_purchases_query,
}


def _reasons(item) -> str:
    return "; ".join(f"{r['code']} ({r['points']})" for r in item.risk_reasons or [])


def _columns(names: str, **computed) -> list:
    """CSV columns: attributes by name ("created_at" -> header "created at"), then any
    computed ones."""
    plain = [(name.replace("_", " "), attrgetter(name)) for name in names.split()]
    return plain + [(header.replace("_", " "), value) for header, value in computed.items()]


exports.register(
    "review",
    "review.decide",
    _columns(
        "id created_at referred_id referrer_id risk_score",
        referred_email=lambda r: mask_email(r.referred.email),
        referrer_email=lambda r: mask_email(r.referrer.email),
        reasons=_reasons,
    ),
    operations.review_referrals_query,
)
exports.register(
    "review_purchases",
    "review.decide",
    _columns("id created_at participant_id order_id amount currency risk_score", reasons=_reasons),
    operations.review_purchases_query,
)
exports.register(
    "rewards",
    "rewards.manage",
    _columns(
        "id created_at beneficiary_id program_id role level kind amount currency status reason"
        " available_at paid_at payout_id external_reference",
        beneficiary_email=lambda r: r.beneficiary.email,
    ),
    operations.rewards_query,
)
exports.register(
    "payouts",
    "payouts.manage",
    _columns(
        "id created_at user_id kind amount currency status reference paid_at",
        user_email=lambda p: p.user.email,
    ),
    operations.payouts_query,
)
exports.register(
    "conversions",
    "conversions.manage",
    _columns(
        "id created_at occurred_at source kind external_id order_id participant_id amount"
        " currency outcome reason risk_score"
    ),
    operations.conversions_query,
)


def _filters(with_page: bool = False) -> dict:
    """The list's filters as they came (and its page, to return to), kept in links."""
    return {
        key: value for key, value in request.args.items() if value and (with_page or key != "page")
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
        return {"linked": operations.linked_accounts(people), "held": {}}
    people = [conversion.participant for conversion in items if conversion.participant]
    return {
        "linked": operations.linked_accounts(people),
        "held": operations.held_rewards([conversion.id for conversion in items]),
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
    if not form.validate_on_submit():
        return _review_page(show, form, 400)
    return _decide(show, form)


def _decide(show: str, form: DecisionForm):
    decide = operations.decide_referrals if show == "referrals" else operations.decide_purchases
    result = decide(form.ids.data, bool(form.approve.data), form.reason.data, utcnow())
    db.session.commit()
    _flash_decision(result, "approved" if form.approve.data else "rejected")
    return redirect(url_for(".review_queue", **{**_filters(with_page=True), "show": show}))


def _flash_decision(result: operations.Decided, verb: str) -> None:
    if result.changed:
        flash(f"{len(result.changed)} {verb}: #{', #'.join(map(str, result.changed))}.", "success")
    if result.already_decided:
        ids = ", #".join(map(str, result.already_decided))
        flash(
            f"{len(result.already_decided)} no longer waiting (already decided by someone "
            f"else): #{ids}. Nothing was changed for them.",
            "warning",
        )


@bp.route("/review/<any(referrals, purchases):show>/<int:item_id>", methods=["GET", "POST"])
@require("review.decide")
def review_item(show: str, item_id: int):
    item = db.get_or_404(Referral if show == "referrals" else Conversion, item_id)
    form = DecisionForm()
    if form.validate_on_submit():
        return _decide(show, form)
    status = 400 if request.method == "POST" else 200
    return render_template(
        "admin/operations/review_item.html",
        show=show,
        item=item,
        form=form,
        **_review_context(show, [item]),
    ), status


# --- rewards ---------------------------------------------------------------------------------


@bp.get("/rewards")
@require("rewards.manage")
def list_rewards():
    return render_template(
        "admin/operations/rewards.html",
        entries=listing.paginate(operations.rewards_query(request.args)),
        statuses=REWARD_STATUSES,
        kinds=REWARD_KINDS,
        programs=operations.program_choices(),
        filters=_filters(),
    )


def _confirm(form, *, title: str, record, action, done: str, back: str):
    """The confirmation page of one action; on a valid POST, do it once and go back."""
    if form.validate_on_submit():
        try:
            action(form)
            db.session.commit()
        except DomainError as error:
            db.session.rollback()
            status = show_domain_error(form, error)
        else:
            flash(done, "success")
            return redirect(back)
    else:
        status = 400 if request.method == "POST" else 200
    return render_template(
        "admin/operations/confirm.html", form=form, title=title, record=record, back=back
    ), status


def _reward_action(reward_id: int, form, title: str, action, done: str):
    reward = db.get_or_404(Reward, reward_id)
    return _confirm(
        form,
        title=f"{title} reward #{reward.id}",
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
        "Approve before the hold ends:",
        lambda reward, form: ledger.approve_reward_early(reward, utcnow()),
        f"Reward #{reward_id} approved before its hold ended (staff override).",
    )


@bp.route("/rewards/<int:reward_id>/cancel", methods=["GET", "POST"])
@require("rewards.manage")
def cancel_reward(reward_id: int):
    return _reward_action(
        reward_id,
        CancelForm(),
        "Cancel",
        lambda reward, form: ledger.cancel_reward(reward, form.reason.data, utcnow()),
        f"Reward #{reward_id} cancelled.",
    )


@bp.route("/rewards/<int:reward_id>/pay", methods=["GET", "POST"])
@require("rewards.manage")
def pay_reward(reward_id: int):
    return _reward_action(
        reward_id,
        PayForm(),
        "Mark paid:",
        lambda reward, form: ledger.mark_reward_paid(reward, form.reference.data, utcnow()),
        f"Reward #{reward_id} marked paid.",
    )


# --- payouts ---------------------------------------------------------------------------------


@bp.get("/payouts")
@require("payouts.manage")
def list_payouts():
    return render_template(
        "admin/operations/payouts.html",
        entries=listing.paginate(operations.payouts_query(request.args)),
        statuses=PAYOUT_STATUSES,
        filters=_filters(),
    )


def _payout_action(payout_id: int, form, title: str, action, done: str):
    payout = db.get_or_404(Payout, payout_id)
    return _confirm(
        form,
        title=f"{title} payout request #{payout.id}",
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
        "Mark paid:",
        lambda payout, form: ledger.mark_payout_paid(payout, form.reference.data, utcnow()),
        f"Payout request #{payout_id} marked paid.",
    )


@bp.route("/payouts/<int:payout_id>/cancel", methods=["GET", "POST"])
@require("payouts.manage")
def cancel_payout(payout_id: int):
    return _payout_action(
        payout_id,
        CancelPayoutForm(),
        "Cancel",
        lambda payout, form: ledger.cancel_payout(payout, form.reason.data),
        f"Payout request #{payout_id} cancelled; its rewards are available again.",
    )


# --- conversions -----------------------------------------------------------------------------


@bp.get("/conversions")
@require("conversions.manage")
def list_conversions():
    return render_template(
        "admin/operations/conversions.html",
        entries=listing.paginate(operations.conversions_query(request.args)),
        sources=CONVERSION_SOURCES,
        kinds=CONVERSION_KINDS,
        outcomes=OUTCOMES,
        filters=_filters(),
    )


@bp.route("/conversions/new", methods=["GET", "POST"])
@require("conversions.manage")
def record_purchase():
    form = ManualPurchaseForm()
    status = 400 if request.method == "POST" else 200
    if form.validate_on_submit():
        try:
            outcome = operations.record_manual_purchase(
                email=form.email.data,
                order_id=form.order_id.data,
                amount=form.amount.data,
                currency=form.currency.data,
                day=form.occurred_on.data,
                now=utcnow(),
            )
            db.session.commit()
        except DomainError as error:
            db.session.rollback()
            status = show_domain_error(form, error)
        else:
            duplicate = outcome.outcome == "duplicate"
            flash(
                f"Order {form.order_id.data}: {operations.describe(outcome)}",
                "warning" if duplicate else "success",
            )
            return redirect(url_for(".list_conversions", source="manual"))
    return render_template("admin/operations/record_purchase.html", form=form), status
