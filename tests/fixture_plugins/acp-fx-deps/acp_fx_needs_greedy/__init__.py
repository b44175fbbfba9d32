"""Fixture plugin needs-greedy."""
