"""``xp audit``: query the tamper-evident log, show a generation's trail, verify the log, export checkpoints."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any

import typer

from audit import AuditEvent, ProofError, SignedCheckpoint
from xp_sdk.cli.common import (
    ApiKeyOption,
    DatabaseUrlOption,
    HomeOption,
    JsonFlag,
    emit,
    note,
    open_client,
    parse_duration,
    parse_time,
    print_table,
    when,
)
from xp_sdk.errors import InvalidInputError

audit_app = typer.Typer(no_args_is_help=True, help="The audit log: query, show, verify, checkpoints.")

_SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space start every signature line of a signed note


class DecisionChoice(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@audit_app.command("query")
def audit_query(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's events.")] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="Only events about this subject.")] = None,
    generation: Annotated[str | None, typer.Option("--generation", help="Only this generation's events.")] = None,
    decision: Annotated[DecisionChoice | None, typer.Option("--decision", help="Only allowed or denied.")] = None,
    event_type: Annotated[
        str | None,
        typer.Option("--type", help="An event type (generation.completed) or a prefix ending in '.' (generation.)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="From this time on: ISO 8601 (UTC if no offset) or 1h, 7d ago.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Before this time: ISO 8601 (UTC if no offset) or 1h, 7d ago.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Events per page.")] = 100,
    cursor: Annotated[str | None, typer.Option("--cursor", help="next_cursor from the previous page.")] = None,
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Audit events, oldest first, filtered (filters combine with AND) and paged (needs audit:read)."""
    start = parse_time(since, option="--since", future=False)
    end = parse_time(until, option="--until", future=False)
    with open_client(home, api_key, database_url) as client:
        page = client.audit.query(
            tenant=tenant,
            subject=subject,
            generation_id=generation,
            decision=decision.value if decision is not None else None,
            type=event_type,
            since=start,
            until=end,
            limit=limit,
            cursor=cursor,
        )

    def human() -> None:
        if not page.events:
            typer.echo("no events match")
        else:
            _event_table(page.events)
        if page.next_cursor:
            typer.echo(f"more: --cursor {page.next_cursor}")

    emit(page.model_dump(mode="json"), as_json, human)


