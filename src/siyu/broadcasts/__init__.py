"""Broadcasts (群发): 1-on-1 mass messages to an audience, each advisor as sender for their own
customers, under the delivery policy."""
