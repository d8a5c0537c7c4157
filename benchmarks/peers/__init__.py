"""Peer comparison: OmniQ and other task queues, each in its own virtualenv (see harness)."""
