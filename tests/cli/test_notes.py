"""Witness files: signed notes one after another, split on the blank line that follows each signature block."""

from __future__ import annotations

import pytest

from audit import LogSigningKey
from audit.checkpoint import Checkpoint, sign_checkpoint
from xp_sdk.cli.audit import join_notes, split_notes
from xp_sdk.errors import InvalidInputError


def _notes(count: int) -> list[str]:
    key = LogSigningKey.generate("xp-sdk-test")
    return [sign_checkpoint(Checkpoint("xp-sdk/test", size, bytes([size]) * 32), key).to_text() for size in
            range(1, count + 1)]  # fmt: skip


def test_join_then_split_gives_the_notes_back() -> None:
    notes = _notes(3)
    text = join_notes(notes)
    assert "\n\n\n" not in text and text.count("\n\n") == 2 * len(notes) - 1
    assert split_notes(text) == notes


def test_split_is_lenient_about_blank_lines_around_notes_and_crlf() -> None:
    notes = _notes(2)
    text = "\n\n" + "\n\n\n".join(notes) + "\n\n"
    assert split_notes(text) == notes
    assert split_notes(join_notes(notes).replace("\n", "\r\n")) == notes
    assert split_notes(notes[0].rstrip("\n")) == notes[:1]  # a final newline lost in an editor
    assert split_notes("") == []


def test_a_note_with_several_signatures_stays_one_note() -> None:
    [note] = _notes(1)
    cosigned = note + "\u2014 witness.example/w1 " + "A" * 92 + "\n"  # 4-byte key hash + 64-byte signature
    assert split_notes(join_notes([cosigned, note])) == [cosigned, note]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("xp-sdk/test\n1\nAAAA\n", "no signature lines"),
        ("xp-sdk/test\n1\nAAAA\n\nnot a signature\n", "expected a signature line"),
        ("xp-sdk/test\n1\nAAAA\n\n\n\u2014 k AAAA\n", "two blank lines"),
        ("xp-sdk/test\n1\nnot base64\n\n\u2014 k AAAAAAAAAAAA\n", "malformed"),
    ],
)
def test_malformed_witness_files_are_bad_input(text: str, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        split_notes(text, source="w.notes")
