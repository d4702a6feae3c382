"""Where log lines go and which ones are written: one handler on standard output, at the level
LOG_LEVEL names.

With LOG_LEVEL unset, development keeps the lines written once per message sent (each email,
each job Celery runs, each outbox delivery) at WARNING: a developer's console, and `make run`
with its demo seed, show what happened rather than hundreds of deliveries of mail nobody
receives. Production's default, and any LOG_LEVEL set on purpose, writes them at that level."""

import logging
import sys

DEFAULT_LEVEL = "INFO"
# One line per email, per job run or per delivery attempt.
PER_MESSAGE_LOGGERS = ("core.mail", "core.outbox", "celery.app.trace", "celery.worker.strategy")


def configure_logging(config) -> None:
    root = logging.getLogger()
    if not any(getattr(handler, "_inviteloop", False) for handler in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._inviteloop = True
        root.addHandler(handler)
    root.setLevel(config["LOG_LEVEL"] or DEFAULT_LEVEL)
    quiet = per_message_lines_hidden(config)
    for name in PER_MESSAGE_LOGGERS:
        # NOTSET: the root's level again, when an earlier app in this process had raised it.
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)


def per_message_lines_hidden(config) -> bool:
    return config["LOG_LEVEL"] is None and config["APP_ENV"] != "production"
