"""`bridge instances` and `bridge calls list --live` across instances, against a live
bridge (a second instance is a row another process would have written)."""

from __future__ import annotations

import json
import time

from bridge.store import CallRecord
from bridge.store.instances import Instances
from tests.admin.stack import BridgeUnderTest
from tests.commands.conftest import Cli


async def test_instances_and_live_calls_of_other_instances(
    cli: Cli, bridge: BridgeUnderTest
) -> None:
    store = bridge.app.state.store
    other = Instances(store, instance_id="pod-b", grace_s=30.0, version="9.9")
    other.register()
    # pod-b's live call, as its own store would have recorded it.
    store.record_call(
        CallRecord(
            call_sid="CA" + "b" * 32,
            stream_sid="MZ1",
            instance="pod-b",
            status="in-progress",
            started_at=time.time(),
        )
    )
    assert store.flush()

    rc, out, err = await cli("instances", "--json")
    assert (rc, err) == (0, "")
    items = json.loads(out)["items"]
    assert [(i["id"], i["state"], i["alive"]) for i in items] == [
        (store.instance, "running", True),
        ("pod-b", "running", True),
    ]
    rc, out, _ = await cli("instances")
    assert rc == 0 and "pod-b" in out and "9.9" in out

    rc, out, _ = await cli("calls", "list", "--live")
    assert rc == 0 and "CA" + "b" * 32 in out and "pod-b" in out

    # Stopped (or silent past the grace): its calls are no longer listed as live.
    other.stop()
    rc, out, _ = await cli("calls", "list", "--live", "--json")
    assert json.loads(out)["items"] == []