@audit_app.command("show")
def audit_show(
    generation_id: Annotated[str, typer.Argument(metavar="GENERATION_ID", help="The generation (watermark) id.")],
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """A generation's record, its events, and each event's inclusion proof against a signed checkpoint."""
    with open_client(home, api_key, database_url) as client:
        trail = client.audit.show(generation_id)

    def human() -> None:
        g = trail.generation
        typer.echo(f"generation {g.id}: {g.status}")
        typer.echo(
            f"  tenant {g.tenant_id}, key {g.key_id}, subject {g.subject_id or '-'}, consent {g.consent_id or '-'}"
        )
        typer.echo(f"  decision {g.decision_id}, driving {g.driving}")
        typer.echo(f"  source sha256 {g.source_sha256}")
        typer.echo(f"  output sha256 {g.output_sha256 or '-'}")
        typer.echo(f"  requested {when(g.created_at)} UTC, finished {when(g.finished_at)} UTC")
        if g.error_code:
            typer.echo(f"  error {g.error_code}")
        _event_table(trail.events)
        sizes = sorted({int(p["tree_size"]) for p in trail.proofs})
        typer.echo(
            f"{len(trail.proofs)} inclusion proof(s) against signed checkpoint(s) at size "
            f"{', '.join(str(s) for s in sizes) or '-'}; log key {trail.log_verifier_key}"
        )

    emit(trail.model_dump(mode="json"), as_json, human)


@audit_app.command("verify")
def audit_verify(
    witness: Annotated[
        list[Path] | None,
        typer.Option(
            "--witness",
            help="A file of signed checkpoints kept outside the database (`xp audit checkpoints --out`); repeatable.",
        ),
    ] = None,
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Recompute every event hash, link and signed root; check witnessed checkpoints are still in the log.

    Exit code 0 when all is consistent; 20 (log_tampered) with the first inconsistency otherwise."""
    notes = [n for path in witness or () for n in read_witness_file(path)]
    with open_client(home, api_key, database_url) as client:
        result = client.audit.verify(witnessed=notes)
    data = {**result.to_dict(), "unsigned_tail": result.unsigned_tail}

    def human() -> None:
        typer.echo(
            f"audit log consistent: {result.tree_size} events, root {result.root_hash[:16]}…, "
            f"{result.checkpoints} signed checkpoint(s) (latest at size {result.latest_checkpoint_size}"
            f"{f', {result.unsigned_tail} event(s) after it not yet signed' if result.unsigned_tail else ''})"
            f"{f', {result.witnessed} witnessed checkpoint(s) matched' if witness else ''}; {result.seconds:.2f} s"
        )

    emit(data, as_json, human)


@audit_app.command("consistency")
def audit_consistency(
    old_size: Annotated[int, typer.Argument(metavar="OLD_SIZE", min=1, help="The tree size a witness holds.")],
    new_size: Annotated[
        int | None, typer.Option("--to", help="A signed checkpoint's tree size (default: the latest).")
    ] = None,
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Prove the first OLD_SIZE events are unchanged in the latest signed tree (RFC 6962 consistency proof);
    compare old_root with the root your witnessed checkpoint of that size signed."""
    with open_client(home, api_key, database_url) as client:
        proof = client.audit.consistency(old_size, new_size)
    emit(proof.model_dump(mode="json"), as_json, lambda: typer.echo(
        f"tree {proof.old_size} → {proof.new_size}: old root {proof.old_root}, new root {proof.new_root}, "
        f"{len(proof.path)} proof hashes\n{proof.checkpoint}"
    ))  # fmt: skip


@audit_app.command("abandoned")
def audit_abandoned(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Still requested after this long (90m, 12h, 2d).")
    ] = "1h",
    close: Annotated[
        bool,
        typer.Option(
            "--close",
            help="Write each one's failed event (abandoned) and remove what it left in the home; needs keys:admin.",
        ),
    ] = False,
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Generations a dead process left "requested"; --close records how they ended (no output exists for them)
    and removes their temporaries (the home's work/<generation id>/ folders)."""
    age = parse_duration(older_than, option="--older-than")
    with open_client(home, api_key, database_url) as client:
        found = client.audit.abandoned(older_than=age, close=close)
    verb = "closed as failed" if close else "still requested"
    emit(
        {"generations": [g.model_dump(mode="json") for g in found]},
        as_json,
        lambda: print_table(
            f"{len(found)} generation(s) {verb} after {older_than}",
            ("generation", "tenant", "subject", "status", "requested at"),
            [(g.id, g.tenant_id, g.subject_id or "-", g.status, when(g.created_at)) for g in found],
        ),
    )


@audit_app.command("checkpoint")
def audit_checkpoint(
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Sign the log's current tree head now and print the signed note (for a witness to keep)."""
    with open_client(home, api_key, database_url) as client:
        text = client.audit.checkpoint()
    if text is None:
        note("the audit log is empty: there is nothing to sign yet")
        emit({"note": None}, as_json, lambda: None)
        return
    checkpoint = SignedCheckpoint.parse(text).checkpoint
    data = {
        "origin": checkpoint.origin,
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.root_hash.hex(),
        "note": text,
    }
    emit(data, as_json, lambda: typer.echo(text, nl=False))


@audit_app.command("checkpoints")
def audit_checkpoints(
    out: Annotated[Path | None, typer.Option("--out", help="Write the notes to this file instead of stdout.")] = None,
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Export every signed checkpoint, oldest first, separated by blank lines: a witness file that
    `xp audit verify --witness FILE` accepts back."""
    with open_client(home, api_key, database_url) as client:
        notes = client.audit.checkpoints()
    text = join_notes(notes)
    sizes = [SignedCheckpoint.parse(n).checkpoint.tree_size for n in notes]
    if out is not None:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"cannot write {out}: {exc.strerror or exc}") from None
        data: dict[str, Any] = {"out": str(out), "count": len(notes), "tree_sizes": sizes}
        emit(data, as_json, lambda: typer.echo(
            f"wrote {len(notes)} signed checkpoint(s) to {out}"
            + (f" (tree sizes {sizes[0]}…{sizes[-1]})" if sizes else "")))  # fmt: skip
    else:
        emit({"checkpoints": notes, "tree_sizes": sizes}, as_json, lambda: typer.echo(text, nl=False))


# -- signed notes in a witness file --------------------------------------------------------------------------


def join_notes(notes: list[str]) -> str:
    """Signed notes (each ending in a newline) one after another, a blank line between two."""
    return "\n".join(notes)


def split_notes(text: str, *, source: str = "the witness file") -> list[str]:
    """The signed notes in ``text``: each is body lines, a blank line, then signature lines (``— name sig``);
    the blank line that follows a signature block ends the note. Blank lines around notes are ignored."""
    notes: list[str] = []
    lines: list[str] = []
    signatures = 0
    in_signatures = False
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if not line.strip():
            if in_signatures and signatures:
                notes.append("\n".join(lines) + "\n")
                lines, signatures, in_signatures = [], 0, False
            elif lines and not in_signatures:
                lines.append("")
                in_signatures = True
            elif in_signatures:
                raise InvalidInputError(f"{source}, line {number}: two blank lines where signature lines should be")
            continue
        if in_signatures:
            if not line.startswith(_SIGNATURE_PREFIX):
                raise InvalidInputError(
                    f"{source}, line {number}: expected a signature line ('— <key name> <signature>'); "
                    "notes must be separated by a blank line"
                )
            signatures += 1
        lines.append(line)
    if lines:
        if not signatures:
            raise InvalidInputError(f"{source}: the last note has no signature lines (is the file truncated?)")
        notes.append("\n".join(lines) + "\n")
    for index, item in enumerate(notes, start=1):
        try:
            SignedCheckpoint.parse(item)
        except ProofError as exc:
            raise InvalidInputError(f"{source}: signed note {index} is malformed: {exc}") from None
    return notes


def read_witness_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read the witness file {path}: {exc}") from None
    notes = split_notes(text, source=str(path))
    if not notes:
        raise InvalidInputError(f"the witness file {path} holds no signed checkpoints")
    return notes


def _event_table(events: list[AuditEvent]) -> None:
    print_table(
        None,
        ("seq", "time (UTC)", "type", "decision", "tenant", "actor", "subject", "generation"),
        [(e.seq, when(e.occurred_at), e.type, e.decision, e.tenant_id, e.actor, e.subject_id, e.generation_id)
         for e in events],
    )  # fmt: skip
