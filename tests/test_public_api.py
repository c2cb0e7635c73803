"""bridge/ uses uvicorn and websockets through their public API only.

An AST scan of every module under ``bridge/``.  It fails on

* an import from either package of a module or name that is underscored, not in the
  module's ``__all__`` (when it has one), or from a module without ``__all__`` that is
  not among the few reviewed below (uvicorn declares its public API only in
  ``uvicorn.__all__``: its protocol implementation modules are not API);
* ``uvicorn.X`` / ``websockets.X`` for an X outside the package's ``__all__``;
* in a module that imports either package, an attribute access whose name is an
  undocumented attribute of websockets' sans-I/O protocol objects or of uvicorn's
  WebSocket protocol implementations (``parser_exc``, ``writes``, ``close_rcvd``,
  ``conn``, ``read_paused``…), read off the installed libraries, unless it is an
  attribute the same module sets on its own objects (``self.X = ...``).

So a release of either library cannot break the bridge through something it never
promised.
"""

from __future__ import annotations

import ast
import importlib.util
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.client import ClientProtocol
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

BRIDGE = Path(__file__).resolve().parent.parent / "bridge"
LIBRARIES = ("uvicorn", "websockets")

# Public names of modules that declare no ``__all__``, each reviewed.  Keep this short.
REVIEWED: dict[str, dict[str, str]] = {
    "websockets.speedups": {
        "apply_mask": "the C build of websockets.utils.apply_mask (in utils.__all__), "
        "same name and signature; imported with a fallback to the public one",
    },
    "uvicorn.server": {
        "ServerState": "the server_state object uvicorn hands to a protocol class "
        "given as Config(http=...)/Config(ws=...) (the settings' contract)",
    },
    "uvicorn.protocols.http.auto": {
        "AutoHTTPProtocol": "the class the documented Config(http='auto') names",
    },
}

# websockets' sans-I/O API as its reference documents it (Protocol, ServerProtocol,
# ClientProtocol): everything else on those objects is internal.
WEBSOCKETS_PROTOCOL_API = frozenset(
    {
        "id",
        "logger",
        "state",
        "handshake_exc",
        "close_code",
        "close_reason",
        "close_exc",
        "receive_data",
        "receive_eof",
        "send_continuation",
        "send_text",
        "send_binary",
        "send_close",
        "send_ping",
        "send_pong",
        "fail",
        "events_received",
        "data_to_send",
        "close_expected",
        "accept",
        "reject",
        "send_response",
        "connect",
        "send_request",
    }
)
# uvicorn's WebSocket protocol modules: their attributes are implementation, all of them.
UVICORN_WS_IMPLEMENTATIONS = (
    "uvicorn.protocols.websockets.websockets_sansio_impl",
    "uvicorn.protocols.websockets.websockets_impl",
    "uvicorn.protocols.websockets.wsproto_impl",
)
# Public attributes of what uvicorn hands a protocol class (Config settings, ServerState),
# which its implementations copy onto themselves under the same names.
UVICORN_CONTRACT = frozenset(
    {"config", "app_state", "connections", "tasks", "default_headers", "root_path", "logger"}
)


def _internal_websockets_attributes() -> set[str]:
    """The instance attributes of websockets' protocol objects, less the documented."""
    names: set[str] = set()
    for obj in (ServerProtocol(), ClientProtocol(parse_uri("ws://example.invalid/"))):
        names |= set(vars(obj))
    # and its internal steps (its other methods' names are too common to scan for)
    names |= {"send_frame", "recv_frame", "send_eof"}
    return {n.lstrip("_") for n in names} - WEBSOCKETS_PROTOCOL_API


def _internal_uvicorn_attributes() -> set[str]:
    """What uvicorn's WebSocket protocol implementations set on themselves."""
    names: set[str] = set()
    for module in UVICORN_WS_IMPLEMENTATIONS:
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            continue
        if spec is None or spec.origin is None:
            continue
        for node in ast.walk(ast.parse(Path(spec.origin).read_text())):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if (
                        isinstance(t, ast.Attribute)
                        and isinstance(t.value, ast.Name)
                        and t.value.id == "self"
                    ):
                        names.add(t.attr)
    return {n.lstrip("_") for n in names} - UVICORN_CONTRACT


def _public_websockets_fields() -> set[str]:
    """Fields of websockets' public data types (Frame, Close, Request, Response, Proxy,
    WebSocketURI...) and its exceptions' documented attributes: public, whatever else
    shares their names."""
    import dataclasses
    import pkgutil

    import websockets

    names = {"response", "request", "rcvd", "sent", "rcvd_then_sent"}
    for info in pkgutil.walk_packages(websockets.__path__, "websockets."):
        if any(p.startswith("_") for p in info.name.split(".")) or ".legacy" in info.name:
            continue
        try:
            with warnings.catch_warnings():  # deprecated aliases (websockets.auth...)
                warnings.simplefilter("ignore", DeprecationWarning)
                module = importlib.import_module(info.name)
        except ImportError:
            continue
        for public in getattr(module, "__all__", ()):
            obj = getattr(module, public, None)
            if isinstance(obj, type) and dataclasses.is_dataclass(obj):
                names |= {f.name for f in dataclasses.fields(obj)}
    return names


