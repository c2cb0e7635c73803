#!/usr/bin/env bash
# Build deploy/Dockerfile with podman and smoke-test the image for real.
#
#   deploy/test-image.sh            # from anywhere; root (rootful podman), Debian/Ubuntu
#
# Needs podman, buildah, runc and mmdebstrap (installed with apt-get when missing and
# run as root), uv, and the repository's venv (uv sync).  No container registry is
# used: the two images the Dockerfile starts from are made here and cached in podman's
# store (BRIDGE_IMAGE_REBUILD_BASE=1 remakes them):
#   localhost/bridge-base/python:3.11-bookworm  Debian bookworm minbase + python3.11
#       (mmdebstrap from this machine's Debian mirror), with the python:3.11-slim
#       layout the Dockerfile expects (/usr/local/bin/python3.11)
#   localhost/bridge-base/uv:<version>          FROM-scratch image holding /uv, from
#       the uv wheel of the package index (version: the Dockerfile's UV_IMAGE tag)
# The machine's extra CA certificates (/usr/local/share/ca-certificates/*.crt, e.g. a
# TLS-intercepting proxy's) are given to the build as the secret "ca_bundle": trusted
# by uv during the build only, never in a layer.
#
# Then the smoke test (docs/deploy.md, "Building and testing the image"): the container
# runs as deploy/docker-compose.yml and deploy/k8s run it (read-only root, /data volume,
# tmpfs /tmp, uid 10001, no capabilities, no-new-privileges), with `bridge emulator` on
# this host's loopback as its Agents Platform, and must
#   1. carry 5 synthetic calls (`bridge loadtest --target`): all completed, 0 frames lost;
#   2. run as uid 10001, pass its HEALTHCHECK, write nothing outside /data and /tmp;
#   3. on SIGTERM with a call in progress: readiness 503, the call completes, exit 0
#      within the grace period;
#   4. after a restart on the same volume, still list the earlier calls' records.
# It prints the image size and the build time.  Exit status 0 = all passed.
#
# Knobs: BRIDGE_IMAGE_TAG (default localhost/bridge:smoke), BRIDGE_IMAGE_WORK (cache
# directory, default ~/.cache/bridge-image), BRIDGE_IMAGE_NO_CACHE=1 (cold build:
# no layer cache), BRIDGE_IMAGE_REBUILD_BASE=1, DEBIAN_MIRROR / DEBIAN_SECURITY_MIRROR.
#
# Healthcheck: `--health-interval disable` keeps the image's HEALTHCHECK but starts no
# timer for it (there may be no systemd); `podman healthcheck run` runs it once.
# (--no-healthcheck would drop the check altogether.)  podman 4.3 still logs "unable to
# get systemd connection" for it: harmless, kept in a log shown only on failure.
#
# Networking: the container gets its own network namespace through slirp4netns with
# allow_host_loopback, so it reaches the emulator on this host's 127.0.0.1 as 10.0.2.2,
# and its port 8080 is published on 127.0.0.1 only.  Nothing listens beyond loopback.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.local/bin:$PATH"

TAG="${BRIDGE_IMAGE_TAG:-localhost/bridge:smoke}"
WORK="${BRIDGE_IMAGE_WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/bridge-image}"
PY_BASE=localhost/bridge-base/python:3.11-bookworm
UID_EXPECTED=10001
CALLS=5
CALL_S=4          # each smoke call's length
DRAIN_CALL_S=8    # the call in progress at SIGTERM
DRAIN_S=20        # the container's ops.drain_timeout_s ...
GRACE_S=30        # ... below its stop grace period, as deploy/ sizes them

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

