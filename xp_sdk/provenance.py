"""The deployment's provenance keys: the watermark key and the C2PA signer with its trust anchor."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from watermark import ProvenanceError, WatermarkKey
from watermark.credentials import (
    Credentials,
    SigningCredentials,
    create_development_credentials,
    load_development_credentials,
    load_trust_anchor,
)
from watermark.errors import UnreadableVideoError as UnreadableMediaError
from watermark.errors import UnsupportedMediaError
from xp_sdk.config import environment
from xp_sdk.errors import (
    AlreadyInitializedError,
    NotInitializedError,
    ProvenanceFailedError,
    UnreadableVideoError,
    UnsupportedFormatError,
)
from xp_sdk.home import Home


@contextmanager
def provenance_errors() -> Iterator[None]:
    """Re-raise the provenance package's errors as ``XPError``s, keeping their codes."""
    try:
        yield
    except UnsupportedMediaError as exc:
        # A file that is no media at all is the caller's input to fix, not a provenance failure.
        raise UnsupportedFormatError(str(exc)) from exc
    except UnreadableMediaError as exc:
        raise UnreadableVideoError(str(exc)) from exc
    except ProvenanceError as exc:
        raise ProvenanceFailedError(str(exc), code=exc.code) from exc


@dataclass(frozen=True)
class ProvenanceKeys:
    watermark_key: WatermarkKey = field(repr=False)
    credentials: Credentials = field(repr=False)
    trust_anchors: str
    """PEM CA certificates that make this deployment's manifests read Trusted."""


def init_provenance_keys(home: Home, *, organization: str = "xp-sdk development") -> ProvenanceKeys:
    """Create the watermark key and a development CA + ES256 signer under ``home`` (0700 / 0600)."""
    existing = [p for p in (home.watermark_key_path, home.signing_dir / "signer.pem") if p.exists()]
    if existing:
        raise AlreadyInitializedError(
            f"provenance keys already exist in {home.keys_dir}; replacing them would orphan every mark and "
            "manifest made so far (move the folder away first if that is really what you want)"
        )
    home.ensure()
    with provenance_errors():
        key = WatermarkKey.generate()
        create_development_credentials(home.signing_dir, organization=organization)
        key.save(home.watermark_key_path)
    return load_provenance_keys(home)


def load_provenance_keys(home: Home) -> ProvenanceKeys:
    """The keys under ``home``; a production signer replaces the development one when ``XP_SIGNING_CHAIN`` and
    ``XP_SIGNING_KEY`` name PEM files, and ``XP_TRUST_ANCHORS`` names the anchors to trust."""
    if not home.watermark_key_path.exists():
        raise NotInitializedError(f"no provenance keys in {home.root}; run `xp init` (or set XP_HOME)")
    with provenance_errors():
        watermark_key = WatermarkKey.load(home.watermark_key_path)
        chain, private_key = environment("signing_chain"), environment("signing_key")
        credentials: Credentials
        if chain and private_key:
            credentials = SigningCredentials.load(Path(chain), Path(private_key))
        else:
            credentials = load_development_credentials(home.signing_dir)
        anchors_file = environment("trust_anchors")
        anchors = (
            Path(anchors_file).read_text(encoding="ascii") if anchors_file else load_trust_anchor(home.signing_dir)
        )
    return ProvenanceKeys(watermark_key, credentials, anchors)
