"""Twilio: the Media Streams protocol core (pure) and the Twilio-facing helpers."""
