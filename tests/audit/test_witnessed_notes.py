"""A witnessed note that is not a checkpoint this log signed (garbage, truncated, altered, another key's) is the
caller's bad input (``WitnessNoteError``), never "log tampered": the log itself still verifies."""

from __future__ import annotations

import pytest

from audit import Ledger, LogIntegrityError, LogSigningKey
from audit.checkpoint import Checkpoint, WitnessNoteError, sign_checkpoint
from audit.events import EventDraft, EventType


def _garbage(ledger: Ledger, signing_key: LogSigningKey) -> dict[str, str]:
    for n in range(3):
        ledger.log.append(EventDraft(type=EventType.VERIFICATION_PERFORMED, tenant_id="acme", data={"n": n}))
    signed = ledger.log.checkpoint()
    assert signed is not None
    note = signed.to_text()
    body, _, signatures = note.partition("\n\n")
    origin, size, root = body.split("\n")
    stranger = LogSigningKey.generate(signing_key.name)  # the log key's name, other key material
    return {
        "garbage": "garbage",
        "text": "hello world\n",
        "empty": "",
        "binary-ish": "\x00\x01\x02 not a note \xff\n",
        "truncated": note[:-5],
        "no signatures": body + "\n\n",
        "bad body": f"{origin}\n{size}\nnot base64\n\n{signatures}",
        "altered root": f"{origin}\n{size}\n{'A' * 43}=\n\n{signatures}",
        "altered size": f"{origin}\n{int(size) - 1}\n{root}\n\n{signatures}",
        "another key": sign_checkpoint(
            Checkpoint(signed.checkpoint.origin, 3, signed.checkpoint.root_hash), stranger
        ).to_text(),
    }


CASES = [
    "garbage", "text", "empty", "binary-ish", "truncated", "no signatures", "bad body", "altered root",
    "altered size", "another key",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_a_note_this_log_never_signed_is_a_witness_note_error(
    ledger: Ledger, signing_key: LogSigningKey, case: str
) -> None:
    note = _garbage(ledger, signing_key)[case]
    with pytest.raises(WitnessNoteError, match="witnessed note 2 is not a signed checkpoint note of this log") as e:
        ledger.log.verify(signing_key.public_key, witnessed=[ledger.log.checkpoints()[-1].to_text(), note])
    assert not isinstance(e.value, LogIntegrityError)
    assert ledger.log.verify(signing_key.public_key, witnessed=[c.to_text() for c in ledger.log.checkpoints()])


def test_a_signed_note_whose_root_the_log_no_longer_has_is_still_tampering(
    ledger: Ledger, signing_key: LogSigningKey
) -> None:
    """The witness's job is unchanged: a note this log did sign, over a root it no longer holds, shows a rewrite."""
    _garbage(ledger, signing_key)
    forged = sign_checkpoint(Checkpoint(ledger.log.origin, 3, b"\x07" * 32), signing_key).to_text()
    with pytest.raises(LogIntegrityError, match="witnessed checkpoint"):
        ledger.log.verify(signing_key.public_key, witnessed=[forged])
