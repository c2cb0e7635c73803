"""The admin HTTP API (``/admin/...``): numbers, agents and calls of a running bridge.

:func:`bridge.admin.routes.admin_routes` gives the routes to add to the main app; the
operations themselves are in :mod:`bridge.admin.service`.  (Nothing is imported here, so
the request models can be used without pulling in the service.)
"""
