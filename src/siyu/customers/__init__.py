"""Customers (客户): external contacts, follow relations, tags, notes, lifecycle and the timeline of each."""
