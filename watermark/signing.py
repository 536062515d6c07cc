"""Embed a signed C2PA manifest in an MP4 (c2pa-python). The destination appears whole or not at all."""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import c2pa
from c2pa import Builder, C2paError, C2paSignerInfo, C2paSigningAlg, Context, Reader, Signer

from watermark.credentials import CallbackCredentials, Credentials, SigningCredentials
from watermark.errors import MediaNotFoundError, SigningError, UnsupportedMediaError
from watermark.manifest import (
    GenerationAssertion,
    IngredientRef,
    SoftBinding,
    ingredient_definition,
    manifest_definition,
)

MP4_MEDIA_TYPE = "video/mp4"

SIGNING_SETTINGS: dict[str, Any] = {
    # No thumbnail of the output in the claim: the video shows a person.
    "builder": {"thumbnail": {"enabled": False}},
    # Signing makes no network calls, and c2pa re-validates what it wrote before we keep it.
    "verify": {"verify_after_sign": True, "remote_manifest_fetch": False, "ocsp_fetch": False},
}

# ISO BMFF brands of MP4 video; HEIC/AVIF images and QuickTime share the container but are not MP4 video.
_MP4_BRANDS = frozenset(
    {b"isom", b"mp41", b"mp42", b"avc1", b"M4V ", b"dash"} | {f"iso{n}".encode() for n in range(2, 10)}
)


@dataclass(frozen=True)
class SignedManifest:
    label: str
    """The active manifest's label (``urn:c2pa:…``)."""
    manifest_sha256: str | None
    """SHA-256 of the manifest store bytes c2pa embedded (the JUMBF inside the MP4), when c2pa returns them."""
    file_sha256: str
    """SHA-256 of the signed file as written."""


def sign_video(
    source: Path,
    destination: Path,
    *,
    assertion: GenerationAssertion,
    soft_binding: SoftBinding,
    ingredients: Sequence[IngredientRef] = (),
    credentials: Credentials,
    title: str | None = None,
) -> SignedManifest:
    """Write ``source`` with an embedded, signed manifest to ``destination`` (atomically; may equal ``source``)."""
    _check_mp4(source)
    definition = manifest_definition(
        title=title or destination.name,
        assertion=assertion,
        soft_binding=soft_binding,
        ingredients=[_ingredient(ingredient) for ingredient in ingredients],
    )
    callback = _CapturingCallback(credentials.sign) if isinstance(credentials, CallbackCredentials) else None
    try:
        descriptor, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    except OSError as exc:
        raise SigningError(f"cannot write next to {destination}: {exc.strerror}") from exc
    try:
        # mkstemp creates 0600; the signed video is an ordinary output file.
        os.fchmod(descriptor, 0o644)
        with os.fdopen(descriptor, "w+b") as output, source.open("rb") as input_stream:
            manifest_bytes = _sign(definition, credentials, callback, input_stream, output)
            output.flush()
            os.fsync(output.fileno())
        label = _active_label(Path(temporary))
        file_sha256 = _sha256_file(Path(temporary))
        os.replace(temporary, destination)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if callback is not None and callback.error is not None:
            raise SigningError(f"the signing callback failed: {callback.error}") from callback.error
        if isinstance(exc, C2paError):
            raise SigningError(f"c2pa could not sign {source}: {exc}") from exc
        if isinstance(exc, OSError):
            raise SigningError(f"cannot sign {source} into {destination}: {exc}") from exc
        raise
    manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest() if manifest_bytes else None
    return SignedManifest(label=label, manifest_sha256=manifest_sha256, file_sha256=file_sha256)


class _CapturingCallback:
    """Keeps the callback's exception: c2pa only logs it and reports a generic signature failure."""

    def __init__(self, sign: Callable[[bytes], bytes]) -> None:
        self._sign = sign
        self.error: Exception | None = None

    def __call__(self, data: bytes) -> bytes:
        try:
            return self._sign(data)
        except Exception as exc:
            self.error = exc
            raise


def _sign(
    definition: dict[str, Any],
    credentials: Credentials,
    callback: _CapturingCallback | None,
    source: Any,
    destination: Any,
) -> bytes:
    signer = _signer(credentials, callback)
    with signer, Context.from_dict(SIGNING_SETTINGS) as context, Builder(definition, context=context) as builder:
        _declare_created(builder)
        manifest_bytes: bytes = builder.sign(signer, MP4_MEDIA_TYPE, source, destination)
    return manifest_bytes


def _declare_created(builder: Any) -> None:
    """Declare the intent "created, as trained algorithmic media" through c2pa's own API where the installed
    c2pa-python has it (0.2x lacks it: the definition's c2pa.created action then says the same)."""
    intent = getattr(c2pa, "C2paBuilderIntent", None)
    source_type = getattr(c2pa, "C2paDigitalSourceType", None)
    if intent is None or source_type is None or not hasattr(builder, "set_intent"):
        return
    builder.set_intent(intent.CREATE, source_type.TRAINED_ALGORITHMIC_MEDIA)


def _signer(credentials: Credentials, callback: _CapturingCallback | None) -> Any:
    if isinstance(credentials, SigningCredentials):
        algorithm = credentials.algorithm.encode("ascii")
        chain, key = credentials.certificate_chain_pem, credentials.private_key_pem
        return Signer.from_info(C2paSignerInfo(algorithm, chain, key, None))
    chain_text = credentials.certificate_chain_pem.decode("ascii")
    return Signer.from_callback(callback or credentials.sign, C2paSigningAlg[credentials.algorithm.upper()], chain_text)


def _active_label(path: Path) -> str:
    with (
        path.open("rb") as stream,
        Context.from_dict(SIGNING_SETTINGS) as context,
        Reader(MP4_MEDIA_TYPE, stream, None, context) as reader,
    ):
        store = json.loads(reader.json())
    label: str = store["active_manifest"]
    return label


def _check_mp4(path: Path) -> None:
    try:
        with path.open("rb") as stream:
            header = stream.read(64)
    except FileNotFoundError as exc:
        raise MediaNotFoundError(f"the video to sign, {path}, does not exist") from exc
    except OSError as exc:
        raise MediaNotFoundError(f"cannot read the video to sign, {path}: {exc.strerror}") from exc
    # ftyp: size, "ftyp", major brand, minor version, then compatible brands to the end of the box.
    end = min(int.from_bytes(header[:4], "big"), len(header))
    brands = {header[8:12]} | {header[i : i + 4] for i in range(16, end - 3, 4)}
    if header[4:8] != b"ftyp" or not brands & _MP4_BRANDS:
        raise UnsupportedMediaError(f"{path} is not an MP4 video; only MP4 can be signed (re-encode it to MP4 first)")


def _ingredient(ingredient: IngredientRef) -> dict[str, Any]:
    media_type, _ = mimetypes.guess_type(ingredient.path.name)
    if media_type is None:
        raise UnsupportedMediaError(f"cannot tell the media type of the ingredient {ingredient.path} from its name")
    try:
        sha256 = _sha256_file(ingredient.path)
    except FileNotFoundError as exc:
        raise MediaNotFoundError(f"the ingredient {ingredient.path} does not exist") from exc
    except OSError as exc:
        raise MediaNotFoundError(f"cannot read the ingredient {ingredient.path}: {exc.strerror}") from exc
    return ingredient_definition(ingredient, media_type=media_type, sha256=sha256)


def _sha256_file(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()
