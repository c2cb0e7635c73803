"""WebSockets as synchronous callbacks for the relay's hot path (see :mod:`.socket`)."""
