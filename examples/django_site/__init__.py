"""A Django project with OmniQ (see README, "Django")."""
