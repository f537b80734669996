"""Acquisition (获客): channel codes, personas, welcome flows, keyword replies, leads and call tasks, verification."""
