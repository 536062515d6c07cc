"""Consent records and the evaluation of whether one currently covers a request."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(UTC)


class ConsentKind(StrEnum):
    """How a consent was proven."""

    VERIFIED_VIDEO = "verified-video"
    """A live challenge video passed every check: the subject's face, the actions, the phrase, not generated, fresh."""
    ATTESTED = "attested"
    """An evidence file the operator recorded: its truth is the operator's word."""


@dataclass(frozen=True)
class ConsentRecord:
    """A subject's consent for one grantee tenant.

    ``purposes`` empty means the consent does not restrict purpose; ``scopes`` must name at least one scope.
    """

    id: str
    subject_id: str
    grantee_tenant_id: str
    scopes: frozenset[str]
    purposes: frozenset[str]
    valid_from: datetime
    valid_until: datetime | None = None
    revoked_at: datetime | None = None
    kind: ConsentKind = ConsentKind.ATTESTED

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ConsentKind(self.kind))
        object.__setattr__(self, "scopes", frozenset(self.scopes))
        object.__setattr__(self, "purposes", frozenset(self.purposes))
        if not self.scopes:
            raise ValueError(f"consent {self.id} names no scope")
        object.__setattr__(self, "valid_from", _utc(self.valid_from, "valid_from"))
        if self.valid_until is not None:
            object.__setattr__(self, "valid_until", _utc(self.valid_until, "valid_until"))
            if self.valid_until <= self.valid_from:
                raise ValueError(f"consent {self.id} ends ({self.valid_until}) before it starts ({self.valid_from})")
        if self.revoked_at is not None:
            object.__setattr__(self, "revoked_at", _utc(self.revoked_at, "revoked_at"))

    def covers(self, scope: str, purpose: str | None) -> bool:
        if scope not in self.scopes:
            return False
        # A purpose-restricted consent cannot cover a request that states no purpose.
        return not self.purposes or (purpose is not None and purpose in self.purposes)


class ConsentStatus(StrEnum):
    ACTIVE = "active"
    NONE = "none"
    REVOKED = "revoked"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True)
class ConsentEvaluation:
    status: ConsentStatus
    consent_id: str | None
    message: str
    kind: ConsentKind | None = None
    """The kind of the consent ``consent_id`` names (None when none does)."""

    @property
    def active(self) -> bool:
        return self.status is ConsentStatus.ACTIVE


# When no consent is active, the status shown is the one a person can most usefully act on.
_PRIORITY = (ConsentStatus.REVOKED, ConsentStatus.NOT_YET_VALID, ConsentStatus.EXPIRED)


def _time_status(record: ConsentRecord, now: datetime) -> ConsentStatus:
    if record.revoked_at is not None and record.revoked_at <= now:
        return ConsentStatus.REVOKED
    if now < record.valid_from:
        return ConsentStatus.NOT_YET_VALID
    if record.valid_until is not None and now >= record.valid_until:
        return ConsentStatus.EXPIRED
    return ConsentStatus.ACTIVE


def _most_telling(records: list[ConsentRecord], status: ConsentStatus) -> ConsentRecord:
    """Among records sharing a status, the one whose date matters most: latest revocation or expiry, soonest start."""
    if status is ConsentStatus.REVOKED:
        return max(records, key=lambda r: (r.revoked_at or r.valid_from, r.id))
    if status is ConsentStatus.EXPIRED:
        return max(records, key=lambda r: (r.valid_until or r.valid_from, r.id))
    if status is ConsentStatus.NOT_YET_VALID:
        return min(records, key=lambda r: (r.valid_from, r.id))
    # Active: a verified-video consent above an attested one (a policy may require it), then the one that lasts
    # longest, an open-ended consent above all.
    return max(records, key=lambda r: (r.kind is ConsentKind.VERIFIED_VIDEO, r.valid_until is None, _end(r), r.id))


def _end(record: ConsentRecord) -> datetime:
    return record.valid_until or record.valid_from


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else "an unknown time"


def _message(status: ConsentStatus, record: ConsentRecord, scope: str, purpose: str | None) -> str:
    head = f"consent {record.id} for subject {record.subject_id}"
    if status is ConsentStatus.ACTIVE:
        until = f"until {_iso(record.valid_until)}" if record.valid_until else "with no end date"
        return f"{head} ({record.kind}) is active {until}"
    if status is ConsentStatus.REVOKED:
        return f"{head} was revoked at {_iso(record.revoked_at)}; the subject must grant a new consent"
    if status is ConsentStatus.EXPIRED:
        return f"{head} expired at {_iso(record.valid_until)}; ask the subject to renew it"
    if status is ConsentStatus.NOT_YET_VALID:
        return f"{head} becomes valid at {_iso(record.valid_from)}; retry after then"
    wanted = f"scope '{scope}'" + (f" for purpose '{purpose}'" if purpose else " with no stated purpose")
    scopes = ", ".join(sorted(record.scopes))
    purposes = ", ".join(sorted(record.purposes)) or "any"
    return (
        f"{head} does not cover {wanted} (it covers scopes: {scopes}; purposes: {purposes}); "
        "ask the subject for a consent that does"
    )


def evaluate_consent(
    records: Iterable[ConsentRecord],
    *,
    subject_id: str,
    grantee_tenant_id: str,
    scope: str,
    purpose: str | None,
    now: datetime,
) -> ConsentEvaluation:
    """Whether ``subject_id`` currently consents to ``grantee_tenant_id`` using ``scope`` for ``purpose``.

    An active covering consent wins; otherwise the most informative failure is reported.
    """
    now = _utc(now, "now")
    mine = [r for r in records if r.subject_id == subject_id and r.grantee_tenant_id == grantee_tenant_id]
    if not mine:
        return ConsentEvaluation(
            ConsentStatus.NONE,
            None,
            f"no consent from subject {subject_id} to tenant {grantee_tenant_id} is on record; "
            "record the subject's consent first",
        )

    covering = [r for r in mine if r.covers(scope, purpose)]
    by_status: dict[ConsentStatus, list[ConsentRecord]] = {}
    for record in covering:
        by_status.setdefault(_time_status(record, now), []).append(record)
    for status in (ConsentStatus.ACTIVE, *_PRIORITY):
        if status in by_status:
            chosen = _most_telling(by_status[status], status)
            return ConsentEvaluation(status, chosen.id, _message(status, chosen, scope, purpose), chosen.kind)

    # Only consents for other scopes or purposes remain; name a currently valid one if there is one.
    chosen = min(mine, key=lambda r: (_time_status(r, now) is not ConsentStatus.ACTIVE, r.id))
    status = ConsentStatus.OUT_OF_SCOPE
    return ConsentEvaluation(status, chosen.id, _message(status, chosen, scope, purpose), chosen.kind)
