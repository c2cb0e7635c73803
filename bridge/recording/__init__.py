"""Recordings of what the caller heard (docs/recording.md)."""
