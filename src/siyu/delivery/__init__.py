"""Delivery (触达): one policy for every marketing send — the per-customer ledger, frequency caps,
WeCom's allowance, quiet hours, the marketing opt-out, holdout control groups and lift, and the
set-based plan preview of an audience."""
