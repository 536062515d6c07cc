"""Signed checkpoints of the audit log, as C2SP tlog-checkpoint bodies in C2SP signed notes with Ed25519 keys.

A checkpoint names the log (origin), its size and its Merkle root; an outside witness keeps signed checkpoints
and later asks for consistency proofs between them.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.errors import AuditError, ProofError
from audit.merkle import HASH_SIZE

ED25519_TYPE = 0x01
KEY_HASH_SIZE = 4
MAX_SIGNATURES = 100
MAX_TREE_SIZE = 2**64 - 1

_SIGNATURE_PREFIX = "\u2014 "
_KEY_FILE_LABEL = "Audit log signing key name: "
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_KEY_HASH_HEX = re.compile(r"[0-9a-f]{8}")

PathLike = str | os.PathLike[str]


class LogVerifierKey:
    """The public half of a log key: a signed-note key name and an Ed25519 public key."""

    __slots__ = ("_key", "_name", "_public_bytes")

    def __init__(self, name: str, public_bytes: bytes) -> None:
        _check_key_name(name)
        if len(public_bytes) != 32:
            raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(public_bytes)}")
        self._name = name
        self._public_bytes = bytes(public_bytes)
        self._key = Ed25519PublicKey.from_public_bytes(self._public_bytes)

    @property
    def name(self) -> str:
        return self._name

    @property
    def public_bytes(self) -> bytes:
        """The 32-byte raw Ed25519 public key."""
        return self._public_bytes

    @property
    def key_hash(self) -> bytes:
        """The 4-byte key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
        material = self._name.encode("utf-8") + b"\n" + bytes([ED25519_TYPE]) + self._public_bytes
        return hashlib.sha256(material).digest()[:KEY_HASH_SIZE]

    def verify(self, message: bytes, signature: bytes) -> None:
        """Raise ProofError unless ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            raise ProofError(f"signature does not verify under the key {self._name}+{self.key_hash.hex()}") from None

    def to_vkey(self) -> str:
        """The signed-note verifier key string ``<name>+<hex key hash>+<base64(0x01 || public key)>``."""
        encoded = base64.b64encode(bytes([ED25519_TYPE]) + self._public_bytes).decode("ascii")
        return f"{self._name}+{self.key_hash.hex()}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str) -> LogVerifierKey:
        """Parse a verifier key string written by ``to_vkey`` (or any signed-note Ed25519 verifier key)."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise ValueError("a verifier key reads <name>+<8 hex digits>+<base64 key>")
        name, hash_hex, encoded = parts
        if not _KEY_HASH_HEX.fullmatch(hash_hex):
            raise ValueError(f"verifier key hash must be 8 lowercase hex digits, got {hash_hex!r}")
        raw = _strict_b64decode(encoded)
        if raw is None:
            raise ValueError("verifier key material is not canonical base64")
        if len(raw) != 33 or raw[0] != ED25519_TYPE:
            raise ValueError("verifier key material must be 0x01 (Ed25519) followed by a 32-byte public key")
        key = cls(name, raw[1:])
        if key.key_hash.hex() != hash_hex:
            raise ValueError(f"verifier key hash {hash_hex} does not match its name and key ({key.key_hash.hex()})")
        return key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogVerifierKey):
            return NotImplemented
        return (self._name, self._public_bytes) == (other._name, other._public_bytes)

    def __hash__(self) -> int:
        return hash((self._name, self._public_bytes))

    def __repr__(self) -> str:
        return f"LogVerifierKey({self.to_vkey()!r})"