RUN_DIR="$(mktemp -d)"  # this run's files: the CA bundle, config, reports, logs
CTR="bridge-smoke-$$"
VOL="bridge-smoke-data-$$"
EMU_PID=""
cleanup() {
  if command -v podman >/dev/null 2>&1; then
    podman rm -f -t 0 "$CTR" >/dev/null 2>&1 || true
    podman volume rm -f "$VOL" >/dev/null 2>&1 || true
  fi
  if [ -n "$EMU_PID" ]; then kill "$EMU_PID" 2>/dev/null || true; wait "$EMU_PID" 2>/dev/null || true; fi
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

# ----------------------------------------------------------------------- tools
need_pkgs=()
for tool in podman:podman buildah:buildah runc:runc mmdebstrap:mmdebstrap; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need_pkgs+=("${tool#*:}")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || fail "missing ${need_pkgs[*]}: apt-get install them (as root)"
  say "installing ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" slirp4netns >/dev/null
fi

mkdir -p "$WORK"
# runc: crun fails on this kind of VM ("cgroups in hybrid mode not supported"); explicit
# ulimits: the engine's defaults exceed what an unprivileged VM may set (setrlimit EPERM).
cat >"$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$WORK/containers.conf"

# ----------------------------------------------------------------- base images
uv_tag="$(sed -n 's/^ARG UV_IMAGE=.*:\([0-9][0-9.]*\)$/\1/p' deploy/Dockerfile)"
[ -n "$uv_tag" ] || fail "no ARG UV_IMAGE=…:<version> in deploy/Dockerfile"
UV_BASE="localhost/bridge-base/uv:$uv_tag"

mirror_from_host() {  # $1: "security" or "main": first matching Debian URI on this host
  local want="$1" uri
  while read -r uri; do
    case "$want:$uri" in
      security:*debian-security*) echo "${uri%/}"; return ;;
      main:*debian-security*) ;;
      main:*/debian | main:*/debian/) echo "${uri%/}"; return ;;
    esac
  done < <(sed -n -e 's/^URIs:[[:space:]]*//p' \
             -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' \
             /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
             /etc/apt/sources.list.d/*.list 2>/dev/null | tr ' ' '\n')
}

if [ "${BRIDGE_IMAGE_REBUILD_BASE:-0}" = 1 ] || ! podman image exists "$PY_BASE"; then
  main_mirror="${DEBIAN_MIRROR:-$(mirror_from_host main)}"
  sec_mirror="${DEBIAN_SECURITY_MIRROR:-$(mirror_from_host security)}"
  main_mirror="${main_mirror:-http://deb.debian.org/debian}"
  sec_mirror="${sec_mirror:-http://deb.debian.org/debian-security}"
  say "making $PY_BASE (mmdebstrap from $main_mirror)"
  t0=$SECONDS
  # The python:3.11-slim layout: the interpreter the venv records is /usr/local/bin/python3.11.
  # ($1 in a hook is the new root: mmdebstrap's, not ours.)
  # shellcheck disable=SC2016
  mmdebstrap --quiet --variant=minbase --include=python3.11,python3-venv,ca-certificates \
    --customize-hook='ln -s /usr/bin/python3.11 "$1/usr/local/bin/python3.11"' \
    --customize-hook='ln -s python3.11 "$1/usr/local/bin/python3"' \
    --customize-hook='ln -s python3.11 "$1/usr/local/bin/python"' \
    bookworm "$WORK/rootfs.tar" \
    "deb $main_mirror bookworm main" "deb $main_mirror bookworm-updates main" \
    "deb $sec_mirror bookworm-security main"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    "$WORK/rootfs.tar" "$PY_BASE" >/dev/null
  rm -f "$WORK/rootfs.tar"
  echo "base image made in $((SECONDS - t0)) s"
fi

if [ "${BRIDGE_IMAGE_REBUILD_BASE:-0}" = 1 ] || ! podman image exists "$UV_BASE"; then
  say "making $UV_BASE (uv $uv_tag wheel from the package index)"
  rm -rf "$WORK/uv" && mkdir -p "$WORK/uv/root"
  pip_download=(python3 -m pip download)
  python3 -m pip --version >/dev/null 2>&1 || pip_download=(uv tool run pip download)
  "${pip_download[@]}" --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_17_x86_64 --python-version 3.11 -d "$WORK/uv" "uv==$uv_tag" \
    >"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log"; fail "downloading the uv $uv_tag wheel"; }
  python3 - "$WORK/uv" <<'EOF'
import pathlib, sys, zipfile
d = pathlib.Path(sys.argv[1])
[whl] = d.glob("uv-*.whl")
with zipfile.ZipFile(whl) as z:
    [name] = [n for n in z.namelist() if n.endswith(".data/scripts/uv")]
    out = d / "root" / "uv"
    out.write_bytes(z.read(name))
    out.chmod(0o755)
EOF
  tar -C "$WORK/uv/root" -cf "$WORK/uv/uv.tar" uv
  podman import --quiet "$WORK/uv/uv.tar" "$UV_BASE" >/dev/null
  rm -rf "$WORK/uv"
fi

# ----------------------------------------------------------------------- build
build_args=(
  --format docker                                   # else HEALTHCHECK is dropped
  --ignorefile deploy/Dockerfile.dockerignore       # buildah does not find it by name
  --build-arg "PYTHON_IMAGE=$PY_BASE" --build-arg "UV_IMAGE=$UV_BASE"
  -f deploy/Dockerfile -t "$TAG"
)
[ "${BRIDGE_IMAGE_NO_CACHE:-0}" = 1 ] && build_args+=(--no-cache)
extra_cas=(/usr/local/share/ca-certificates/*.crt)
if [ -e "${extra_cas[0]}" ]; then
  # uv trusts the bundle instead of its own roots: the public roots plus the extra CAs.
  cat /etc/ssl/certs/ca-certificates.crt "${extra_cas[@]}" >"$RUN_DIR/ca-bundle.pem" 2>/dev/null ||
    cat "${extra_cas[@]}" >"$RUN_DIR/ca-bundle.pem"
  build_args+=(--secret "id=ca_bundle,src=$RUN_DIR/ca-bundle.pem")
fi

say "building $TAG"
t0=$(date +%s.%N)
podman build "${build_args[@]}" . >"$WORK/build.log" 2>&1 || {
  tail -40 "$WORK/build.log"; fail "podman build (full log: $WORK/build.log)"; }
build_s=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")
rm -f "$RUN_DIR/ca-bundle.pem"
size_bytes=$(podman image inspect --format '{{.Size}}' "$TAG")
size_mb=$(python3 -c "import sys; print(f'{int(sys.argv[1]) / 1e6:.1f}')" "$size_bytes")
echo "build time: ${build_s} s$([ "${BRIDGE_IMAGE_NO_CACHE:-0}" = 1 ] && echo ' (no layer cache)')"
echo "image size: $size_mb MB ($size_bytes bytes)"
[ "$(podman image inspect --format '{{.Config.User}}' "$TAG")" = "$UID_EXPECTED:$UID_EXPECTED" ] ||
  fail "image user is not $UID_EXPECTED:$UID_EXPECTED"
podman image inspect --format '{{.Config.Healthcheck}}' "$TAG" | grep -q CMD ||
  fail "image has no HEALTHCHECK (built without --format docker?)"

# ------------------------------------------------------------------ smoke test
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
http_status() {  # $1 URL → HTTP status, 000 when nothing answers
  python3 - "$1" <<'EOF'
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except OSError:
    print("000")
EOF
}

EMU_PORT=$(free_port)
PORT=$(free_port)
API_KEY=$(secret)
AUTH_TOKEN=$(secret)
ADMIN_TOKEN=$(secret)
NUMBER=+15550100001
BASE="http://127.0.0.1:$PORT"

say "smoke test: emulator on 127.0.0.1:$EMU_PORT, container $CTR on 127.0.0.1:$PORT"
uv run --no-sync bridge emulator --host 127.0.0.1 --port "$EMU_PORT" --api-key "$API_KEY" \
  --log-level warning >"$RUN_DIR/emulator.log" 2>&1 &
EMU_PID=$!
AGENT_ID=$(uv run --no-sync python - "$EMU_PORT" "$API_KEY" <<'EOF'
import asyncio, sys, time

import httpx

from bridge.loadtest.stack import create_agent

async def main(url: str, key: str) -> str:
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as client:
        deadline = time.monotonic() + 30
        while True:
            try:
                await client.get(url + "/v1/convai/agents", headers={"xi-api-key": key})
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise SystemExit("the emulator did not start")
                await asyncio.sleep(0.2)
        return await create_agent(client, url, "loopback", "pcm_16000", key)

print(asyncio.run(main(f"http://127.0.0.1:{sys.argv[1]}", sys.argv[2])))
EOF
)
echo "emulator agent: $AGENT_ID"

# The drain timeout has no environment variable: a read-only TOML, as a ConfigMap would be.
cat >"$RUN_DIR/bridge.toml" <<EOF
[ops]
drain_timeout_s = $DRAIN_S
EOF
chmod 0644 "$RUN_DIR/bridge.toml"

run_container() {
  podman run -d --name "$CTR" \
    --network slirp4netns:allow_host_loopback=true -p "127.0.0.1:$PORT:8080" \
    --read-only --tmpfs /tmp -v "$VOL:/data" \
    --cap-drop ALL --security-opt no-new-privileges:true \
    --health-interval disable \
    -v "$RUN_DIR/bridge.toml:/etc/bridge/bridge.toml:ro" -e BRIDGE_CONFIG=/etc/bridge/bridge.toml \
    -e "BRIDGE_PUBLIC_URL=$BASE" \
    -e "TWILIO_AUTH_TOKEN=$AUTH_TOKEN" \
    -e "BRIDGE_ADMIN_TOKEN=$ADMIN_TOKEN" \
    -e "ELEVENLABS_API_KEY=$API_KEY" \
    -e "ELEVENLABS_BASE_URL=http://10.0.2.2:$EMU_PORT" \
    -e "BRIDGE_DEFAULT_AGENT_ID=$AGENT_ID" \
    -e TWILIO_API_BASE_URL=http://127.0.0.1:9 \
    "$TAG" >/dev/null 2>>"$RUN_DIR/podman.err" || { cat "$RUN_DIR/podman.err"; fail "podman run"; }
  local deadline=$((SECONDS + 60))
  until [ "$(http_status "$BASE/readyz")" = 200 ]; do
    if [ "$(podman inspect --format '{{.State.Running}}' "$CTR")" != true ] || [ $SECONDS -gt $deadline ]; then
      podman logs "$CTR" 2>&1 | tail -30
      fail "the container did not become ready"
    fi
    sleep 0.5
  done
}

loadtest() {  # $1 report dir, $2 calls, $3 duration, $4 ramp
  TWILIO_AUTH_TOKEN="$AUTH_TOKEN" uv run --no-sync bridge loadtest --target "$BASE" --to "$NUMBER" \
    --calls "$2" --duration "$3" --ramp "$4" --report "$1" \
    --max-p99-ms 1000 --max-cpu-ms 1000  # a smoke test on a shared machine: integrity, not speed
}

# Completed calls and lost frames from a report: "completed=N of M, lost=L, sids=…".
report_check() {  # $1 report dir, $2 expected calls
  python3 - "$1/report.json" "$2" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
want = int(sys.argv[2])
calls = r["calls"]
done = [c for c in calls if c["outcome"] == "completed"]
lost = sum(p["integrity"]["probe_frames_lost"] for p in r["phases"])
print(f"completed={len(done)} of {len(calls)}, lost={lost}")
for c in calls:
    if c["outcome"] != "completed":
        print(f"  call {c['index']}: {c['outcome']}: {c['reason']}")
sys.exit(0 if len(done) == len(calls) == want and lost == 0 else 1)
EOF
}

run_container

say "1. $CALLS synthetic calls of ${CALL_S} s through the container"
loadtest "$RUN_DIR/calls" "$CALLS" "${CALL_S}s" 2s >"$RUN_DIR/calls.out" 2>&1 || {
  cat "$RUN_DIR/calls.out"; fail "loadtest through the container"; }
grep -E '^ *(phase|[0-9])|lost|completed' "$RUN_DIR/calls.out" | head -20 || true
report_check "$RUN_DIR/calls" "$CALLS" || fail "not every call completed with 0 frames lost"
call_sids() { python3 -c 'import json, sys; print("\n".join(c["call_sid"] for c in json.load(open(sys.argv[1]))["calls"]))' "$1"; }
mapfile -t SIDS < <(call_sids "$RUN_DIR/calls/report.json")

say "2. uid, healthcheck, writes"
uid=$(podman exec "$CTR" cat /proc/1/status | awk '/^Uid:/ {print $2 "," $3 "," $4 "," $5}')
[ "$uid" = "$UID_EXPECTED,$UID_EXPECTED,$UID_EXPECTED,$UID_EXPECTED" ] || fail "process uid $uid"
echo "process uid: $UID_EXPECTED (real, effective, saved, fs)"
caps=$(podman exec "$CTR" awk '/^CapEff:/ {print $2}' /proc/1/status)
[ "$caps" = 0000000000000000 ] || fail "effective capabilities $caps"
echo "effective capabilities: none"
podman healthcheck run "$CTR" || fail "podman healthcheck run"
echo "healthcheck: healthy"
changes=$(podman diff --format '{{.Path}}' "$CTR" 2>/dev/null || podman diff "$CTR" | awk '{print $2}')
outside=$(printf '%s\n' "$changes" | grep -vE '^(/data|/tmp)(/|$)' | grep -v '^$' || true)
# /etc/bridge: our read-only config mount point, created by the engine, not by the app.
outside=$(printf '%s\n' "$outside" | grep -vE '^/etc(/bridge(/bridge\.toml)?)?$' || true)
[ -z "$outside" ] || { printf '%s\n' "$outside"; fail "written outside /data and /tmp"; }
echo "podman diff: $(printf '%s\n' "$changes" | grep -c .) paths, none outside /data and /tmp (and the config mount point):" \
  "$(printf '%s\n' "$changes" | sort | tr '\n' ' ')"
# The build secret's CAs must not have reached the image (grep for each cert's first line).
for crt in "${extra_cas[@]}"; do
  [ -e "$crt" ] || continue
  line=$(sed -n '2p' "$crt")
  rc=0
  podman run --rm --network none --read-only --user 0 --entrypoint grep "$TAG" \
    -rqF -- "$line" /etc /opt /usr/local /home 2>>"$RUN_DIR/podman.err" || rc=$?
  [ "$rc" = 1 ] || fail "the build CA $crt is inside the image (or the scan failed: grep status $rc)"
  echo "build CA $(basename "$crt"): not in the image"
done

say "3. SIGTERM with a call in progress"
loadtest "$RUN_DIR/drain" 1 "${DRAIN_CALL_S}s" 0s >"$RUN_DIR/drain.out" 2>&1 &
lt_pid=$!
deadline=$((SECONDS + 20))
until python3 - "$BASE/metrics" <<'EOF'
import re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=2).read().decode()
m = re.search(r"^bridge_active_calls(?:\{[^}]*\})? ([0-9.e+]+)$", text, re.M)
sys.exit(0 if m and float(m.group(1)) >= 1 else 1)
EOF
do
  [ $SECONDS -le $deadline ] || fail "the drain test's call never became active"
  sleep 0.2
done
sleep 1  # well inside the call
t0=$(date +%s.%N)
podman stop -t "$GRACE_S" "$CTR" >/dev/null 2>>"$RUN_DIR/podman.err" &
stop_pid=$!
ready=000
for _ in $(seq 1 20); do
  ready=$(http_status "$BASE/readyz")
  [ "$ready" = 503 ] && break
  sleep 0.1
done
wait "$stop_pid"
stop_s=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")
wait "$lt_pid" || { cat "$RUN_DIR/drain.out"; fail "the call in progress at SIGTERM did not complete"; }
report_check "$RUN_DIR/drain" 1 || fail "the drained call"
code=$(podman inspect --format '{{.State.ExitCode}}' "$CTR")
echo "readiness after SIGTERM: $ready; container exit code $code after ${stop_s} s (grace ${GRACE_S} s, drain timeout ${DRAIN_S} s)"
[ "$ready" = 503 ] || fail "readiness was not 503 while draining"
[ "$code" = 0 ] || { podman logs "$CTR" 2>&1 | tail -20; fail "exit code $code"; }
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$stop_s" "$GRACE_S" ||
  fail "stop took ${stop_s} s: the grace period ran out (SIGKILL)"
mapfile -t -O "${#SIDS[@]}" SIDS < <(call_sids "$RUN_DIR/drain/report.json")

say "4. restart on the same volume"
podman rm "$CTR" >/dev/null 2>>"$RUN_DIR/podman.err"
run_container
podman exec "$CTR" bridge calls list --ended --limit 100 --json >"$RUN_DIR/records.json" ||
  fail "bridge calls list in the restarted container"
python3 - "$RUN_DIR/records.json" "${SIDS[@]}" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
rows = data["items"]
have = {r.get("call_sid") for r in rows}
want = set(sys.argv[2:])
missing = want - have
print(f"call records after restart: {len(want - missing)} of the {len(want)} earlier calls")
sys.exit(1 if missing else 0)
EOF
podman stop -t "$GRACE_S" "$CTR" >/dev/null 2>>"$RUN_DIR/podman.err"

say "image smoke test passed: $TAG, $size_mb MB, built in ${build_s} s"
