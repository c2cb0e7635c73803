"""Widget models: ``GET /v1/convai/agents/{id}/widget`` and ``POST .../avatar``.

The widget is browser-facing and a telephony bridge never acts on it; the fields are
modelled so the client can show them and the emulator can serve them.  The long
``text_contents`` and ``styles`` maps are carried as JSON objects.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class OrbAvatar(msgspec.Struct, kw_only=True, tag_field="type", tag="orb"):
    color_1: str = "#2792dc"
    color_2: str = "#9ce6e6"


class UrlAvatar(msgspec.Struct, kw_only=True, tag_field="type", tag="url"):
    custom_url: str = ""


class ImageAvatar(msgspec.Struct, kw_only=True, tag_field="type", tag="image"):
    url: str = ""


WidgetAvatar = OrbAvatar | UrlAvatar | ImageAvatar


class WidgetConfig(msgspec.Struct, kw_only=True):
    language: str
    variant: Literal["tiny", "compact", "full", "expandable"] = "full"
    placement: Literal["top-left", "top", "top-right", "bottom-left", "bottom", "bottom-right"] = (
        "bottom-right"
    )
    expandable: Literal["never", "mobile", "desktop", "always"] = "never"
    avatar: WidgetAvatar = msgspec.field(default_factory=OrbAvatar)
    feedback_mode: Literal["none", "during", "end"] = "none"
    end_feedback: dict[str, Any] | None = None
    bg_color: str = "#ffffff"
    text_color: str = "#000000"
    btn_color: str = "#000000"
    btn_text_color: str = "#ffffff"
    border_color: str = "#e1e1e1"
    focus_color: str = "#000000"
    border_radius: int | None = None
    btn_radius: int | None = None
    action_text: str | None = None
    start_call_text: str | None = None
    end_call_text: str | None = None
    expand_text: str | None = None
    listening_text: str | None = None
    speaking_text: str | None = None
    shareable_page_text: str | None = None
    shareable_page_show_terms: bool = True
    terms_text: str | None = None
    terms_html: str | None = None
    terms_key: str | None = None
    show_avatar_when_collapsed: bool | None = False
    disable_banner: bool = False
    override_link: str | None = None
    mic_muting_enabled: bool = False
    transcript_enabled: bool = False
    text_input_enabled: bool = True
    default_expanded: bool = False
    always_expanded: bool = False
    text_contents: dict[str, Any] = msgspec.field(default_factory=dict)
    styles: dict[str, Any] = msgspec.field(default_factory=dict)
    supported_language_overrides: list[str] | None = None
    language_presets: dict[str, Any] = msgspec.field(default_factory=dict)
    text_only: bool = False
    supports_text_only: bool = True
    first_message: str | None = None
    use_rtc: bool | None = None


class AgentEmbed(msgspec.Struct, kw_only=True):
    agent_id: str
    widget_config: WidgetConfig


class AgentAvatarResponse(msgspec.Struct, kw_only=True):
    agent_id: str
    avatar_url: str | None = None
