"""The participant's rewards as JSON, for embedding (`/api/v1/me/rewards`)."""

from flask import Blueprint

api_bp = Blueprint("rewards_api", __name__, url_prefix="/api/v1")
