"""Saleor order webhooks (`POST /webhooks/order-confirmed`)."""

from flask import Blueprint

from extensions import csrf

saleor_bp = Blueprint("saleor", __name__)
csrf.exempt(saleor_bp)
