"""What the referral loop announces, for the parts of the product that act on it.

The rewards engine listens (it depends on the referral loop, never the other way round).
app.register_signal_receivers connects every receiver, in the order they run.
"""

from core.signals import OrderedSignal

# Sent with the Referral just recorded (any status) and `now`, inside its transaction.
referral_recorded = OrderedSignal("referral-recorded")
# Sent with the same Referral (its status as recorded) and `now` after that transaction
# committed, from the outbox (referral/announcements.py): what it sets off outside its rows.
referral_announced = OrderedSignal("referral-announced")
# Sent with a Referral that a qualifying event just moved to `qualified`, and `now`.
referral_qualified = OrderedSignal("referral-qualified")
