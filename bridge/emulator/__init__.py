"""Offline emulators of the services the bridge talks to, for trying, developing and
load-testing the bridge without accounts: ``bridge.emulator.platform`` (the Agents
Platform: REST and the conversation WebSocket) and ``bridge.emulator.twilio``."""
