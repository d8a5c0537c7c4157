"""The conformance suite: one specification of the three storage interfaces, run on every backend."""
