"""Every GraphQL document InviteLoop exchanges with Saleor, in one place: the subscription
queries its webhooks are registered with (the manifest) and the operations it sends with the
app token. tests/test_saleor_app.py validates each against Saleor's published schema.
"""

from rewards.saleor import ORDER_FRAGMENT
from rewards.saleor import SUBSCRIPTION_QUERY as ORDER_EVENTS_SUBSCRIPTION

CUSTOMER_CREATED_SUBSCRIPTION = """
subscription InviteLoopCustomerCreated {
  event {
    __typename
    issuedAt
    ... on CustomerCreated {
      user { id email firstName lastName metadata { key value } }
    }
  }
}
"""

APP_DELETED_SUBSCRIPTION = """
subscription InviteLoopAppDeleted {
  event {
    __typename
    issuedAt
    ... on AppDeleted { app { id } }
  }
}
"""

# Sent with a freshly received token before it is stored: the app the token belongs to.
WHO_AM_I = """
query InviteLoopWhoAmI {
  app { id name isActive }
}
"""

# The metadata key that ties a Saleor object to the InviteLoop reward it pays.
REWARD_METADATA_KEY = "inviteloop_reward_id"

# Before any gift card is created: the one an earlier attempt may already have made.
FIND_GIFT_CARD = """
query InviteLoopFindGiftCard($filter: GiftCardFilterInput) {
  giftCards(first: 2, filter: $filter) {
    edges { node { id code isActive initialBalance { amount currency } } }
  }
}
"""

CREATE_GIFT_CARD = """
mutation InviteLoopCreateGiftCard($input: GiftCardCreateInput!) {
  giftCardCreate(input: $input) {
    giftCard { id code isActive initialBalance { amount currency } }
    errors { field code message }
  }
}
"""

# A refunded purchase's card: deactivated only while nobody has spent from it.
READ_GIFT_CARD = """
query InviteLoopReadGiftCard($id: ID!) {
  giftCard(id: $id) {
    id isActive lastUsedOn
    initialBalance { amount currency }
    currentBalance { amount currency }
  }
}
"""

DEACTIVATE_GIFT_CARD = """
mutation InviteLoopDeactivateGiftCard($id: ID!) {
  giftCardDeactivate(id: $id) {
    giftCard { id isActive }
    errors { field code message }
  }
}
"""

# A coupon reward is a single-use voucher whose code is the one InviteLoop generated: that
# code (unique in both systems) is what a retry looks for before creating another.
FIND_VOUCHER = """
query InviteLoopFindVoucher($filter: VoucherFilterInput) {
  vouchers(first: 5, filter: $filter) {
    edges { node { id code } }
  }
}
"""

CREATE_VOUCHER = """
mutation InviteLoopCreateVoucher($input: VoucherInput!) {
  voucherCreate(input: $input) {
    voucher { id code }
    errors { field code message }
  }
}
"""

# Idempotent: run after every find-or-create, so a voucher whose listing failed gets one.
LIST_VOUCHER_IN_CHANNEL = """
mutation InviteLoopListVoucher($id: ID!, $input: VoucherChannelListingInput!) {
  voucherChannelListingUpdate(id: $id, input: $input) {
    voucher { id }
    errors { field code message }
  }
}
"""

# Reconciliation: whether a paid voucher has been used at the shop.
READ_VOUCHER = """
query InviteLoopReadVoucher($id: ID!) {
  voucher(id: $id) { id used usageLimit }
}
"""

# A Saleor customer who became a participant: their code on `User.metadata.ref_code`, for
# the storefront to show and share.
WRITE_METADATA = """
mutation InviteLoopWriteMetadata($id: ID!, $input: [MetadataInput!]!) {
  updateMetadata(id: $id, input: $input) {
    errors { field code message }
  }
}
"""

# Reconciliation: the paid orders changed since a moment, a page at a time, with the same
# fields as the order webhooks, so a missed one goes through the same intake.
RECENT_PAID_ORDERS = (
    """
query InviteLoopRecentPaidOrders($since: DateTime!, $after: String) {
  orders(
    first: 50
    after: $after
    where: { updatedAt: { gte: $since }, chargeStatus: { oneOf: [FULL, OVERCHARGED] } }
  ) {
    pageInfo { hasNextPage endCursor }
    edges { node { ...InviteLoopOrder } }
  }
}
"""
    + ORDER_FRAGMENT
)

OPERATIONS = {
    "RECENT_PAID_ORDERS": RECENT_PAID_ORDERS,
    "READ_VOUCHER": READ_VOUCHER,
    "WRITE_METADATA": WRITE_METADATA,
    "WHO_AM_I": WHO_AM_I,
    "FIND_GIFT_CARD": FIND_GIFT_CARD,
    "CREATE_GIFT_CARD": CREATE_GIFT_CARD,
    "READ_GIFT_CARD": READ_GIFT_CARD,
    "DEACTIVATE_GIFT_CARD": DEACTIVATE_GIFT_CARD,
    "FIND_VOUCHER": FIND_VOUCHER,
    "CREATE_VOUCHER": CREATE_VOUCHER,
    "LIST_VOUCHER_IN_CHANNEL": LIST_VOUCHER_IN_CHANNEL,
}
SUBSCRIPTIONS = {
    "ORDER_EVENTS_SUBSCRIPTION": ORDER_EVENTS_SUBSCRIPTION,
    "CUSTOMER_CREATED_SUBSCRIPTION": CUSTOMER_CREATED_SUBSCRIPTION,
    "APP_DELETED_SUBSCRIPTION": APP_DELETED_SUBSCRIPTION,
}
