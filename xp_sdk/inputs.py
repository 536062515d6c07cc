"""What a caller may pass to an operation, checked once at the service's edge with pydantic.

Every operation's arguments go through :func:`checked` after the key is authenticated and before anything reads
or writes: a bad value is an ``InvalidInputError`` naming the argument and its bounds, logged as a refusal, never
a ``ValueError`` from the engine or a ``DataError`` from PostgreSQL. Record ids that are malformed are simply not
found (``NotFoundError``), as an id that does not exist: the answer is the same either way.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from cryptography import x509
from pydantic import AfterValidator, Field, TypeAdapter, ValidationError

from policy import Scope
from xp_sdk.errors import InvalidInputError, NotFoundError

T = TypeVar("T")

MAX_NAME = 200
MAX_REASON = 500
MAX_RATE_LIMIT = 1_000_000
MAX_OLDER_THAN = timedelta(days=36_500)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
CONSENT_SCOPES = frozenset({Scope.ANIMATE.value})
"""What a consent can cover: the actions done to a person's likeness (verifying or reading is nobody's likeness)."""

_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PURPOSE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_IDS = {
    "subject": re.compile(r"^sub_[0-9a-f]{16}$"),
    "consent": re.compile(r"^con_[0-9a-f]{16}$"),
    "generation": re.compile(r"^[0-9a-f]{16}$"),
    "API key": re.compile(r"^[0-9a-f]{12}$"),
}


# Bidirectional embeddings, overrides and isolates: a name holding U+202E shows as another text than it is (a
# tenant's audit reader sees "evil" where the log holds "live"). Joiners, which some scripts need, stay allowed.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _printable(value: str) -> str:
    if any(unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") for c in value):
        raise ValueError("must not contain control or unassigned characters (NUL, escapes, …)")
    if _BIDI_CONTROLS.intersection(value):
        raise ValueError("must not contain bidirectional override or isolate characters")
    return value


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _tenant(value: str) -> str:
    if not _TENANT.match(value) or ".." in value:
        raise ValueError("must be 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a timezone, e.g. 2027-01-01T00:00:00Z")
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"must lie between {EARLIEST:%Y} and {LATEST:%Y}")
    return value.astimezone(UTC)


def _purpose(value: str) -> str:
    if not _PURPOSE.match(value):
        raise ValueError("a purpose is 1-64 lowercase letters, digits, '-', '_' or '.'")
    return value


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME), AfterValidator(_printable)]
Text = Annotated[str, Field(max_length=MAX_REASON), AfterValidator(_printable)]
TenantId = Annotated[str, AfterValidator(_tenant)]
Moment = Annotated[datetime, AfterValidator(_aware)]
RateLimit = Annotated[int, Field(ge=0, le=MAX_RATE_LIMIT)]
"""Requests a minute; 0 is no limit."""
PageSize = Annotated[int, Field(ge=1, le=1000)]
TreeSize = Annotated[int, Field(ge=0, le=2**62)]
WitnessNote = Annotated[str, Field(min_length=1, max_length=65_536), AfterValidator(lambda s: _no_nul(s))]
"""A signed checkpoint note as a witness kept it (several lines): bounded, and whole text."""
Age = Annotated[timedelta, Field(ge=timedelta(0), le=MAX_OLDER_THAN)]
Purposes = Annotated[list[Annotated[str, AfterValidator(_purpose)]], Field(max_length=32)]
KeyScopes = Annotated[list[Scope], Field(min_length=1)]
ConsentScopes = Annotated[list[Annotated[str, AfterValidator(lambda s: _consent_scope(s))]], Field(min_length=1)]


def _consent_scope(value: str) -> str:
    if value not in CONSENT_SCOPES:
        raise ValueError(f"a consent covers {', '.join(sorted(CONSENT_SCOPES))}, not {value!r}")
    return value


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def checked(kind: Any, value: Any, what: str) -> Any:
    """``value`` validated as ``kind`` (one of the annotated types above), else ``InvalidInputError`` naming
    ``what``."""
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(kind)
    try:
        return adapter.validate_python(value, strict=False)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f"[{p}]" for p in first.get("loc", ()))
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "…"
        raise InvalidInputError(f"{what}{where} {shown}: {first['msg']}") from None


def record_id(kind: str, value: object) -> str:
    """``value`` when it has the shape of a ``kind`` id, else the same ``NotFoundError`` a missing record gives."""
    if not isinstance(value, str) or not _IDS[kind].match(value):
        shown = value if isinstance(value, str) and len(value) <= 80 else str(value)[:77] + "…"
        raise NotFoundError(f"no {kind} {shown!r}")
    return value


def pem_certificates(text: str, what: str) -> str:
    """``text`` when it holds PEM certificates (as trust anchors must), else an ``InvalidInputError``."""
    try:
        x509.load_pem_x509_certificates(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        message = f"{what} must be PEM CA certificates (-----BEGIN CERTIFICATE----- blocks): {exc}"
        raise InvalidInputError(message) from None
    return text
