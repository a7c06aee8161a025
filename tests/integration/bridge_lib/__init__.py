"""Helpers for the bridge integration tests (not run as tests)."""
