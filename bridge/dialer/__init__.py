"""``bridge call``: one synthetic call a person can follow and listen to.

Pure cores (no I/O, tested without sockets): :mod:`.plan` (command-line choices → the
caller's :class:`~bridge.emulator.twilio.script.CallScript`), :mod:`.timeline` (what the
caller experienced, as timed events and per-turn latency), :mod:`.wav` (what the caller
heard as a WAV file), :mod:`.capture` (the caller's own audio, frame by frame).

Adapters: :mod:`.local` (a private ``bridge serve`` child process) and :mod:`.run`
(places the call with the Twilio emulator's synthetic caller and prints the timeline
while it runs).
"""
