"""rel_lib: helpers for the reliability tests (tests/integration/rel_*)."""
