"""What the referral loop announces, for the parts of the product that act on it.

The rewards engine listens (it depends on the referral loop, never the other way round).
"""

from blinker import Namespace

_signals = Namespace()

# Sent with the Referral just recorded (any status) and `now`, inside its transaction.
referral_recorded = _signals.signal("referral-recorded")
# Sent with a Referral that a qualifying event just moved to `qualified`, and `now`.
referral_qualified = _signals.signal("referral-qualified")
