"""Signals that a referral is not what it seems. Each gives a reason code and points;
the rewards issue builds the full risk score on top of these."""

from dataclasses import dataclass

from models import User

SELF_REFERRAL = "self_referral"


@dataclass(frozen=True)
class Signal:
    code: str
    points: int
    detail: str

    def as_dict(self) -> dict:
        return {"code": self.code, "points": self.points, "detail": self.detail}


def self_referral_signals(referred: User, referrer: User) -> list[Signal]:
    """The new account looks like the referrer: the same person, browser or mailbox."""
    signals = []
    if referred.id == referrer.id:
        signals.append(Signal("same_person", 100, "the code belongs to this account"))
    if referred.device_id and referred.device_id == referrer.device_id:
        signals.append(Signal("same_device", 100, "signed up from the referrer's browser"))
    if referred.email_canonical and referred.email_canonical == referrer.email_canonical:
        signals.append(Signal("same_mailbox", 100, "an alias of the referrer's email address"))
    return signals
