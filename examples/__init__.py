"""Runnable examples of OmniQ in web frameworks (see README, "Web frameworks")."""