class LogSigningKey:
    """The private log key that signs checkpoints: a signed-note key name and an Ed25519 private key."""

    __slots__ = ("_name", "_private_key")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_key_name(name)
        self._name = name
        self._private_key = private_key

    @classmethod
    def generate(cls, name: str) -> LogSigningKey:
        """A fresh random key named ``name`` (e.g. ``example.com/audit``)."""
        return cls(name, Ed25519PrivateKey.generate())

    @property
    def name(self) -> str:
        return self._name

    @property
    def public_key(self) -> LogVerifierKey:
        raw = self._private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return LogVerifierKey(self._name, raw)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._private_key.sign(message)

    def save(self, path: PathLike) -> None:
        """Write the key as a name line and an unencrypted PKCS#8 PEM, mode 0600; never overwrite a file."""
        pem = self._private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        data = (_KEY_FILE_LABEL + self._name + "\n").encode("utf-8") + pem
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            message = "refusing to overwrite an existing log signing key"
            raise FileExistsError(errno.EEXIST, message, str(path)) from None
        try:
            with os.fdopen(fd, "wb") as handle:
                # A restrictive umask can only have removed bits; set the mode exactly anyway.
                os.chmod(path, 0o600)
                handle.write(data)
        except BaseException:
            Path(path).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: PathLike) -> LogSigningKey:
        """Read a key written by ``save``."""
        data = Path(path).read_bytes()
        first, _, pem = data.partition(b"\n")
        label = _KEY_FILE_LABEL.encode("utf-8")
        if not first.startswith(label):
            raise ValueError(f"{path}: not a log signing key file (first line must start with {_KEY_FILE_LABEL!r})")
        try:
            name = first[len(label) :].decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path}: the key name is not valid UTF-8") from None
        try:
            private_key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ValueError(f"{path}: the private key is not a readable unencrypted PKCS#8 PEM ({exc})") from None
        if not isinstance(private_key, Ed25519PrivateKey):
            raise ValueError(f"{path}: the private key is not an Ed25519 key")
        return cls(name, private_key)

    def __repr__(self) -> str:
        return f"LogSigningKey(name={self._name!r}, key_hash={self.public_key.key_hash.hex()})"


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: which log, how many leaves, and the Merkle root over them."""

    origin: str
    tree_size: int
    root_hash: bytes

    def __post_init__(self) -> None:
        if not self.origin:
            raise ValueError("checkpoint origin must not be empty")
        if _has_control_character(self.origin) or "\n" in self.origin:
            raise ValueError("checkpoint origin must be one line without control characters")
        if isinstance(self.tree_size, bool) or not isinstance(self.tree_size, int):
            raise ValueError(f"checkpoint tree size must be an int, got {type(self.tree_size).__name__}")
        if not 0 <= self.tree_size <= MAX_TREE_SIZE:
            raise ValueError(f"checkpoint tree size must be between 0 and 2^64-1, got {self.tree_size}")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise ValueError(f"checkpoint root hash must be {HASH_SIZE} bytes")

    def body(self) -> str:
        """The note text that gets signed: origin, decimal size and base64 root, one per line."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        return f"{self.origin}\n{self.tree_size}\n{root}\n"


class NoteSignature(NamedTuple):
    """One signature line of a signed note."""

    key_name: str
    key_hash: bytes
    signature: bytes


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with one or more signature lines, some perhaps from keys this side does not know."""

    checkpoint: Checkpoint
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        signatures = tuple(NoteSignature(*s) for s in self.signatures)
        if not signatures:
            raise ValueError("a signed checkpoint needs at least one signature")
        if len(signatures) > MAX_SIGNATURES:
            raise ValueError(f"a signed checkpoint holds at most {MAX_SIGNATURES} signatures")
        for s in signatures:
            _check_key_name(s.key_name)
            if len(s.key_hash) != KEY_HASH_SIZE:
                raise ValueError(f"a key hash is {KEY_HASH_SIZE} bytes, got {len(s.key_hash)}")
            if not s.signature:
                raise ValueError("a signature must not be empty")
        object.__setattr__(self, "signatures", signatures)

    def to_text(self) -> str:
        """The signed note: body, a blank line, then ``— <key name> <base64(key hash || signature)>`` lines."""
        lines = [
            f"{_SIGNATURE_PREFIX}{s.key_name} {base64.b64encode(s.key_hash + s.signature).decode('ascii')}\n"
            for s in self.signatures
        ]
        return self.checkpoint.body() + "\n" + "".join(lines)

    @classmethod
    def parse(cls, text: str | bytes) -> SignedCheckpoint:
        """Parse a signed checkpoint note strictly; raise ProofError saying what is malformed."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError:
                raise ProofError("signed checkpoint is not valid UTF-8") from None
        if _has_control_character(text):
            raise ProofError("signed checkpoint contains a control character other than newline")
        if not text.endswith("\n"):
            raise ProofError("signed checkpoint must end with a newline (is it truncated?)")
        split = text.rfind("\n\n")
        if split < 0:
            raise ProofError("signed checkpoint has no blank line between its body and its signatures")
        body, signature_block = text[: split + 1], text[split + 2 :]
        if not signature_block:
            raise ProofError("signed checkpoint has no signature lines")
        lines = signature_block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise ProofError(f"signed checkpoint has {len(lines)} signatures, more than the {MAX_SIGNATURES} allowed")
        signatures = tuple(_parse_signature_line(line, number) for number, line in enumerate(lines, start=1))
        return cls(_parse_body(body), signatures)


