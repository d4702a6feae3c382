"""The staff panel. Its screens arrive with the admin issue; its commands live in cli.py."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")
