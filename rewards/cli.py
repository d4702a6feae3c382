"""`flask rewards ...`: hold release, expiry and program rules from the command line."""

from flask.cli import AppGroup

rewards_cli = AppGroup("rewards", help="Rewards: release holds, expire, program rules.")
