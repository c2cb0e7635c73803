"""Agents Platform REST: typed models of the seed endpoints and the async client.

The models (``common``, ``phone_numbers``, ``agents``, ``workspace``, ``widget``,
``invocations``) are msgspec Structs shaped exactly like the schemas in
``../shared/seeds/``; the client (:mod:`bridge.platform.client`) encodes requests and
decodes responses with them, and the platform emulator decodes requests and encodes
responses with the very same structs, so the two cannot drift apart.

Conventions: every Struct is ``kw_only``; a request field the caller may leave out
defaults to ``msgspec.UNSET`` and is then not sent (so ``agent_id=None`` on a phone-number
update means "unassign", while leaving it unset means "do not touch"); response fields
are always present, ``None`` encoding as JSON ``null`` as the platform does.
"""
