"""Signing credentials for C2PA: development CA creation, production PEM loading, and KMS/HSM callback signers.

C2PA validators reject certificates that break its profile (self-signed signers, missing key usage, no extended
key usage, no authority key identifier), so every credential is checked here, where the message can say what to fix,
rather than failing later inside the signing library.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes, PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from watermark.errors import CredentialsError, CredentialsExistError

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
SIGNER_CHAIN_FILE = "signer.pem"
SIGNER_KEY_FILE = "signer.key"
_DEVELOPMENT_FILES = (CA_CERT_FILE, CA_KEY_FILE, SIGNER_CHAIN_FILE, SIGNER_KEY_FILE)

_CA_VALIDITY = datetime.timedelta(days=3650)
_SIGNER_VALIDITY = datetime.timedelta(days=730)
# Backdated so a signer made a moment ago is not "not yet valid" on a machine whose clock runs slightly behind.
_CLOCK_SKEW = datetime.timedelta(minutes=5)

_Extension = TypeVar("_Extension", bound=x509.ExtensionType)

_EC_ALGORITHMS = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}


@dataclass(frozen=True)
class SigningCredentials:
    """A certificate chain (signer first, then its issuers) and the signer's PKCS#8 private key, both PEM."""

    certificate_chain_pem: bytes
    private_key_pem: bytes = field(repr=False)
    algorithm: str = "es256"

    def __post_init__(self) -> None:
        leaf = _check_chain(self.certificate_chain_pem, self.algorithm)
        key = _load_private_key(self.private_key_pem, "the private key")
        if _public_bytes(key.public_key()) != _public_bytes(leaf.public_key()):
            raise CredentialsError(
                f"the private key does not belong to the signing certificate ({leaf.subject.rfc4514_string()}); "
                "check that the key and certificate files come from the same issuance"
            )
        # c2pa reads only PKCS#8, while CAs and openssl often hand out SEC1 ("EC PRIVATE KEY") files.
        object.__setattr__(self, "private_key_pem", _pkcs8(key))

    @classmethod
    def load(cls, chain_path: Path, key_path: Path) -> SigningCredentials:
        """Read a production chain and key (PEM); the algorithm follows from the certificate's key type."""
        chain_pem = _read(chain_path, "certificate chain")
        key_pem = _read(key_path, "private key")
        return cls(chain_pem, key_pem, algorithm_for(_parse_chain(chain_pem)[0].public_key()))


@dataclass(frozen=True)
class CallbackCredentials:
    """A certificate chain whose private key stays elsewhere (KMS, HSM): ``sign`` receives the bytes to sign.

    ``sign`` returns the signature for ``algorithm``; for ECDSA either DER (what KMS and ``cryptography`` return)
    or raw ``r || s`` is accepted.
    """

    certificate_chain_pem: bytes
    sign: Callable[[bytes], bytes] = field(repr=False)
    algorithm: str = "es256"

    def __post_init__(self) -> None:
        _check_chain(self.certificate_chain_pem, self.algorithm)


Credentials = SigningCredentials | CallbackCredentials


def create_development_credentials(
    directory: Path, *, organization: str = "xp-sdk development", overwrite: bool = False
) -> SigningCredentials:
    """Create a development CA and an ES256 signer it issued, written to ``directory`` (0700, files 0600).

    Media signed with them validates as Trusted only where ``ca.pem`` is passed as a trust anchor.
    Refuses to replace existing credentials unless ``overwrite``: media signed with the old signer would stop
    chaining to the new anchor.
    """
    existing = sorted(name for name in _DEVELOPMENT_FILES if (directory / name).exists())
    if existing and not overwrite:
        raise CredentialsExistError(
            f"signing credentials already exist in {directory} ({', '.join(existing)}); "
            "pass overwrite=True to replace them (media signed with the old key will no longer chain to the new CA)"
        )
    now = datetime.datetime.now(datetime.UTC) - _CLOCK_SKEW
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _development_ca(ca_key, organization, now)
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer_cert = _development_signer(signer_key, ca_cert, ca_key, organization, now)

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    chain_pem = signer_cert.public_bytes(serialization.Encoding.PEM) + ca_pem
    signer_key_pem = _pkcs8(signer_key)

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for name, data in (
        (CA_CERT_FILE, ca_pem),
        (CA_KEY_FILE, _pkcs8(ca_key)),
        (SIGNER_CHAIN_FILE, chain_pem),
        (SIGNER_KEY_FILE, signer_key_pem),
    ):
        _write_private(directory / name, data)
    return SigningCredentials(chain_pem, signer_key_pem, "es256")


def load_development_credentials(directory: Path) -> SigningCredentials:
    return SigningCredentials.load(directory / SIGNER_CHAIN_FILE, directory / SIGNER_KEY_FILE)


