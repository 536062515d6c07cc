"""Signed checkpoints: C2SP signed-note / tlog-checkpoint interoperability, keys, and rejection of tampering."""

from __future__ import annotations

import base64
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import (
    Checkpoint,
    LogSigningKey,
    LogVerifierKey,
    NoteSignature,
    SignedCheckpoint,
    sign_checkpoint,
    verify_checkpoint,
)
from audit.errors import ProofError
from audit.merkle import EMPTY_ROOT, leaf_hash

# golang.org/x/mod/sumdb/note: the PeterNeumann example key and note.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = b"If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIGNATURE = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="

# Tree heads signed by the Go checksum database, sum.golang.org, with its published key.
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_NOTES = [
    (
        65209736,
        "go.sum database tree\n65209736\n5+uGFjx6xBZG8ip1+wi77v+grwbhhukIrxEUS8PXvRo=\n\n"
        "— sum.golang.org "
        "Az3grnbssgK7ubgFX36gVETtNv0U23qxyAhAMai2QUfeGa3nB/akvkMdlUErfcZz7l/R3cVtYspg3dxXABkGZZKdsQ8=\n",
    ),
    (
        31700353,
        "go.sum database tree\n31700353\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n\n"
        "— sum.golang.org "
        "Az3grnmrIUEDFqHzAElIQCPNoRFRAAdFo47fooyWKMHb89k11GJh5zHIfNCOBmwn/C3YI8oW9/C8DJ87F61QqspBYwM=\n",
    ),
]

ORIGIN = "audit.example/log"
ROOT = leaf_hash(b"the root")


@pytest.fixture(scope="module")
def key() -> LogSigningKey:
    return LogSigningKey.generate(ORIGIN)


@pytest.fixture(scope="module")
def signed(key: LogSigningKey) -> SignedCheckpoint:
    return sign_checkpoint(Checkpoint(ORIGIN, 1234, ROOT), key)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


