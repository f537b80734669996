"""The kinds of analytics events and the dimensions an event may carry."""

from __future__ import annotations

# What happens to a customer. The domains, the firm integration API, the backfill and
# `siyu analytics import` write only these.
EVENT_TYPES: tuple[str, ...] = (
    "customer.added",
    "customer.verified",
    "customer.lost",
    "group.joined",
    "group.left",
    "message.received",
    "message.sent",
    "campaign.reward_paid",
    "coupon.redeemed",
    "order.invested",
    "order.redeemed",
    "order.matured",
)

# The optional dimensions of an event (columns of analytics_event), each a short key, never a name.
DIMENSIONS: tuple[str, ...] = ("channel", "join_way", "campaign", "advisor", "persona", "variant", "product",
                               "group_key")
