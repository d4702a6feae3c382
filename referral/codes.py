"""Referral codes: short, unguessable, and impossible to misread aloud or in print."""

import re
import secrets

# No 0/O, 1/I/L: nothing a person could confuse when reading or typing a code.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
MIN_LENGTH, MAX_LENGTH = 6, 8
_CODE = re.compile(rf"[{ALPHABET}]{{{MIN_LENGTH},{MAX_LENGTH}}}")


def generate_code(length: int = MIN_LENGTH) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def normalize_code(raw: str | None) -> str | None:
    """The stored form of a code ("ab3k9z " -> "AB3K9Z"), or None if it cannot be one."""
    if not raw:
        return None
    candidate = raw.strip().upper()
    return candidate if _CODE.fullmatch(candidate) else None