def sign_checkpoint(checkpoint: Checkpoint, key: LogSigningKey) -> SignedCheckpoint:
    """Sign the checkpoint's body with ``key``."""
    signature = key.sign(checkpoint.body().encode("utf-8"))
    return SignedCheckpoint(checkpoint, (NoteSignature(key.name, key.public_key.key_hash, signature),))


def verify_checkpoint(signed: SignedCheckpoint | str | bytes, verifier: LogVerifierKey) -> Checkpoint:
    """The checkpoint, once a signature by ``verifier`` verifies over its body; ProofError otherwise.

    Signatures from other keys are ignored; a failing signature from ``verifier`` rejects the whole note.
    """
    if not isinstance(signed, SignedCheckpoint):
        signed = SignedCheckpoint.parse(signed)
    mine = [s for s in signed.signatures if s.key_name == verifier.name and s.key_hash == verifier.key_hash]
    if not mine:
        names = ", ".join(f"{s.key_name}+{s.key_hash.hex()}" for s in signed.signatures)
        raise ProofError(f"checkpoint has no signature by {verifier.name}+{verifier.key_hash.hex()} (it has {names})")
    message = signed.checkpoint.body().encode("utf-8")
    for s in mine:
        verifier.verify(message, s.signature)
    return signed.checkpoint


class WitnessNoteError(AuditError):
    """A checkpoint handed in from outside (a witness's copy) is not a signed checkpoint note of this log: garbage,
    a truncated or altered note, or one signed by another key. The input is at fault, not the log: only a note this
    log did sign can show that the log was rewritten."""

    code = "invalid_witness_note"


def verify_witnessed(note: SignedCheckpoint | str | bytes, verifier: LogVerifierKey, number: int) -> Checkpoint:
    """The checkpoint of witnessed note ``number`` (counted from 1), once it parses and a signature by ``verifier``
    verifies over it; ``WitnessNoteError`` saying which note and why otherwise."""
    try:
        return verify_checkpoint(note, verifier)
    except ProofError as exc:
        raise WitnessNoteError(
            f"witnessed note {number} is not a signed checkpoint note of this log "
            f"(key {verifier.name}+{verifier.key_hash.hex()}): {exc.message}"
        ) from None


def _parse_body(body: str) -> Checkpoint:
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise ProofError(f"checkpoint body has {len(lines)} lines; it needs origin, tree size and root hash")
    if len(lines) > 3:
        raise ProofError("checkpoint body has extension lines, which this log does not accept")
    origin, size_text, root_text = lines
    if not origin:
        raise ProofError("checkpoint origin line is empty")
    if not _DECIMAL.fullmatch(size_text):
        raise ProofError(f"checkpoint tree size {size_text!r} is not a decimal number without leading zeros")
    tree_size = int(size_text)
    if tree_size > MAX_TREE_SIZE:
        raise ProofError(f"checkpoint tree size {size_text} is larger than 2^64-1")
    root = _strict_b64decode(root_text)
    if root is None or len(root) != HASH_SIZE:
        raise ProofError(f"checkpoint root hash {root_text!r} is not the canonical base64 of {HASH_SIZE} bytes")
    return Checkpoint(origin, tree_size, root)


def _parse_signature_line(line: str, number: int) -> NoteSignature:
    if not line.startswith(_SIGNATURE_PREFIX):
        raise ProofError(f"signature line {number} does not start with an em dash and a space")
    fields = line[len(_SIGNATURE_PREFIX) :].split(" ")
    if len(fields) != 2:
        raise ProofError(f"signature line {number} must hold a key name and a base64 signature, one space apart")
    name, encoded = fields
    try:
        _check_key_name(name)
    except ValueError as exc:
        raise ProofError(f"signature line {number}: {exc}") from None
    raw = _strict_b64decode(encoded)
    if raw is None:
        raise ProofError(f"signature line {number}: the signature is not canonical base64")
    if len(raw) <= KEY_HASH_SIZE:
        raise ProofError(f"signature line {number}: the signature is too short to hold a key hash and a signature")
    return NoteSignature(name, raw[:KEY_HASH_SIZE], raw[KEY_HASH_SIZE:])


def _check_key_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError("a key name must be a non-empty string")
    if any(ch.isspace() or ch == "+" for ch in name) or _has_control_character(name):
        raise ValueError(f"key name {name!r} must not contain whitespace, '+' or control characters")


def _has_control_character(text: str) -> bool:
    return any(ch < " " and ch != "\n" for ch in text)


def _strict_b64decode(text: str) -> bytes | None:
    """Standard base64 that re-encodes to exactly ``text``, or None."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None