INTERNAL = (
    _internal_websockets_attributes() | _internal_uvicorn_attributes()
) - _public_websockets_fields()


@dataclass(frozen=True)
class Finding:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def _public_names(module: str) -> set[str] | None:
    """The module's ``__all__``, or None when it declares none."""
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", None)
    return None if names is None else set(names)


def _check_name(module: str, name: str, where: str) -> Iterator[Finding]:
    if any(part.startswith("_") for part in module.split(".")) or name.startswith("_"):
        yield Finding(where, f"{module}.{name} is underscored (private)")
        return
    try:
        public = _public_names(module)
    except ModuleNotFoundError:
        yield Finding(where, f"{module} does not exist in the installed version")
        return
    if public is not None:
        if name not in public:
            yield Finding(where, f"{module}.{name} is not in {module}.__all__")
    elif name not in REVIEWED.get(module, {}):
        yield Finding(where, f"{module}.{name}: {module} declares no public API (__all__)")


def _own_attributes(tree: ast.AST) -> set[str]:
    """Attributes this module sets on its own objects (``self.X = ...``, ``X: T``)."""
    own: set[str] = set()
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for t in targets:
            for sub in ast.walk(t):
                if (
                    isinstance(sub, ast.Attribute)
                    and isinstance(sub.value, ast.Name)
                    and sub.value.id == "self"
                ):
                    own.add(sub.attr)
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    own.add(item.target.id)
                elif isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    own.add(item.name)
    return own


def scan(source: str, name: str, own: set[str] | None = None) -> list[Finding]:
    """What in ``source`` (a module of bridge/ called ``name``) is not public API;
    ``own``: attribute names the bridge declares on its own objects elsewhere."""
    tree = ast.parse(source)
    findings: list[Finding] = []
    aliases: dict[str, str] = {}  # a local name bound to a library module
    uses_library = False
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in LIBRARIES:
                    uses_library = True
                    if "." in alias.name:
                        parent, _, leaf = alias.name.rpartition(".")
                        findings += _check_name(parent, leaf, where)
                    aliases[alias.asname or top] = (alias.asname and alias.name) or top
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.split(".")[0] in LIBRARIES
        ):
            uses_library = True
            for alias in node.names:
                findings += _check_name(node.module, alias.name, where)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            findings += _check_name(aliases[node.value.id], node.attr, f"{name}:{node.lineno}")
    if uses_library:
        own = _own_attributes(tree) | (own or set())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                attr = node.attr.lstrip("_")
                if (
                    attr in INTERNAL
                    and node.attr not in own
                    and not (isinstance(node.value, ast.Name) and node.value.id in aliases)
                ):
                    findings.append(
                        Finding(
                            f"{name}:{node.lineno}",
                            f".{node.attr}: an internal attribute of the libraries' "
                            "protocol objects",
                        )
                    )
    return findings


def test_bridge_uses_uvicorn_and_websockets_through_their_public_api_only() -> None:
    paths = sorted(BRIDGE.rglob("*.py"))
    # Attributes the bridge declares on its own objects, in any module (records, sessions).
    own: set[str] = set()
    for path in paths:
        own |= _own_attributes(ast.parse(path.read_text()))
    findings: list[Finding] = []
    for path in paths:
        findings += scan(path.read_text(), str(path.relative_to(BRIDGE.parent)), own)
    assert [str(f) for f in findings] == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "from uvicorn.protocols.websockets.websockets_sansio_impl import "
            "WebSocketsSansIOProtocol\n",
            "declares no public API",
        ),
        ("from websockets.asyncio.client import connect_http_proxy\n", "not in"),
        ("from uvicorn._types import Scope\n", "underscored"),
        ("import uvicorn\nuvicorn.protocols\n", "not in uvicorn.__all__"),
        (
            "from websockets.server import ServerProtocol\n"
            "def f(conn: ServerProtocol) -> None:\n"
            "    conn.parser_exc\n",
            "internal attribute",
        ),
        (
            "from websockets.protocol import Protocol\n"
            "def f(p: Protocol) -> None:\n"
            "    p.writes, p.close_rcvd, p.reader.buffer\n",
            "internal attribute",
        ),
        (
            "import uvicorn\ndef f(p: object) -> None:\n    p.read_paused = False\n",
            "internal attribute",
        ),
    ],
)
def test_the_scan_catches_what_the_old_server_did(source: str, expected: str) -> None:
    findings = scan(source, "example.py")
    assert findings, source
    assert any(expected in f.what for f in findings), [str(f) for f in findings]


def test_the_scan_passes_public_use() -> None:
    source = (
        "import uvicorn\n"
        "from websockets.frames import Close, Frame\n"
        "from websockets.server import ServerProtocol\n"
        "def f(conn: ServerProtocol, c: uvicorn.Config) -> None:\n"
        "    conn.receive_data(b'')\n"
        "    conn.data_to_send(); conn.events_received(); conn.state\n"
    )
    assert scan(source, "example.py") == []