def load_trust_anchor(directory: Path) -> str:
    """The development CA certificate (PEM text) that readers pass as a trust anchor."""
    pem = _read(directory / CA_CERT_FILE, "CA certificate")
    certificates = _parse_chain(pem)
    if len(certificates) != 1 or not _is_ca(certificates[0]):
        raise CredentialsError(f"{directory / CA_CERT_FILE} must hold exactly one CA certificate")
    return certificates[0].public_bytes(serialization.Encoding.PEM).decode("ascii")


def trust_anchor_pem(certificate_chain_pem: bytes) -> str:
    """The root that ends ``certificate_chain_pem`` (PEM text), for chains that include their root."""
    root = _parse_chain(certificate_chain_pem)[-1]
    if root.issuer != root.subject or not _is_ca(root):
        raise CredentialsError(
            f"the chain ends with {root.subject.rfc4514_string()}, which is not a self-signed root CA; "
            "take the trust anchor from your certificate authority instead"
        )
    return root.public_bytes(serialization.Encoding.PEM).decode("ascii")


def algorithm_for(public_key: CertificatePublicKeyTypes) -> str:
    """The C2PA signing algorithm name for a certificate's key type."""
    if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name in _EC_ALGORITHMS:
        return _EC_ALGORITHMS[public_key.curve.name]
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, rsa.RSAPublicKey):
        return "ps256"
    raise CredentialsError(
        f"unsupported signing key type {type(public_key).__name__}; use ECDSA P-256/P-384/P-521, Ed25519 or RSA"
    )


def _development_ca(key: ec.EllipticCurvePrivateKey, organization: str, now: datetime.datetime) -> x509.Certificate:
    name = _name(f"{organization} root CA", organization)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(digital_signature=False, key_cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )


def _development_signer(
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    organization: str,
    now: datetime.datetime,
) -> x509.Certificate:
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(_name(f"{organization} signer", organization))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _SIGNER_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, key_cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _key_usage(*, digital_signature: bool, key_cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _check_chain(chain_pem: bytes, algorithm: str) -> x509.Certificate:
    """The signing certificate of ``chain_pem`` after checking the C2PA signer profile; raises what to fix."""
    chain = _parse_chain(chain_pem)
    leaf = chain[0]
    subject = leaf.subject.rfc4514_string()
    if leaf.issuer == leaf.subject:
        raise CredentialsError(
            f"the signing certificate {subject} is self-signed; C2PA requires a signer issued by a CA "
            "(create_development_credentials makes both)"
        )
    if _is_ca(leaf):
        raise CredentialsError(f"the signing certificate {subject} is a CA certificate; use an end-entity signer")
    key_usage = _extension(leaf, x509.KeyUsage)
    if key_usage is None or not key_usage.digital_signature:
        raise CredentialsError(f"the signing certificate {subject} lacks the digitalSignature key usage C2PA requires")
    extended = _extension(leaf, x509.ExtendedKeyUsage)
    if extended is None or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in extended:
        raise CredentialsError(
            f"the signing certificate {subject} needs a specific extended key usage "
            "(emailProtection or documentSigning), which C2PA requires"
        )
    if _extension(leaf, x509.AuthorityKeyIdentifier) is None:
        raise CredentialsError(f"the signing certificate {subject} lacks the authority key identifier C2PA requires")
    expected = algorithm_for(leaf.public_key())
    if algorithm != expected:
        raise CredentialsError(f"the signing certificate {subject} has a key for {expected}, not {algorithm}")
    return leaf


def _parse_chain(chain_pem: bytes) -> list[x509.Certificate]:
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise CredentialsError(f"the certificate chain is not PEM certificates: {exc}") from exc
    return chain


def _extension(certificate: x509.Certificate, kind: type[_Extension]) -> _Extension | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(certificate: x509.Certificate) -> bool:
    constraints = _extension(certificate, x509.BasicConstraints)
    return constraints is not None and constraints.ca


def _load_private_key(pem: bytes, where: str) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except TypeError as exc:
        raise CredentialsError(
            f"{where} is encrypted; decrypt it, or keep it in a KMS/HSM and sign with CallbackCredentials"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CredentialsError(f"{where} is not a PEM private key: {exc}") from exc


def _public_bytes(key: PublicKeyTypes | CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _pkcs8(key: PrivateKeyTypes) -> bytes:
    encoding, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, pkcs8, serialization.NoEncryption())


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise CredentialsError(f"the {what} file {path} does not exist") from exc
    except OSError as exc:
        raise CredentialsError(f"cannot read the {what} file {path}: {exc.strerror}") from exc


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` owner-only and atomically, so an interrupted run never leaves half a key."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
