"""Signing credentials: the development CA, production PEM loading, and the C2PA certificate profile checks."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from watermark.credentials import (
    CallbackCredentials,
    SigningCredentials,
    create_development_credentials,
    load_development_credentials,
    load_trust_anchor,
    trust_anchor_pem,
)
from watermark.errors import CredentialsError, CredentialsExistError

FILES = ("ca.pem", "ca.key", "signer.pem", "signer.key")


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    create_development_credentials(directory, organization="Test Org")
    return directory


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _ca(keys: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((keys / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((keys / "ca.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def _issue(keys: Path, *, eku: bool = True, self_signed: bool = False) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """A leaf from the development CA (or self-signed) with the signer profile, optionally without the EKU."""
    ca_cert, ca_key = _ca(keys)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "odd signer")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name if self_signed else ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                key.public_key() if self_signed else ca_key.public_key()
            ),
            critical=False,
        )
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    cert = builder.sign(key if self_signed else ca_key, hashes.SHA256())
    chain = cert.public_bytes(serialization.Encoding.PEM) + (b"" if self_signed else (keys / "ca.pem").read_bytes())
    return chain, key


def test_development_credentials_are_owner_only(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    create_development_credentials(directory)
    assert _mode(directory) == 0o700
    assert sorted(p.name for p in directory.iterdir()) == sorted(FILES)  # no temporary files left behind
    for name in FILES:
        assert _mode(directory / name) == 0o600, name


def test_development_chain_has_the_c2pa_signer_profile(keys: Path) -> None:
    leaf, ca = x509.load_pem_x509_certificates((keys / "signer.pem").read_bytes())
    assert ca == x509.load_pem_x509_certificate((keys / "ca.pem").read_bytes())
    leaf.verify_directly_issued_by(ca)

    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    leaf_aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert leaf_aki.key_identifier == ca_ski.digest
    assert leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest != ca_ski.digest
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey) and leaf.public_key().curve.name == "secp256r1"
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Test Org"

    assert ca.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_loaded_credentials_match_what_was_created(tmp_path: Path) -> None:
    created = create_development_credentials(tmp_path / "keys")
    loaded = load_development_credentials(tmp_path / "keys")
    assert loaded == created
    assert loaded.algorithm == "es256"
    assert "private_key_pem" not in repr(loaded)


def test_trust_anchor_is_the_ca_certificate(keys: Path) -> None:
    anchor = load_trust_anchor(keys)
    assert anchor.encode() == (keys / "ca.pem").read_bytes()
    assert trust_anchor_pem(load_development_credentials(keys).certificate_chain_pem) == anchor


def test_existing_credentials_are_not_overwritten(keys: Path) -> None:
    before = {name: (keys / name).read_bytes() for name in FILES}
    with pytest.raises(CredentialsExistError, match="overwrite=True"):
        create_development_credentials(keys)
    assert {name: (keys / name).read_bytes() for name in FILES} == before

    (keys / "ca.key").unlink()  # one file is enough to refuse
    with pytest.raises(CredentialsExistError, match=r"ca\.pem"):
        create_development_credentials(keys)

    replaced = create_development_credentials(keys, overwrite=True)
    assert replaced.private_key_pem != before["signer.key"]
    assert (keys / "ca.pem").read_bytes() != before["ca.pem"]
    assert _mode(keys / "signer.key") == 0o600


def test_mismatched_key_is_refused(tmp_path: Path) -> None:
    create_development_credentials(tmp_path / "a")
    create_development_credentials(tmp_path / "b")
    with pytest.raises(CredentialsError, match="does not belong"):
        SigningCredentials.load(tmp_path / "a" / "signer.pem", tmp_path / "b" / "signer.key")


def test_sec1_key_is_converted_to_pkcs8(keys: Path, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key((keys / "signer.key").read_bytes(), None)
    sec1 = tmp_path / "sec1.key"
    sec1.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    assert sec1.read_bytes().startswith(b"-----BEGIN EC PRIVATE KEY-----")
    loaded = SigningCredentials.load(keys / "signer.pem", sec1)
    assert loaded.private_key_pem == (keys / "signer.key").read_bytes()


def test_missing_and_encrypted_files_are_reported(keys: Path, tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="does not exist"):
        SigningCredentials.load(keys / "signer.pem", tmp_path / "nope.key")
    key = serialization.load_pem_private_key((keys / "signer.key").read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(CredentialsError, match="encrypted"):
        SigningCredentials.load(keys / "signer.pem", encrypted)
    with pytest.raises(CredentialsError, match="not PEM certificates"):
        SigningCredentials.load(keys / "signer.key", keys / "signer.key")
    with pytest.raises(CredentialsError, match="does not exist"):
        load_trust_anchor(tmp_path / "empty")


def test_certificate_without_extended_key_usage_is_refused(keys: Path) -> None:
    chain, key = _issue(keys, eku=False)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(CredentialsError, match="extended key usage"):
        SigningCredentials(chain, key_pem)
    good_chain, good_key = _issue(keys)
    good_pem = good_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert SigningCredentials(good_chain, good_pem).certificate_chain_pem == good_chain


def test_self_signed_signer_is_refused(keys: Path) -> None:
    chain, _ = _issue(keys, self_signed=True)
    with pytest.raises(CredentialsError, match="self-signed"):
        CallbackCredentials(chain, sign=lambda data: b"")
    leaf_only = x509.load_pem_x509_certificates(_issue(keys)[0])[0].public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CredentialsError, match="not a self-signed root"):
        trust_anchor_pem(leaf_only)
    with pytest.raises(CredentialsError, match="exactly one CA"):
        (keys / "ca.pem").write_bytes(chain)
        load_trust_anchor(keys)


def test_algorithm_must_match_the_key(keys: Path) -> None:
    credentials = load_development_credentials(keys)
    with pytest.raises(CredentialsError, match="es256, not es384"):
        SigningCredentials(credentials.certificate_chain_pem, credentials.private_key_pem, "es384")
