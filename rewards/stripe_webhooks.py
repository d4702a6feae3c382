"""Stripe webhooks (`POST /webhooks/stripe`)."""

from flask import Blueprint

from extensions import csrf

stripe_bp = Blueprint("stripe", __name__)
csrf.exempt(stripe_bp)
