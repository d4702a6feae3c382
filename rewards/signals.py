"""What the rewards engine announces (outbound webhooks listen).

Both are sent inside the transaction that changes the rewards, with `reward_ids` and `now`;
a receiver that acts outside the database queues a job, which runs after the commit.
"""

from blinker import Namespace

_signals = Namespace()

rewards_approved = _signals.signal("rewards-approved")
rewards_paid = _signals.signal("rewards-paid")
