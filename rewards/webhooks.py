"""Conversions from other systems: the signed events API, code issuing, external referrals."""

from flask import Blueprint

from extensions import csrf

webhooks_bp = Blueprint("webhooks", __name__)
csrf.exempt(webhooks_bp)
