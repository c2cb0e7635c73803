"""Console forms decode through the admin API's own decoder: same rules, same field names."""

from __future__ import annotations

import pytest

from bridge.admin import models
from bridge.console import forms
from bridge.console.forms import FormErrors
from bridge.errors import (
    ConfigError,
    InputError,
    PartialFailure,
    PlatformApiError,
)


def test_import_form_becomes_the_api_request() -> None:
    req = forms.import_number(
        {"number": "+14155550100", "label": " ", "agent_id": "agent_1", "csrf": "x"}
    )
    assert req == models.ImportNumber(
        number="+14155550100", agent_id="agent_1", configure_twilio=False
    )
    checked = forms.import_number({"number": "+14155550100", "configure_twilio": "on"})
    assert checked.configure_twilio is True and checked.label is None


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        ({"number": ""}, "number", "This field is required."),
        ({"number": "+1 415"}, "number", "E.164 number"),
        ({"number": "+14155550100", "language": "English"}, "language", "language code"),
        ({"number": "+14155550100", "fallback_number": "0"}, "fallback_number", "E.164"),
    ],
)
def test_import_form_errors_name_the_field(form: dict[str, str], field: str, words: str) -> None:
    with pytest.raises(InputError) as e:
        forms.import_number(form)
    errors = FormErrors.of(e.value, forms.IMPORT_TEXT)
    assert list(errors.fields) == [field] and words in errors.fields[field]
    assert errors.form is None


def test_agent_form_blank_and_missing() -> None:
    with pytest.raises(InputError) as e:
        forms.create_agent({"name": "Desk", "prompt": "   "})
    assert FormErrors.of(e.value, forms.AGENT_TEXT).fields == {
        "prompt": "`prompt` must not be blank"
    }
    with pytest.raises(InputError) as e:
        forms.create_agent({"name": "", "prompt": "Hi"})
    assert FormErrors.of(e.value, forms.AGENT_TEXT).fields == {"name": "This field is required."}
    ok = forms.create_agent({"name": "Desk", "prompt": "Hi", "language": ""})
    assert ok == models.CreateAgent(name="Desk", prompt="Hi")


def test_assign_form_empty_means_unassign() -> None:
    assert forms.assign_agent({"agent_id": ""}).changes() == {"agent_id": None}
    assert forms.assign_agent({"agent_id": "agent_2"}).changes() == {"agent_id": "agent_2"}
    with pytest.raises(InputError) as e:
        forms.assign_agent({"agent_id": "no spaces"})
    assert e.value.field == "agent_id"


def test_errors_without_a_form_field_go_on_the_form() -> None:
    upstream = PlatformApiError("boom", status=500, request_id="req-1")
    assert FormErrors.of(upstream, ()).form == f"The Agents Platform failed: {upstream}"
    config = ConfigError("twilio.account_sid", "is not set", "TWILIO_ACCOUNT_SID")
    assert (FormErrors.of(config, ()).form or "").startswith("The bridge is not configured")
    other_field = InputError("call_sid", "no call", 404)
    assert FormErrors.of(other_field, ("number",)).form == "call_sid: no call"
    partial = PartialFailure("platform.import", InputError("agent_id", "gone"), ["a"], [])
    placed = FormErrors.of(partial, ("agent_id",))
    assert placed.fields == {"agent_id": "gone"} and placed.form == str(partial)
