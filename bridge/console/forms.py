"""HTML form fields → the admin API's request Structs, through the admin API's own decoder.

A form is turned into the JSON object the API would get (an empty field is a field not
given; a checkbox is a boolean) and decoded by :func:`bridge.admin.decode.decode_body`,
so the console accepts exactly what the API accepts and its errors name the same
fields with the same words.  ``FormErrors`` carries them back to the page, by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from bridge.admin import models
from bridge.admin.decode import decode_body
from bridge.errors import (
    BridgeError,
    ConfigError,
    InputError,
    PartialFailure,
    StoreError,
    TwilioApiError,
    UpstreamError,
)

T = TypeVar("T")

# Form fields per request type: text fields (empty = not given) and checkboxes.
IMPORT_TEXT = ("number", "label", "agent_id", "first_message", "language", "fallback_number")
IMPORT_CHECKBOXES = ("configure_twilio",)
AGENT_TEXT = ("name", "prompt", "first_message", "language", "voice_id")


@dataclass
class FormErrors:
    """Errors of one submitted form: by field, and one for the form as a whole."""

    fields: dict[str, str] = field(default_factory=dict)
    form: str | None = None

    def __bool__(self) -> bool:
        return bool(self.fields) or self.form is not None

    @classmethod
    def of(cls, e: BridgeError, known: tuple[str, ...]) -> FormErrors:
        """Place an error: next to its field when the form has it, else on the form."""
        if isinstance(e, InputError):
            if e.field in known:
                return cls(fields={e.field: _words(e.problem)})
            return cls(form=f"{e.field}: {e.problem}")
        cause = e.cause if isinstance(e, PartialFailure) else None
        if isinstance(cause, InputError) and cause.field in known:
            return cls(fields={cause.field: cause.problem}, form=str(e))
        if isinstance(e, UpstreamError):
            who = "Twilio" if isinstance(e, TwilioApiError) else "The Agents Platform"
            return cls(form=f"{who} failed: {e}")
        if isinstance(e, ConfigError):
            return cls(form=f"The bridge is not configured for this: {e}")
        if isinstance(e, StoreError):
            return cls(form=f"The store is unavailable: {e}")
        return cls(form=str(e))


def _text(
    form: Mapping[str, str], names: tuple[str, ...], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Fields given: an optional one when not blank; a required one when not empty
    (so that a blank one meets the API's own "must not be blank")."""
    out: dict[str, Any] = {}
    for name in names:
        value = form.get(name, "")
        if value.strip() or (name in required and value):
            out[name] = value
    return out


def _words(problem: str) -> str:
    # An empty required field is a field the form did not give: say it for people.
    return "This field is required." if problem.startswith("Object missing required") else problem


def _decode(body: dict[str, Any], cls: type[T]) -> T:
    return decode_body(msgspec.json.encode(body), cls)


def import_number(form: Mapping[str, str]) -> models.ImportNumber:
    body = _text(form, IMPORT_TEXT, required=("number",))
    body["configure_twilio"] = form.get("configure_twilio") == "on"
    return _decode(body, models.ImportNumber)


def assign_agent(form: Mapping[str, str]) -> models.UpdateNumber:
    agent = form.get("agent_id", "").strip()
    return _decode({"agent_id": agent or None}, models.UpdateNumber)


def create_agent(form: Mapping[str, str]) -> models.CreateAgent:
    return _decode(_text(form, AGENT_TEXT, required=("name", "prompt")), models.CreateAgent)