class TestInteroperability:
    def test_go_note_example_is_reproduced(self) -> None:
        seed = base64.b64decode(GO_SKEY.split("+", 4)[4])[1:]
        go_key = LogSigningKey("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))
        assert go_key.public_key.to_vkey() == GO_VKEY
        assert go_key.public_key.key_hash.hex() == "c74f20a3"
        blob = base64.b64decode(GO_SIGNATURE)
        assert go_key.public_key.key_hash == blob[:4]
        assert go_key.sign(GO_TEXT) == blob[4:]
        LogVerifierKey.from_vkey(GO_VKEY).verify(GO_TEXT, blob[4:])
        with pytest.raises(ProofError):
            LogVerifierKey.from_vkey(GO_VKEY).verify(GO_TEXT.replace(b"problem", b"Problem"), blob[4:])

    @pytest.mark.parametrize(("size", "note"), SUMDB_NOTES)
    def test_go_checksum_database_checkpoints_verify(self, size: int, note: str) -> None:
        verifier = LogVerifierKey.from_vkey(SUMDB_VKEY)
        checkpoint = verify_checkpoint(note, verifier)
        assert checkpoint.origin == "go.sum database tree"
        assert checkpoint.tree_size == size
        assert SignedCheckpoint.parse(note).to_text() == note
        with pytest.raises(ProofError):
            verify_checkpoint(note.replace(str(size), str(size + 1)), verifier)


class TestSignAndVerify:
    def test_text_layout(self, key: LogSigningKey, signed: SignedCheckpoint) -> None:
        root_b64 = base64.b64encode(ROOT).decode()
        assert signed.checkpoint.body() == f"{ORIGIN}\n1234\n{root_b64}\n"
        body, signature_line = signed.to_text().split("\n\n")
        assert body + "\n" == signed.checkpoint.body()
        match = re.fullmatch(rf"— {re.escape(ORIGIN)} ([A-Za-z0-9+/]+=*)\n", signature_line)
        assert match is not None
        blob = base64.b64decode(match.group(1))
        assert blob[:4] == key.public_key.key_hash
        assert len(blob) == 4 + 64

    def test_round_trip(self, key: LogSigningKey, signed: SignedCheckpoint) -> None:
        text = signed.to_text()
        assert SignedCheckpoint.parse(text) == signed
        assert SignedCheckpoint.parse(text.encode()) == signed
        expected = Checkpoint(ORIGIN, 1234, ROOT)
        assert verify_checkpoint(text, key.public_key) == expected
        assert verify_checkpoint(text.encode(), key.public_key) == expected
        assert verify_checkpoint(signed, key.public_key) == expected

    def test_empty_tree(self, key: LogSigningKey) -> None:
        text = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), key).to_text()
        assert text.split("\n")[1] == "0"
        assert verify_checkpoint(text, key.public_key).tree_size == 0

    def test_another_key_is_rejected(self, signed: SignedCheckpoint) -> None:
        other = LogSigningKey.generate("other.example/log")
        with pytest.raises(ProofError, match=r"no signature by other\.example/log"):
            verify_checkpoint(signed.to_text(), other.public_key)

    def test_same_name_other_key_is_rejected(self, signed: SignedCheckpoint) -> None:
        impostor = LogSigningKey.generate(ORIGIN)
        with pytest.raises(ProofError, match="no signature by"):
            verify_checkpoint(signed.to_text(), impostor.public_key)
        forged = sign_checkpoint(signed.checkpoint, impostor)
        with pytest.raises(ProofError):
            verify_checkpoint(forged.to_text(), LogSigningKey.generate(ORIGIN).public_key)

    def test_bad_signature_from_the_known_key_is_rejected(self, key: LogSigningKey, signed: SignedCheckpoint) -> None:
        good = signed.signatures[0]
        for position in (0, 31, 63):
            bad = bytearray(good.signature)
            bad[position] ^= 0x80
            tampered = SignedCheckpoint(signed.checkpoint, (good._replace(signature=bytes(bad)),))
            with pytest.raises(ProofError, match="does not verify"):
                verify_checkpoint(tampered.to_text(), key.public_key)
        # A failing signature by the trusted key rejects the note even beside a good one.
        both = SignedCheckpoint(signed.checkpoint, (good, good._replace(signature=bytes(64))))
        with pytest.raises(ProofError):
            verify_checkpoint(both, key.public_key)

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            ("\n1234\n", "\n1235\n"),
            ("\n1234\n", "\n123\n"),
            (ORIGIN + "\n", "audit.example/log2\n"),
            (ORIGIN + "\n", "audit.example/lo\n"),
        ],
    )
    def test_modified_body_is_rejected(self, key: LogSigningKey, signed: SignedCheckpoint, old: str, new: str) -> None:
        text = signed.to_text()
        assert old in text
        with pytest.raises(ProofError):
            verify_checkpoint(text.replace(old, new, 1), key.public_key)

    def test_modified_root_is_rejected(self, key: LogSigningKey, signed: SignedCheckpoint) -> None:
        for position in range(0, 32, 7):
            root = bytearray(ROOT)
            root[position] ^= 0x01
            changed = SignedCheckpoint(Checkpoint(ORIGIN, 1234, bytes(root)), signed.signatures)
            with pytest.raises(ProofError, match="does not verify"):
                verify_checkpoint(changed.to_text(), key.public_key)

    def test_every_truncation_is_rejected(self, key: LogSigningKey, signed: SignedCheckpoint) -> None:
        text = signed.to_text()
        for end in range(len(text)):
            with pytest.raises(ProofError):
                verify_checkpoint(text[:end], key.public_key)

    def test_foreign_signatures_are_ignored(self, key: LogSigningKey, signed: SignedCheckpoint) -> None:
        witness = LogSigningKey.generate("witness.example/w1")
        cosigned = sign_checkpoint(signed.checkpoint, witness).signatures[0]
        # A cosignature of another type (72 bytes, like C2SP tlog-cosignature) from an unknown key.
        unknown = NoteSignature("witness.example/w2", b"\x01\x02\x03\x04", bytes(range(72)))
        note = SignedCheckpoint(signed.checkpoint, (unknown, cosigned, *signed.signatures))
        parsed = SignedCheckpoint.parse(note.to_text())
        assert parsed == note
        assert verify_checkpoint(parsed, key.public_key) == signed.checkpoint
        assert verify_checkpoint(parsed, witness.public_key) == signed.checkpoint


