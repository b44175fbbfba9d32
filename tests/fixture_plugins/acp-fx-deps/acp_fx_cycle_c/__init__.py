"""Fixture plugin cycle-c."""
