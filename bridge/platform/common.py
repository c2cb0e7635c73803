"""Shapes shared by several Agents Platform endpoints: audio format names, access info,
error bodies."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

# The seed's ASRInputFormat and TTSOutputFormat enums (identical lists).
AudioFormatName = Literal[
    "pcm_8000",
    "pcm_16000",
    "pcm_22050",
    "pcm_24000",
    "pcm_44100",
    "pcm_48000",
    "ulaw_8000",
]
DEFAULT_AUDIO_FORMAT: AudioFormatName = "pcm_16000"

AccessRole = Literal["admin", "editor", "commenter", "viewer"]


class ResourceAccessInfo(msgspec.Struct, kw_only=True):
    is_creator: bool
    creator_name: str
    creator_email: str
    role: AccessRole


class ErrorDetail(msgspec.Struct, kw_only=True):
    """``detail`` of a non-validation error: ``{"status": "invalid_api_key", "message": ...}``."""

    status: str
    message: str


class ErrorBody(msgspec.Struct, kw_only=True):
    detail: ErrorDetail


class ValidationErrorItem(msgspec.Struct, kw_only=True):
    """One entry of a 422 body, FastAPI style: ``loc`` is e.g. ``["body", "phone_number"]``."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(msgspec.Struct, kw_only=True):
    detail: list[ValidationErrorItem]


class ListResponseMeta(msgspec.Struct, kw_only=True):
    total: int | None = None
    page: int | None = None
    page_size: int | None = None


JsonObject = dict[str, Any]