SIG = "— audit.example/log " + base64.b64encode(b"\x00" * 68).decode() + "\n"
ROOT_B64 = base64.b64encode(ROOT).decode()
MALFORMED = [
    ("no trailing newline", f"{ORIGIN}\n5\n{ROOT_B64}\n\n{SIG[:-1]}", "end with a newline"),
    ("no blank line", f"{ORIGIN}\n5\n{ROOT_B64}\n{SIG}", "no blank line"),
    ("no signatures", f"{ORIGIN}\n5\n{ROOT_B64}\n\n", "no signature lines"),
    ("hyphen for em dash", f"{ORIGIN}\n5\n{ROOT_B64}\n\n" + SIG.replace("—", "--"), "em dash"),
    ("two spaces", f"{ORIGIN}\n5\n{ROOT_B64}\n\n" + SIG.replace(" ", "  ", 1), "one space apart"),
    ("extra field", f"{ORIGIN}\n5\n{ROOT_B64}\n\n" + SIG[:-1] + " x\n", "one space apart"),
    ("plus in key name", f"{ORIGIN}\n5\n{ROOT_B64}\n\n" + SIG.replace("log ", "l+g "), "must not contain"),
    ("bad base64", f"{ORIGIN}\n5\n{ROOT_B64}\n\n— audit.example/log AAAA*AAA\n", "not canonical base64"),
    ("short signature", f"{ORIGIN}\n5\n{ROOT_B64}\n\n— audit.example/log AAAAAA==\n", "too short"),
    ("carriage returns", f"{ORIGIN}\r\n5\r\n{ROOT_B64}\r\n\r\n{SIG}", "control character"),
    ("leading zero", f"{ORIGIN}\n05\n{ROOT_B64}\n\n{SIG}", "leading zeros"),
    ("negative size", f"{ORIGIN}\n-5\n{ROOT_B64}\n\n{SIG}", "not a decimal"),
    ("arabic digits", f"{ORIGIN}\n٥\n{ROOT_B64}\n\n{SIG}", "not a decimal"),
    ("huge size", f"{ORIGIN}\n{2**64}\n{ROOT_B64}\n\n{SIG}", "larger than"),
    ("short root", f"{ORIGIN}\n5\n{ROOT_B64[:-4]}\n\n{SIG}", "canonical base64 of 32 bytes"),
    ("unpadded root", f"{ORIGIN}\n5\n{ROOT_B64.rstrip('=')}\n\n{SIG}", "canonical base64"),
    ("hex root", f"{ORIGIN}\n5\n{ROOT.hex()}\n\n{SIG}", "canonical base64"),
    ("empty origin", f"\n5\n{ROOT_B64}\n\n{SIG}", "no blank line|origin"),
    ("two body lines", f"{ORIGIN}\n5\n\n{SIG}", "needs origin, tree size and root hash"),
    ("extension line", f"{ORIGIN}\n5\n{ROOT_B64}\nextra\n\n{SIG}", "extension lines"),
]


class TestParse:
    @pytest.mark.parametrize(("text", "message"), [(t, m) for _, t, m in MALFORMED], ids=[n for n, _, _ in MALFORMED])
    def test_malformed_notes(self, text: str, message: str) -> None:
        with pytest.raises(ProofError, match=message):
            SignedCheckpoint.parse(text)

    def test_the_template_itself_parses(self) -> None:
        parsed = SignedCheckpoint.parse(f"{ORIGIN}\n5\n{ROOT_B64}\n\n{SIG}")
        assert parsed.checkpoint == Checkpoint(ORIGIN, 5, ROOT)
        assert parsed.signatures == (NoteSignature(ORIGIN, b"\x00" * 4, b"\x00" * 64),)

    def test_not_utf8(self) -> None:
        with pytest.raises(ProofError, match="UTF-8"):
            SignedCheckpoint.parse(b"\xff\xfe\n\n")

    def test_too_many_signatures(self) -> None:
        with pytest.raises(ProofError, match="more than the 100 allowed"):
            SignedCheckpoint.parse(f"{ORIGIN}\n5\n{ROOT_B64}\n\n" + SIG * 101)


