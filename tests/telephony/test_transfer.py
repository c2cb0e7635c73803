from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.config import _TRANSFER_ALLOW, load_config
from bridge.errors import ConfigError, InputError
from bridge.telephony.transfer import (
    AllowList,
    Destination,
    parse_sip,
    parse_transfer_params,
)


def test_phone_number_is_normalised_to_e164() -> None:
    req = parse_transfer_params({"phone_number": "+1 (415) 555-0100", "reason": "billing"})
    assert req.destination == Destination("number", "+14155550100")
    assert req.reason == "billing"


@pytest.mark.parametrize("bad", ["4155550100", "+0123", "+1415555010012345", "call bob", ""])
def test_non_e164_numbers_are_refused(bad: str) -> None:
    params = {"phone_number": bad} if bad else {"phone_number": "", "sip_uri": ""}
    with pytest.raises(InputError) as e:
        parse_transfer_params(params)
    assert e.value.field == "phone_number"


def test_sip_uri_host_is_lower_cased_and_port_kept() -> None:
    assert parse_sip("sip:Agent@PBX.Example.com:5061").address == "sip:Agent@pbx.example.com:5061"


@pytest.mark.parametrize(
    "bad",
    [
        "sip:a@b.com;transport=tcp",
        "sip:a@b.com?X-Evil=1",
        "sips:a@b.com",
        "tel:+14155550100",
        "sip:@b.com",
        "sip:a@b.com:70000",
        "sip:a b@c.com",
    ],
)
def test_sip_uris_with_params_headers_or_other_schemes_are_refused(bad: str) -> None:
    with pytest.raises(InputError) as e:
        parse_transfer_params({"sip_uri": bad})
    assert e.value.field == "sip_uri"


def test_exactly_one_destination() -> None:
    with pytest.raises(InputError, match="missing"):
        parse_transfer_params({"reason": "x"})
    with pytest.raises(InputError, match="not both"):
        parse_transfer_params({"phone_number": "+14155550100", "sip_uri": "sip:a@b.c"})
    with pytest.raises(InputError) as e:
        parse_transfer_params({"phone_number": 14155550100})
    assert "expected a string" in str(e.value)
    with pytest.raises(InputError) as e:
        parse_transfer_params({"phone_number": "+14155550100", "reason": 3})
    assert e.value.field == "reason"


def test_empty_allow_list_refuses_everything() -> None:
    allow = AllowList()
    req = parse_transfer_params({"phone_number": "+14155550100"})
    with pytest.raises(InputError) as e:
        allow.check(req)
    assert e.value.status == 403
    assert "not an allowed transfer destination" in str(e.value)


def test_exact_prefix_and_sip_rules() -> None:
    allow = AllowList(
        ["+14155550100", "+1212*", "sip:desk@pbx.example.com", "sip:*@sales.example.com:5060"]
    )
    ok = [
        Destination("number", "+14155550100"),
        Destination("number", "+12125550199"),
        Destination("sip", "sip:desk@pbx.example.com"),
        Destination("sip", "sip:anyone@sales.example.com:5060"),
    ]
    refused = [
        Destination("number", "+14155550101"),
        Destination("number", "+19005550100"),
        Destination("sip", "sip:other@pbx.example.com"),
        Destination("sip", "sip:anyone@sales.example.com"),  # port differs
        Destination("sip", "sip:x@evil.example.com"),
    ]
    assert all(allow.allows(d) for d in ok)
    assert not any(allow.allows(d) for d in refused)


def test_plus_star_allows_any_number_but_no_sip() -> None:
    allow = AllowList(["+*"])
    assert allow.allows(Destination("number", "+442071234567"))
    assert not allow.allows(Destination("sip", "sip:a@b.com"))


def test_sip_entry_host_case_does_not_matter() -> None:
    allow = AllowList(["sip:desk@PBX.example.com"])
    assert allow.allows(parse_sip("sip:desk@pbx.EXAMPLE.com"))


def test_invalid_entry_names_the_config_key() -> None:
    with pytest.raises(ConfigError) as e:
        AllowList(["sip:a;b@host.com"])
    assert e.value.key == "telephony.transfer_allow"


def test_config_refuses_bad_entries_at_load() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(env={"BRIDGE_TRANSFER_ALLOW": "+1415,4155550100"})
    assert e.value.key == "telephony.transfer_allow"


@given(
    st.one_of(
        st.from_regex(re.compile(r"^\+[1-9][0-9]{1,14}$"), fullmatch=True),
        st.from_regex(re.compile(r"^\+([1-9][0-9]{0,13})?\*$"), fullmatch=True),
        st.from_regex(
            re.compile(r"^sip:(\*|[A-Za-z0-9_.+-]{1,20})@[a-z0-9.-]{1,30}(:[1-9][0-9]{0,3})?$"),
            fullmatch=True,
        ),
    )
)
def test_every_entry_the_config_accepts_parses_as_a_rule(entry: str) -> None:
    assert _TRANSFER_ALLOW.match(entry)
    AllowList([entry])
