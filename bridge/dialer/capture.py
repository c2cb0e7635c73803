"""The caller's own audio, kept frame by frame as the script produces it (pure).

The synthetic caller records when each frame went out (``StreamRecord.frames``) but not
its bytes; :class:`CapturingRunner` keeps them, so the WAV can carry what the caller said
on a second channel.  Every tick that sends a frame appends exactly one; a tick that
hangs up sends none (so the i-th kept frame is the i-th entry of the streams' frames).
"""

from __future__ import annotations

from bridge.emulator.twilio.script import CallScript, ScriptRunner, Tick


class CapturingRunner(ScriptRunner):
    def __init__(self, script: CallScript) -> None:
        super().__init__(script)
        self.frames: list[bytes] = []

    def tick(self, now: float, agent_playing: bool) -> Tick:
        t = super().tick(now, agent_playing)
        if t.hangup is None:
            self.frames.append(t.frame)
        return t
