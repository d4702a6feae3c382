"""The participant's ledger pages; the JSON API and the webhooks hang off this blueprint."""

from flask import Blueprint

from rewards.api import api_bp
from rewards.saleor import saleor_bp
from rewards.stripe_webhooks import stripe_bp
from rewards.webhooks import webhooks_bp

bp = Blueprint("rewards", __name__)
bp.register_blueprint(api_bp)
bp.register_blueprint(webhooks_bp)
bp.register_blueprint(saleor_bp)
bp.register_blueprint(stripe_bp)
