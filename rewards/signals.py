"""What the rewards engine announces (outbound webhooks and the Saleor app listen).

Each is sent inside the transaction that changes the rewards, with `reward_ids` and `now`;
a receiver that acts outside the database queues a job, which runs after the commit.
"""

from core.signals import OrderedSignal

rewards_approved = OrderedSignal("rewards-approved")
rewards_paid = OrderedSignal("rewards-paid")
# A refund took back all that was left of these entries (`reward_ids`, the entries reversed).
rewards_reversed = OrderedSignal("rewards-reversed")
# A shop's customer became a participant, or a participant was linked to the shop's customer
# id (`user_id`, `source` of the event, e.g. "saleor"): the shop may be told their code.
customer_joined = OrderedSignal("customer-joined")
