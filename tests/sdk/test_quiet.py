"""An embedded client keeps MediaPipe's, TensorFlow Lite's and OpenCV's chatter off stderr (they write straight to
file descriptor 2: "WARNING: Logging before InitGoogle()", "Created TensorFlow Lite XNNPACK delegate", "[ WARN:0]
global net_impl_backend.cpp"), while what Python itself writes to ``sys.stderr`` still shows. Run in a fresh
interpreter, as a program using the SDK would be, so the libraries load (and speak) for the first time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from xp_sdk import init_deployment

PROGRAM = """
import sys, xp_sdk
client = xp_sdk.Client({key!r}, home={home!r})
subject = client.subjects.register("Eileen Collins", {photo!r})       # face analysis: YuNet, SFace, MediaPipe
client.consents.grant(subject.id, evidence=b"consents (quiet test)")
said = []
def progress(p):
    if not said:  # once, while the engine runs
        said.append(p)
        print("python still speaks", file=sys.stderr)
client.animate({photo!r}, subject=subject.id, driving={clip!r}, out={out!r}, progress=progress)
{extra}
print(client.verify({out!r}).generation_id)
"""


def _run(tmp_path: Path, faces: Path, extra: str = "") -> subprocess.CompletedProcess[str]:
    init = init_deployment(tmp_path / "home", tenant="acme")
    program = PROGRAM.format(
        key=init.api_key.secret, home=str(init.home), photo=str(faces / "source" / "skimage_astronaut.png"),
        clip=str(faces / "driving" / "lp_d1_hist.mp4"), out=str(tmp_path / "clip.mp4"), extra=extra,
    )  # fmt: skip
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no XP_* (nor XP_DEBUG) of the caller's
    return subprocess.run(
        [sys.executable, "-c", program], env=environment, capture_output=True, text=True, timeout=600, check=False
    )


def test_embedded_face_analysis_and_animation_write_nothing_native_to_stderr(tmp_path: Path, faces: Path) -> None:
    # After the operations, descriptor 2 is the real stderr again.
    done = _run(tmp_path, faces, extra='print("after", file=sys.stderr); import os; os.write(2, b"fd2 after\\n")')
    assert done.returncode == 0, done.stderr
    assert done.stderr == "python still speaks\nafter\nfd2 after\n"
    assert len(done.stdout.strip()) == 16  # the generation's id: the work was done
