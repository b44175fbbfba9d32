"""A victim: keeps a secret in its data directory and answers commands."""