class TestValues:
    @pytest.mark.parametrize(
        ("origin", "size", "root"),
        [
            ("", 1, ROOT),
            ("a\nb", 1, ROOT),
            ("a\tb", 1, ROOT),
            (ORIGIN, -1, ROOT),
            (ORIGIN, True, ROOT),
            (ORIGIN, 2**64, ROOT),
            (ORIGIN, 1, ROOT[:31]),
        ],
    )
    def test_bad_checkpoints(self, origin: str, size: int, root: bytes) -> None:
        with pytest.raises(ValueError):
            Checkpoint(origin, size, root)

    def test_bad_signed_checkpoints(self) -> None:
        checkpoint = Checkpoint(ORIGIN, 1, ROOT)
        with pytest.raises(ValueError, match="at least one signature"):
            SignedCheckpoint(checkpoint, ())
        with pytest.raises(ValueError, match="key hash is 4 bytes"):
            SignedCheckpoint(checkpoint, (NoteSignature(ORIGIN, b"\x00" * 3, b"\x00" * 64),))
        with pytest.raises(ValueError, match="must not contain"):
            SignedCheckpoint(checkpoint, (NoteSignature("a b", b"\x00" * 4, b"\x00" * 64),))


class TestKeys:
    @pytest.mark.parametrize("name", ["", "audit log", "audit+log", "audit\tlog", "audit\u00a0log", "log\x00"])
    def test_bad_key_names(self, name: str) -> None:
        with pytest.raises(ValueError):
            LogSigningKey.generate(name)

    def test_save_and_load(self, tmp_path: Path, umask_zero: None) -> None:
        key = LogSigningKey.generate(ORIGIN)
        path = tmp_path / "log.key"
        key.save(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        loaded = LogSigningKey.load(path)
        assert loaded.name == ORIGIN
        assert loaded.public_key == key.public_key
        loaded.public_key.verify(b"message", key.sign(b"message"))
        # The file stays a standard PKCS#8 PEM that other tools read (the name line is PEM explanatory text).
        assert isinstance(serialization.load_pem_private_key(path.read_bytes(), password=None), Ed25519PrivateKey)

    def test_save_never_overwrites(self, tmp_path: Path) -> None:
        path = tmp_path / "log.key"
        first = LogSigningKey.generate(ORIGIN)
        first.save(path)
        before = path.read_bytes()
        with pytest.raises(FileExistsError, match="refusing to overwrite"):
            LogSigningKey.generate(ORIGIN).save(path)
        assert path.read_bytes() == before
        other = tmp_path / "other.key"
        other.write_text("not a key")
        with pytest.raises(FileExistsError):
            first.save(other)
        assert other.read_text() == "not a key"

    def test_load_rejects_other_files(self, tmp_path: Path) -> None:
        garbage = tmp_path / "garbage.key"
        garbage.write_text("Audit log signing key name: audit.example/log\nnot a pem\n")
        with pytest.raises(ValueError, match="not a readable"):
            LogSigningKey.load(garbage)
        unlabelled = tmp_path / "bare.pem"
        unlabelled.write_bytes(
            Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        with pytest.raises(ValueError, match="not a log signing key file"):
            LogSigningKey.load(unlabelled)

    def test_vkey_round_trip(self) -> None:
        verifier = LogSigningKey.generate(ORIGIN).public_key
        vkey = verifier.to_vkey()
        assert re.fullmatch(rf"{re.escape(ORIGIN)}\+[0-9a-f]{{8}}\+[A-Za-z0-9+/]{{44}}", vkey)
        parsed = LogVerifierKey.from_vkey(vkey)
        assert parsed == verifier
        assert parsed.key_hash == verifier.key_hash
        assert parsed.to_vkey() == vkey

    @pytest.mark.parametrize(
        "vkey",
        [
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key hash
            "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # upper-case hash
            "PeterNeumanN+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # other name
            "PeterNeumann+c74f20a3+Alpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # signature type 0x02
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",  # truncated key
            "PeterNeumann+c74f20a3",
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        ],
    )
    def test_bad_vkeys(self, vkey: str) -> None:
        with pytest.raises(ValueError):
            LogVerifierKey.from_vkey(vkey)
