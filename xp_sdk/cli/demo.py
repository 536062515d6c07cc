"""The demo: the whole product on one portrait, needing no external file. The astronaut portrait (Eileen Collins,
the picture scikit-image ships) comes with xp-sdk (``xp_sdk.samples``); the motion is the project's own showcase
template.

It initialises a deployment in ``<out>/home``, registers the astronaut as a subject, records her consent,
animates her, verifies the clip, shows its audit trail and re-verifies the log."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
import typer

from xp_sdk.cli.common import JsonFlag, emit, progress_bar, quiet_native_stderr
from xp_sdk.engine.video import read_frames
from xp_sdk.errors import HomeError
from xp_sdk.samples import astronaut
from xp_sdk.verification import full_report

SUBJECT_NAME = "Eileen Collins (scikit-image astronaut sample)"
ADMIN_KEY_FILE = "demo-admin.key"
CONSENT_STATEMENT = """\
xp-sdk demo consent statement

This is a demo consent statement, written by `xp demo`. It is NOT a real person's consent.

The portrait is the "astronaut" sample image that ships with scikit-image (NASA photograph of astronaut
Eileen Collins, in the public domain). The demo records this statement as the consent evidence for that
subject so that the consent gate, the audit log and the provenance marks can be shown end to end.

A real deployment records a statement signed by the person (or a recorded consent video) here; xp-sdk stores
only the evidence file's SHA-256 in the consent record.
"""

Say = Callable[[str], None]


def contact_sheet(video: Path, out: Path, *, tiles: int = 10, columns: int = 5, height: int = 256) -> Path:
    """Evenly spaced frames of ``video`` in a grid, for looking at what was made."""
    frames = list(read_frames(video, max_side=height * 2))
    picks = np.linspace(0, len(frames) - 1, tiles).astype(int)
    cells = []
    for i in picks:
        f = frames[i]
        cell = cv2.resize(f, (round(f.shape[1] * height / f.shape[0]), height), interpolation=cv2.INTER_AREA)
        cv2.putText(cell, f"{i}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 2, cv2.LINE_AA)
        cells.append(cell)
    rows = [np.hstack(cells[r : r + columns]) for r in range(0, len(cells), columns)]
    cv2.imwrite(str(out), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    return out


def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the demo outputs and its own home.")] = Path(
        "out/demo"
    ),
    template: Annotated[str, typer.Option("--template", help="The motion template to animate with.")] = "showcase",
    as_json: JsonFlag = False,
) -> None:
    """Run the whole product on the astronaut portrait (shipped with xp-sdk): init a deployment, register
    her, record consent, animate, verify, show the audit trail and re-verify the log."""
    report = run_demo(out, template=template, say=None if as_json else typer.echo)
    emit(report, as_json, lambda: None)


def run_demo(
    folder: Path, *, template: str = "showcase", say: Say | None = None, show_progress: bool = True
) -> dict[str, Any]:
    """Every step of the demo; ``say`` narrates them as they happen. Returns the report (what ``--json`` prints).

    The demo keeps its own home in ``<folder>/home`` and its own SQLite database there, so it never touches a
    real deployment (XP_HOME, XP_API_KEY and XP_DATABASE_URL are ignored). Running it again reuses that home."""
    from xp_sdk.client import Client

    tell: Say = say or (lambda _: None)
    folder.mkdir(parents=True, exist_ok=True)
    home = folder.resolve() / "home"
    database_url = f"sqlite:///{home / 'xp.db'}"
    api_key, fresh = _demo_home(home, database_url)
    key_file = home / ADMIN_KEY_FILE
    tell(f"home:       {home} ({'new' if fresh else 'reused'}; the demo keeps its admin API key in {key_file})")

    source = folder / "astronaut.png"
    cv2.imwrite(str(source), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    evidence = folder / "consent-statement.txt"
    evidence.write_text(CONSENT_STATEMENT, encoding="utf-8")
    video = folder / f"astronaut_{template}.mp4"

    with Client(api_key, home=home, database_url=database_url) as client:
        subject = next((s for s in client.subjects.list(protected=False) if s.name == SUBJECT_NAME), None)
        if subject is None:
            subject = client.subjects.register(SUBJECT_NAME, [source])
            tell(f"subject:    {subject.id} registered from {source.name} ({subject.name})")
        else:
            tell(f"subject:    {subject.id} already registered ({subject.name})")

        now = datetime.now(UTC)
        consent = next(
            (c for c in client.consents.list(subject=subject.id)
             if c.revoked_at is None and (c.valid_until is None or c.valid_until > now) and c.valid_from <= now
             and "animate" in c.scopes and not c.purposes),
            None,
        )  # fmt: skip
        if consent is None:
            consent = client.consents.grant(subject.id, evidence=evidence, scopes=["animate"])
            tell(f"consent:    {consent.id} granted on {evidence} (sha256 {consent.evidence_sha256[:16]}…)")
        else:
            tell(f"consent:    {consent.id} still active (evidence sha256 {consent.evidence_sha256[:16]}…)")

        with quiet_native_stderr(), progress_bar(show_progress, f"animating ({template})") as progress:
            result = client.animate(source, subject=subject.id, out=video, template=template, progress=progress)
        fps = round(result.frames / max(result.seconds, 1e-9), 1)
        tell(
            f"animated:   generation {result.generation_id}, {result.frames} frames {result.width}x{result.height}, "
            f"{fps} fps end to end (face similarity {result.face_similarity:.2f})"
        )
        sheet = contact_sheet(video, folder / f"astronaut_{template}_sheet.png")

        verdict = full_report(client.verify(video))
        mark = verdict.watermark
        record = verdict.generation
        watermark_text = (
            f"detected, payload {mark.payload}, p = {mark.p_value:.1e}" if mark.detected else "not detected"
        )
        record_text = (
            f"found ({record.status}), file {'matches' if record.file_matches_record else 'differs'}"
            if record is not None
            else "not found"
        )
        tell(
            f"verified:   C2PA {verdict.c2pa.state.value}; watermark {watermark_text}; generation record {record_text}"
        )

        events = client.audit.query(generation_id=result.generation_id).events
        tell(f"audit:      {len(events)} events for generation {result.generation_id}:")
        for event in events:
            decision = f" ({event.decision})" if event.decision else ""
            tell(f"              #{event.seq} {event.occurred_at:%H:%M:%S} {event.type}{decision}")
        log = client.audit.verify()
        tell(
            f"audit log:  consistent: {log.tree_size} events, {log.checkpoints} signed checkpoints, every hash, "
            f"link and signature recomputed in {log.seconds:.3f} s"
        )
    tell(f"video:      {video.resolve()}")
    tell(f"frames:     {sheet.resolve()} (contact sheet)")

    return {
        "video": str(video.resolve()),
        "contact_sheet": str(sheet.resolve()),
        "source": str(source.resolve()),
        "consent_statement": str(evidence.resolve()),
        "home": str(home),
        "home_reused": not fresh,
        "admin_key_file": str(key_file),
        "subject_id": subject.id,
        "consent_id": consent.id,
        "generation_id": result.generation_id,
        "watermark_id": result.watermark_id,
        "frames": result.frames,
        "size": f"{result.width}x{result.height}",
        "fps_end_to_end": fps,
        "c2pa": verdict.c2pa.state.value,
        "watermark": {"detected": mark.detected, "payload": mark.payload, "p_value": mark.p_value},
        "generation_record": record.model_dump(mode="json") if record is not None else None,
        "audit_events": [
            {"seq": e.seq, "type": e.type, "decision": e.decision, "occurred_at": e.occurred_at.isoformat()}
            for e in events
        ],
        "audit_log": {**log.to_dict(), "unsigned_tail": log.unsigned_tail},
    }


def _demo_home(home: Path, database_url: str) -> tuple[str, bool]:
    """The demo home's admin API key, and whether the home was made just now.

    ``demo-admin.key`` (mode 0600) is the demo's own convenience, so that a second run can reuse the home: a real
    deployment never writes an API key to disk; `xp init` prints it once for a person to store."""
    from xp_sdk.deployment import init_deployment
    from xp_sdk.home import Home

    key_file = home / ADMIN_KEY_FILE
    if Home(home).audit_key_path.exists():
        try:
            return key_file.read_text(encoding="ascii").strip(), False
        except OSError:
            raise HomeError(
                f"{home} is an xp-sdk home without the demo's {ADMIN_KEY_FILE}; remove {home} to start the demo afresh"
            ) from None
    made = init_deployment(home, database_url=database_url, organization="xp-sdk demo")
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(made.api_key.secret + "\n")
    return made.api_key.secret, True
