"""The emulated platform's REST state: agents, phone numbers, workspace settings, secrets,
widget avatars, test invocations; plus signed-URL tokens, conversation records and
injected faults for the running process.

Pure of HTTP: methods take the shared request structs and return the shared response
structs; a bad request raises :class:`~bridge.errors.InputError` whose ``field`` is the
dotted location (``body.phone_number``) and ``status`` the HTTP status.  Tests can drive
it directly (``state.create_agent(...)``) or over REST; both see the same state.

In memory by default; with ``db_path`` every change is written through to SQLite and
reloaded at start (see :mod:`.persistence`).
"""

from __future__ import annotations

import re
import secrets as _secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from bridge.emulator.platform.behaviour import AgentProfile, build_profile
from bridge.emulator.platform.paging import paginate
from bridge.emulator.platform.persistence import DocumentStore
from bridge.emulator.platform.problems import input_error_from_msgspec
from bridge.emulator.platform.records import (
    AgentRecord,
    ConversationRecord,
    InvocationRecord,
    PhoneNumberRecord,
    SecretRecord,
    SettingsRecord,
    TwilioCredentials,
)
from bridge.emulator.platform.views import (
    OWNER,
    effective_config,
    inbound_view,
    invocation_view,
    outbound_view,
)
from bridge.errors import InputError
from bridge.platform.agents import (
    Agent,
    AgentMetadata,
    AgentsPage,
    AgentSummary,
    CreateAgentRequest,
)
from bridge.platform.common import ListResponseMeta
from bridge.platform.invocations import TestInvocationsPage
from bridge.platform.phone_numbers import (
    CreatePhoneNumberRequest,
    CreateTwilioPhoneNumberRequest,
    PhoneNumber,
    PhoneNumberAgentInfo,
    SipTrunkPhoneNumber,
    TwilioPhoneNumber,
    UpdatePhoneNumberRequest,
)
from bridge.platform.widget import AgentAvatarResponse, AgentEmbed, ImageAvatar, WidgetConfig
from bridge.platform.workspace import (
    ConvAISettings,
    CreateSecretRequest,
    DependentAvailableResource,
    DependentResource,
    PatchConvAISettingsRequest,
    SecretDependencies,
    SecretLocator,
    SecretResponse,
    StoredSecret,
    UpdateSecretRequest,
)

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
SIGNED_URL_TTL_S = 15 * 60
MAX_CONVERSATION_RECORDS = 1000
EMULATOR_VOICE_ID = "emulator_tones"

S = TypeVar("S", bound=msgspec.Struct)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{_secrets.token_hex(13)}"


@dataclass
class Fault:
    """Answer the next ``times`` matching requests with ``status`` instead of serving them."""

    path_prefix: str
    status: int
    times: int = 1
    method: str | None = None
    retry_after_s: float | None = None
    message: str = "injected fault"


@dataclass
class ConversationEntry:
    record: ConversationRecord
    capture: bytearray | None = None
    active: bool = True


@dataclass
class Avatar:
    content_type: str
    data: bytes


@dataclass
class _Token:
    agent_id: str
    expires_at: float


