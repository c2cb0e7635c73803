"""The edge: what every connection meets before a request reaches the app.

uvicorn's HTTP parser enforces neither a head size, a header count nor a head timeout,
and reads any body the app asks for.  The edge does, before routing and before any
signature is checked, so no unauthenticated request can hold memory, a connection
slot or the event loop:

* :mod:`bridge.edge.limits`: the limits (from ``[server]`` in the config);
* :mod:`bridge.edge.scanner`: a pure incremental scanner of HTTP/1.x request framing
  (bytes in, verdicts out), no I/O;
* :mod:`bridge.edge.refusals`: the bytes of the edge's own answers (408/413/431/503);
* :mod:`bridge.edge.protocol`: the asyncio protocol uvicorn is given (``http=``) that
  wraps uvicorn's own HTTP protocol, feeds the scanner, runs the timers and refuses.
"""
