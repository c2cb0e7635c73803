"""Shared test set-up.  Fixture plugins live in ``tests/fixtures/`` (one per peer)."""

pytest_plugins = [
    "tests.fixtures.platform_emulator",
    "tests.fixtures.postgres",
    "tests.fixtures.twilio_emulator",
]