@dataclass
class PlatformState:
    """All emulator state.  ``PlatformState()`` is empty but for the seeded agents."""

    db_path: str | Path | None = None
    seed: bool = True
    clock: Callable[[], float] = time.time
    agents: dict[str, AgentRecord] = field(default_factory=dict)
    phone_numbers: dict[str, PhoneNumberRecord] = field(default_factory=dict)
    secrets: dict[str, SecretRecord] = field(default_factory=dict)
    invocations: dict[str, InvocationRecord] = field(default_factory=dict)
    settings: ConvAISettings = field(default_factory=ConvAISettings)
    avatars: dict[str, Avatar] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    conversations: OrderedDict[str, ConversationEntry] = field(default_factory=OrderedDict)
    _tokens: dict[str, _Token] = field(default_factory=dict)
    _store: DocumentStore | None = None

    def __post_init__(self) -> None:
        if self.db_path is not None:
            self._store = DocumentStore(self.db_path)
            self._load(self._store)
        if self.seed:
            from bridge.emulator.platform.seeds import seed_agents

            seed_agents(self)

    # ----------------------------------------------------------------- persistence

    def _load(self, store: DocumentStore) -> None:
        def docs(kind: str, cls: type[S]) -> Iterable[tuple[str, S]]:
            for doc_id, body in store.load(kind):
                yield doc_id, msgspec.json.decode(body, type=cls)

        self.agents.update(docs("agent", AgentRecord))
        self.phone_numbers.update(docs("phone_number", PhoneNumberRecord))
        self.secrets.update(docs("secret", SecretRecord))
        self.invocations.update(docs("invocation", InvocationRecord))
        for _, rec in docs("settings", SettingsRecord):
            self.settings = rec.settings

    def _save(self, kind: str, doc_id: str, doc: msgspec.Struct) -> None:
        if self._store is not None:
            self._store.put(kind, doc_id, msgspec.json.encode(doc))

    def _forget(self, kind: str, doc_id: str) -> None:
        if self._store is not None:
            self._store.delete(kind, doc_id)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _now(self) -> int:
        return int(self.clock())

    # ----------------------------------------------------------------- agents

    def create_agent(self, request: CreateAgentRequest, *, agent_id: str | None = None) -> str:
        """Store an agent; ``agent_id`` fixes the id (seeded agents), else one is made up."""
        agent_id = agent_id or _new_id("agent")
        name = request.name if isinstance(request.name, str) else ""
        tags = request.tags if isinstance(request.tags, list) else []
        settings = request.platform_settings if request.platform_settings else None
        workflow = request.workflow if isinstance(request.workflow, dict) else None
        try:
            build_profile(agent_id, name, request.conversation_config, settings)
        except msgspec.ValidationError as e:
            raise input_error_from_msgspec(
                e, ["body", "conversation_config", "agent", "emulator"]
            ) from None
        now = self._now()
        record = AgentRecord(
            agent_id=agent_id,
            name=name,
            conversation_config=request.conversation_config,
            platform_settings=settings,
            workflow=workflow,
            tags=tags,
            created_at=now,
            updated_at=now,
        )
        self.agents[agent_id] = record
        self._save("agent", agent_id, record)
        return agent_id

    def agent_record(self, agent_id: str, *, where: str = "path.agent_id") -> AgentRecord:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise InputError(where, f"agent {agent_id!r} not found", status=404) from None

    def profile(self, agent_id: str) -> AgentProfile:
        rec = self.agent_record(agent_id, where="query.agent_id")
        return build_profile(rec.agent_id, rec.name, rec.conversation_config, rec.platform_settings)

    def get_agent(self, agent_id: str) -> Agent:
        rec = self.agent_record(agent_id)
        return Agent(
            agent_id=rec.agent_id,
            name=rec.name,
            conversation_config=effective_config(rec.conversation_config),
            metadata=AgentMetadata(
                created_at_unix_secs=rec.created_at, updated_at_unix_secs=rec.updated_at
            ),
            platform_settings=rec.platform_settings,
            phone_numbers=[
                self._phone_view(p) for p in self.phone_numbers.values() if p.agent_id == agent_id
            ],
            workflow=rec.workflow,
            access_info=OWNER,
            tags=list(rec.tags),
        )

    def list_agents(
        self, *, page_size: int | None = None, cursor: str | None = None, search: str | None = None
    ) -> AgentsPage:
        # Newest first, as the platform lists them.
        records = [
            r
            for r in reversed(self.agents.values())
            if not search or search.lower() in r.name.lower()
        ]
        page = paginate(records, page_size, cursor)
        return AgentsPage(
            agents=[self._summary(r) for r in page.items],
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        )

    def _summary(self, rec: AgentRecord) -> AgentSummary:
        tts = rec.conversation_config.tts
        voice = tts.voice_id if tts and isinstance(tts.voice_id, str) else EMULATOR_VOICE_ID
        archived = bool(rec.platform_settings and rec.platform_settings.archived is True)
        return AgentSummary(
            agent_id=rec.agent_id,
            name=rec.name,
            voice_id=voice,
            tags=list(rec.tags),
            created_at_unix_secs=rec.created_at,
            updated_at_unix_secs=rec.updated_at,
            access_info=OWNER,
            archived=archived,
        )

    # ----------------------------------------------------------------- phone numbers

    def create_phone_number(self, request: CreatePhoneNumberRequest) -> str:
        number = request.phone_number
        if not E164.match(number):
            raise InputError(
                "body.phone_number",
                f"{number!r} is not an E.164 number (expected '+' then 2-15 digits, e.g. +14155550100)",
            )
        if any(p.phone_number == number for p in self.phone_numbers.values()):
            raise InputError("body.phone_number", f"{number} is already imported", status=400)
        if not request.label.strip():
            raise InputError("body.label", "label must not be empty")
        phone_number_id = _new_id("phnum")
        common: dict[str, Any] = {
            "phone_number_id": phone_number_id,
            "phone_number": number,
            "label": request.label,
            "supports_inbound": request.supports_inbound is not False,
            "supports_outbound": request.supports_outbound is not False,
            "created_at": self._now(),
        }
        if isinstance(request, CreateTwilioPhoneNumberRequest):
            for name in ("sid", "token"):
                if not getattr(request, name).strip():
                    raise InputError(f"body.{name}", f"{name} must not be empty")
            record = PhoneNumberRecord(
                provider="twilio",
                twilio=TwilioCredentials(
                    sid=request.sid,
                    token=request.token,
                    region_config=request.region_config or None,
                ),
                **common,
            )
        else:
            record = PhoneNumberRecord(
                provider="sip_trunk",
                inbound_trunk=request.inbound_trunk_config or None,
                outbound_trunk=request.outbound_trunk_config or None,
                **common,
            )
        self.phone_numbers[phone_number_id] = record
        self._save("phone_number", phone_number_id, record)
        return phone_number_id

    def _phone_record(self, phone_number_id: str) -> PhoneNumberRecord:
        try:
            return self.phone_numbers[phone_number_id]
        except KeyError:
            raise InputError(
                "path.phone_number_id", f"phone number {phone_number_id!r} not found", status=404
            ) from None

    def get_phone_number(self, phone_number_id: str) -> PhoneNumber:
        return self._phone_view(self._phone_record(phone_number_id))

    def list_phone_numbers(self) -> list[PhoneNumber]:
        return [self._phone_view(p) for p in self.phone_numbers.values()]

    def update_phone_number(
        self, phone_number_id: str, request: UpdatePhoneNumberRequest
    ) -> PhoneNumber:
        rec = self._phone_record(phone_number_id)
        changes: dict[str, Any] = {}
        if request.agent_id is None:
            changes["agent_id"] = None
        elif isinstance(request.agent_id, str):
            self.agent_record(request.agent_id, where="body.agent_id")
            changes["agent_id"] = request.agent_id
        if isinstance(request.label, str):
            changes["label"] = request.label
        if rec.provider == "sip_trunk":
            if request.inbound_trunk_config is not msgspec.UNSET:
                changes["inbound_trunk"] = request.inbound_trunk_config
            if request.outbound_trunk_config is not msgspec.UNSET:
                changes["outbound_trunk"] = request.outbound_trunk_config
            if isinstance(request.livekit_stack, str):
                changes["livekit_stack"] = request.livekit_stack
        elif request.inbound_trunk_config or request.outbound_trunk_config or request.livekit_stack:
            raise InputError(
                "body.inbound_trunk_config",
                "trunk configuration only applies to sip_trunk numbers; this one is twilio",
            )
        rec = msgspec.structs.replace(rec, **changes)
        self.phone_numbers[phone_number_id] = rec
        self._save("phone_number", phone_number_id, rec)
        return self._phone_view(rec)

    def delete_phone_number(self, phone_number_id: str) -> None:
        self._phone_record(phone_number_id)
        del self.phone_numbers[phone_number_id]
        self._forget("phone_number", phone_number_id)

    def _phone_view(self, rec: PhoneNumberRecord) -> PhoneNumber:
        assigned = None
        if rec.agent_id is not None and rec.agent_id in self.agents:
            assigned = PhoneNumberAgentInfo(
                agent_id=rec.agent_id, agent_name=self.agents[rec.agent_id].name
            )
        if rec.provider == "twilio":
            return TwilioPhoneNumber(
                phone_number=rec.phone_number,
                label=rec.label,
                phone_number_id=rec.phone_number_id,
                supports_inbound=rec.supports_inbound,
                supports_outbound=rec.supports_outbound,
                assigned_agent=assigned,
            )
        outbound = outbound_view(rec.outbound_trunk)
        return SipTrunkPhoneNumber(
            phone_number=rec.phone_number,
            label=rec.label,
            phone_number_id=rec.phone_number_id,
            livekit_stack=rec.livekit_stack,
            supports_inbound=rec.supports_inbound,
            supports_outbound=rec.supports_outbound,
            assigned_agent=assigned,
            provider_config=outbound,
            outbound_trunk=outbound,
            inbound_trunk=inbound_view(rec.inbound_trunk),
        )

    # ----------------------------------------------------------------- signed URLs

    def issue_token(self, agent_id: str, now: float) -> str:
        self.agent_record(agent_id, where="query.agent_id")
        for tok in [t for t, v in self._tokens.items() if v.expires_at <= now]:
            del self._tokens[tok]
        token = _secrets.token_urlsafe(24)
        self._tokens[token] = _Token(agent_id, now + SIGNED_URL_TTL_S)
        return token

    def token_valid(self, agent_id: str, token: str, now: float) -> bool:
        t = self._tokens.get(token)
        return t is not None and t.agent_id == agent_id and t.expires_at > now

    # ----------------------------------------------------------------- settings & secrets

    def get_settings(self) -> ConvAISettings:
        return self.settings

    def update_settings(self, request: PatchConvAISettingsRequest) -> ConvAISettings:
        changes = {
            f: getattr(request, f)
            for f in request.__struct_fields__
            if getattr(request, f) is not msgspec.UNSET
        }
        webhook = changes.get("conversation_initiation_client_data_webhook")
        if webhook is not None:
            for header, value in webhook.request_headers.items():
                if isinstance(value, SecretLocator) and value.secret_id not in self.secrets:
                    raise InputError(
                        f"body.conversation_initiation_client_data_webhook.request_headers.{header}",
                        f"secret {value.secret_id!r} not found",
                        status=404,
                    )
        self.settings = msgspec.structs.replace(self.settings, **changes)
        self._save("settings", "workspace", SettingsRecord(settings=self.settings))
        return self.settings

    def list_secrets(self) -> list[StoredSecret]:
        return [
            StoredSecret(secret_id=s.secret_id, name=s.name, used_by=self._used_by(s.secret_id))
            for s in self.secrets.values()
        ]

    def create_secret(self, request: CreateSecretRequest) -> SecretResponse:
        self._check_secret_name(request.name, None)
        secret_id = _new_id("secret")
        rec = SecretRecord(
            secret_id=secret_id, name=request.name, value=request.value, created_at=self._now()
        )
        self.secrets[secret_id] = rec
        self._save("secret", secret_id, rec)
        return SecretResponse(secret_id=secret_id, name=rec.name)

    def update_secret(self, secret_id: str, request: UpdateSecretRequest) -> SecretResponse:
        if secret_id not in self.secrets:
            raise InputError("path.secret_id", f"secret {secret_id!r} not found", status=404)
        self._check_secret_name(request.name, secret_id)
        rec = msgspec.structs.replace(
            self.secrets[secret_id], name=request.name, value=request.value
        )
        self.secrets[secret_id] = rec
        self._save("secret", secret_id, rec)
        return SecretResponse(secret_id=secret_id, name=rec.name)

    def _check_secret_name(self, name: str, own_id: str | None) -> None:
        if not name.strip():
            raise InputError("body.name", "name must not be empty")
        if any(s.name == name and s.secret_id != own_id for s in self.secrets.values()):
            raise InputError("body.name", f"a secret named {name!r} already exists", status=400)

    def _used_by(self, secret_id: str) -> SecretDependencies:
        agents: list[DependentResource] = [
            DependentAvailableResource(
                id=a.agent_id, name=a.name, created_at_unix_secs=a.created_at, access_level="admin"
            )
            for a in self.agents.values()
            if _mentions_secret(
                msgspec.to_builtins([a.conversation_config, a.platform_settings, a.workflow]),
                secret_id,
            )
        ]
        webhook = self.settings.conversation_initiation_client_data_webhook
        others: list[Any] = (
            ["conversation_initiation_webhook"]
            if webhook is not None and _mentions_secret(msgspec.to_builtins(webhook), secret_id)
            else []
        )
        return SecretDependencies(agents=agents, others=others)

    # ----------------------------------------------------------------- widget & avatar

    def widget(self, agent_id: str) -> AgentEmbed:
        rec = self.agent_record(agent_id)
        profile = self.profile(agent_id)
        overrides = (rec.platform_settings.widget or {}) if rec.platform_settings else {}
        base = WidgetConfig(
            language=profile.language,
            first_message=profile.first_message or None,
            text_only=profile.text_only,
        )
        if rec.avatar_url:
            base = msgspec.structs.replace(base, avatar=ImageAvatar(url=rec.avatar_url))
        try:
            config = msgspec.convert(
                {**msgspec.to_builtins(base), **overrides}, WidgetConfig, strict=False
            )
        except msgspec.ValidationError:
            config = base  # widget styling the emulator cannot model: serve the defaults
        return AgentEmbed(agent_id=agent_id, widget_config=config)

    def set_avatar(
        self, agent_id: str, content_type: str, data: bytes, url: str
    ) -> AgentAvatarResponse:
        rec = self.agent_record(agent_id)
        if not data:
            raise InputError("body.avatar_file", "the avatar file is empty")
        if not content_type.startswith("image/"):
            raise InputError(
                "body.avatar_file", f"expected an image file, got content type {content_type!r}"
            )
        self.avatars[agent_id] = Avatar(content_type, data)
        rec = msgspec.structs.replace(rec, avatar_url=url, updated_at=self._now())
        self.agents[agent_id] = rec
        self._save("agent", agent_id, rec)
        return AgentAvatarResponse(agent_id=agent_id, avatar_url=url)

    # ----------------------------------------------------------------- test invocations

    def add_test_invocation(
        self,
        agent_id: str,
        title: str,
        *,
        passed: int = 0,
        failed: int = 0,
        pending: int = 0,
        cancelled: int = 0,
    ) -> str:
        """Record a test invocation (the emulator runs no tests; this seeds the list)."""
        self.agent_record(agent_id, where="body.agent_id")
        inv = InvocationRecord(
            id=_new_id("inv"),
            agent_id=agent_id,
            title=title,
            created_at_unix_secs=self._now(),
            passed_count=passed,
            failed_count=failed,
            pending_count=pending,
            cancelled_count=cancelled,
        )
        self.invocations[inv.id] = inv
        self._save("invocation", inv.id, inv)
        return inv.id

    def list_test_invocations(
        self, agent_id: str, *, page_size: int | None = None, cursor: str | None = None
    ) -> TestInvocationsPage:
        # Newest first, as the platform lists them.
        matching = [i for i in self.invocations.values() if i.agent_id == agent_id][::-1]
        page = paginate(matching, page_size, cursor)
        return TestInvocationsPage(
            results=[invocation_view(i) for i in page.items],
            has_more=page.has_more,
            next_cursor=page.next_cursor,
            meta=ListResponseMeta(
                total=len(matching), page=page.offset // page.page_size, page_size=page.page_size
            ),
        )

    # ----------------------------------------------------------------- conversations

    def open_conversation(
        self, record: ConversationRecord, *, capture: bytearray | None
    ) -> ConversationEntry:
        """Register a live conversation (``capture``: the buffer it writes caller audio to)."""
        entry = ConversationEntry(record, capture)
        self.conversations[record.conversation_id] = entry
        while len(self.conversations) > MAX_CONVERSATION_RECORDS:
            oldest = next((k for k, v in self.conversations.items() if not v.active), None)
            if oldest is None:
                break
            del self.conversations[oldest]
        return entry

    def conversation(self, conversation_id: str) -> ConversationEntry:
        try:
            return self.conversations[conversation_id]
        except KeyError:
            raise InputError(
                "path.conversation_id", f"conversation {conversation_id!r} not found", status=404
            ) from None

    # ----------------------------------------------------------------- faults

    def inject_fault(self, fault: Fault) -> None:
        self.faults.append(fault)

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if path.startswith(fault.path_prefix) and fault.method in (None, method):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None


# --------------------------------------------------------------------------- helpers


def _mentions_secret(tree: Any, secret_id: str) -> bool:
    if isinstance(tree, dict):
        if tree.get("secret_id") == secret_id:
            return True
        return any(_mentions_secret(v, secret_id) for v in tree.values())
    if isinstance(tree, list):
        return any(_mentions_secret(v, secret_id) for v in tree)
    return False
