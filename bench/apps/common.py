"""Payloads shared by every Python bench app (same bytes in every server)."""

PLAINTEXT = b"Hello, World!"
JSON_MESSAGE = {"message": "Hello, World!"}
BODY_10K = b"x" * 10 * 1024
BODY_1M = b"x" * 1024 * 1024
SLEEP_S = 0.010
SLEPT = b"slept"
