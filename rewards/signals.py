"""What the rewards engine announces (outbound webhooks listen).

Both are sent inside the transaction that changes the rewards, with `reward_ids` and `now`;
a receiver that acts outside the database queues a job, which runs after the commit.
"""

from core.signals import OrderedSignal

rewards_approved = OrderedSignal("rewards-approved")
rewards_paid = OrderedSignal("rewards-paid")
