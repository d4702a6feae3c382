"""The participant's ledger pages; the JSON API and the webhooks hang off this blueprint."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from auth import email_choices
from core.forms import submit
from core.money import format_amount
from core.pagination import parse_page
from models import utcnow
from referral import services as referral_services
from referral.offer import offer_of
from rewards import ledger
from rewards.api import api_bp
from rewards.forms import PayoutForm
from rewards.saleor import saleor_bp
from rewards.saleor_app import saleor_app_bp
from rewards.stripe_webhooks import stripe_bp
from rewards.webhooks import webhooks_bp

bp = Blueprint("rewards", __name__)
bp.register_blueprint(api_bp)
bp.register_blueprint(webhooks_bp)
bp.register_blueprint(saleor_bp)
bp.register_blueprint(saleor_app_bp)
bp.register_blueprint(stripe_bp)


@bp.app_template_filter("money")
def money(amount: int, currency: str, kind: str | None = None) -> str:
    return format_amount(amount, currency, kind)


def _ledger_page(form: PayoutForm, status: int = 200):
    page = parse_page(request.args.get("page"))
    inviting = ledger.inviting_program(current_user)
    return render_template(
        "rewards/ledger.html",
        entries=ledger.ledger_page(current_user, page, current_app.config["DASHBOARD_PAGE_SIZE"]),
        balances=ledger.balances(current_user),
        open_payouts=ledger.open_payouts(current_user),
        minimum=current_app.config["PAYOUT_MINIMUM"],
        form=form,
        usage=[offer_of(program) for program in ledger.programs_rewarding(current_user)],
        offer=offer_of(referral_services.default_program()),
        invited_by=offer_of(inviting) if inviting else None,
    ), status


@bp.get("/rewards/", endpoint="ledger")
@login_required
def show_ledger():
    return _ledger_page(PayoutForm(formdata=None))


@bp.post("/rewards/payouts")
@login_required
def request_payout():
    form = PayoutForm()
    submitted = submit(
        form,
        lambda: ledger.request_payout(current_user, form.kind.data, form.currency.data, utcnow()),
    )
    if submitted.invalid:
        form.form_errors.append(_("Choose one of your balances to pay out."))
    if not submitted.done:
        return _ledger_page(form, submitted.status)
    payout = submitted.result
    amount = format_amount(payout.amount, payout.currency)
    if email_choices.wants(current_user, "payouts") and current_user.email:
        flash(
            _("Payout of %(amount)s requested. We will email you once it is paid.", amount=amount),
            "success",
        )
    else:  # they turned payout emails off (or have no address): no promise of one
        flash(
            _("Payout of %(amount)s requested. Your ledger shows when it is paid.", amount=amount),
            "success",
        )
    return redirect(url_for("rewards.ledger"))
