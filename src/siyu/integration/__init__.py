"""Firm integration (系统对接): the REST API the firm's core systems call (KYC risk levels, orders
and redemptions, customer lookups) and signed outbound webhooks on customer events."""
