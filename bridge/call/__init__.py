"""One phone call: the CallSession state machine, its asyncio driver, tools and registries."""
