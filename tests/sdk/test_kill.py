"""A real SIGKILL at any point of a generation never leaves an output file without its "completed" event."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from xp_sdk import Client, init_deployment
from xp_sdk.home import Home

CLIP = "lp_d5_hist.mp4"  # 148 frames: long enough to be killed mid-way
_CHILD = """
import sys
from xp_sdk import Client
home, key, photo, subject, clip, out = sys.argv[1:7]
with Client(key, home=home) as client:
    client.animate(photo, subject=subject, driving=clip, out=out)
print("done", flush=True)
"""


def kill_when(process: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = 60.0) -> bool:
    """SIGKILL ``process`` once ``ready()``; False when it finished first (test_leftovers.py kills the same way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if ready():
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.002)
    process.kill()
    raise AssertionError("the generation neither finished nor reached the kill point in time")


@pytest.mark.parametrize("kill_point", ["engine-running", "signing", "publishing", "after-start-1.5s"])
def test_sigkill_never_leaves_an_unaudited_output(tmp_path: Path, faces: Path, kill_point: str) -> None:
    init = init_deployment(tmp_path / "home", tenant="kill")
    photo = faces / "source" / "skimage_astronaut.png"
    with Client(init.api_key.secret, home=init.home) as admin:
        subject = admin.subjects.register("Eileen Collins", [photo]).id
        admin.consents.grant(subject, evidence=b"consent for the kill test")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "clip.mp4"
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(init.home), init.api_key.secret, str(photo), subject,
         str(faces / "driving" / CLIP), str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    work = Home(init.home).work_dir

    def temp(name: str) -> bool:
        # A generation's temporaries live in its work folder under the home, never beside the output.
        return any(p.stat().st_size > 0 for p in work.glob(f"*/{name}")) if work.is_dir() else False

    ready = {
        "engine-running": lambda: temp("unsigned.mp4"),
        "signing": lambda: temp("signed.mp4"),
        "publishing": lambda: completed_events(init.home) > 0,
        "after-start-1.5s": lambda: time.monotonic() - started > 1.5,
    }[kill_point]
    killed = kill_when(process, ready)

    with Client(init.api_key.secret, home=init.home) as admin:
        completed = admin.audit.query(type="generation.completed").events
        if out.exists():
            assert completed, f"killed at {kill_point}: {out.name} exists without a completed event"
            digest = hashlib.sha256(out.read_bytes()).hexdigest()
            assert completed[-1].data["output_sha256"] == digest
        if not killed:
            assert out.exists() and completed
        if killed and kill_point in ("engine-running", "signing"):
            assert not out.exists() and not completed, f"killed while {kill_point}, yet the output was published"
            # The dead process left its generation "requested"; an operator closes it so the record says how it
            # ended.
            [stale] = admin.audit.abandoned(older_than=timedelta(0))
            [closed] = admin.audit.abandoned(older_than=timedelta(0), close=True)
            assert closed.id == stale.id and closed.status == "failed" and closed.error_code == "abandoned"
            assert admin.audit.abandoned(older_than=timedelta(0)) == []
            events = admin.audit.query(generation_id=stale.id).events
            assert [e.type for e in events] == ["generation.requested", "generation.failed"]
            assert not (work / stale.id).exists(), "closing an abandoned generation removes its temporaries"
        admin.audit.verify()
    # Nothing beside the output, hidden or not: a leftover signed copy there would pass for a real output.
    assert [p.name for p in out_dir.iterdir()] in ([], ["clip.mp4"])


def completed_events(home: Path) -> int:
    # Polled every few milliseconds, so straight SQL rather than a Client (which authenticates each call).
    with sqlite3.connect(home / "xp.db", timeout=5) as db:
        row = db.execute("SELECT count(*) FROM audit_events WHERE event_type = 'generation.completed'").fetchone()
    return int(row[0])
